"""Custom attributes of every type through the API: stored, shown back as sent, refused
with the attribute named — never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from crm_core.testing import ApiClient


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    """One attribute of each type on customers."""
    return {
        "custom_attributes": {
            "customer.vat_id": {"type": "string"},
            "customer.notes": {"type": "text"},
            "customer.seats": {"type": "integer"},
            "customer.discount": {"type": "decimal"},
            "customer.active_client": {"type": "boolean"},
            "customer.renewal": {"type": "date"},
            "customer.tier": {"type": "choice", "choices": ["gold", "silver"]},
        }
    }


def test_every_attribute_type_is_stored_and_shown_back(api: ApiClient) -> None:
    attributes = {"vat_id": "SE556677", "notes": "Met at the fair", "seats": 12,
                  "discount": "7.50", "active_client": True, "renewal": "2027-03-31",
                  "tier": "gold"}
    created = api.post("/customers", json={"name": "Typed AB", "attributes": attributes})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["attributes"] == attributes
    shown = api.get(f"/customers/{created.get_json()['id']}")
    assert shown.status_code == 200 and shown.get_json()["attributes"] == attributes
    listed = api.get("/customers").get_json()["data"]
    assert [row["attributes"] for row in listed] == [attributes]


@pytest.mark.parametrize(("attributes", "field"), [
    ({"renewal": "31.03.2027"}, "renewal"),
    ({"discount": "a lot"}, "discount"),
    ({"seats": "many"}, "seats"),
    ({"tier": "platinum"}, "tier"),
    ({"colour": "red"}, "colour"),
])
def test_bad_attribute_values_are_refused_naming_the_attribute(
    api: ApiClient, attributes: dict[str, Any], field: str
) -> None:
    refused = api.post("/customers", json={"name": "Bad AB", "attributes": attributes})
    assert refused.status_code == 422, refused.get_json()
    assert field in refused.get_json()["errors"]["attributes"]
