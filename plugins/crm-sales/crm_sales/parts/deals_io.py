"""Deals in and out of files: ``crm export opportunities`` and ``crm import opportunities``.

**Export** goes through core's ``crm_register_exporters``: the export ``opportunities``
(CSV or JSON Lines, by ``crm export``, ``GET /api/v1/exports/opportunities.csv`` and the
UI's export page) holds the deals the user sees, for holders of ``sales.deal.view``: the
scalar fields of :class:`~crm_sales.schemas.OpportunitySchema` in its order, each
reference followed by what names it (``customer``, ``pipeline``, ``stage``,
``owner_email``, ``lost_reason``), so a file exported here imports back.

**Import** goes through core's import jobs: the registered
:class:`~crm_core.extensions.Importer` ``opportunities`` has a ``run`` (:func:`run`), so
``crm import opportunities FILE``, ``POST /api/v1/imports`` with ``entity=opportunities``
and the ``/imports`` page import deals with core's job record, progress, dry runs,
reruns and report of rejected rows (by line and column), for holders of
``sales.deal.edit``. :func:`run` reads the CSV file (:class:`DealFile`, explicit columns
over the automatic ones), resolves the references of each batch in one query per kind
(customer by ``customer_id``, ``customer.external_id``, ``customer.email`` or
``customer.name``; pipeline and stage by name; owner by email; lost reason by name) and
creates each row through :func:`crm_sales.services.opportunities.create` in a savepoint
of the batch's unit of work, so a refused row is reported by its line and reason while
the others land; each batch's rejected rows and counts go to core through
``context.report``. A dry run rolls every batch back.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from flask_babel import lazy_gettext as _l
from marshmallow import fields as ma_fields
from sqlalchemy import ColumnElement, Numeric, Select, func, select, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import TypeDecorator

from crm_core import CRMError, PermissionDenied, UnitOfWork, ValidationError
from crm_core.authz import require, visible
from crm_core.extensions import Exporter, Importer
from crm_core.imports import (
    ImportContext,
    ImportOptions,
    ImportSummary,
    MappingError,
    ReadError,
    Rejection,
    run_import,
)
from crm_core.models import Customer, User
from crm_sales.models import LostReason, Opportunity, Pipeline, Stage
from crm_sales.schemas import OpportunitySchema
from crm_sales.services import opportunities

#: The name of the export and of the import.
NAME = "opportunities"


# -- export ---------------------------------------------------------------------------------

#: The owner of a deal, aliased: visibility filters select from ``User`` themselves.
_Owner = aliased(User, name="owner")
#: What names a reference, written after its id: id field -> (column name, expression).
_NAMED_BY: dict[str, tuple[str, Any]] = {
    "customer_id": ("customer", Customer.name),
    "pipeline_id": ("pipeline", Pipeline.name),
    "stage_id": ("stage", Stage.name),
    "owner_id": ("owner_email", _Owner.email),
    "lost_reason_id": ("lost_reason", LostReason.name),
}


class _Places(TypeDecorator[Decimal]):
    """A number read as a :class:`~decimal.Decimal` rounded to ``exponent`` (``0.01``)."""

    impl = Numeric(18, 4, asdecimal=True)
    cache_ok = True

    def __init__(self, exponent: Decimal) -> None:
        super().__init__()
        self.exponent = exponent

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        """The stored value rounded to the field's decimals."""
        return None if value is None else Decimal(value).quantize(self.exponent)


def export_columns() -> list[ColumnElement[Any]]:
    """The export's columns: the schema's scalar fields, each reference's name after its id."""
    table = Opportunity.__table__
    columns: list[ColumnElement[Any]] = []
    for name, schema_field in OpportunitySchema().fields.items():
        if isinstance(schema_field, ma_fields.List | ma_fields.Nested):
            continue
        if name == "effective_probability":
            columns.append(func.coalesce(Opportunity.probability, Stage.probability).label(name))
        elif name in table.c and isinstance(schema_field, ma_fields.Decimal):
            # As the API shows it: amounts with two decimals (stored with four).
            exponent = schema_field.places or Decimal("0.0001")  # marshmallow's quantizer
            columns.append(type_coerce(table.c[name], _Places(exponent)).label(name))
        elif name in table.c:
            columns.append(table.c[name].label(name))
        else:
            continue
        if name in _NAMED_BY:
            label, expression = _NAMED_BY[name]
            columns.append(expression.label(label))
    return columns


