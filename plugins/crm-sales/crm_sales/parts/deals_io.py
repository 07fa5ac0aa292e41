"""Deals in and out of files: ``crm export opportunities`` and ``crm import opportunities``.

**Export** goes through core's ``crm_register_exporters``: the export ``opportunities``
(CSV or JSON Lines, by ``crm export``, ``GET /api/v1/exports/opportunities.csv`` and the
UI's export page) holds the deals the user sees, for holders of ``sales.deal.view``: the
scalar fields of :class:`~crm_sales.schemas.OpportunitySchema` in its order, each
reference followed by what names it (``customer``, ``pipeline``, ``stage``,
``owner_email``, ``lost_reason``), so a file exported here imports back.

**Import**: core's import engine writes core's entities only, and core keeps a
registered :class:`~crm_core.extensions.Importer` in ``crm.registry.importers`` without
ever running it. So the import is here: :func:`import_deals` reads a CSV file
(:class:`DealFile`), resolves the references of each batch in one query per kind
(customer by ``customer_id``, ``customer.external_id``, ``customer.email`` or
``customer.name``; pipeline and stage by name; owner by email; lost reason by name) and
creates each row through :func:`crm_sales.services.opportunities.create` in a savepoint
of the batch's unit of work, so a refused row is reported by its line and reason
(core's ``line,column,value,reason``) while the others land. A dry run rolls every
batch back. ``crm import opportunities FILE`` joins core's ``crm import`` group when this
part is loaded (core has no hook for import subcommands).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import click
from flask import current_app
from flask.cli import with_appcontext
from marshmallow import fields as ma_fields
from sqlalchemy import ColumnElement, Numeric, Select, func, select, type_coerce
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import TypeDecorator

from crm_core import CRMError, PermissionDenied, UnitOfWork, ValidationError
from crm_core.authz import require, visible
from crm_core.extensions import Exporter, Importer
from crm_core.models import Customer, User
from crm_sales.models import LostReason, Opportunity, Pipeline, Stage
from crm_sales.schemas import OpportunitySchema
from crm_sales.services import opportunities

#: The name of the export and of the import.
NAME = "opportunities"
#: Rows written in one transaction (each row in a savepoint of its own).
BATCH_SIZE = 500
#: The header of a report of rejected rows (core's import report).
REPORT_HEADER = ("line", "column", "value", "reason")


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


class DealImportError(CRMError):
    """The file cannot be imported at all: unreadable, or its columns miss what a deal needs."""


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
    one of ``, ; TAB |`` that splits the first lines most consistently. Each header is
    matched to a target by its name, ignoring case, spaces, underscores, dots and
    hyphens, or by an alias (``customer`` is ``customer.name``...); other columns are
    ignored and listed. A file without a ``name`` column or a customer column is refused.
    """

    def __init__(
        self, stream: BinaryIO, *, encoding: str | None = None, delimiter: str | None = None
    ) -> None:
        start = stream.tell() if stream.seekable() else None
        sample = stream.read(SAMPLE_BYTES)
        if not isinstance(sample, bytes):
            raise DealImportError("the file must be opened in binary mode")
        self.encoding = _encoding(sample, encoding)
        if start is not None:
            stream.seek(start)
            raw: BinaryIO = stream
        else:
            raw = io.BytesIO(sample + stream.read())
        self._text = io.TextIOWrapper(
            raw,  # type: ignore[type-var]
            encoding=self.encoding, errors="surrogateescape", newline="",
        )
        text_sample = sample.decode(self.encoding, "surrogateescape")
        if delimiter in ("\\t", "tab", "TAB"):
            delimiter = "\t"
        if delimiter is not None and len(delimiter) != 1:
            raise DealImportError(f"the delimiter must be one character, not {delimiter!r}")
        self.delimiter = delimiter or sniff_delimiter(text_sample)
        self._reader = csv.reader(self._text, delimiter=self.delimiter, strict=False)
        self._consumed = 0
        first = next(self._lines(), None)
        if first is None:
            raise DealImportError("the file is empty: no header row")
        self.header = [cell.replace("\ufeff", "").strip() for cell in first[1]]
        self.targets: dict[int, str] = {}
        self.ignored: list[str] = []
        for index, header in enumerate(self.header):
            target = _TARGETS.get(normalise(header))
            if target is None or target in self.targets.values():
                self.ignored.append(_SURROGATE.sub("\ufffd", header))
            else:
                self.targets[index] = target
        found = set(self.targets.values())
        missing = []
        if "name" not in found:
            missing.append("a name column (name, deal, opportunity)")
        if not found & set(CUSTOMER_TARGETS):
            missing.append(f"a customer column ({', '.join(CUSTOMER_TARGETS)}, customer)")
        if missing:
            raise DealImportError(f"the file needs {' and '.join(missing)}")

    @property
    def columns(self) -> dict[str, str]:
        """Header -> target, for the columns that are read."""
        return {self.header[index]: target for index, target in self.targets.items()}

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
            raise DealImportError(f"line {self._consumed + 1}: {exc}") from exc

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
            raise DealImportError(f"unknown encoding {explicit!r}") from exc
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
    """The ``opportunities`` importer (CSV), kept in ``crm.registry.importers``.

    Core does not run plugins' importers: ``crm import opportunities`` (below) and
    :func:`import_deals` do.
    """
    return [Importer(NAME, opportunities.ENTITY, ("csv",), read_deals)]


