"""The import engine: rows in batches through the services' bulk path, one transaction each.

For each batch of ``settings.bulk_batch_size`` rows, in one unit of work (source
``import``):

1. references (``customer.external_id``...) are looked up, one query per kind;
2. rows are matched to stored records (one query per key kind) on ``match_on``:
   ``external_id`` (interactions: ``external_ref`` within ``source``), ``email``,
   ``auto`` (a row's external id when it has one, else its email) or ``none``;
3. matched rows are skipped, updated (``bulk_update``; emails, phones and tags of the
   file are added to the stored ones) or created anyway, as ``on_match`` says; the
   others are created (``bulk_create``). Validation (the marshmallow schema and the
   ``crm_validate`` hooks), audit entries, outbox events and ``crm_on_*`` hooks all
   happen inside those service calls, once per batch;
4. refused rows are translated from field messages into (line, column, value, reason).

A batch whose write raises (a plugin's hook, the database) is rolled back alone and
each of its rows is reported with the reason; the other batches stand. A **dry run**
rolls every batch back and reports the same counts. Two rows of one file with the
same key never both create a record: the later row starts a new batch, so it meets
the earlier one as a stored record (updated or skipped by ``on_match``).

Progress, counts and rejections go to the :class:`~crm_core.models.ImportJob` in
short transactions of their own after each batch, so pollers see them move; the
header -> target mapping a CSV file resolved goes to its ``columns_used`` before the
first row (both through :mod:`crm_core.imports.summary`, which plugins' importers
report through too). :func:`run_import` hands a file whose ``entity`` names a plugin's
importer to that importer's ``run`` (:mod:`crm_core.imports.context`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import func, select, tuple_

from crm_core.authz import visible
from crm_core.errors import CRMError, HookError
from crm_core.extensions import Importer
from crm_core.i18n import N_
from crm_core.imports.context import run_importer
from crm_core.imports.mapping import (
    ColumnMapping,
    MappedRow,
    MappingError,
    RowMapper,
    entity_name,
    plugin_importer,
    resolve_mapping,
)
from crm_core.imports.reading import CsvSource, ReadError
from crm_core.imports.summary import (
    MAX_VALUE,
    SUMMARY_REJECTIONS,
    ImportSummary,
    Progress,
    Rejection,
    message_texts,
    record_columns,
    report_batch,
)
from crm_core.imports.vcard import COLUMNS as VCARD_COLUMNS
from crm_core.imports.vcard import VcardSource
from crm_core.models import (
    Contact,
    ContactEmail,
    ContactPhone,
    Customer,
    CustomerTag,
    Interaction,
)
from crm_core.services import contacts, customers, interactions
from crm_core.services.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from crm_core.runtime import CRM

__all__ = [
    "MAX_VALUE", "SUMMARY_REJECTIONS", "ImportOptions", "ImportRunner", "ImportSummary",
    "Progress", "Rejection", "format_for", "preflight", "run_import",
]

MATCH_ON = ("auto", "external_id", "email", "none")
ON_MATCH = ("update", "skip", "create")
FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".vcf": "vcf", ".vcard": "vcf"}

_SERVICES: dict[str, Any] = {
    "customer": customers,
    "contact": contacts,
    "interaction": interactions,
}
_MODELS: dict[str, Any] = {"customer": Customer, "contact": Contact, "interaction": Interaction}


@dataclass
class ImportOptions:
    """What to import and how; :meth:`checked` refuses values that make no sense."""

    entity: str
    format: str = "csv"
    columns: dict[str, str] | None = None
    """Explicit header -> target mapping (merged over the automatic one)."""
    delimiter: str | None = None
    encoding: str | None = None
    match_on: str | None = None
    """``auto`` (the default), ``external_id``, ``email`` or ``none``."""
    on_match: str | None = None
    """``update`` (the default), ``skip`` or ``create``."""
    dry_run: bool = False
    batch_size: int | None = None

    def checked(self, crm: CRM | None = None) -> ImportOptions:
        """These options, normalised; :class:`MappingError` naming each bad option.

        With ``crm``, ``entity`` may also name a plugin's importer (see
        :func:`~crm_core.imports.mapping.plugin_importer`).
        """
        errors: dict[str, list[str]] = {}
        try:
            self.entity = entity_name(self.entity, crm)
        except MappingError as exc:
            errors.update(exc.messages)
        importer = plugin_importer(crm, self.entity)
        if importer is not None:
            errors.update(self._plugin_errors(importer))
        else:
            errors.update(self._core_errors())
        if self.delimiter is not None and len(self.delimiter) != 1:
            if self.delimiter in ("\\t", "tab", "TAB"):
                self.delimiter = "\t"
            else:
                errors["delimiter"] = [N_("Give one character (or \\t for a tab).")]
        if self.batch_size is not None and self.batch_size < 1:
            errors["batch_size"] = [N_("Must be at least 1.")]
        if errors:
            raise MappingError(errors)
        return self

    def _plugin_errors(self, importer: Importer) -> dict[str, list[str]]:
        """What is wrong with these options for a plugin's ``importer``."""
        errors: dict[str, list[str]] = {}
        for name in ("match_on", "on_match"):
            if getattr(self, name):
                errors[name] = [
                    f"{importer.name} imports do not match rows to stored records: "
                    f"leave {name} out."
                ]
        if self.format not in importer.formats:
            errors["format"] = [f"{importer.name} imports read {', '.join(importer.formats)}."]
        return errors

    def _core_errors(self) -> dict[str, list[str]]:
        """What is wrong with these options for core's entities (matching, format)."""
        errors: dict[str, list[str]] = {}
        self.match_on = (self.match_on or "auto").lower()
        self.on_match = (self.on_match or "update").lower()
        if self.match_on == "external_ref":
            self.match_on = "external_id"
        if self.match_on not in MATCH_ON:
            errors["match_on"] = [f"Use one of {', '.join(MATCH_ON)}."]
        elif self.entity == "interaction" and self.match_on == "email":
            errors["match_on"] = [N_("Interactions match on external_id (external_ref) only.")]
        if self.on_match not in ON_MATCH:
            errors["on_match"] = [f"Use one of {', '.join(ON_MATCH)}."]
        if self.format not in ("csv", "vcf"):
            errors["format"] = [N_("Use csv or vcf.")]
        elif self.format == "vcf" and self.entity != "contact":
            errors["format"] = ["vCard files hold contacts only."]
        return errors

    def as_json(self) -> dict[str, Any]:
        """The options as stored on an :class:`ImportJob` (``options``)."""
        return {
            "columns": self.columns or {},
            "delimiter": self.delimiter,
            "encoding": self.encoding,
            "match_on": self.match_on,
            "on_match": self.on_match,
            "batch_size": self.batch_size,
        }