def export_query(actor: Any, include_archived: bool) -> Select[Any]:
    """The deals ``actor`` sees (``None``: all), oldest first, with the export's columns."""
    statement = (
        select(*export_columns())
        .select_from(Opportunity)
        .join(Customer, Customer.id == Opportunity.customer_id)
        .join(Pipeline, Pipeline.id == Opportunity.pipeline_id)
        .join(Stage, Stage.id == Opportunity.stage_id)
        .outerjoin(_Owner, _Owner.id == Opportunity.owner_id)
        .outerjoin(LostReason, LostReason.id == Opportunity.lost_reason_id)
        .where(opportunities.visible_deals(actor))
    )
    if not include_archived:
        statement = statement.where(Opportunity.archived.is_(False))
    return statement.order_by(Opportunity.id)


def exporters() -> list[Exporter]:
    """``crm export opportunities``: the deals the user sees (``sales.deal.view``)."""
    return [
        Exporter(
            NAME,
            opportunities.VIEW,
            query=export_query,
            description="Every deal the user may see, with its customer, pipeline, stage and "
            "owner by name.",
        )
    ]


# -- reading a file -------------------------------------------------------------------------

#: How much of the file decides the encoding and the delimiter.
SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
_NORMALISE = re.compile(r"[\s_\-.:/()%#]+")
_INTEGER = re.compile(r"[+-]?\d+")
_SURROGATE = re.compile("[\udc80-\udcff]")

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

    The encoding is ``encoding`` if given, else a byte order mark's, else UTF-8 when the
    first 64 KiB are UTF-8, else cp1252; the delimiter is ``delimiter`` if given, else the
    one of ``, ; TAB |`` that splits the first lines most consistently. ``columns`` maps
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
        start = stream.tell() if stream.seekable() else None
        sample = stream.read(SAMPLE_BYTES)
        if not isinstance(sample, bytes):
            raise ReadError("the file must be opened in binary mode")
        self.encoding = _encoding(sample, encoding)
        if start is not None:
            stream.seek(start)
            raw: BinaryIO = stream
        else:
            raw = io.BytesIO(sample + stream.read())
            start = 0
        self._raw, self._start = raw, start
        self._text = io.TextIOWrapper(
            raw,  # type: ignore[type-var]
            encoding=self.encoding, errors="surrogateescape", newline="",
        )
        text_sample = sample.decode(self.encoding, "surrogateescape")
        if delimiter in ("\\t", "tab", "TAB"):
            delimiter = "\t"
        if delimiter is not None and len(delimiter) != 1:
            raise MappingError({"delimiter": [f"Give one character, not {delimiter!r}."]})
        self.delimiter = delimiter or sniff_delimiter(text_sample)
        self._reader = csv.reader(self._text, delimiter=self.delimiter, strict=False)
        self._consumed = 0
        first = next(self._lines(), None)
        if first is None:
            raise ReadError("the file is empty: no header row")
        self.header = [cell.replace("\ufeff", "").strip() for cell in first[1]]
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
                self.ignored.append(_SURROGATE.sub("\ufffd", header))
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
        return self._raw.tell() - self._start

    def column_of(self, target: str) -> str:
        """The header of the column that fills ``target`` (``""`` if none)."""
        for index, name in self.targets.items():
            if name == target:
                return self.header[index]
        return ""

    def _lines(self) -> Iterator[tuple[int, list[str]]]:
        """``(line it starts on, cells)`` of each non-blank row left."""
        reader = self._reader
        try:
            for cells in reader:
                line = self._consumed + 1
                self._consumed = reader.line_num
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue
                yield line, cells
        except csv.Error as exc:
            raise ReadError(f"line {self._consumed + 1}: {exc}") from exc

    def rows(self) -> Iterator[FileRow]:
        """The data rows after the header, each with its non-empty cells by target."""
        for line, cells in self._lines():
            values: dict[str, str] = {}
            undecodable: list[str] = []
            for index, target in self.targets.items():
                cell = cells[index].strip() if index < len(cells) else ""
                if not cell:
                    continue
                if _SURROGATE.search(cell):
                    undecodable.append(self.header[index])
                values[target] = cell
            yield FileRow(line, values, tuple(undecodable))

    def close(self) -> None:
        """Let go of the text wrapper (the stream stays the caller's to close)."""
        self._text.detach()


