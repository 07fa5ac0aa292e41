"""Phone numbers in E.164 form: the function, the setting, and the services filling the columns."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_core import ConfigError
from crm_core.config import load_settings
from crm_core.models import ContactPhone, Customer
from crm_core.phones import looks_like_phone_number, to_e164
from crm_core.services import contacts, customers

pytestmark = pytest.mark.plugins()


@pytest.mark.parametrize(
    ("number", "region", "expected"),
    [
        ("+49 30 1234567", None, "+49301234567"),
        ("+49 (0)30 1234567", None, "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("030/123 45 67", "de", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("(555) 123-4567", "US", "+15551234567"),
        ("+1 555 123 4567 x12", None, "+15551234567"),
        ("030 1234567", None, None),  # national format, no region: never guessed
        ("030 1234567", "XX", None),  # unknown region: as if none
        ("12", "DE", None),  # dialable only locally
        ("not a number", "DE", None),
        ("", "DE", None),
        (None, "DE", None),
    ],
)
def test_to_e164(number, region, expected):
    assert to_e164(number, region) == expected


def test_phone_like_text():
    assert looks_like_phone_number("+49 30 1234567")
    assert looks_like_phone_number("030/1234-567")
    assert not looks_like_phone_number("ACME 123")
    assert not looks_like_phone_number("12")


def test_default_phone_region_setting():
    assert (
        load_settings({"instance_path": "/tmp/x", "secret_key": "s" * 20}).default_phone_region
        is None
    )
    settings = load_settings(
        {"instance_path": "/tmp/x", "secret_key": "s" * 20},
        environ={"CRM_DEFAULT_PHONE_REGION": "de"},
    )
    assert settings.default_phone_region == "DE"
    with pytest.raises(ConfigError, match="CRM_DEFAULT_PHONE_REGION"):
        load_settings(
            {"instance_path": "/tmp/x", "secret_key": "s" * 20, "default_phone_region": "Germany"}
        )


@pytest.fixture
def crm_settings_overrides():
    return {"default_phone_region": "GB"}


def test_customers_get_e164_from_their_country_or_the_default(crm):
    with crm.unit_of_work() as uow:
        german = customers.create(
            uow, {"name": "Berlin GmbH", "phone": "030 1234567", "country": "DE"}
        )
        british = customers.create(uow, {"name": "London Ltd", "phone": "020 7946 0958"})
        unreadable = customers.create(uow, {"name": "Nowhere", "phone": "123"})
        batch = customers.bulk_create(
            uow,
            [
                {"name": "A", "phone": "+1 555 123 4567"},
                {"name": "B", "phone": "089 123456", "country": "DE"},
                {"name": "C"},
            ],
        )
    assert german.phone_e164 == "+49301234567"
    assert british.phone_e164 == "+442079460958"
    assert unreadable.phone_e164 is None
    assert [c.phone_e164 for c in batch.records] == ["+15551234567", "+4989123456", None]

    with crm.unit_of_work() as uow:
        customers.update(uow, german.id, {"phone": "+49 (0)40 987654"})
        customers.update(uow, british.id, {"country": "DE"})  # read again as a German number
        customers.bulk_update(uow, [(batch.records[2].id, {"phone": "0207 946 0958"})])
        customers.update(uow, unreadable.id, {"phone": None})
    with crm.session_factory() as session:
        stored = dict(session.execute(select(Customer.name, Customer.phone_e164)).all())
    assert stored == {
        "Berlin GmbH": "+4940987654",
        "London Ltd": "+492079460958",
        "Nowhere": None,
        "A": "+15551234567",
        "B": "+4989123456",
        "C": "+442079460958",
    }


def test_contact_phones_get_e164_from_their_customers_country(crm):
    with crm.unit_of_work() as uow:
        paris = customers.create(uow, {"name": "Paris SA", "country": "FR"})
        at_paris = contacts.create(
            uow,
            {
                "customer_id": paris.id,
                "last_name": "Dupont",
                "phones": [
                    {"number": "01 23 45 67 89"},
                    {"label": "mobile", "number": "+33 6 12 34 56 78"},
                ],
            },
        )
        alone = contacts.bulk_create(
            uow,
            [{"last_name": "Smith", "phones": [{"number": "020 7946 0958"}]}, {"last_name": "Doe"}],
        ).records
    assert [p.e164 for p in at_paris.phones] == ["+33123456789", "+33612345678"]
    assert [p.e164 for p in alone[0].phones] == ["+442079460958"]  # the default region

    with crm.unit_of_work() as uow:
        contacts.update(uow, alone[0].id, {"customer_id": paris.id})  # now read as French
        contacts.update(uow, alone[1].id, {"phones": [{"number": "+49 30 1234567"}]})
    with crm.session_factory() as session:
        rows = session.execute(
            select(ContactPhone.contact_id, ContactPhone.number, ContactPhone.e164).order_by(
                ContactPhone.contact_id, ContactPhone.position
            )
        ).all()
    assert [(r.contact_id, r.e164) for r in rows] == [
        (at_paris.id, "+33123456789"),
        (at_paris.id, "+33612345678"),
        (alone[0].id, None),  # 020 7946 0958 is not a possible French number
        (alone[1].id, "+49301234567"),
    ]