# -- importing ------------------------------------------------------------------------------


@dataclass
class Rejection:
    """One reason one row was refused: its line, the column and cell it is about."""

    line: int
    column: str
    value: str | None
    reason: str


@dataclass
class DealImportSummary:
    """What an import of deals did (a dry run: would have done)."""

    dry_run: bool
    created: int = 0
    rejected: int = 0
    rows: int = 0
    seconds: float = 0.0
    encoding: str = ""
    delimiter: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    """Every reason of every refused row, in the file's order."""

    @property
    def rows_per_second(self) -> float:
        """Rows read per second."""
        return self.rows / self.seconds if self.seconds else 0.0


class _DryRun(Exception):
    """Raised inside a dry run's unit of work to roll the batch back."""


def import_deals(
    crm: Any,
    file: str | Path | BinaryIO,
    *,
    actor: Any = None,
    dry_run: bool = False,
    encoding: str | None = None,
    delimiter: str | None = None,
    batch_size: int = BATCH_SIZE,
) -> DealImportSummary:
    """Create a deal from each row of the CSV ``file`` as ``actor`` (``None``: the system).

    Needs ``sales.deal.edit`` (:class:`PermissionDenied`); raises
    :class:`DealImportError` when the file cannot be read or lacks a column a deal needs,
    before anything is written. Refused rows never raise: their reasons are in the
    summary. Rows are written ``batch_size`` at a time, one transaction per batch.
    """
    require(actor, opportunities.EDIT)
    if isinstance(file, str | Path):
        try:
            stream: BinaryIO = open(file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise DealImportError(f"cannot open {file}: {exc.strerror or exc}") from exc
        with stream:
            return _run(crm, stream, actor, dry_run, encoding, delimiter, batch_size)
    return _run(crm, file, actor, dry_run, encoding, delimiter, batch_size)


def _run(
    crm: Any,
    stream: BinaryIO,
    actor: Any,
    dry_run: bool,
    encoding: str | None,
    delimiter: str | None,
    batch_size: int,
) -> DealImportSummary:
    started = time.perf_counter()
    source = DealFile(stream, encoding=encoding, delimiter=delimiter)
    summary = DealImportSummary(
        dry_run, encoding=source.encoding, delimiter=source.delimiter,
        columns=source.columns, ignored=source.ignored,
    )
    batch: list[FileRow] = []
    try:
        for row in source.rows():
            batch.append(row)
            if len(batch) >= batch_size:
                _batch(crm, source, actor, batch, summary)
                batch = []
    except DealImportError as exc:
        if batch:
            _batch(crm, source, actor, batch, summary)
        saved = "nothing was saved" if dry_run else "rows before it were imported"
        raise DealImportError(f"{exc} ({saved})") from exc
    finally:
        source.close()
    if batch:
        _batch(crm, source, actor, batch, summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _batch(
    crm: Any, source: DealFile, actor: Any, rows: list[FileRow], summary: DealImportSummary
) -> None:
    """Write one batch in a unit of work of its own (rolled back in a dry run)."""
    created = 0
    rejections: list[Rejection] = []
    try:
        with crm.unit_of_work(actor=actor, source="import") as uow:
            resolver = _References(uow.session, actor, rows)
            for row in rows:
                problems = _create(uow, source, resolver, row)
                if problems:
                    rejections.extend(problems)
                else:
                    created += 1
            if summary.dry_run:
                raise _DryRun
    except _DryRun:
        pass
    summary.rows += len(rows)
    summary.created += created
    summary.rejected += len(rows) - created
    summary.rejections.extend(rejections)


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


def write_report(summary: DealImportSummary, path: str | Path) -> int:
    """Write every rejected row's reasons to ``path`` as core's import report (UTF-8 with a
    BOM, for spreadsheets): ``line,column,value,reason``. Returns how many reasons."""
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(REPORT_HEADER)
        writer.writerows((r.line, r.column, r.value or "", r.reason) for r in summary.rejections)
    return len(summary.rejections)


# -- ``crm import opportunities`` -----------------------------------------------------------

#: Rejected rows printed after the summary.
SHOWN_REJECTIONS = 10


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate everything, save nothing.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write every rejected row to this CSV file (line,column,value,reason).",
)
@click.option("--as", "as_email", default=None, metavar="EMAIL", help="Act as this user.")
@click.option("--delimiter", default=None, help="Column delimiter (default: detected; \\t).")
@click.option("--encoding", default=None, help="File encoding (default: detected).")
@with_appcontext
def import_command(
    files: tuple[Path, ...],
    dry_run: bool,
    report_path: Path | None,
    as_email: str | None,
    delimiter: str | None,
    encoding: str | None,
) -> None:
    """Import deals (crm-sales) from FILE... (.csv): each row through the same checks as
    every new deal; refused rows are reported by line, the others are created.

    Columns: name; customer_id, customer.external_id, customer.email or customer (its
    name); pipeline and stage (names); amount, currency, expected_close, owner (email),
    probability, committed, source, next_step, lost_reason.
    """
    crm = current_app.extensions["crm"]
    if crm.registry.models.get(Opportunity.__tablename__) != "crm_sales":
        raise click.ClickException("crm-sales is not enabled in this installation")
    actor = _actor(crm, as_email)
    for file in files:
        report = report_path
        if report is not None and len(files) > 1:
            report = report.with_name(f"{report.stem}-{file.stem}{report.suffix}")
        if not file.is_file():
            raise click.ClickException(f"{file}: no such file")
        try:
            summary = import_deals(crm, file, actor=actor, dry_run=dry_run, encoding=encoding,
                                   delimiter=delimiter)
        except (DealImportError, PermissionDenied) as exc:
            raise click.ClickException(f"{file}: {exc}") from exc
        _print_summary(file, summary, report)


def _actor(crm: Any, email: str | None) -> Any:
    """The active user ``--as`` names, with their roles; ``None`` (the system) without it."""
    if email is None:
        return None
    with crm.session_factory() as session:
        user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.BadParameter(f"no user {email!r}", param_hint="--as")
    if not user.active:
        raise click.BadParameter(f"{email!r} is deactivated", param_hint="--as")
    return user


def _print_summary(file: Path, summary: DealImportSummary, report: Path | None) -> None:
    prefix = "dry run, nothing saved: would have " if summary.dry_run else ""
    click.echo(
        f"{file.name}: {prefix}created {summary.created}, rejected {summary.rejected} of "
        f"{summary.rows} rows in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s)"
    )
    if summary.ignored:
        click.echo(f"  ignored columns: {', '.join(summary.ignored)}", err=True)
    for rejection in summary.rejections[:SHOWN_REJECTIONS]:
        column = f" {rejection.column}" if rejection.column else ""
        value = f" {rejection.value!r}" if rejection.value else ""
        click.echo(f"  line {rejection.line}{column}{value}: {rejection.reason}")
    if len(summary.rejections) > SHOWN_REJECTIONS and report is None:
        click.echo("  ... see every rejected row with --report FILE.csv", err=True)
    if report is not None:
        count = write_report(summary, report)
        click.echo(f"report: {count} reasons in {report}", err=True)


@click.group("sales")
def sales_group() -> None:
    """crm-sales: import deals."""


sales_group.add_command(import_command, "import")


def commands() -> list[click.Command]:
    """``crm sales import FILE...``: deals from CSV files."""
    return [sales_group]
