"""Value objects that plugins return from ``crm_register_*`` and UI-slot hooks.

They are small frozen dataclasses so that startup can check them for name
collisions and ``crm plugins`` can show them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
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
class CustomerTab:
    """A tab on the customer page, beside its *Timeline* (``?tab=<name>``).

    Only the tab the user opened is loaded: ``load()`` returns the context its
    ``template`` is rendered with, so a plugin's queries run when they are shown.
    ``count`` (optional) is shown beside the title, e.g. the number of open deals;
    keep it cheap, it is computed for every visit of the page.
    """

    name: str
    title: str
    template: str
    load: Callable[[], Mapping[str, Any]]
    order: int = 100
    count: int | None = None


@dataclass(frozen=True)
class ListColumn:
    """A column a plugin adds to a list of the UI (customers, contacts).

    ``values(records)`` gets the records of the page shown (a list of ORM objects) and
    returns each one's cell by record id: text, or markup the plugin escaped itself
    (:class:`markupsafe.Markup`). It is called once per page, so one query serves the
    page. A record missing from the mapping shows an empty cell.
    """

    name: str
    header: str
    values: Callable[[list[Any]], Mapping[Any, Any]]
    order: int = 100


@dataclass(frozen=True)
class TimelineRenderer:
    """How the customer page shows a plugin's timeline entries of ``type``.

    ``template`` is rendered with ``entry`` (the :class:`TimelineEntry`) instead of core's
    title-and-summary layout.
    """

    type: str
    template: str


@dataclass(frozen=True)
class Job:
    """A background job run by ``crm worker``; ``schedule`` makes it periodic.

    ``func(crm, **kwargs)`` gets the :class:`~crm_core.runtime.CRM` of the worker and
    the keyword arguments given to :func:`crm_core.jobs.enqueue`. ``schedule`` is a
    five-field crontab string (``"*/15 * * * *"``: every 15 minutes); a failing run
    is retried ``retries`` times, ``retry_delay`` seconds apart.
    """

    name: str
    func: Callable[..., Any]
    schedule: str | None = None
    retries: int = 5
    retry_delay: float = 30.0


@dataclass(frozen=True)
class Event:
    """A domain event as consumers receive it (a row of the outbox)."""

    id: str
    """Unique per event: what a consumer uses to stay idempotent."""
    type: str
    """``<entity>.<action>``: ``contact.created``, ``customer.merged``..."""
    entity: str
    entity_id: str
    payload: Mapping[str, Any]
    occurred_at: dt.datetime
    actor_id: int | None = None


@dataclass(frozen=True)
class EventConsumer:
    """Something that reacts to domain events outside the writing transaction.

    ``handle(crm, event)`` is called by a worker for every event whose type matches
    one of ``event_types`` (``contact.created``, ``contact.*`` or ``*``), at least
    once: it may run again after a crash, so it must be idempotent (use
    ``event.id``). Raising counts as a failed attempt: it is retried with exponential
    backoff and, after ``max_attempts`` (default: the ``event_max_attempts``
    setting), left as a dead letter that an admin can replay.
    """

    name: str
    handle: Callable[[Any, Event], None]
    event_types: tuple[str, ...] = ("*",)
    max_attempts: int | None = None

    def wants(self, event_type: str) -> bool:
        """Whether ``event_type`` matches one of :attr:`event_types`."""
        return matches_event_type(self.event_types, event_type)


def matches_event_type(patterns: Iterable[str], event_type: str) -> bool:
    """Whether ``event_type`` matches a pattern: exact, ``<prefix>.*`` or ``*``."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True)