def _encoding(sample: bytes, explicit: str | None) -> str:
    if explicit:
        try:
            name = codecs.lookup(explicit).name
        except LookupError as exc:
            raise ReadError(f"unknown encoding {explicit!r}") from exc
        return "utf-8-sig" if name == "utf-8" else name
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def sniff_delimiter(sample: str) -> str:
    """The delimiter of :data:`DELIMITERS` that splits the sample's lines most consistently."""
    lines = sample.splitlines()[:50]
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line may be cut off
    best, best_score = ",", (0.0, 0)
    for candidate in DELIMITERS:
        try:
            rows = [row for row in csv.reader(lines, delimiter=candidate) if row]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (sum(len(row) == width for row in rows) / len(rows), width)
        if score > best_score:
            best, best_score = candidate, score
    return best


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


def importers() -> list[Importer]:
    """The ``opportunities`` importer (CSV) that core runs: ``crm import opportunities``,
    ``POST /api/v1/imports`` and the ``/imports`` page, for holders of ``sales.deal.edit``."""
    return [
        Importer(
            NAME, opportunities.ENTITY, ("csv",), read_deals, run=run,
            permission=opportunities.EDIT, label=_l("Deals"), targets=(*FIELDS, *REFERENCES),
        )
    ]


# -- importing ------------------------------------------------------------------------------


class _DryRun(Exception):
    """Raised inside a dry run's unit of work to roll the batch back."""


def run(context: ImportContext) -> ImportSummary:
    """Create a deal from each row of the context's CSV file as ``context.actor``.

    What core calls for an import of ``opportunities``. Needs ``sales.deal.edit``
    (:class:`PermissionDenied`); raises :class:`ReadError` when the file cannot be read
    and :class:`MappingError` when its columns lack what a deal needs, before anything is
    written. Refused rows never raise: each batch's are handed to ``context.report``
    with the counts. Rows are written ``context.batch_size`` at a time, one transaction
    per batch (rolled back in a dry run).
    """
    require(context.actor, opportunities.EDIT)
    started = time.perf_counter()
    source = DealFile(context.stream, encoding=context.encoding, delimiter=context.delimiter,
                      columns=context.columns)
    summary = context.summary()
    summary.encoding, summary.delimiter = source.encoding, source.delimiter
    summary.columns, summary.ignored = source.columns, source.ignored
    context.record_columns(source.columns_used)
    batch: list[FileRow] = []
    try:
        for row in source.rows():
            batch.append(row)
            if len(batch) >= context.batch_size:
                _batch(context, source, batch, summary, started)
                batch = []
    except ReadError as exc:
        if batch:
            _batch(context, source, batch, summary, started)
        saved = "nothing was saved" if context.dry_run else "rows before it were imported"
        raise ReadError(f"{exc} ({saved})") from exc
    finally:
        source.close()
    if batch:
        _batch(context, source, batch, summary, started)
    summary.seconds = time.perf_counter() - started
    return summary


def import_deals(
    crm: Any,
    file: str | Path | BinaryIO,
    *,
    actor: Any = None,
    dry_run: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
    columns: Mapping[str, str] | None = None,
    batch_size: int | None = None,
) -> ImportSummary:
    """Import the deals of the CSV ``file`` (a path or a binary stream) without a job:
    core's :func:`~crm_core.imports.run_import` of ``opportunities``, for Python callers.

    Every rejection is in the summary; errors are :func:`run`'s.
    """
    options = ImportOptions(
        NAME, columns=dict(columns) if columns else None, delimiter=delimiter,
        encoding=encoding, dry_run=dry_run, batch_size=batch_size,
    )
    return run_import(crm, file, options, actor=actor)