def format_for(filename: str, importer: Importer | None = None) -> str:
    """``csv`` or ``vcf`` from a file name's extension; :class:`MappingError` for others.

    For a plugin's ``importer``, an extension naming one of its formats (``.xlsx``:
    ``xlsx``) is that format.
    """
    suffix = Path(filename).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if importer is not None and suffix[1:] in importer.formats:
        return suffix[1:]
    what = suffix or "a file without extension"
    if importer is not None:
        raise MappingError(
            {"file": [f"Cannot import {what}: {importer.name} imports read "
                      f"{', '.join(importer.formats)}."]}
        )
    raise MappingError({"file": [f"Cannot import {what}: use .csv (.tsv, .txt) or .vcf."]})


class _Source:
    """Rows of a file, how many bytes were read, and which column a field came from."""

    def __init__(
        self,
        rows: Iterator[MappedRow],
        reader: Any,
        column_of: Callable[[str], str],
        attribute_column: Callable[[str], str],
        mapping: ColumnMapping | None,
    ) -> None:
        self.rows = rows
        self.reader = reader
        self.column_of = column_of
        self.attribute_column = attribute_column
        self.mapping = mapping


def open_source(crm: CRM, stream: BinaryIO, options: ImportOptions) -> _Source:
    """Start reading ``stream``; :class:`ReadError`/:class:`MappingError` if it cannot be."""
    if options.format == "vcf":
        vcards = VcardSource(stream)
        return _Source(
            vcards.rows(), vcards, lambda name: VCARD_COLUMNS.get(name, ""), lambda _: "", None
        )
    source = CsvSource(stream, encoding=options.encoding, delimiter=options.delimiter)
    mapping = resolve_mapping(crm, options.entity, source.header, options.columns)
    mapper = RowMapper(mapping, source.encoding.name.upper().replace("_", "-"))
    rows = (mapper(raw) for raw in source.rows())
    return _Source(rows, source, mapping.column_of, mapping.attribute_column, mapping)


