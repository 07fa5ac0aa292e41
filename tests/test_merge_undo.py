"""Undoing a merge from its audit entry restores both records and everything that moved."""

from __future__ import annotations

import datetime as dt
import types
from typing import Any

import pytest
from sqlalchemy import inspect, select

from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.models import (
    AuditEntry,
    Contact,
    ContactEmail,
    ContactPhone,
    Customer,
    CustomerTag,
    Interaction,
    OutboxEvent,
    Role,
    User,
)
from crm_core.services import contacts, customers, interactions
from crm_core.services.merges import undo_merge
from crm_core.testing import plugin_module

pytestmark = pytest.mark.plugins()

WHEN = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
#: Bookkeeping columns a merge and its undo are allowed to change.
BOOKKEEPING = {"version", "updated_at"}

#: The fake loyalty plugin's cards: card number -> customer id (its "table").
loyalty_cards: dict[str, int] = {}
undone_calls: list[dict[str, Any]] = []


def _merged(survivor, merged):
    moved: dict[str, list[str]] = {}
    for duplicate in merged:
        for card, owner in loyalty_cards.items():
            if owner == duplicate.id:
                moved.setdefault(str(duplicate.id), []).append(card)
                loyalty_cards[card] = survivor.id
    return {"loyalty.card": moved}


def _merge_undone(survivor, restored, moved):
    undone_calls.append(
        {"survivor": survivor.id, "restored": [r.id for r in restored], "moved": moved}
    )
    for customer_id, cards in moved.get("loyalty.card", {}).items():
        for card in cards:
            loyalty_cards[card] = int(customer_id)


@pytest.fixture
def crm_plugin_modules() -> list[types.ModuleType]:
    loyalty_cards.clear()
    undone_calls.clear()
    return [
        plugin_module(
            "loyalty",
            crm_on_customers_merged=_merged,
            crm_on_customers_merge_undone=_merge_undone,
        )
    ]


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    return {
        "default_phone_region": "DE",
        "custom_attributes": {
            "customer.tier": {"type": "choice", "choices": ["gold", "silver"]},
            "customer.segment": {"type": "string"},
        },
    }


def rows(session, model: Any, *where: Any) -> list[dict[str, Any]]:
    """Every row of ``model`` (matching ``where``) as a dict of all its columns, by key."""
    columns = [column.key for column in inspect(model).columns]
    keys = [column.key for column in inspect(model).primary_key]
    result = []
    for record in session.scalars(select(model).where(*where)):
        result.append({name: getattr(record, name) for name in columns if name not in BOOKKEEPING})
    return sorted(result, key=lambda row: tuple(str(row[k]) for k in keys))


def dump(crm, customer_ids: list[int]) -> dict[str, Any]:
    """Everything about these customers: their rows, tags, contacts and interactions."""
    with crm.session_factory() as session:
        contact_ids = list(
            session.scalars(select(Contact.id).where(Contact.customer_id.in_(customer_ids)))
        )
        return {
            "customer": rows(session, Customer, Customer.id.in_(customer_ids)),
            "tags": rows(session, CustomerTag, CustomerTag.customer_id.in_(customer_ids)),
            "contact": rows(session, Contact, Contact.id.in_(contact_ids)),
            "emails": rows(session, ContactEmail, ContactEmail.contact_id.in_(contact_ids)),
            "phones": rows(session, ContactPhone, ContactPhone.contact_id.in_(contact_ids)),
            "interaction": rows(session, Interaction, Interaction.customer_id.in_(customer_ids)),
        }


@pytest.fixture
def pair(crm) -> dict[str, Any]:
    """A customer and its duplicate, each with tags, attributes, contacts and interactions."""
    with crm.unit_of_work() as uow:
        survivor = customers.create(
            uow,
            {
                "name": "ACME",
                "tags": ["a"],
                "attributes": {"tier": "gold"},
                "industry": "Anvils",
            },
        )
        duplicate = customers.create(
            uow,
            {
                "name": "Acme Corp.",
                "email": "info@acme.example",
                "phone": "030 1234567",
                "country": "DE",
                "city": "Hamburg",
                "tags": ["b", "vip"],
                "attributes": {"tier": "silver", "segment": "smb"},
            },
        )
        people = contacts.bulk_create(
            uow,
            [
                {"customer_id": survivor.id, "last_name": "Stays"},
                {
                    "customer_id": duplicate.id,
                    "last_name": "Jones",
                    "emails": [{"email": "jones@acme.example"}],
                    "phones": [{"number": "0151 2345678"}],
                },
                {"customer_id": duplicate.id, "last_name": "Smith"},
            ],
        ).records
        logged = interactions.bulk_create(
            uow,
            [
                {
                    "customer_id": customer.id,
                    "contact_id": contact.id if contact else None,
                    "channel": channel,
                    "occurred_at": WHEN + dt.timedelta(hours=hour),
                    "subject": f"{channel} {hour}",
                }
                for customer, contact, channel, hour in (
                    (survivor, people[0], "call", 1),
                    (duplicate, people[1], "email", 2),
                    (duplicate, None, "meeting", 3),
                    (duplicate, people[2], "call", 4),
                )
            ],
        ).records
    loyalty_cards.update({"card-1": duplicate.id, "card-2": survivor.id})
    return {"survivor": survivor, "duplicate": duplicate, "contacts": people, "logged": logged}


