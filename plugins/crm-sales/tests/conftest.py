"""Fixtures of crm-sales's tests, on top of ``crm_core.testing`` (the pytest plugin every
crm-core installation has): only crm-sales is loaded into the CRM under test."""

from __future__ import annotations

from typing import Any

import pytest

from crm_core.services import customers
from crm_core.testing import make_user


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here runs with crm-sales, and crm-sales only."""
    for item in items:
        if "crm-sales" in str(item.path) and item.get_closest_marker("plugins") is None:
            item.add_marker(pytest.mark.plugins("crm_sales"))


@pytest.fixture
def seller(crm: Any) -> Any:
    """A user with every permission (crm-sales's included), seeing every record."""
    return make_user(crm, "seller@sales.example", sorted(crm.registry.permissions))


@pytest.fixture
def acme(crm: Any, seller: Any) -> Any:
    """A customer to sell to."""
    with crm.unit_of_work(actor=seller, source="test") as uow:
        return customers.create(uow, {"name": "ACME Tools GmbH", "owner_id": seller.id})
