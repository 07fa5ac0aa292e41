"""Contacts: the one path for creating, changing, archiving and merging them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.orm.attributes import set_committed_value

from crm_core.authz import visible
from crm_core.db import utcnow
from crm_core.models import Contact, ContactEmail, ContactPhone, Customer, Interaction, User
from crm_core.phones import region_for, to_e164
from crm_core.services.bulk import insert_objects
from crm_core.services.records import RecordService, existing, reject_missing, reject_taken
from crm_core.services.unit_of_work import RecordChange, UnitOfWork

_CHILDREN = (("emails", ContactEmail, "email"), ("phones", ContactPhone, "number"))


class ContactService(RecordService[Contact]):
    """The write path of :class:`~crm_core.models.Contact`."""

    entity = "contact"
    plural = "contacts"
    model = Contact
    child_fields = frozenset({"emails", "phones"})
    mergeable_fields = ("customer_id", "first_name", "last_name", "job_title", "owner_id")

    def check_references(self, uow: UnitOfWork, batch: Sequence[RecordChange]) -> None:
        """The customer and the owner must exist; a merged customer is named.

        An ``external_id`` belongs to one contact only (stored or earlier in the batch).

        The customer's row (with its country, for reading phone numbers) is kept in
        ``change.references["customer_id"]``.
        """
        customers = existing(
            uow.session,
            Customer,
            {c.data.get("customer_id") for c in batch},
            Customer.merged_into_id,
            Customer.country,
            where=visible(uow.actor, "customer"),
        )
        reject_missing(batch, "customer_id", customers, "customer")
        for change in batch:
            row = customers.get(change.data.get("customer_id"))
            if row is None:
                continue
            change.references["customer_id"] = row
            if row.merged_into_id is not None:
                change.reject(
                    "customer_id",
                    f"Customer {row.id} was merged into customer {row.merged_into_id}.",
                )
        owners = existing(uow.session, User, {c.data.get("owner_id") for c in batch})
        reject_missing(batch, "owner_id", owners, "user")
        reject_taken(uow, Contact, "external_id", batch, "contact")

    def column_values(self, uow: UnitOfWork, data: Mapping[str, Any]) -> dict[str, Any]:
        """Columns, plus the time consent was given."""
        values = super().column_values(uow, data)
        if "owner_id" not in data:
            values["owner_id"] = uow.actor_id
        now = utcnow()
        values["consent_email_at"] = now if data.get("consent_email") else None
        values["consent_phone_at"] = now if data.get("consent_phone") else None
        return values

    def write_children(self, uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
        """Insert every email and phone number of the batch, one statement each.

        Phone numbers get their E.164 form, read with the country of the contact's customer.
        """
        known = {
            row.id: row.country
            for change in changes
            if (row := change.references.get("customer_id")) is not None
        }
        regions = self._regions(uow, {change.data.get("customer_id") for change in changes}, known)
        for name, model, _value_field in _CHILDREN:
            rows = [
                {"contact_id": change.record.id, "position": position, **item}
                for change in changes
                for position, item in enumerate(change.data.get(name, ()))
            ]
            if model is ContactPhone:
                for row, change in zip(rows, _owners(changes, name), strict=True):
                    row["e164"] = to_e164(row["number"], regions(change.data.get("customer_id")))
            by_contact: dict[int, list[Any]] = {}
            for row in insert_objects(uow.session, model, rows):
                by_contact.setdefault(row.contact_id, []).append(row)
            for change in changes:
                set_committed_value(change.record, name, by_contact.get(change.record.id, []))

    def current(self, record: Contact, name: str) -> Any:
        """Emails and phones compare as lists of ``{label, value}`` dicts."""
        for child_name, _model, value_field in _CHILDREN:
            if name == child_name:
                return [
                    {"label": row.label, value_field: getattr(row, value_field)}
                    for row in getattr(record, child_name)
                ]
        return super().current(record, name)

    def apply(self, uow: UnitOfWork, record: Contact, data: Mapping[str, Any]) -> None:
        """Write columns, replace emails/phones when given, and stamp consent changes."""
        now = utcnow()
        for flag in ("consent_email", "consent_phone"):
            if flag in data and data[flag] != getattr(record, flag):
                setattr(record, f"{flag}_at", now)
        super().apply(uow, record, data)
        for name, model, _value_field in _CHILDREN:
            if name in data:
                setattr(
                    record,
                    name,
                    [model(position=position, **item) for position, item in enumerate(data[name])],
                )
        if "phones" in data or "customer_id" in data:
            region = self._regions(uow, {record.customer_id})(record.customer_id)
            for phone in record.phones:
                phone.e164 = to_e164(phone.number, region)

    def _regions(
        self,
        uow: UnitOfWork,
        customer_ids: set[Any],
        known: Mapping[Any, str | None] | None = None,
    ) -> Callable[[Any], str | None]:
        """A function: customer id -> region to read its contacts' phone numbers with.

        ``known`` maps customer ids to countries already read; the others are queried.
        """
        default = uow.crm.settings.default_phone_region
        countries: dict[Any, str | None] = dict(known or {})
        wanted = {ident for ident in customer_ids if ident is not None and ident not in countries}
        if wanted:
            rows = uow.session.execute(
                select(Customer.id, Customer.country).where(Customer.id.in_(wanted))
            )
            countries.update({ident: country for ident, country in rows})
        return lambda customer_id: region_for(countries.get(customer_id), default)

    def merged_values(
        self, survivor: Contact, duplicates: Sequence[Contact], field_sources: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The survivor also gets every email address and phone number it lacked."""
        values = super().merged_values(survivor, duplicates, field_sources)
        for name, _model, value_field in _CHILDREN:
            items = self.current(survivor, name)
            seen = {item[value_field] for item in items}
            for duplicate in duplicates:
                for item in self.current(duplicate, name):
                    if item[value_field] not in seen:
                        seen.add(item[value_field])
                        items.append(item)
            if items != self.current(survivor, name):
                values[name] = items
        return values

    def move_references(
        self, uow: UnitOfWork, survivor: Contact, duplicates: Sequence[Contact]
    ) -> dict[str, dict[Any, list[Any]]]:
        """Move the duplicates' interactions to the survivor, in bulk."""
        duplicate_ids = [d.id for d in duplicates]
        rows = uow.session.execute(
            select(Interaction.id, Interaction.contact_id).where(
                Interaction.contact_id.in_(duplicate_ids)
            )
        ).all()
        moved: dict[Any, list[Any]] = {}
        for ident, contact_id in rows:
            moved.setdefault(contact_id, []).append(ident)
        if rows:
            uow.session.execute(
                sql_update(Interaction)
                .where(Interaction.contact_id.in_(duplicate_ids))
                .values(contact_id=survivor.id, version=Interaction.version + 1)
                .execution_options(synchronize_session="fetch")
            )
        return {"interaction": moved}


def _owners(changes: Sequence[RecordChange], name: str) -> list[RecordChange]:
    """The change each child row of ``name`` belongs to, in the order rows are built."""
    return [change for change in changes for _item in change.data.get(name, ())]


_service = ContactService()
get = _service.get
create = _service.create
bulk_create = _service.bulk_create
update = _service.update
bulk_update = _service.bulk_update
archive = _service.archive
restore = _service.restore
merge = _service.merge

__all__ = [
    "ContactService",
    "archive",
    "bulk_create",
    "bulk_update",
    "create",
    "get",
    "merge",
    "restore",
    "update",
]