def merge(crm, pair: dict[str, Any], **kwargs: Any) -> int:
    with crm.unit_of_work(source="ui") as uow:
        customers.merge(uow, pair["survivor"].id, [pair["duplicate"].id], **kwargs)
    with crm.session_factory() as session:
        return session.scalars(
            select(AuditEntry.id)
            .where(AuditEntry.action == "merged")
            .order_by(AuditEntry.id.desc())
        ).first()


def test_merge_then_undo_restores_everything_exactly(crm, pair):
    ids = [pair["survivor"].id, pair["duplicate"].id]
    before = dump(crm, ids)
    entry_id = merge(crm, pair, field_sources={"name": pair["duplicate"].id})

    merged = dump(crm, ids)
    assert merged != before
    assert {row["customer_id"] for row in merged["interaction"]} == {pair["survivor"].id}
    assert loyalty_cards == {"card-1": pair["survivor"].id, "card-2": pair["survivor"].id}
    with crm.session_factory() as session:
        entry = session.get(AuditEntry, entry_id)
        assert entry.changes["moved"][1]["loyalty.card"] == {str(pair["duplicate"].id): ["card-1"]}

    with crm.unit_of_work(source="api") as uow:
        result = undo_merge(uow, "customer", entry_id)
    assert result.survivor.id == pair["survivor"].id
    assert [r.id for r in result.restored] == [pair["duplicate"].id]
    assert dump(crm, ids) == before
    assert loyalty_cards == {"card-1": pair["duplicate"].id, "card-2": pair["survivor"].id}
    assert undone_calls == [
        {
            "survivor": pair["survivor"].id,
            "restored": [pair["duplicate"].id],
            "moved": {
                "contact": {str(pair["duplicate"].id): [c.id for c in pair["contacts"][1:]]},
                "interaction": {str(pair["duplicate"].id): [i.id for i in pair["logged"][1:]]},
                "loyalty.card": {str(pair["duplicate"].id): ["card-1"]},
            },
        }
    ]
    with crm.session_factory() as session:
        undone = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "merge_undone").order_by(AuditEntry.id)
        ).all()
        assert [(e.entity_id, e.source) for e in undone] == [
            (str(pair["survivor"].id), "api"),
            (str(pair["duplicate"].id), "api"),
        ]
        assert undone[0].changes["undone_entry_id"] == [None, entry_id]
        assert undone[0].changes["name"] == ["Acme Corp.", "ACME"]
        assert undone[1].changes == {
            "merged_into_id": [pair["survivor"].id, None],
            "archived": [True, False],
        }
        events = session.scalars(
            select(OutboxEvent.type).where(OutboxEvent.type == "customer.merge_undone")
        ).all()
        assert len(events) == 2

    # Undone once: never twice.
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        undo_merge(uow, "customer", entry_id)
    assert caught.value.messages == {"_schema": ["This merge has been undone already."]}
    # The records can be merged again, and that merge undone again.
    again = merge(crm, pair)
    with crm.unit_of_work() as uow:
        undo_merge(uow, "customer", again)
    assert dump(crm, ids) == before


def test_later_unrelated_work_is_kept(crm, pair):
    entry_id = merge(crm, pair)
    with crm.unit_of_work() as uow:
        customers.update(uow, pair["survivor"].id, {"industry": "Rockets"})  # not merged
        interactions.create(
            uow, {"customer_id": pair["survivor"].id, "channel": "note", "occurred_at": WHEN}
        )
        undo_merge(uow, "customer", entry_id)
    with crm.session_factory() as session:
        survivor = session.get(Customer, pair["survivor"].id)
        assert survivor.industry == "Rockets"
        assert survivor.email is None and survivor.tags == ["a"]
        notes = session.scalars(select(Interaction).where(Interaction.channel == "note")).all()
        assert [n.customer_id for n in notes] == [pair["survivor"].id]


