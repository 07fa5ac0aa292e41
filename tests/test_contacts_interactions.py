"""Contacts and interactions through the service layer."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from crm_core import ValidationError
from crm_core.extensions import Channel
from crm_core.models import Interaction
from crm_core.services import contacts, customers, interactions
from crm_core.testing import plugin_module

pytestmark = pytest.mark.plugins()

WHEN = dt.datetime(2026, 5, 4, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.fixture
def crm_plugin_modules() -> list:
    channels = [Channel("carrier_pigeon", directional=True)]
    return [plugin_module("pigeons", core_api=">=1.0", crm_register_channels=lambda: channels)]


@pytest.fixture
def acme(crm):
    with crm.unit_of_work() as uow:
        return customers.create(uow, {"name": "ACME"})


def test_contact_with_labelled_emails_phones_and_consent(crm, acme):
    with crm.unit_of_work() as uow:
        contact = contacts.create(
            uow,
            {
                "customer_id": acme.id,
                "first_name": "Ada",
                "last_name": "Lovelace",
                "job_title": "Analyst",
                "emails": [
                    {"email": "Ada@Example.com"},
                    {"label": "home", "email": "ada@home.example"},
                ],
                "phones": [{"label": "mobile", "number": "+44 20 7946 0958"}],
                "consent_email": True,
            },
        )
    assert contact.full_name == "Ada Lovelace"
    assert contact.primary_email == "ada@example.com"
    assert [(e.label, e.email) for e in contact.emails] == [
        ("work", "ada@example.com"),
        ("home", "ada@home.example"),
    ]
    assert contact.consent_email and contact.consent_email_at is not None
    assert not contact.consent_phone and contact.consent_phone_at is None
    with crm.unit_of_work() as uow:
        updated = contacts.update(
            uow,
            contact.id,
            {"emails": [{"label": "work", "email": "ada@newjob.example"}], "consent_phone": True},
        )
    assert [e.email for e in updated.emails] == ["ada@newjob.example"]
    assert updated.consent_phone_at is not None
    assert updated.version == 2


def test_contact_input_errors(crm, acme):
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        contacts.create(
            uow,
            {
                "customer_id": 999999,
                "emails": [{"email": "nope"}],
                "phones": [{"number": "call me maybe"}],
            },
        )
    messages = caught.value.messages
    assert messages["last_name"] == ["Give a first or a last name."]
    assert messages["emails"] == {0: {"email": ["Not a valid email address."]}}
    assert messages["phones"] == {0: {"number": ["Not a valid phone number."]}}
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        contacts.create(uow, {"customer_id": 999999, "last_name": "Nobody"})
    assert caught.value.messages == {"customer_id": ["No customer with id 999999."]}


def test_merging_contacts_moves_interactions_and_keeps_every_address(crm, acme):
    with crm.unit_of_work() as uow:
        keep = contacts.create(
            uow,
            {"customer_id": acme.id, "last_name": "Smith", "emails": [{"email": "a@x.example"}]},
        )
        dupe = contacts.create(
            uow,
            {
                "customer_id": acme.id,
                "first_name": "John",
                "last_name": "Smith",
                "emails": [{"email": "a@x.example"}, {"email": "john@y.example"}],
            },
        )
        logged = interactions.create(
            uow,
            {
                "customer_id": acme.id,
                "contact_id": dupe.id,
                "channel": "email",
                "occurred_at": WHEN,
            },
        )
    with crm.unit_of_work() as uow:
        merged = contacts.merge(uow, keep.id, [dupe.id])
    assert merged.first_name == "John"
    assert [e.email for e in merged.emails] == ["a@x.example", "john@y.example"]
    with crm.session_factory() as session:
        assert session.get(Interaction, logged.id).contact_id == keep.id
    with pytest.raises(ValidationError), crm.unit_of_work() as uow:
        interactions.create(
            uow,
            {"customer_id": acme.id, "contact_id": 424242, "channel": "call", "occurred_at": WHEN},
        )


def test_interaction_times_are_stored_in_utc_and_source_comes_from_the_unit_of_work(crm, acme):
    with crm.unit_of_work(source="import") as uow:
        logged = interactions.create(
            uow,
            {
                "customer_id": acme.id,
                "channel": "call",
                "direction": "out",
                "occurred_at": "2026-05-04T15:30:00+02:00",
                "subject": "Intro call",
            },
        )
    with crm.session_factory() as session:
        stored = session.get(Interaction, logged.id)
        assert stored.occurred_at == WHEN
        assert stored.occurred_at.utcoffset() == dt.timedelta(0)
        assert stored.occurred_at.hour == 13
        assert stored.source == "import"


def test_interaction_rules(crm, acme):
    with crm.unit_of_work() as uow:
        other = customers.create(uow, {"name": "Other"})
        elsewhere = contacts.create(uow, {"customer_id": other.id, "last_name": "Elsewhere"})
    cases = [
        ({"channel": "telepathy"}, "channel"),
        ({"channel": "note", "direction": "in"}, "direction"),
        ({"channel": "call", "direction": "sideways"}, "direction"),
        ({"channel": "call", "contact_id": elsewhere.id}, "contact_id"),
        ({"channel": "call", "occurred_at": "2026-05-04T15:30:00"}, "occurred_at"),
        ({"channel": "call", "customer_id": 31337}, "customer_id"),
    ]
    for extra, field_name in cases:
        data = {"customer_id": acme.id, "occurred_at": WHEN, **extra}
        with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
            interactions.create(uow, data)
        assert list(caught.value.messages) == [field_name], extra
    with crm.unit_of_work() as uow:
        pigeon = interactions.create(
            uow, {"customer_id": acme.id, "channel": "carrier_pigeon", "occurred_at": WHEN}
        )
    assert pigeon.channel == "carrier_pigeon"


def test_reimporting_the_same_external_reference_does_not_duplicate(crm, acme):
    rows = [
        {"customer_id": acme.id, "channel": "email", "occurred_at": WHEN, "external_ref": "m-1"},
        {"customer_id": acme.id, "channel": "email", "occurred_at": WHEN, "external_ref": "m-2"},
        {"customer_id": acme.id, "channel": "email", "occurred_at": WHEN, "external_ref": "m-2"},
    ]
    with crm.unit_of_work(source="mailbox") as uow:
        first = interactions.bulk_create(uow, rows)
    assert len(first.records) == 2
    assert first.errors == {2: {"external_ref": ["Appears twice in this batch: 'm-2'."]}}
    with crm.unit_of_work(source="mailbox") as uow:
        again = interactions.bulk_create(uow, rows[:1])
    assert again.errors[0]["external_ref"][0].startswith("Already imported from mailbox")
    with crm.unit_of_work(source="other-system") as uow:
        elsewhere = interactions.bulk_create(uow, rows[:1])
    assert elsewhere.ok  # references are unique per source
    with crm.session_factory() as session:
        assert len(session.scalars(select(Interaction)).all()) == 3


def test_interactions_cannot_be_logged_on_a_merged_customer(crm, acme):
    with crm.unit_of_work() as uow:
        dupe = customers.create(uow, {"name": "ACME dupe"})
        customers.merge(uow, acme.id, [dupe.id])
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        interactions.create(uow, {"customer_id": dupe.id, "channel": "call", "occurred_at": WHEN})
    assert caught.value.messages == {
        "customer_id": [f"Customer {dupe.id} was merged into customer {acme.id}."]
    }


def test_update_archive_and_merge_interactions(crm, acme):
    with crm.unit_of_work() as uow:
        first = interactions.create(
            uow, {"customer_id": acme.id, "channel": "email", "occurred_at": WHEN, "subject": "Hi"}
        )
        second = interactions.create(
            uow, {"customer_id": acme.id, "channel": "email", "occurred_at": WHEN, "body": "Text"}
        )
    with crm.unit_of_work() as uow:
        interactions.update(uow, first.id, {"subject": "Hello"}, expected_version=1)
        survivor = interactions.merge(uow, first.id, [second.id])
    assert (survivor.subject, survivor.body) == ("Hello", "Text")
    with crm.session_factory() as session:
        assert session.get(Interaction, second.id).merged_into_id == first.id
    with crm.unit_of_work() as uow:
        assert interactions.archive(uow, first.id).archived