class _DryRun(Exception):
    """Raised inside a dry run's unit of work to roll it back."""


@dataclass
class _Outcome:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    rejections: dict[int, list[Rejection]] = field(default_factory=dict)
    """By row position in the batch."""
    created_keys: list[Any] = field(default_factory=list)


class ImportRunner:
    """Runs one import: reads, maps, matches and writes in batches, and reports."""

    def __init__(
        self,
        crm: CRM,
        options: ImportOptions,
        *,
        actor: Any = None,
        job_id: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.crm = crm
        self.options = options.checked(crm)
        self.entity = self.options.entity
        if self.entity not in _SERVICES:
            raise MappingError(
                {"entity": [f"{self.entity} is imported by its plugin's importer: "
                            "use run_import."]}
            )
        self.actor = actor
        self.job_id = job_id
        self.progress = progress
        self.service = _SERVICES[self.entity]
        self.model = _MODELS[self.entity]
        self.batch_size = self.options.batch_size or crm.settings.bulk_batch_size
        self.summary = ImportSummary(self.entity, self.options.dry_run)
        self._dry_keys: dict[Any, int] = {}
        self._source: _Source | None = None

    # -- the loop ---------------------------------------------------------------------

    def run(self, stream: BinaryIO) -> ImportSummary:
        """Import every row of ``stream``; rows refused are reported, never raised."""
        started = time.perf_counter()
        source = self._source = open_source(self.crm, stream, self.options)
        summary = self.summary
        summary.encoding = getattr(source.reader, "encoding", "")
        if not isinstance(summary.encoding, str):
            summary.encoding = summary.encoding.name
        summary.delimiter = getattr(source.reader, "delimiter", "")
        if source.mapping is not None:
            summary.columns = {k: v for k, v in source.mapping.as_dict().items() if v}
            summary.ignored = source.mapping.ignored
            self._record_columns(source.mapping)
        batch: list[MappedRow] = []
        keys: set[Any] = set()
        try:
            for row in source.rows:
                key = self._key(row) if row.errors is None else None
                if batch and (len(batch) >= self.batch_size or (key is not None and key in keys)):
                    self._batch(batch, started)
                    batch, keys = [], set()
                batch.append(row)
                if key is not None:
                    keys.add(key)
        except ReadError as exc:
            if batch:
                self._batch(batch, started)
            raise ReadError(f"{exc} (rows before it were imported)") from exc
        if batch:
            self._batch(batch, started)
        summary.seconds = time.perf_counter() - started
        summary.processed_bytes = source.reader.bytes_read
        self._report([], summary)
        return summary

    def _record_columns(self, mapping: ColumnMapping) -> None:
        """Write the header -> target mapping the file resolved to the job (``columns_used``)."""
        record_columns(self.crm, self.job_id, mapping.as_dict())

    def _key(self, row: MappedRow) -> Any:
        """The row's match key: ``("external_id", value)`` or ``("email", value)``; or None."""
        mode = self.options.match_on
        if mode == "none":
            return None
        data = row.data
        if self.entity == "interaction":
            ref = str(data.get("external_ref") or "").strip()
            return ("external_id", (data.get("source") or "import", ref)) if ref else None
        if mode in ("external_id", "auto"):
            ident = str(data.get("external_id") or "").strip()
            if ident:
                return ("external_id", ident)
            if mode == "external_id":
                return None
        if self.entity == "customer":
            email = str(data.get("email") or "").strip().lower()
        else:
            emails = data.get("emails") or ()
            email = str(emails[0].get("email") or "").strip().lower() if emails else ""
        return ("email", email) if email else None

    def _batch(self, batch: list[MappedRow], started: float) -> None:
        ready = [(position, row) for position, row in enumerate(batch) if row.errors is None]
        outcome = _Outcome()
        for position, row in enumerate(batch):
            if row.errors is not None:
                outcome.rejections[position] = [
                    Rejection(row.line, column, _value(row, column), reason)
                    for column, reason in row.errors
                ]
        if ready:
            try:
                with self.crm.unit_of_work(actor=self.actor, source="import") as uow:
                    self._write(uow, ready, outcome)
                    if self.options.dry_run:
                        raise _DryRun
            except _DryRun:
                pass
            except Exception as exc:
                outcome = self._failed(batch, ready, outcome, exc)
            if self.options.dry_run:
                for key in outcome.created_keys:
                    self._dry_keys.setdefault(key, 0)
        summary = self.summary
        summary.created += outcome.created
        summary.updated += outcome.updated
        summary.skipped += outcome.skipped
        summary.rejected += len(outcome.rejections)
        summary.processed_rows += len(batch)
        assert self._source is not None
        summary.processed_bytes = self._source.reader.bytes_read
        summary.seconds = time.perf_counter() - started
        rejections = [r for position in sorted(outcome.rejections)
                      for r in outcome.rejections[position]]
        self._report(rejections, summary)

    def _failed(
        self,
        batch: Sequence[MappedRow],
        ready: Sequence[tuple[int, MappedRow]],
        outcome: _Outcome,
        exc: Exception,
    ) -> _Outcome:
        """The outcome of a batch rolled back by ``exc``: each of its rows is rejected."""
        if isinstance(exc, HookError):
            why = f"plugin {exc.plugin!r} failed in {exc.hook}: {exc.__cause__!r}"
        elif isinstance(exc, CRMError):
            why = str(exc)
        else:
            why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        failed = _Outcome()
        for position, row in enumerate(batch):
            if row.errors is not None:
                failed.rejections[position] = outcome.rejections[position]
        for position, row in ready:
            failed.rejections[position] = [
                Rejection(row.line, "", None, f"Not imported: its batch was rolled back ({why}).")
            ]
        return failed

    def _report(self, rejections: list[Rejection], summary: ImportSummary) -> None:
        """Keep the first rejections, write progress and rejections to the job, tell the caller."""
        report_batch(self.crm, self.job_id, rejections, summary, self.progress)

    # -- one batch ----------------------------------------------------------------------

    def _write(
        self, uow: UnitOfWork, ready: Sequence[tuple[int, MappedRow]], outcome: _Outcome
    ) -> None:
        rows = self._resolve_references(uow, ready, outcome)
        matches = self._matches(uow, rows)
        on_match = self.options.on_match
        creates: list[tuple[int, MappedRow]] = []
        updates: list[tuple[int, MappedRow, Any]] = []
        dry_updates: list[tuple[int, MappedRow]] = []
        for position, row in rows:
            key = self._key(row)
            found = matches.get(key) if key is not None else None
            dry_match = found is None and key is not None and key in self._dry_keys
            if (found is None and not dry_match) or on_match == "create":
                if dry_match and key[0] == "external_id":
                    outcome.rejections[position] = [
                        Rejection(row.line, self._source_column("external_id"),
                                  str(key[1]), "Appears on an earlier row of this file.")
                    ]
                    continue
                creates.append((position, row))
            elif on_match == "skip":
                outcome.skipped += 1
            elif found is not None:
                updates.append((position, row, found))
            else:
                dry_updates.append((position, row))
        if creates:
            result = self.service.bulk_create(uow, [row.data for _p, row in creates])
            for index, messages in result.errors.items():
                position, row = creates[index]
                outcome.rejections[position] = self._reasons(row, messages)
            outcome.created += len(result.records)
            outcome.created_keys.extend(
                self._key(row) for index, (_p, row) in enumerate(creates)
                if index not in result.errors
            )
        if updates:
            items = self._update_items(uow, updates)
            result = self.service.bulk_update(uow, items)
            for index, messages in result.errors.items():
                position, row, _ident = updates[index]
                outcome.rejections[position] = self._reasons(row, messages)
            outcome.updated += len(result.records)
        for position, row in dry_updates:
            # Matches a record an earlier batch of this dry run created (and rolled back).
            errors = uow.crm.loader(self.entity).validate(row.data, partial=True)
            if errors:
                outcome.rejections[position] = self._reasons(row, errors)
            else:
                outcome.updated += 1

    def _source_column(self, field_name: str) -> str:
        assert self._source is not None
        return self._source.column_of(field_name)

    def _resolve_references(
        self, uow: UnitOfWork, ready: Sequence[tuple[int, MappedRow]], outcome: _Outcome
    ) -> list[tuple[int, MappedRow]]:
        """Fill reference fields from their keys; rows with an unknown strict reference drop out."""
        wanted: dict[str, set[str]] = {}
        for _position, row in ready:
            for ref in row.references or ():
                wanted.setdefault(ref.key, set()).add(_ref_value(ref.key, ref.value))
        if not wanted:
            return list(ready)
        found = {key: self._lookup(uow, key, values) for key, values in wanted.items()}
        kept = []
        for position, row in ready:
            problems = []
            for ref in row.references or ():
                ident = found[ref.key].get(_ref_value(ref.key, ref.value))
                if isinstance(ident, int):
                    row.data[ref.field] = ident
                elif not ref.lenient:
                    other, _sep, key = ref.key.partition(".")
                    what = key.replace("_", " ")
                    reason = (
                        f"Several {other}s have the {what} {ref.value!r}."
                        if ident == "several"
                        else f"No {other} with the {what} {ref.value!r}."
                    )
                    problems.append(Rejection(row.line, ref.column, ref.value, reason))
            if problems:
                outcome.rejections[position] = problems
            else:
                kept.append((position, row))
        return kept

    def _lookup(self, uow: UnitOfWork, key: str, values: set[str]) -> dict[str, Any]:
        """Value -> id (``"several"`` for an ambiguous name) of the records ``key`` names."""
        other, _sep, column_name = key.partition(".")
        model = _MODELS[other]
        scope = visible(self.actor, other)
        live = model.merged_into_id.is_(None)
        if other == "contact" and column_name == "email":
            statement = (
                select(ContactEmail.email, func.min(Contact.id), func.count(Contact.id))
                .join(Contact, Contact.id == ContactEmail.contact_id)
                .where(ContactEmail.email.in_(list(values)), live, scope)
                .group_by(ContactEmail.email)
            )
        else:
            column = getattr(model, column_name)
            statement = (
                select(column, func.min(model.id), func.count(model.id))
                .where(column.in_(list(values)), live, scope)
                .group_by(column)
            )
        found: dict[str, Any] = {}
        for value, ident, count in uow.session.execute(statement):
            found[value] = ident if count == 1 or column_name != "name" else "several"
        return found

    def _matches(self, uow: UnitOfWork, rows: Sequence[tuple[int, MappedRow]]) -> dict[Any, int]:
        """Key -> id of the stored record each row's key matches (one query per key kind)."""
        wanted: dict[str, set[Any]] = {}
        for _position, row in rows:
            key = self._key(row)
            if key is not None:
                wanted.setdefault(key[0], set()).add(key[1])
        matches: dict[Any, int] = {}
        scope = visible(self.actor, self.entity)
        model = self.model
        for kind, values in wanted.items():
            if self.entity == "interaction":
                statement = select(
                    Interaction.source, Interaction.external_ref, Interaction.id
                ).where(
                    tuple_(Interaction.source, Interaction.external_ref).in_(list(values)), scope
                )
                for source, ref, ident in uow.session.execute(statement):
                    matches[(kind, (source, ref))] = ident
                continue
            if kind == "external_id":
                statement = select(model.external_id, model.id).where(
                    model.external_id.in_(list(values)), scope
                )
            elif self.entity == "contact":
                statement = (
                    select(ContactEmail.email, func.min(Contact.id))
                    .join(Contact, Contact.id == ContactEmail.contact_id)
                    .where(
                        ContactEmail.email.in_(list(values)),
                        Contact.merged_into_id.is_(None),
                        scope,
                    )
                    .group_by(ContactEmail.email)
                )
            else:
                statement = (
                    select(Customer.email, func.min(Customer.id))
                    .where(
                        Customer.email.in_(list(values)), Customer.merged_into_id.is_(None), scope
                    )
                    .group_by(Customer.email)
                )
            for value, ident in uow.session.execute(statement):
                matches[(kind, value)] = ident
        return matches

    def _update_items(
        self, uow: UnitOfWork, updates: Sequence[tuple[int, MappedRow, Any]]
    ) -> list[tuple[Any, Mapping[str, Any]]]:
        """``(id, data)`` for ``bulk_update``: lists of the file are added to the stored ones."""
        ids = [ident for _p, _row, ident in updates]
        stored: dict[str, dict[Any, list[dict[str, Any]]]] = {}
        if self.entity == "contact":
            for name, model, value_key in (
                ("emails", ContactEmail, "email"),
                ("phones", ContactPhone, "number"),
            ):
                if not any(name in row.data for _p, row, _i in updates):
                    continue
                rows = uow.session.execute(
                    select(model.contact_id, model.label, getattr(model, value_key))
                    .where(model.contact_id.in_(ids))
                    .order_by(model.contact_id, model.position)
                )
                by_contact: dict[Any, list[dict[str, Any]]] = {}
                for contact_id, label, value in rows:
                    by_contact.setdefault(contact_id, []).append({"label": label, value_key: value})
                stored[name] = by_contact
        if self.entity == "customer" and any("tags" in row.data for _p, row, _i in updates):
            tags: dict[Any, list[str]] = {}
            for customer_id, tag in uow.session.execute(
                select(CustomerTag.customer_id, CustomerTag.tag).where(
                    CustomerTag.customer_id.in_(ids)
                )
            ):
                tags.setdefault(customer_id, []).append(tag)
            stored["tags"] = tags  # type: ignore[assignment]
        items: list[tuple[Any, Mapping[str, Any]]] = []
        for _position, row, ident in updates:
            data = dict(row.data)
            for name, value_key in (("emails", "email"), ("phones", "number")):
                if name in data and name in stored:
                    existing = stored[name].get(ident, [])
                    present = {str(item[value_key]).strip().lower() for item in existing}
                    data[name] = existing + [
                        item for item in data[name]
                        if str(item[value_key]).strip().lower() not in present
                    ]
            if "tags" in data and "tags" in stored:
                new_tags = data["tags"]
                if isinstance(new_tags, str):
                    new_tags = new_tags.split(",")
                data["tags"] = [*stored["tags"].get(ident, []), *new_tags]
            items.append((ident, data))
        return items

    # -- messages -> (column, value, reason) -------------------------------------------

    def _reasons(self, row: MappedRow, messages: Mapping[Any, Any]) -> list[Rejection]:
        assert self._source is not None
        column_of = self._source.column_of
        found: list[Rejection] = []
        for field_name, value in messages.items():
            if field_name in ("emails", "phones") and isinstance(value, dict):
                columns = (row.item_columns or {}).get(field_name, [])
                items = row.data.get(field_name) or []
                value_key = "email" if field_name == "emails" else "number"
                for index, nested in value.items():
                    position = int(index) if str(index).isdigit() else -1
                    in_range = 0 <= position < len(items)
                    column = columns[position] if 0 <= position < len(columns) else ""
                    column = column or column_of(field_name)
                    shown = str(items[position].get(value_key, "")) if in_range else None
                    if isinstance(nested, Mapping):  # {"email": [...]}: the value itself
                        nested = [
                            messages if key == value_key else {key: messages}
                            for key, messages in nested.items()
                        ]
                    found.extend(Rejection(row.line, column, shown, m)
                                 for m in message_texts(nested))
            elif field_name == "attributes" and isinstance(value, dict):
                for name, nested in value.items():
                    column = self._source.attribute_column(str(name))
                    found.extend(
                        Rejection(row.line, column, _value(row, column), m)
                        for m in message_texts(nested)
                    )
            else:
                column = "" if field_name == "_schema" else column_of(str(field_name))
                found.extend(
                    Rejection(row.line, column, _value(row, column), m)
                    for m in message_texts(value)
                )
        return found or [Rejection(row.line, "", None, "Refused.")]


def _ref_value(key: str, value: str) -> str:
    """Emails are stored in lower case; other keys as written (stripped)."""
    return value.strip().lower() if key.endswith(".email") else value.strip()


def _value(row: MappedRow, column: str) -> str | None:
    if not column:
        return None
    try:
        return row.values.get(column)
    except Exception:
        return None




def run_import(
    crm: CRM,
    file: str | Path | BinaryIO,
    options: ImportOptions,
    *,
    actor: Any = None,
    job_id: int | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import ``file`` (a path or a binary stream) as ``options`` say; see :class:`ImportRunner`.

    Raises :class:`ReadError` when the file cannot be read at all and
    :class:`MappingError` when the options or the mapping are wrong, before any row
    is written. Refused rows never raise: they are in the summary (and the job).
    When ``options.entity`` names a plugin's importer, its ``run`` imports the file
    (:func:`~crm_core.imports.context.run_importer`).
    """
    options.checked(crm)
    importer = plugin_importer(crm, options.entity)

    def run(stream: BinaryIO) -> ImportSummary:
        if importer is not None:
            return run_importer(
                crm, importer, stream, options, actor=actor, job_id=job_id, progress=progress
            )
        runner = ImportRunner(crm, options, actor=actor, job_id=job_id, progress=progress)
        return runner.run(stream)

    if isinstance(file, str | Path):
        try:
            stream: BinaryIO = open(file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ReadError(f"cannot open {file}: {exc.strerror or exc}") from exc
        with stream:
            return run(stream)
    return run(file)


def preflight(crm: CRM, path: str | Path, options: ImportOptions) -> dict[str, Any]:
    """Check, before a job is queued, that ``path`` can be read and mapped as ``options`` say.

    Returns what was detected (``encoding``, ``delimiter``, ``columns``, ``ignored``);
    raises :class:`ReadError` or :class:`MappingError` like the import itself would.
    """
    options.checked(crm)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ReadError(f"cannot open {Path(path).name}: {exc.strerror or exc}") from exc
    with stream:
        if options.format == "vcf" or plugin_importer(crm, options.entity) is not None:
            # A plugin's importer reads (and checks) its file when its job runs.
            return {"encoding": "", "delimiter": "", "columns": {}, "ignored": []}
        source = CsvSource(stream, encoding=options.encoding, delimiter=options.delimiter)
        mapping = resolve_mapping(crm, options.entity, source.header, options.columns)
        return {
            "encoding": source.encoding.name,
            "delimiter": source.delimiter,
            "columns": {k: v for k, v in mapping.as_dict().items() if v},
            "ignored": mapping.ignored,
        }
