"""What can be exported: core's customers, contacts and interactions, and plugins' exporters.

A :class:`Source` yields rows in batches for one export run (:class:`Run`): CSV rows
after a header, JSON Lines records, or vCards. Core's entities read their table with
one streamed statement ordered by id, filtered by the actor's record visibility and,
unless asked otherwise, without archived records; their child rows (a customer's
tags, a contact's emails and phone numbers) come with one query per batch and child
table, never one per record.

CSV columns of core's entities follow the API's field order with the bookkeeping
fields (``id``, ``archived``, ``merged_into_id``, ``version``, ``created_at``,
``updated_at``) at the end, so that a file exported here imports back (the importer
reads ``id`` as ``external_id`` only when no ``external_id`` column comes first).
Lists become one cell: tags joined by ``, ``; a contact's emails and phone numbers
joined by ``; `` with their labels, in the same order, in ``email_labels`` and
``phone_labels``. Custom attributes get a column each, ``attributes.<name>``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import ColumnElement, Connection, Select, Table, false, func, select

from crm_core.authz import visible
from crm_core.errors import CRMError, PluginError
from crm_core.exports import vcard
from crm_core.exports.stream import BATCH_SIZE, raw_all, raw_batches, typed_batches
from crm_core.exports.values import csv_attribute, csv_cell, csv_text
from crm_core.extensions import Exporter
from crm_core.models import Contact, ContactEmail, ContactPhone, Customer, CustomerTag, Interaction
from crm_core.schemas import BASE_SCHEMAS

if TYPE_CHECKING:
    from crm_core.runtime import CRM

#: Fields every core record has, written last in CSV files.
BOOKKEEPING = ("id", "archived", "merged_into_id", "version", "created_at", "updated_at")


@dataclass
class Run:
    """One export being written: where to read, as whom, which records."""

    crm: CRM
    connection: Connection
    actor: Any
    include_archived: bool = False
    batch_size: int = BATCH_SIZE
    ids: tuple[int, int] | None = None
    """Only records whose id lies in this closed range (one process's share of a
    parallel export); ``None``: every id. Sources without integer ids ignore it."""

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.connection.dialect.name


class Source(abc.ABC):
    """Rows of one kind that can be exported, who may export them and in which formats.

    Every source writes CSV and JSON Lines; one that lists ``vcf`` in :attr:`formats`
    also implements :meth:`vcards`.
    """

    name: str
    permission: str
    formats: tuple[str, ...] = ("csv", "jsonl")
    description: str = ""
    plugin: str = "crm_core"

    @abc.abstractmethod
    def csv_rows(self, run: Run) -> Iterator[Sequence[Sequence[Any]]]:
        """The header row (alone, first), then batches of rows."""

    @abc.abstractmethod
    def json_records(self, run: Run) -> Iterator[Sequence[Mapping[str, Any]]]:
        """Batches of records, each a JSON-ready mapping (datetimes are left to the writer)."""

    def vcards(self, run: Run) -> Iterator[str]:
        """Batches of vCards as text; only sources whose :attr:`formats` list ``vcf``."""
        raise CRMError(f"{self.name} cannot be exported as vCard (formats: {self.formats})")


# -- core's entities ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Children:
    """Rows of a child table that a record shows as a list (a contact's ``emails``...)."""

    field: str
    table: Table
    key: str
    """The column naming the parent (``contact_id``)."""
    item: tuple[str, ...]
    """JSON keys of one item, in the API's order; one key: items are bare values."""
    order: tuple[str, ...]
    csv: tuple[tuple[str, str], ...]
    """CSV columns: (column name, child column whose values it joins)."""
    separator: str

    def rows(self, connection: Connection, ids: Sequence[int], columns: Sequence[str]) -> Any:
        """``(parent id, *columns)`` of the children of ``ids``, in list order."""
        key = self.table.c[self.key]
        low, high = ids[0], ids[-1]
        # A dense batch (ids close together): a range scan of the key's index; else the ids.
        where = key.between(low, high) if high - low < 2 * len(ids) else key.in_(ids)
        statement = (
            select(key, *(self.table.c[name] for name in columns))
            .where(where)
            .order_by(key, *(self.table.c[name] for name in self.order))
        )
        return raw_all(connection, statement)

    def csv_cells(self, connection: Connection, ids: Sequence[int]) -> dict[int, tuple[Any, ...]]:
        """Parent id -> its CSV cells (each child column's values joined)."""
        sep = self.separator
        cells: dict[int, tuple[Any, ...]] = {}
        get = cells.get
        if len(self.csv) == 1:
            for key, value in self.rows(connection, ids, [self.csv[0][1]]):
                seen = get(key)
                cells[key] = (value,) if seen is None else (seen[0] + sep + value,)
            return cells
        first, second = self.csv[0][1], self.csv[1][1]
        for key, value, other in self.rows(connection, ids, [first, second]):
            seen = get(key)
            cells[key] = (
                (value, other) if seen is None else (seen[0] + sep + value, seen[1] + sep + other)
            )
        return cells

    def items(self, connection: Connection, ids: Sequence[int]) -> dict[int, list[Any]]:
        """Parent id -> its list as the API shows it."""
        lists: dict[int, list[Any]] = {}
        if len(self.item) == 1:
            for key, value in self.rows(connection, ids, self.item):
                lists.setdefault(key, []).append(value)
            return lists
        names = self.item
        for key, *values in self.rows(connection, ids, names):
            lists.setdefault(key, []).append(dict(zip(names, values, strict=True)))
        return lists


class EntitySource(Source):
    """An export of a core entity, with the API's fields."""

    entity: ClassVar[str]
    model: ClassVar[Any]
    children: ClassVar[tuple[Children, ...]] = ()

    def __init__(self, crm: CRM) -> None:
        self.name = f"{self.entity}s"
        self.permission = f"{self.entity}.view"
        self.table: Table = self.model.__table__
        self.description = f"Every {self.entity} the user may see, with the API's fields."
        child_fields = {child.field for child in self.children}
        #: The API's fields that exports give: columns and child lists (not plugins' fields).
        self.fields = [
            name
            for name in BASE_SCHEMAS[self.entity]().dump_fields
            if name in self.table.c or name in child_fields
        ]
        self.attributes = [
            attribute.name
            for attribute in crm.registry.custom_attributes.values()
            if attribute.entity == self.entity
        ]
        # CSV rows get the lists' cells spliced in at one place: the lists must be neighbours.
        places = [self._csv_fields().index(child.field) for child in self.children]
        if places and places != list(range(places[0], places[0] + len(places))):
            raise AssertionError(f"{self.entity}: list fields must follow each other")

    # -- which rows

    def filters(self, run: Run) -> list[ColumnElement[bool]]:
        """The actor's visibility, the run's id range and, unless asked for, no archived
        records."""
        clauses = [visible(run.actor, self.entity)]
        if run.ids is not None:
            clauses.append(self.table.c.id.between(*run.ids))
        if not run.include_archived:
            # coalesce(): no index led by ``archived`` should serve this, the id order should.
            clauses.append(func.coalesce(self.table.c.archived, false()).is_(False))
        return clauses

    # -- CSV

    def csv_header(self) -> list[str]:
        """Column names: the API's fields, lists joined, attributes apart, bookkeeping last."""
        header: list[str] = []
        for name in self._csv_fields():
            child = self._child(name)
            if child is not None:
                header.extend(column for column, _source in child.csv)
            elif name == "attributes":
                header.extend(f"attributes.{attribute}" for attribute in self.attributes)
            else:
                header.append(name)
        return header

    def csv_rows(self, run: Run) -> Iterator[Sequence[Sequence[Any]]]:
        """The header, then batches of rows, cells computed by the database."""
        yield [self.csv_header()]
        fields = self._csv_fields()
        columns: list[ColumnElement[Any]] = []
        splice = None
        for name in fields:
            if self._child(name) is not None:
                if splice is None:
                    splice = len(columns)
                continue
            if name == "attributes":
                columns.extend(
                    csv_attribute(self.table.c.attributes, attribute)
                    for attribute in self.attributes
                )
            else:
                columns.append(csv_text(self.table.c[name], run.dialect))
        key = self._key_position(fields)
        statement = select(*columns).where(*self.filters(run)).order_by(self.table.c.id)
        for rows in raw_batches(run.connection, statement, run.batch_size):
            if splice is None:
                yield rows
                continue
            ids = [row[key] for row in rows]
            yield self._with_children(run.connection, rows, ids, splice, key)

    def _key_position(self, fields: Sequence[str]) -> int:
        """Where ``id`` is among the selected columns (lists and attributes expanded)."""
        position = 0
        for name in fields:
            if name == "id":
                return position
            if self._child(name) is not None:
                continue
            position += len(self.attributes) if name == "attributes" else 1
        raise AssertionError("no id column")

    def _with_children(
        self,
        connection: Connection,
        rows: Sequence[Sequence[Any]],
        ids: list[int],
        splice: int,
        key: int,
    ) -> list[tuple[Any, ...]]:
        lookups = [child.csv_cells(connection, ids).get for child in self.children]
        blanks = [(None,) * len(child.csv) for child in self.children]
        if len(lookups) == 1:
            get, blank = lookups[0], blanks[0]
            return [row[:splice] + get(row[key], blank) + row[splice:] for row in rows]
        (get1, get2), (blank1, blank2) = lookups, blanks
        return [
            row[:splice] + get1(row[key], blank1) + get2(row[key], blank2) + row[splice:]
            for row in rows
        ]

    def _csv_fields(self) -> list[str]:
        return [n for n in self.fields if n not in BOOKKEEPING] + [
            n for n in BOOKKEEPING if n in self.fields
        ]

    def _child(self, name: str) -> Children | None:
        for child in self.children:
            if child.field == name:
                return child
        return None

    # -- JSON Lines

    def json_records(self, run: Run) -> Iterator[Sequence[Mapping[str, Any]]]:
        """Records as the API dumps them (custom attributes as stored)."""
        names = [name for name in self.fields if name in self.table.c]
        statement = (
            select(*(self.table.c[name] for name in names))
            .where(*self.filters(run))
            .order_by(self.table.c.id)
        )
        fields = self.fields
        for rows in typed_batches(run.connection, statement, run.batch_size):
            records = [dict(zip(names, row, strict=True)) for row in rows]
            if self.children:
                ids = [record["id"] for record in records]
                for child in self.children:
                    lists = child.items(run.connection, ids)
                    for record in records:
                        record[child.field] = lists.get(record["id"], [])
                records = [{name: record[name] for name in fields} for record in records]
            yield records


class CustomerSource(EntitySource):
    """Customers with their tags."""

    entity = "customer"
    model = Customer
    children = (
        Children(
            field="tags",
            table=CustomerTag.__table__,
            key="customer_id",
            item=("tag",),
            order=("tag",),
            csv=(("tags", "tag"),),
            separator=", ",
        ),
    )


class ContactSource(EntitySource):
    """Contacts with their emails and phone numbers; also as vCards."""

    entity = "contact"
    model = Contact
    formats = ("csv", "jsonl", "vcf")
    children = (
        Children(
            field="emails",
            table=ContactEmail.__table__,
            key="contact_id",
            item=("label", "email"),
            order=("position",),
            csv=(("emails", "email"), ("email_labels", "label")),
            separator="; ",
        ),
        Children(
            field="phones",
            table=ContactPhone.__table__,
            key="contact_id",
            item=("label", "number"),
            order=("position",),
            csv=(("phones", "number"), ("phone_labels", "label")),
            separator="; ",
        ),
    )

    def vcards(self, run: Run) -> Iterator[str]:
        """vCard 3.0 cards; ``ORG`` is the contact's customer's name."""
        customers = Customer.__table__
        for records in self.json_records(run):
            wanted = sorted({r["customer_id"] for r in records if r["customer_id"] is not None})
            names: dict[int, str] = {}
            if wanted:
                statement = select(customers.c.id, customers.c.name).where(
                    customers.c.id.in_(wanted)
                )
                names = dict(raw_all(run.connection, statement))
            yield "".join(
                vcard.contact_card(record, names.get(record["customer_id"]))
                for record in records
            )


class InteractionSource(EntitySource):
    """Interactions: every touchpoint, with its channel and time."""

    entity = "interaction"
    model = Interaction


CORE_SOURCES: tuple[type[EntitySource], ...] = (CustomerSource, ContactSource, InteractionSource)


# -- plugins' exporters ---------------------------------------------------------------------------


class PluginSource(Source):
    """An :class:`~crm_core.extensions.Exporter` a plugin registered."""

    def __init__(self, exporter: Exporter, plugin: str) -> None:
        self.exporter = exporter
        self.name = exporter.name
        self.permission = exporter.permission
        self.description = exporter.description
        self.plugin = plugin

    def statement(self, run: Run) -> tuple[Select[Any], list[str]]:
        """The plugin's statement for ``run`` and the names of its columns."""
        exporter = self.exporter
        if exporter.query is not None:
            statement = exporter.query(run.actor, run.include_archived)
            return statement, list(statement.selected_columns.keys())
        table = exporter.model.__table__  # type: ignore[union-attr]
        names = list(exporter.columns) or [column.key for column in table.columns]
        statement = select(*(table.c[name] for name in names))
        if exporter.visibility is not None:
            statement = statement.where(exporter.visibility(run.actor))
        if "archived" in table.c and not run.include_archived:
            statement = statement.where(func.coalesce(table.c.archived, false()).is_(False))
        return statement.order_by(*table.primary_key.columns), names

    def csv_rows(self, run: Run) -> Iterator[Sequence[Sequence[Any]]]:
        """The column names, then the rows with each value as a CSV cell."""
        statement, names = self.statement(run)
        yield [names]
        cell: Callable[[Any], Any] = csv_cell
        for rows in typed_batches(run.connection, statement, run.batch_size):
            yield [[cell(value) for value in row] for row in rows]

    def json_records(self, run: Run) -> Iterator[Sequence[Mapping[str, Any]]]:
        """One object per row, keyed by column name."""
        statement, names = self.statement(run)
        for rows in typed_batches(run.connection, statement, run.batch_size):
            yield [dict(zip(names, row, strict=True)) for row in rows]


def export_sources(crm: CRM) -> dict[str, Source]:
    """Every export of ``crm`` by name: core's entities, then each plugin's exporters.

    A plugin's exporter named like one of core's is a :class:`PluginError`.
    """
    sources: dict[str, Source] = {}
    for source_class in CORE_SOURCES:
        source = source_class(crm)
        sources[source.name] = source
    for plugin_name, exporters in crm.call_each("crm_register_exporters"):
        for exporter in exporters:
            if exporter.name in sources and sources[exporter.name].plugin == "crm_core":
                raise PluginError(
                    plugin_name, f"registers the export {exporter.name!r}, which is core's"
                )
            sources[exporter.name] = PluginSource(exporter, plugin_name)
    return sources