def test_undo_is_refused_when_it_would_lose_later_work(crm, pair):
    entry_id = merge(crm, pair)
    with crm.unit_of_work() as uow:
        third = customers.create(uow, {"name": "Third"})
        customers.update(uow, pair["survivor"].id, {"city": "Bremen", "tags": ["a"]})
        contacts.update(uow, pair["contacts"][1].id, {"customer_id": third.id})
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        undo_merge(uow, "customer", entry_id)
    assert caught.value.messages == {
        "_schema": [
            "'city' has been changed since the merge.",
            "'tags' has been changed since the merge.",
            "1 of the contacts the merge moved have been moved again since.",
        ]
    }
    # The survivor merged into another record since: undo that merge first.
    with crm.unit_of_work() as uow:
        customers.update(uow, pair["survivor"].id, {"city": "Hamburg", "tags": ["a", "b", "vip"]})
        contacts.update(uow, pair["contacts"][1].id, {"customer_id": pair["survivor"].id})
        customers.merge(uow, third.id, [pair["survivor"].id])
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        undo_merge(uow, "customer", entry_id)
    assert caught.value.messages["_schema"][0].startswith(
        f"customer {pair['survivor'].id} has been merged into customer {third.id} since"
    )


def test_only_merges_visible_to_a_user_with_merge_permission(crm, pair):
    entry_id = merge(crm, pair)
    with crm.unit_of_work() as uow:
        merger = Role(name="merger", permissions=["customer.view", "customer.merge"])
        own = Role(name="own", permissions=["customer.view", "customer.merge"], visibility="own")
        viewer = Role(name="viewer", permissions=["customer.view"])
        people = {
            "ann": User(email="ann@x.example", roles=[own]),
            "vic": User(email="vic@x.example", roles=[viewer]),
            "mo": User(email="mo@x.example", roles=[merger]),
        }
        uow.session.add_all(people.values())
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=people["vic"]) as uow:
        undo_merge(uow, "customer", entry_id)
    with pytest.raises(NotFoundError), crm.unit_of_work(actor=people["ann"]) as uow:
        undo_merge(uow, "customer", entry_id)  # not ann's customers
    with crm.session_factory() as session:
        created = session.scalars(select(AuditEntry.id).where(AuditEntry.action == "created"))
        not_a_merge = created.first()
    for bad in (not_a_merge, 987654, 2**31, 10**30, "x", None):
        with pytest.raises(NotFoundError), crm.unit_of_work() as uow:
            undo_merge(uow, "customer", bad)
    with pytest.raises(NotFoundError), crm.unit_of_work() as uow:
        undo_merge(uow, "contact", entry_id)  # a customer merge, not a contact merge
    with pytest.raises(ValidationError), crm.unit_of_work() as uow:
        undo_merge(uow, "interaction", entry_id)
    with crm.unit_of_work(actor=people["mo"]) as uow:
        undo_merge(uow, "customer", entry_id)


def test_contact_merge_undo_restores_emails_phones_and_interactions(crm):
    with crm.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "ACME", "country": "DE"})
        jane = contacts.create(
            uow,
            {
                "customer_id": acme.id,
                "first_name": "Jane",
                "last_name": "Doe",
                "emails": [{"email": "jane@acme.example"}],
            },
        )
        twin = contacts.create(
            uow,
            {
                "first_name": "J.",
                "last_name": "Doe",
                "job_title": "CTO",
                "emails": [{"label": "home", "email": "jd@home.example"}],
                "phones": [{"label": "mobile", "number": "0151 2345678"}],
            },
        )
        logged = interactions.create(
            uow,
            {"customer_id": acme.id, "contact_id": twin.id, "channel": "call", "occurred_at": WHEN},
        )

    def state() -> dict[str, Any]:
        with crm.session_factory() as session:
            people = {}
            for contact in session.scalars(
                select(Contact).where(Contact.id.in_([jane.id, twin.id]))
            ):
                people[contact.id] = {
                    "row": {
                        k: getattr(contact, k)
                        for k in ("first_name", "last_name", "job_title", "customer_id", "archived")
                    },
                    "merged_into_id": contact.merged_into_id,
                    "emails": [(e.label, e.email, e.position) for e in contact.emails],
                    "phones": [(p.label, p.number, p.e164, p.position) for p in contact.phones],
                }
            return {"contacts": people, "call": session.get(Interaction, logged.id).contact_id}

    before = state()
    with crm.unit_of_work() as uow:
        contacts.merge(uow, jane.id, [twin.id])
    merged = state()
    assert merged["call"] == jane.id
    assert [e[1] for e in merged["contacts"][jane.id]["emails"]] == [
        "jane@acme.example",
        "jd@home.example",
    ]
    assert merged["contacts"][jane.id]["phones"] == [("mobile", "0151 2345678", "+491512345678", 0)]
    with crm.session_factory() as session:
        entry_id = session.scalar(
            select(AuditEntry.id).where(
                AuditEntry.entity == "contact", AuditEntry.action == "merged"
            )
        )
    with crm.unit_of_work() as uow:
        undo_merge(uow, "contact", entry_id)
    assert state() == before