class Importer:
    """Reads records of ``entity`` from a file format (``csv``, ``vcf``...).

    With ``run``, core runs the importer as it runs its own imports: ``crm import
    <name> FILE``, ``POST /api/v1/imports`` with ``entity=<name>`` and the ``/imports``
    page create an import job and call ``run(context)`` with a
    :class:`crm_core.imports.ImportContext` (the file, the options, the actor, and
    ``context.report`` for each batch's rejected rows and counts); ``run`` returns a
    :class:`crm_core.imports.ImportSummary`. Without ``run`` the importer is only
    listed in ``crm.registry.importers``.
    """

    name: str
    """What ``crm import <name>`` and the API's ``entity`` take (core's ``customers``,
    ``contacts`` and ``interactions`` are core's: an importer named so is not run)."""
    entity: str
    formats: tuple[str, ...]
    """File formats read, by extension (``csv`` also takes ``.tsv`` and ``.txt``)."""
    read: Callable[[Any], Iterable[dict[str, Any]]]
    run: Callable[[Any], Any] | None = None
    """``run(context) -> ImportSummary``: import the context's file (see above)."""
    permission: str = ""
    """Needed to import (and to use the import pages for it); default ``<entity>.edit``."""
    label: str = ""
    """How the import page names it (a lazily translated text may do); default: ``name``."""
    targets: tuple[str, ...] = ()
    """The fields an explicit column mapping may name; the import page offers them to
    map a dry run's columns again (none: no such form)."""

    def __post_init__(self) -> None:
        if not self.permission:
            object.__setattr__(self, "permission", f"{self.entity}.edit")


@dataclass(frozen=True)
class Exporter:
    """A source of rows that core exports as CSV or JSON Lines, streamed in batches.

    ``name`` is what ``crm export <name>`` and ``GET /api/v1/exports/<name>.<format>``
    take (unique across core's ``customers``, ``contacts``, ``interactions`` and every
    plugin); only users holding ``permission`` may export it. Give either ``model`` (its
    table's ``columns``, default all, ordered by primary key; rows with ``archived``
    true are left out unless asked for) filtered by ``visibility(actor)`` (a clause;
    default: no filter), or ``query(actor, include_archived)`` returning a ``Select``
    whose selected columns are the export's columns, already filtered for ``actor``
    and ordered. ``actor`` is ``None`` for the system (``crm export`` without ``--as``).
    """

    name: str
    permission: str
    model: type[Any] | None = None
    columns: tuple[str, ...] = ()
    visibility: Callable[[Any], Any] | None = None
    query: Callable[[Any, bool], Any] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.model is None) == (self.query is None):
            raise ValueError(f"exporter {self.name!r}: give either model or query")
        if not self.permission:
            raise ValueError(f"exporter {self.name!r}: name the permission it needs")


@dataclass(frozen=True)
class SearchResult:
    """One hit of a search provider.

    ``score`` ranks hits of every provider against each other: 1.0 an exact match
    (the whole name, email or phone number), 0.9 a name that starts with the query,
    0.8 every word of the query starting a word of the name, 0.7 the same in other
    fields, below that typo-tolerant (fuzzy) matches.
    """

    entity: str
    id: Any
    title: str
    subtitle: str = ""
    score: float = 0.0


@dataclass(frozen=True)
class SearchProvider:
    """Finds records of ``entity`` for the global search.

    ``search(session, actor, query, limit)`` returns at most ``limit`` hits that
    ``actor`` may see; ``query`` is the stripped search text, a ``str`` (a
    :class:`crm_core.search.SearchQuery`, which also carries its parsed words,
    email and E.164 phone number). The global search skips the provider for users
    without ``permission`` (when given).
    """

    entity: str
    search: Callable[[Any, Any, str, int], Iterator[SearchResult] | Iterable[SearchResult]]
    permission: str | None = None


@dataclass(frozen=True)
class TimelineEntry:
    """One entry of a customer's timeline: an interaction, or what a plugin contributes.

    Entries are ordered newest first by ``(occurred_at, type, id)``; ``id`` must be
    unique within ``type`` and of one kind (all ``int`` or all ``str``) per type.
    """

    type: str
    """What the entry is, e.g. ``interaction`` or ``sales.deal``; filterable."""
    id: int | str
    occurred_at: dt.datetime
    """When it happened (timezone-aware)."""
    title: str
    summary: str = ""
    channel: str | None = None
    """The interaction channel (``call``, ``email``...), when the entry has one."""
    plugin: str = "crm_core"
    """Who contributed the entry (core sets it to the implementing plugin's name)."""
    url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """More JSON-serialisable details for the UI and the API."""
