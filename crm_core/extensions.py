"""Value objects that plugins return from ``crm_register_*`` and UI-slot hooks.

They are small frozen dataclasses so that startup can check them for name
collisions and ``crm plugins`` can show them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

AttributeType = Literal["string", "text", "integer", "decimal", "boolean", "date", "choice"]


@dataclass(frozen=True)
class Channel:
    """An interaction channel such as ``call`` or (from a plugin) ``whatsapp``."""

    name: str
    label: str = ""
    directional: bool = True
    """Whether interactions on this channel have a direction (in/out)."""


@dataclass(frozen=True)
class Permission:
    """A permission a role can grant, e.g. ``customer.edit`` or ``sales.deal.view``."""

    name: str
    description: str = ""


@dataclass(frozen=True)
class CustomAttribute:
    """A custom attribute of a core entity, stored in its ``attributes`` JSON and validated."""

    entity: Literal["customer", "contact"]
    name: str
    type: AttributeType = "string"
    label: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """``entity.name``: the attribute's unique key."""
        return f"{self.entity}.{self.name}"


@dataclass(frozen=True)
class MenuItem:
    """An entry of the main navigation."""

    label: str
    endpoint: str
    icon: str = ""
    order: int = 100
    permission: str | None = None


@dataclass(frozen=True)
class Panel:
    """A panel on the customer page, rendered from ``template`` with ``context``."""

    name: str
    title: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    order: int = 100


@dataclass(frozen=True)
class Job:
    """A background job; ``schedule`` (a crontab string) makes it periodic."""

    name: str
    func: Callable[..., Any]
    schedule: str | None = None
    retries: int = 5


@dataclass(frozen=True)
class Importer:
    """Reads records of ``entity`` from a file format (``csv``, ``vcf``...)."""

    name: str
    entity: str
    formats: tuple[str, ...]
    read: Callable[[Any], Iterable[dict[str, Any]]]


@dataclass(frozen=True)
class Exporter:
    """Writes records of ``entity`` to a file format."""

    name: str
    entity: str
    format: str
    write: Callable[[Iterable[Any], Any], None]


@dataclass(frozen=True)
class SearchResult:
    """One hit of a search provider."""

    entity: str
    id: Any
    title: str
    subtitle: str = ""
    score: float = 0.0


@dataclass(frozen=True)
class SearchProvider:
    """Finds records of ``entity`` for the global search: ``search(session, query, limit)``."""

    entity: str
    search: Callable[[Any, str, int], Iterator[SearchResult] | Iterable[SearchResult]]