def _batch(
    context: ImportContext,
    source: DealFile,
    rows: list[FileRow],
    summary: ImportSummary,
    started: float,
) -> None:
    """Write one batch in a unit of work of its own (rolled back in a dry run), then report
    its rejected rows and the counts to core."""
    created = 0
    rejections: list[Rejection] = []
    try:
        with context.crm.unit_of_work(actor=context.actor, source="import") as uow:
            resolver = _References(uow.session, context.actor, rows)
            for row in rows:
                problems = _create(uow, source, resolver, row)
                if problems:
                    rejections.extend(problems)
                else:
                    created += 1
            if context.dry_run:
                raise _DryRun
    except _DryRun:
        pass
    summary.processed_rows += len(rows)
    summary.created += created
    summary.rejected += len(rows) - created
    summary.processed_bytes = source.bytes_read
    summary.seconds = time.perf_counter() - started
    context.report(rejections, summary)


def _create(
    uow: UnitOfWork, source: DealFile, resolver: _References, row: FileRow
) -> list[Rejection]:
    """Create the deal of ``row`` in a savepoint; the reasons it was refused, if it was."""
    if row.undecodable:
        return [
            Rejection(row.line, column, None,
                      f"Holds bytes that are not valid {source.encoding}: check the encoding.")
            for column in row.undecodable
        ]
    data, problems, columns = resolver.data(row)
    if problems:
        return [Rejection(row.line, source.column_of(target), row.values.get(target), reason)
                for target, reason in problems]
    callbacks = len(uow.committed_callbacks)
    try:
        with uow.session.begin_nested():
            opportunities.create(uow, data)
    except ValidationError as exc:
        del uow.committed_callbacks[callbacks:]
        found = []
        for field_name, messages in exc.messages.items():
            target = columns.get(str(field_name), str(field_name))
            column = source.column_of(target)
            value = row.values.get(target) if column else None
            found.extend(Rejection(row.line, column, value, text) for text in _texts(messages))
        return found or [Rejection(row.line, "", None, "Refused.")]
    except PermissionDenied:
        raise
    except (CRMError, DBAPIError) as exc:
        del uow.committed_callbacks[callbacks:]
        reason = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
        return [Rejection(row.line, "", None, f"Not imported: {reason}")]
    return []


def _texts(value: Any, prefix: str = "") -> Iterator[str]:
    """Every message of a marshmallow message structure, nested keys as ``key: message``."""
    if isinstance(value, str):
        yield f"{prefix}{value}"
    elif isinstance(value, Mapping):
        for key, nested in value.items():
            yield from _texts(nested, f"{prefix}{key}: ")
    elif isinstance(value, list | tuple):
        for nested in value:
            yield from _texts(nested, prefix)
    else:
        yield f"{prefix}{value}"


