"""Customers: the one path for creating, changing, archiving and merging them.

``create``, ``bulk_create``, ``update``, ``archive``, ``restore``, ``merge`` and
``get`` each take a :class:`~crm_core.services.unit_of_work.UnitOfWork` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.orm.attributes import set_committed_value

from crm_core.models import Contact, Customer, CustomerTag, Interaction, User
from crm_core.phones import region_for, to_e164
from crm_core.services.bulk import insert_objects
from crm_core.services.records import RecordService, existing, reject_missing, reject_taken
from crm_core.services.unit_of_work import RecordChange, UnitOfWork


class CustomerService(RecordService[Customer]):
    """The write path of :class:`~crm_core.models.Customer`."""

    entity = "customer"
    plural = "customers"
    model = Customer
    child_fields = frozenset({"tags"})
    mergeable_fields = (
        "kind",
        "name",
        "email",
        "phone",
        "website",
        "street",
        "postal_code",
        "city",
        "region",
        "country",
        "industry",
        "lifecycle_stage",
        "owner_id",
    )

    def column_values(self, uow: UnitOfWork, data: Mapping[str, Any]) -> dict[str, Any]:
        """Columns; a new customer belongs to the user who creates it unless told otherwise.

        ``phone_e164`` is ``phone`` in E.164 form, read with the customer's country.
        """
        values = super().column_values(uow, data)
        if "owner_id" not in data:
            values["owner_id"] = uow.actor_id
        region = region_for(data.get("country"), uow.crm.settings.default_phone_region)
        values["phone_e164"] = to_e164(data.get("phone"), region)
        return values

    def check_references(self, uow: UnitOfWork, batch: Sequence[RecordChange]) -> None:
        """Owners must be existing users; an ``external_id`` belongs to one customer only."""
        owners = existing(uow.session, User, {c.data.get("owner_id") for c in batch})
        reject_missing(batch, "owner_id", owners, "user")
        reject_taken(uow, Customer, "external_id", batch, "customer")

    def write_children(self, uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        """Insert every tag of the batch in one statement."""
        rows = [
            {"customer_id": change.record.id, "tag": tag}
            for change in changes
            for tag in change.data.get("tags", ())
        ]
        by_customer: dict[int, list[CustomerTag]] = {}
        for row in insert_objects(uow.session, CustomerTag, rows):
            by_customer.setdefault(row.customer_id, []).append(row)
        for change in changes:
            set_committed_value(change.record, "tag_rows", by_customer.get(change.record.id, []))

    def current(self, record: Customer, name: str) -> Any:
        """Tags compare as a sorted list of strings."""
        return record.tags if name == "tags" else super().current(record, name)

    def apply(self, uow: UnitOfWork, record: Customer, data: Mapping[str, Any]) -> None:
        """Write columns, and replace the tag rows when ``tags`` is given.

        ``phone_e164`` follows ``phone`` and ``country``.
        """
        super().apply(uow, record, data)
        if "phone" in data or "country" in data:
            region = region_for(record.country, uow.crm.settings.default_phone_region)
            record.phone_e164 = to_e164(record.phone, region)
        if "tags" in data:
            wanted = set(data["tags"])
            record.tag_rows = [row for row in record.tag_rows if row.tag in wanted] + [
                CustomerTag(tag=tag) for tag in sorted(wanted - set(record.tags))
            ]

    def merged_values(
        self, survivor: Customer, duplicates: Sequence[Customer], field_sources: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Besides columns, the survivor gets every tag and every attribute it lacked."""
        values = super().merged_values(survivor, duplicates, field_sources)
        tags = set(survivor.tags)
        attributes = dict(survivor.attributes)
        for duplicate in duplicates:
            tags.update(duplicate.tags)
            for key, value in duplicate.attributes.items():
                attributes.setdefault(key, value)
        if tags != set(survivor.tags):
            values["tags"] = sorted(tags)
        if attributes != survivor.attributes:
            values["attributes"] = attributes
        return values

    def move_references(
        self, uow: UnitOfWork, survivor: Customer, duplicates: Sequence[Customer]
    ) -> dict[str, dict[Any, list[Any]]]:
        """Move the duplicates' contacts and interactions to the survivor, in bulk."""
        duplicate_ids = [d.id for d in duplicates]
        moved: dict[str, dict[Any, list[Any]]] = {}
        for kind, model in (("contact", Contact), ("interaction", Interaction)):
            rows = uow.session.execute(
                select(model.id, model.customer_id).where(model.customer_id.in_(duplicate_ids))
            ).all()
            moved[kind] = {}
            for ident, customer_id in rows:
                moved[kind].setdefault(customer_id, []).append(ident)
            if rows:
                uow.session.execute(
                    sql_update(model)
                    .where(model.customer_id.in_(duplicate_ids))
                    .values(customer_id=survivor.id, version=model.version + 1)
                    .execution_options(synchronize_session="fetch")
                )
        return moved


_service = CustomerService()
get = _service.get
create = _service.create
bulk_create = _service.bulk_create
update = _service.update
bulk_update = _service.bulk_update
archive = _service.archive
restore = _service.restore
merge = _service.merge

__all__ = [
    "CustomerService",
    "archive",
    "bulk_create",
    "bulk_update",
    "create",
    "get",
    "merge",
    "restore",
    "update",
]
