"""The write path shared by every core entity: validate, check, write, audit, emit, notify.

Each entity's module (``customers``, ``contacts``, ``interactions``) subclasses
:class:`RecordService` with what is particular to it (reference checks, child rows,
what a merge moves) and exposes the instance's methods as module functions.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from marshmallow import ValidationError as SchemaError
from sqlalchemy import ColumnElement, Select, bindparam, select, true
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from crm_core.authz import require, visible
from crm_core.errors import ConflictError, CRMError, NotFoundError, ValidationError
from crm_core.i18n import N_
from crm_core.ids import as_record_id
from crm_core.search_index import deferred_index
from crm_core.services.bulk import insert_objects
from crm_core.services.unit_of_work import RecordChange, UnitOfWork

M = TypeVar("M")

#: A value that counts as "nothing" when computing what a create set.
_EMPTY: tuple[Any, ...] = (None, "", [], {})


@dataclass
class BulkResult(Generic[M]):
    """What a bulk write did: the records written and, by row index, why others were refused."""

    records: list[M] = field(default_factory=list)
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every row was accepted."""
        return not self.errors


class RecordService(Generic[M]):
    """Create, update, archive, restore and merge records of one entity through one path."""

    entity: ClassVar[str]
    plural: ClassVar[str]
    model: ClassVar[type[Any]]
    #: Loaded keys written by :meth:`write_children` instead of as columns.
    child_fields: ClassVar[frozenset[str]] = frozenset()
    #: Columns a merge may take from a duplicate.
    mergeable_fields: ClassVar[tuple[str, ...]] = ()

    # -- reading ------------------------------------------------------------------

    def get(self, uow: UnitOfWork, record_id: Any) -> M:
        """The record with ``record_id``; :class:`NotFoundError` if there is none.

        A record the acting user may not see is not found either: the caller cannot
        tell it from one that does not exist.
        """
        require(uow.actor, f"{self.entity}.view")
        ident = as_record_id(record_id)
        record = None
        if ident is not None:
            statement = _get_statement(self.model)
            clause = visible(uow.actor, self.entity)
            if clause is not true():
                statement = statement.where(clause)
            record = uow.session.scalars(statement, {"id": ident}).first()
        if record is None:
            raise NotFoundError(self.entity, record_id)
        return record

    # -- create -------------------------------------------------------------------

    def create(self, uow: UnitOfWork, data: Mapping[str, Any]) -> M:
        """Validate ``data`` and create one record; :class:`ValidationError` if refused."""
        result = self.bulk_create(uow, [data])
        if result.errors:
            raise ValidationError(result.errors[0])
        return result.records[0]

    def bulk_create(self, uow: UnitOfWork, rows: Sequence[Mapping[str, Any]]) -> BulkResult[M]:
        """Validate and create many records with bulk SQL; hooks are called once for the batch.

        Refused rows are reported in :attr:`BulkResult.errors` by their index in
        ``rows``; the others are written. Nothing is committed here: the caller's
        unit of work decides (one transaction per batch for imports).
        """
        require(uow.actor, f"{self.entity}.edit")
        schema = uow.crm.loader(self.entity)
        batch: list[RecordChange] = []
        errors: dict[int, dict[str, Any]] = {}
        for index, row in enumerate(rows):
            try:
                batch.append(RecordChange(index, schema.load(row)))
            except SchemaError as exc:
                errors[index] = _messages(exc)
        self._check(uow, batch, creating=True)
        accepted = [change for change in batch if not change.rejected]
        errors.update({change.index: change.errors for change in batch if change.rejected})
        if accepted:
            self._insert(uow, accepted)
        return BulkResult([change.record for change in accepted], dict(sorted(errors.items())))

    def _insert(self, uow: UnitOfWork, accepted: list[RecordChange]) -> None:
        values = [self.column_values(uow, change.data) for change in accepted]
        # The search index takes the batch's new rows in one statement, after the
        # children: not once per row and again per email and phone (the triggers).
        with deferred_index(uow.session, self.entity) as new_ids:
            records = insert_objects(uow.session, self.model, values)
            for change, record, row in zip(accepted, records, values, strict=True):
                change.record = record
                change.changes = {
                    key: (None, value)
                    for key, value in {**change.data, **row}.items()
                    if value not in _EMPTY
                }
            self.write_children(uow, accepted)
            new_ids.update(record.id for record in records)
        uow.record(self.entity, "created", [(c.record.id, c.changes) for c in accepted])
        uow.call_hook(f"crm_on_{self.plural}_created", uow=uow, changes=accepted)

    # -- update -------------------------------------------------------------------

    def update(
        self,
        uow: UnitOfWork,
        record_id: Any,
        data: Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> M:
        """Change the fields given in ``data`` (a partial update).

        ``expected_version`` is the version the caller edited; if the record has
        moved on since, :class:`ConflictError` is raised and nothing is written.
        """
        record = self.get(uow, record_id)
        self._check_version(record, expected_version)
        result = self.bulk_update(uow, [(record.id, data)])
        if result.errors:
            raise ValidationError(result.errors[0])
        return record

    def bulk_update(
        self, uow: UnitOfWork, items: Sequence[tuple[Any, Mapping[str, Any]]]
    ) -> BulkResult[M]:
        """Apply partial updates ``(record id, data)`` in bulk; hooks are called once.

        Records are loaded in one query and checked as one batch. Refused items are
        reported in :attr:`BulkResult.errors` by their index; the others are written,
        and :attr:`BulkResult.records` holds them (changed or not). A record that
        another transaction changed meanwhile raises :class:`ConflictError`.
        """
        require(uow.actor, f"{self.entity}.edit")
        ids = [as_record_id(record_id) for record_id, _data in items]
        wanted = {ident for ident in ids if ident is not None}
        found = (
            {
                r.id: r
                for r in uow.session.scalars(
                    select(self.model).where(
                        self.model.id.in_(wanted), visible(uow.actor, self.entity)
                    )
                )
            }
            if wanted
            else {}
        )
        schema = uow.crm.loader(self.entity)
        batch: list[RecordChange] = []
        errors: dict[int, dict[str, Any]] = {}
        for index, ((record_id, data), ident) in enumerate(zip(items, ids, strict=True)):
            record = found.get(ident)
            if record is None:
                errors[index] = {"id": [f"No {self.entity} with id {record_id!r}."]}
                continue
            try:
                loaded = schema.load(data, partial=True)
            except SchemaError as exc:
                errors[index] = _messages(exc)
                continue
            batch.append(RecordChange(index, self.merge_input(record, loaded), record))
        self._check(uow, batch, creating=False)
        accepted = [change for change in batch if not change.rejected]
        errors.update({change.index: change.errors for change in batch if change.rejected})
        changed = []
        for change in accepted:
            change.changes = self.diff(change.record, change.data)
            if change.changes:
                self.apply(uow, change.record, change.data)
                changed.append(change)
        if changed:
            self._flush(uow, [change.record for change in changed])
            uow.record(self.entity, "updated", [(c.record.id, c.changes) for c in changed])
            uow.call_hook(f"crm_on_{self.plural}_updated", uow=uow, changes=changed)
        return BulkResult([change.record for change in accepted], dict(sorted(errors.items())))

    # -- archive and restore -------------------------------------------------------

    def archive(self, uow: UnitOfWork, record_id: Any, *, expected_version: int | None = None) -> M:
        """Hide the record from lists; it keeps its history and can be restored."""
        require(uow.actor, f"{self.entity}.archive")
        record = self.get(uow, record_id)
        self._check_version(record, expected_version)
        if record.archived:
            return record
        record.archived = True
        self._flush(uow, [record])
        change = RecordChange(0, {}, record, {"archived": (False, True)})
        uow.record(self.entity, "archived", [(record.id, change.changes)])
        uow.call_hook(f"crm_on_{self.plural}_archived", uow=uow, changes=[change])
        return record

    def restore(self, uow: UnitOfWork, record_id: Any, *, expected_version: int | None = None) -> M:
        """Bring an archived record back (an update of ``archived`` for hooks and audit)."""
        require(uow.actor, f"{self.entity}.archive")
        record = self.get(uow, record_id)
        self._check_version(record, expected_version)
        if not record.archived:
            return record
        if getattr(record, "merged_into_id", None) is not None:
            raise ValidationError(
                {"archived": [f"merged into {self.entity} {record.merged_into_id}; undo the merge"]}
            )
        record.archived = False
        self._flush(uow, [record])
        change = RecordChange(0, {}, record, {"archived": (True, False)})
        uow.record(self.entity, "updated", [(record.id, change.changes)])
        uow.call_hook(f"crm_on_{self.plural}_updated", uow=uow, changes=[change])
        return record

    # -- merge --------------------------------------------------------------------

    def merge(
        self,
        uow: UnitOfWork,
        survivor_id: Any,
        duplicate_ids: Iterable[Any],
        *,
        field_sources: Mapping[str, Any] | None = None,
    ) -> M:
        """Merge duplicates into the survivor, which keeps everything they had.

        References (contacts, interactions, plugins' rows) move to the survivor;
        ``field_sources`` maps a field to the id of the record whose value to keep,
        and empty survivor fields are filled from the duplicates. The duplicates are
        archived with ``merged_into_id`` set; the audit entry records what moved
        (plugins' moves too: what ``crm_on_<entities>_merged`` returns), so the merge
        can be undone (:func:`crm_core.services.merges.undo_merge`).
        """
        require(uow.actor, f"{self.entity}.merge")
        duplicates_wanted = list(dict.fromkeys(duplicate_ids))
        if not duplicates_wanted:
            raise ValidationError({"duplicate_ids": [N_("Name at least one duplicate.")]})
        if survivor_id in duplicates_wanted:
            raise ValidationError({"duplicate_ids": [N_("A record cannot be merged into itself.")]})
        survivor = self.get(uow, survivor_id)
        duplicates = [self.get(uow, ident) for ident in duplicates_wanted]
        for record in (survivor, *duplicates):
            if record.archived:
                raise ValidationError(
                    {"duplicate_ids": [f"{self.entity} {record.id} is archived; restore it first."]}
                )
        values = self.merged_values(survivor, duplicates, field_sources or {})
        changes = self.diff(survivor, values)
        self.apply(uow, survivor, values)
        moved = self.move_references(uow, survivor, duplicates)
        for duplicate in duplicates:
            duplicate.archived = True
            duplicate.merged_into_id = survivor.id
        self._flush(uow, [survivor, *duplicates])
        merged_ids = [d.id for d in duplicates]
        recorded = {kind: {str(k): v for k, v in m.items()} for kind, m in moved.items()}
        uow.record(
            self.entity,
            "merged_into",
            [
                (d.id, {"merged_into_id": (None, survivor.id), "archived": (False, True)})
                for d in duplicates
            ],
        )
        # The merge's own audit entry comes after the hook: it records what plugins moved
        # (what they return), so that undoing the merge can hand it back to them.
        results = uow.call_hook(
            f"crm_on_{self.plural}_merged", uow=uow, survivor=survivor, merged=duplicates
        )
        for result in results:
            if result is not None and not isinstance(result, Mapping):
                raise CRMError(f"crm_on_{self.plural}_merged returned {result!r}, not a mapping")
            for kind, what in (result or {}).items():
                if kind in recorded:
                    raise CRMError(f"two parts of a {self.entity} merge recorded {kind!r} moves")
                recorded[kind] = what
        changes["merged_ids"] = (None, merged_ids)
        changes["moved"] = (None, recorded)
        uow.record(self.entity, "merged", [(survivor.id, changes)])
        return survivor

    def merged_values(
        self, survivor: M, duplicates: Sequence[M], field_sources: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The survivor's new field values: chosen sources first, then fill what is empty."""
        by_id = {record.id: record for record in (survivor, *duplicates)}
        values: dict[str, Any] = {}
        for name, source_id in field_sources.items():
            if name not in self.mergeable_fields:
                raise ValidationError({"field_sources": [f"{name!r} cannot be chosen in a merge."]})
            if source_id not in by_id:
                raise ValidationError(
                    {
                        "field_sources": [
                            f"{name!r}: {source_id!r} is not one of the merged records."
                        ]
                    }
                )
            values[name] = getattr(by_id[source_id], name)
        for name in self.mergeable_fields:
            if name in values or getattr(survivor, name) not in _EMPTY:
                continue
            for duplicate in duplicates:
                if getattr(duplicate, name) not in _EMPTY:
                    values[name] = getattr(duplicate, name)
                    break
        return values

    # -- entity-specific parts (overridden by subclasses) ---------------------------

    def column_values(self, uow: UnitOfWork, data: Mapping[str, Any]) -> dict[str, Any]:
        """The column values to INSERT for loaded ``data``: the same keys for every row."""
        return {key: data.get(key) for key in self._input_columns()}

    @classmethod
    def _input_columns(cls) -> tuple[str, ...]:
        """Columns the entity's schema loads (the rest get their column defaults)."""
        if "_columns" not in cls.__dict__:
            from crm_core.schemas import BASE_SCHEMAS

            fields = BASE_SCHEMAS[cls.entity]().load_fields
            cls._columns = tuple(
                column.key for column in cls.model.__table__.columns if column.key in fields
            )
        return cls._columns

    def check_references(self, uow: UnitOfWork, batch: Sequence[RecordChange]) -> None:
        """Reject records that point to rows that don't exist (one query per reference)."""

    def write_children(self, uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        """Insert child rows (tags, emails...) of freshly inserted records, in bulk."""

    def merge_input(self, record: M, loaded: dict[str, Any]) -> dict[str, Any]:
        """Combine a partial update with the stored record where a field is merged, not replaced."""
        if "attributes" in loaded:
            attributes = {**record.attributes, **loaded["attributes"]}
            loaded["attributes"] = {k: v for k, v in attributes.items() if v is not None}
        return loaded

    def current(self, record: M, name: str) -> Any:
        """The stored value of field ``name``, comparable with loaded input."""
        return getattr(record, name, None)

    def diff(self, record: M, data: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """``{field: (old, new)}`` for each field of ``data`` that differs from ``record``."""
        known = set(self.model.__table__.columns.keys()) | self.child_fields
        changes = {}
        for name, new in data.items():
            old = self.current(record, name) if name in known else None
            if old != new:
                changes[name] = (old, new)
        return changes

    def apply(self, uow: UnitOfWork, record: M, data: Mapping[str, Any]) -> None:
        """Write ``data`` onto ``record`` (columns; subclasses handle child rows)."""
        columns = self.model.__table__.columns.keys()
        for name, value in data.items():
            if name in columns:
                setattr(record, name, value)

    def move_references(
        self, uow: UnitOfWork, survivor: M, duplicates: Sequence[M]
    ) -> dict[str, dict[Any, list[Any]]]:
        """Point what references the duplicates at the survivor; return what moved, by kind."""
        return {}

    # -- shared steps ---------------------------------------------------------------

    def _check(self, uow: UnitOfWork, batch: list[RecordChange], *, creating: bool) -> None:
        if not batch:
            return
        self.check_references(uow, batch)
        pending = [change for change in batch if not change.rejected]
        if pending:
            uow.call_hook("crm_validate", uow=uow, entity=self.entity, batch=pending)

    def _check_version(self, record: M, expected: int | None) -> None:
        if expected is not None and record.version != expected:
            raise ConflictError(self.entity, record.id, expected, record.version)

    def _flush(self, uow: UnitOfWork, records: Sequence[M]) -> None:
        """Flush; a record changed by another transaction meanwhile is a :class:`ConflictError`."""
        loaded = [(record.id, record.version) for record in records]
        try:
            uow.session.flush()
        except StaleDataError as exc:
            ident, version = (
                loaded[0] if len(loaded) == 1 else ([i for i, _ in loaded], loaded[0][1])
            )
            raise ConflictError(self.entity, ident, version, None) from exc


# -- helpers for reference checks ---------------------------------------------------


def existing(
    session: Session,
    model: type[Any],
    ids: Collection[Any],
    *columns: Any,
    where: ColumnElement[bool] | None = None,
) -> dict[Any, Any]:
    """Rows of ``model`` among ``ids``, by id, in one query (``columns`` to fetch besides id).

    ``where`` narrows the rows further, e.g. to those the acting user may see.
    """
    wanted = {ident for ident in ids if ident is not None}
    if not wanted:
        return {}
    keys = tuple(getattr(column, "key", "") for column in columns)
    if all(getattr(model, key, None) is column for key, column in zip(keys, columns, strict=True)):
        statement = _existing_statement(model, keys)  # attributes of the model: the usual case
    else:
        statement = select(model.id, *columns).where(model.id.in_(bindparam("ids", expanding=True)))
    if where is not None and where is not true():
        statement = statement.where(where)
    return {row[0]: row for row in session.execute(statement, {"ids": list(wanted)})}


@functools.cache
def _get_statement(model: type[Any]) -> Select[Any]:
    """``SELECT <model> WHERE id = :id``, built once (every API read and write uses one)."""
    return select(model).where(model.id == bindparam("id"))


@functools.cache
def _existing_statement(model: type[Any], keys: tuple[str, ...]) -> Select[Any]:
    """``SELECT id, <keys> FROM <model> WHERE id IN (:ids)``, built once per shape.

    Building a statement costs several times what running it does, and every write
    checks its references with one.
    """
    columns = [getattr(model, key) for key in keys]
    return select(model.id, *columns).where(model.id.in_(bindparam("ids", expanding=True)))


def reject_missing(
    batch: Iterable[RecordChange], field_name: str, found: Mapping[Any, Any], what: str
) -> None:
    """Reject each record whose ``field_name`` names an id not in ``found``."""
    for change in batch:
        ident = change.data.get(field_name)
        if ident is not None and ident not in found:
            change.reject(field_name, f"No {what} with id {ident}.")


def reject_taken(
    uow: UnitOfWork, model: type[Any], field_name: str, batch: Sequence[RecordChange], what: str
) -> None:
    """Reject records whose unique ``field_name`` another record or an earlier one of the batch has.

    For identifiers of other systems (``external_id``): one query for the whole batch.
    A record keeping its own value on update is not refused.
    """
    keyed: dict[Any, list[RecordChange]] = {}
    for change in batch:
        value = change.data.get(field_name)
        if value is not None:
            keyed.setdefault(value, []).append(change)
    if not keyed:
        return
    column = getattr(model, field_name)
    taken = {
        value: ident
        for value, ident in uow.session.execute(
            select(column, model.id).where(column.in_(bindparam("values", expanding=True))),
            {"values": list(keyed)},
        )
    }
    for value, changes in keyed.items():
        for position, change in enumerate(changes):
            own = change.record.id if change.record is not None else None
            if value in taken and taken[value] != own:
                change.reject(field_name, f"Already used by {what} {taken[value]}: {value!r}.")
            elif position > 0:
                change.reject(field_name, f"Appears twice in this batch: {value!r}.")


def _messages(exc: SchemaError) -> dict[str, Any]:
    messages = exc.messages
    return messages if isinstance(messages, dict) else {"_schema": list(messages)}