class _References:
    """The records a batch's rows name, read in one query per kind, and each row's input."""

    def __init__(self, session: Session, actor: Any, rows: Sequence[FileRow]) -> None:
        wanted: dict[str, set[str]] = {}
        for row in rows:
            values = row.values
            used = [] if "customer_id" in values else [
                next((t for t in CUSTOMER_TARGETS[1:] if t in values), "")
            ]
            if "owner_id" not in values:
                used.append("owner.email")
            for target in used:
                if target in values:
                    value = values[target]
                    wanted.setdefault(target, set()).add(
                        value.lower() if target.endswith(".email") else value
                    )
        self.customers: dict[str, dict[str, int | None]] = {}
        for target, values in wanted.items():
            if target.startswith("customer."):
                self.customers[target] = _customers(session, actor, target, values)
        self.owners: dict[str, int | None] = {}
        if "owner.email" in wanted:
            for email, ident, active in session.execute(
                select(User.email, User.id, User.active).where(
                    User.email.in_(sorted(wanted["owner.email"]))
                )
            ):
                self.owners[email] = ident if active else None
        needs_pipelines = any(
            "pipeline" in row.values or "stage" in row.values for row in rows
        )
        self.pipelines: list[Pipeline] = []
        if needs_pipelines:
            self.pipelines = list(session.scalars(
                select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.position,
                                          Pipeline.id)
            ))
        self.lost_reasons: dict[str, int] = {}
        if any("lost_reason" in row.values for row in rows):
            self.lost_reasons = {
                name.lower(): ident
                for name, ident in session.execute(select(LostReason.name, LostReason.id))
            }

    def data(self, row: FileRow) -> tuple[dict[str, Any], list[tuple[str, str]], dict[str, str]]:
        """The service input of ``row``, problems as ``(target, reason)``, and which target
        filled each resolved field (to name the column of a refused field)."""
        values = row.values
        data: dict[str, Any] = {}
        for target in FIELDS:
            if target in values:
                text = values[target]
                data[target] = int(text) if target in _INTEGERS and _INTEGER.fullmatch(
                    text) else text
        problems: list[tuple[str, str]] = []
        filled: dict[str, str] = {}
        if "customer_id" not in data:
            for target in CUSTOMER_TARGETS[1:]:
                if target in values:
                    filled["customer_id"] = target
                    ident, reason = self._customer(target, values[target])
                    if reason:
                        problems.append((target, reason))
                    else:
                        data["customer_id"] = ident
                    break
        if "owner_id" not in data and "owner.email" in values:
            filled["owner_id"] = "owner.email"
            owner = self.owners.get(values["owner.email"].lower())
            if owner is None:
                problems.append(("owner.email", f"No active user with the email "
                                                f"{values['owner.email']!r}."))
            else:
                data["owner_id"] = owner
        if "lost_reason_id" not in data and "lost_reason" in values:
            filled["lost_reason_id"] = "lost_reason"
            reason_id = self.lost_reasons.get(values["lost_reason"].lower())
            if reason_id is None:
                problems.append(("lost_reason", f"No lost reason named "
                                                f"{values['lost_reason']!r}."))
            else:
                data["lost_reason_id"] = reason_id
        self._pipeline_and_stage(values, data, problems, filled)
        return data, problems, filled

    def _customer(self, target: str, value: str) -> tuple[int | None, str]:
        key = value.lower() if target == "customer.email" else value
        ident = self.customers.get(target, {}).get(key, 0)
        what = target.partition(".")[2].replace("_", " ")
        if ident is None:
            return None, f"Several customers have the {what} {value!r}."
        if not ident:
            return None, f"No customer with the {what} {value!r}."
        return ident, ""

    def _pipeline_and_stage(
        self,
        values: Mapping[str, str],
        data: dict[str, Any],
        problems: list[tuple[str, str]],
        filled: dict[str, str],
    ) -> None:
        """Fill ``pipeline_id`` and ``stage_id`` from the names (ids given win)."""
        pipeline: Pipeline | None = None
        if "pipeline_id" not in data and "pipeline" in values:
            filled["pipeline_id"] = "pipeline"
            pipeline = self._named(self.pipelines, values["pipeline"])
            if pipeline is None:
                problems.append(("pipeline", f"No pipeline named {values['pipeline']!r}."))
                return
            data["pipeline_id"] = pipeline.id
        if "stage_id" in data or "stage" not in values:
            return
        filled["stage_id"] = "stage"
        if pipeline is None:
            pipeline_id = data.get("pipeline_id")
            if pipeline_id is None:
                pipeline = self.pipelines[0] if self.pipelines else None
            else:
                pipeline = next((p for p in self.pipelines if p.id == pipeline_id), None)
        if pipeline is None:
            return  # the service names the missing or unknown pipeline
        stage = self._named(pipeline.stages, values["stage"])
        if stage is None:
            problems.append(
                ("stage", f"The pipeline {pipeline.name!r} has no stage {values['stage']!r}.")
            )
        else:
            data["stage_id"] = stage.id

    @staticmethod
    def _named(records: Sequence[Any], name: str) -> Any:
        """The record called ``name`` (exactly, else ignoring case), or ``None``."""
        exact = next((record for record in records if record.name == name.strip()), None)
        if exact is not None:
            return exact
        folded = name.strip().casefold()
        return next((record for record in records if record.name.casefold() == folded), None)


def _customers(session: Session, actor: Any, target: str, values: set[str]) -> dict[str, Any]:
    """Key -> id of the visible, unmerged customer it names (``None``: several, by name)."""
    column = {"customer.external_id": Customer.external_id, "customer.email": Customer.email,
              "customer.name": Customer.name}[target]
    statement = (
        select(column, func.min(Customer.id), func.count(Customer.id))
        .where(column.in_(sorted(values)), Customer.merged_into_id.is_(None),
               visible(actor, "customer"))
        .group_by(column)
    )
    return {
        key: (ident if count == 1 or target != "customer.name" else None)
        for key, ident, count in session.execute(statement)
    }
