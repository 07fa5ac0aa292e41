"""Interactions: the one path for logging, changing, archiving and merging touchpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, tuple_

from crm_core.authz import visible
from crm_core.models import Contact, Customer, Interaction, User
from crm_core.services.records import RecordService, existing, reject_missing
from crm_core.services.unit_of_work import RecordChange, UnitOfWork


class InteractionService(RecordService[Interaction]):
    """The write path of :class:`~crm_core.models.Interaction`."""

    entity = "interaction"
    plural = "interactions"
    model = Interaction
    mergeable_fields = ("contact_id", "subject", "body", "user_id", "direction")

    def column_values(self, uow: UnitOfWork, data: Mapping[str, Any]) -> dict[str, Any]:
        """Columns; ``source`` defaults to where the write comes from (``import``, a plugin...)."""
        values = super().column_values(uow, data)
        values["source"] = data.get("source") or uow.source
        values.setdefault("contact_id", None)
        values.setdefault("direction", None)
        if "user_id" not in data:
            values["user_id"] = uow.actor_id
        values.setdefault("external_ref", None)
        return values

    def merge_input(self, record: Interaction, loaded: dict[str, Any]) -> dict[str, Any]:
        """An empty ``source`` keeps the stored one: it is only defaulted on create."""
        loaded = super().merge_input(record, loaded)
        if "source" in loaded and loaded["source"] is None:
            del loaded["source"]
        return loaded

    def check_references(self, uow: UnitOfWork, batch: Sequence[RecordChange]) -> None:
        """Channel registered, direction fits it, references exist, no re-import duplicates."""
        self._check_channels(uow, batch)
        customers = existing(
            uow.session,
            Customer,
            {self._value(c, "customer_id") for c in batch},
            Customer.archived,
            Customer.merged_into_id,
            where=visible(uow.actor, "customer"),
        )
        reject_missing(batch, "customer_id", customers, "customer")
        for change in batch:
            row = customers.get(change.data.get("customer_id"))
            if row is not None and row.merged_into_id is not None:
                change.reject(
                    "customer_id",
                    f"Customer {row.id} was merged into customer {row.merged_into_id}.",
                )
        contacts = existing(
            uow.session,
            Contact,
            {c.data.get("contact_id") for c in batch},
            Contact.customer_id,
            where=visible(uow.actor, "contact"),
        )
        reject_missing(batch, "contact_id", contacts, "contact")
        for change in batch:
            contact = contacts.get(change.data.get("contact_id"))
            customer_id = self._value(change, "customer_id")
            if contact is not None and contact.customer_id not in (None, customer_id):
                change.reject(
                    "contact_id", f"Contact {contact.id} belongs to customer {contact.customer_id}."
                )
        users = existing(uow.session, User, {c.data.get("user_id") for c in batch})
        reject_missing(batch, "user_id", users, "user")
        self._check_external_refs(uow, batch)

    def _check_channels(self, uow: UnitOfWork, batch: Sequence[RecordChange]) -> None:
        channels = uow.crm.registry.channels
        for change in batch:
            name = self._value(change, "channel")
            channel = channels.get(name)
            if channel is None:
                change.reject(
                    "channel", f"Unknown channel {name!r}; known: {', '.join(sorted(channels))}."
                )
            elif not channel.directional and self._value(change, "direction") is not None:
                change.reject("direction", f"{name} interactions have no direction.")

    def _check_external_refs(self, uow: UnitOfWork, batch: Sequence[RecordChange]) -> None:
        keyed: dict[tuple[str, str], list[RecordChange]] = {}
        for change in batch:
            ref = self._value(change, "external_ref")
            if ref is None or ("external_ref" not in change.data and change.record is not None):
                continue
            source = self._value(change, "source") or uow.source
            keyed.setdefault((source, ref), []).append(change)
        if not keyed:
            return
        taken = {
            (source, ref): ident
            for ident, source, ref in uow.session.execute(
                select(Interaction.id, Interaction.source, Interaction.external_ref).where(
                    tuple_(Interaction.source, Interaction.external_ref).in_(list(keyed))
                )
            )
        }
        for key, changes in keyed.items():
            for position, change in enumerate(changes):
                own = change.record.id if change.record is not None else None
                if key in taken and taken[key] != own:
                    change.reject(
                        "external_ref",
                        f"Already imported from {key[0]} as interaction {taken[key]}.",
                    )
                elif position > 0:
                    change.reject("external_ref", f"Appears twice in this batch: {key[1]!r}.")

    @staticmethod
    def _value(change: RecordChange, name: str) -> Any:
        """The value after the write: the input's, else the stored record's."""
        if name in change.data:
            return change.data[name]
        return getattr(change.record, name, None)


_service = InteractionService()
get = _service.get
create = _service.create
bulk_create = _service.bulk_create
update = _service.update
bulk_update = _service.bulk_update
archive = _service.archive
restore = _service.restore
merge = _service.merge

__all__ = [
    "InteractionService",
    "archive",
    "bulk_create",
    "bulk_update",
    "create",
    "get",
    "merge",
    "restore",
    "update",
]
