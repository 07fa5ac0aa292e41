"""Duplicate suggestions by normalised email, E.164 phone and name similarity."""

from __future__ import annotations

from typing import Any

import pytest

from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.duplicates import (
    contact_duplicates,
    contact_name_key,
    customer_duplicates,
    customer_name_key,
)
from crm_core.models import Role, User
from crm_core.services import contacts, customers

pytestmark = pytest.mark.plugins()


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    return {"default_phone_region": "DE"}


def test_name_keys_drop_case_accents_punctuation_order_and_legal_forms():
    assert customer_name_key("ACME GmbH & Co. KG") == "acme"
    assert customer_name_key("Acme, Inc.") == "acme"
    assert customer_name_key("Fratelli Rossi S.p.A.") == "fratelli rossi"
    assert customer_name_key("Müller Maschinenbau AG") == "maschinenbau muller"
    assert customer_name_key("Maschinenbau Müller") == "maschinenbau muller"
    assert customer_name_key("GmbH") == "gmbh"  # nothing but a legal form: kept
    assert contact_name_key("José", "García-López") == "garcia jose lopez"


@pytest.fixture
def firms(crm) -> dict[str, Any]:
    with crm.unit_of_work() as uow:
        made = {
            name: customers.create(uow, data)
            for name, data in {
                "acme": {
                    "name": "ACME GmbH",
                    "email": "info@acme.example",
                    "phone": "030 1234567",
                    "country": "DE",
                },
                "same_phone": {"name": "Acme Inc.", "phone": "+49 (30) 123-4567"},
                "same_email": {"name": "Roadrunner Supplies", "email": "info@acme.example"},
                "same_name": {"name": "acme"},
                "different": {"name": "Acme Industries"},
                "unrelated": {"name": "Globex", "phone": "+1 555 123 4567"},
                "muller": {"name": "Müller Maschinenbau AG"},
                "typo": {"name": "Muller Maschinenbaau GmbH"},
                "archived": {"name": "ACME Ltd", "email": "info@acme.example"},
            }.items()
        }
        customers.archive(uow, made["archived"].id)
    return made


def test_customer_duplicates_by_email_phone_and_name(crm, firms):
    with crm.session_factory() as session:
        found = customer_duplicates(session, None, firms["acme"].id)
    by_name = {candidate.title: candidate for candidate in found}
    assert set(by_name) == {"Acme Inc.", "Roadrunner Supplies", "acme"}
    assert by_name["Acme Inc."].reasons == ("phone", "name")
    assert by_name["Roadrunner Supplies"].reasons == ("email",)
    assert by_name["acme"].reasons == ("name",)
    assert by_name["acme"].name_similarity == 1.0
    # More evidence, more confidence: phone and name > email alone > name alone.
    assert [c.title for c in found] == ["Acme Inc.", "Roadrunner Supplies", "acme"]
    assert found[0].score == pytest.approx(1 - (1 - 0.8) * (1 - 0.85))
    assert found[0].record.id == firms["same_phone"].id
    assert [c.title for c in customer_duplicates_of(crm, firms["muller"])] == [
        "Muller Maschinenbaau GmbH"
    ]
    assert customer_duplicates_of(crm, firms["unrelated"]) == []
    with crm.session_factory() as session:
        assert len(customer_duplicates(session, None, firms["acme"].id, limit=1)) == 1
        with pytest.raises(ValidationError):
            customer_duplicates(session, None, firms["acme"].id, limit=0)
        for missing in (987654, 2**31, "10000000000000000000000", "acme"):
            with pytest.raises(NotFoundError):
                customer_duplicates(session, None, missing)


def customer_duplicates_of(crm, customer) -> list[Any]:
    with crm.session_factory() as session:
        return customer_duplicates(session, None, customer.id)


def test_only_visible_records_are_suggested(crm):
    with crm.unit_of_work() as uow:
        own = Role(name="own", permissions=["customer.view", "customer.edit"], visibility="own")
        ann = User(email="ann@x.example", roles=[own])
        cid = User(email="cid@x.example", roles=[own])
        nobody = User(email="no@x.example", roles=[])
        uow.session.add_all([ann, cid, nobody])
    with crm.unit_of_work(actor=ann) as uow:
        mine = customers.create(uow, {"name": "Initech", "email": "hello@initech.example"})
        my_dupe = customers.create(uow, {"name": "Initech LLC"})
    with crm.unit_of_work(actor=cid) as uow:
        theirs = customers.create(uow, {"name": "Initech", "email": "hello@initech.example"})
    with crm.session_factory() as session:
        assert [c.id for c in customer_duplicates(session, ann, mine.id)] == [my_dupe.id]
        assert customer_duplicates(session, cid, theirs.id) == []
        with pytest.raises(NotFoundError):
            customer_duplicates(session, ann, theirs.id)
        with pytest.raises(PermissionDenied):
            customer_duplicates(session, nobody, mine.id)
        assert {c.id for c in customer_duplicates(session, None, theirs.id)} == {
            mine.id,
            my_dupe.id,
        }


def test_contact_duplicates(crm):
    with crm.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "ACME", "country": "DE"})
        other = customers.create(uow, {"name": "Other", "country": "DE"})
        jane = contacts.create(
            uow,
            {
                "customer_id": acme.id,
                "first_name": "Jane",
                "last_name": "Doe",
                "emails": [{"email": "jane@acme.example"}, {"email": "jd@home.example"}],
                "phones": [{"number": "0151 2345678"}],
            },
        )
        made = contacts.bulk_create(
            uow,
            [
                {"last_name": "Doe", "first_name": "J.", "emails": [{"email": "JD@home.example"}]},
                {"last_name": "Smith", "phones": [{"number": "+49 151 234 5678"}]},
                {"customer_id": acme.id, "first_name": "Jane", "last_name": "Does"},
                {"customer_id": other.id, "first_name": "Jane", "last_name": "Doe"},
                {"first_name": "John", "last_name": "Roe"},
            ],
        ).records
    with crm.session_factory() as session:
        found = contact_duplicates(session, None, jane.id)
    reasons = {candidate.record.id: candidate.reasons for candidate in found}
    assert reasons == {
        made[0].id: ("email",),
        made[1].id: ("phone",),
        made[2].id: ("name", "customer"),
        made[3].id: ("name",),
    }
    assert found[0].record.id == made[0].id
    assert found[-1].record.id == made[3].id  # a namesake at another customer: least sure
    with crm.unit_of_work() as uow:
        contacts.archive(uow, made[0].id)
    with crm.session_factory() as session:
        assert made[0].id not in {c.id for c in contact_duplicates(session, None, jane.id)}
