"""A CSV file of deals: core's CSV reader (encoding, delimiter, header), the columns
matched to what a deal has, and its rows by those targets."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from crm_core.imports import CsvSource, MappingError

_NORMALISE = re.compile(r"[\s_\-.:/()%#]+")

#: Targets of a column: fields of the deal's schema, and references resolved by the import.
FIELDS = (
    "name", "customer_id", "pipeline_id", "stage_id", "owner_id", "amount", "currency",
    "expected_close", "probability", "committed", "source", "next_step", "lost_reason_id",
)
REFERENCES = (
    "customer.external_id", "customer.email", "customer.name", "pipeline", "stage",
    "owner.email", "lost_reason",
)
_INTEGERS = frozenset({"customer_id", "pipeline_id", "stage_id", "owner_id", "probability",
                       "lost_reason_id"})
#: Headers (as :func:`normalise` leaves them) -> target, besides each target's own name.
ALIASES = {
    "deal": "name", "dealname": "name", "opportunity": "name", "opportunityname": "name",
    "title": "name",
    "customerexternalid": "customer.external_id", "accountexternalid": "customer.external_id",
    "customeremail": "customer.email", "accountemail": "customer.email",
    "customer": "customer.name", "customername": "customer.name", "company": "customer.name",
    "companyname": "customer.name", "account": "customer.name", "accountname": "customer.name",
    "pipelinename": "pipeline", "stagename": "stage", "dealstage": "stage",
    "value": "amount", "dealvalue": "amount", "currencycode": "currency",
    "closedate": "expected_close", "expectedclosedate": "expected_close",
    "owner": "owner.email", "owneremail": "owner.email", "leadsource": "source",
    "lostreason": "lost_reason",
}
#: A file names the customer by one of these.
CUSTOMER_TARGETS = ("customer_id", "customer.external_id", "customer.email", "customer.name")


def normalise(header: str) -> str:
    """A header reduced for matching: lower case, no spaces, underscores, dots or hyphens."""
    return _NORMALISE.sub("", header.lower())


_TARGETS = {normalise(target): target for target in (*FIELDS, *REFERENCES)} | ALIASES


@dataclass(frozen=True)
class FileRow:
    """One row of the file: the line it starts on, and its non-empty cells by target."""

    line: int
    values: dict[str, str]
    undecodable: tuple[str, ...] = ()
    """Columns whose cell holds bytes that are not valid in the file's encoding."""


class DealFile:
    """A CSV file of deals being read: its encoding, delimiter, header and rows (once, lazily).

    Encoding and delimiter are found as for core's imports (``encoding`` and
    ``delimiter`` when given; :class:`crm_core.imports.CsvSource`). ``columns`` maps
    headers to targets explicitly (``""`` ignores a column); every other header is
    matched to a target by its name, ignoring case, spaces, underscores, dots and
    hyphens, or by an alias (``customer`` is ``customer.name``...); other columns are
    ignored and listed. A file that cannot be read is a :class:`ReadError`; a mapping
    naming what does not exist, or a file without a ``name`` column or a customer
    column, a :class:`MappingError`.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        encoding: str | None = None,
        delimiter: str | None = None,
        columns: Mapping[str, str] | None = None,
    ) -> None:
        if delimiter in ("\\t", "tab", "TAB"):
            delimiter = "\t"
        if delimiter is not None and len(delimiter) != 1:
            raise MappingError({"delimiter": [f"Give one character, not {delimiter!r}."]})
        self._source = CsvSource(stream, encoding=encoding, delimiter=delimiter)
        self.encoding = self._source.encoding.name
        self.delimiter = self._source.delimiter
        self.header = list(self._source.header)
        self.targets: dict[int, str] = {}
        self.ignored: list[str] = []
        self._map(self._explicit(columns or {}))
        found = set(self.targets.values())
        missing = []
        if "name" not in found:
            missing.append("a name column (name, deal, opportunity)")
        if not found & set(CUSTOMER_TARGETS):
            missing.append(f"a customer column ({', '.join(CUSTOMER_TARGETS)}, customer)")
        if missing:
            raise MappingError({"columns": [f"the file needs {' and '.join(missing)}"]})

    def _explicit(self, columns: Mapping[str, str]) -> dict[int, str | None]:
        """Column index -> target (``None``: ignored) of an explicit mapping; a header the
        file lacks or a target a deal does not have is a :class:`MappingError`."""
        chosen: dict[int, str | None] = {}
        errors: dict[str, list[str]] = {}
        for header, name in columns.items():
            found = [i for i, h in enumerate(self.header) if h == header] or [
                i for i, h in enumerate(self.header) if normalise(h) == normalise(header)
            ]
            target = _TARGETS.get(normalise(name)) if name.strip() else None
            if len(found) != 1:
                errors[header] = [f"The file has no column {header!r}; its columns: "
                                  f"{', '.join(self.header)}."]
            elif name.strip() and target is None:
                errors[header] = [f"A deal has no field {name!r}; known: "
                                  f"{', '.join((*FIELDS, *REFERENCES))}."]
            else:
                chosen[found[0]] = target
        if errors:
            raise MappingError(errors)
        return chosen

    def _map(self, explicit: Mapping[int, str | None]) -> None:
        """Fill :attr:`targets` and :attr:`ignored`: ``explicit`` first, then by name."""
        used = {target for target in explicit.values() if target}
        for index, header in enumerate(self.header):
            if index in explicit:
                target = explicit[index]
            else:
                target = _TARGETS.get(normalise(header))
                target = None if target in used else target
            if target is None:
                self.ignored.append(header)
            else:
                self.targets[index] = target
                used.add(target)

    @property
    def columns(self) -> dict[str, str]:
        """Header -> target, for the columns that are read."""
        return {self.header[index]: target for index, target in self.targets.items()}

    @property
    def columns_used(self) -> dict[str, str]:
        """Each header -> the target it fills (``""``: ignored), as core's jobs keep it."""
        return {header: self.targets.get(index, "") for index, header in enumerate(self.header)}

    @property
    def bytes_read(self) -> int:
        """How many bytes of the file have been read so far."""
        return self._source.bytes_read

    def column_of(self, target: str) -> str:
        """The header of the column that fills ``target`` (``""`` if none)."""
        for index, name in self.targets.items():
            if name == target:
                return self.header[index]
        return ""

    def rows(self) -> Iterator[FileRow]:
        """The data rows after the header, each with its non-empty cells by target."""
        for raw in self._source.rows():
            cells = raw.cells
            values: dict[str, str] = {}
            for index, target in self.targets.items():
                cell = cells[index].strip() if index < len(cells) else ""
                if cell:
                    values[target] = cell
            undecodable = tuple(self.header[index] for index in raw.bad_cells
                                if index in self.targets and self.targets[index] in values)
            yield FileRow(raw.line, values, undecodable)

    def close(self) -> None:
        """Let go of the file (the stream stays the caller's to close)."""
        self._source.close()


def read_deals(file: BinaryIO) -> Iterator[dict[str, Any]]:
    """The rows of a deals CSV file, each as target -> cell text (the registered importer).

    Fields of :class:`~crm_sales.schemas.OpportunitySchema` come as they are; references
    (``customer.name``, ``pipeline``, ``stage``, ``owner.email``...) are what
    :func:`import_deals` resolves to ids.
    """
    source = DealFile(file)
    try:
        for row in source.rows():
            yield dict(row.values)
    finally:
        source.close()
