"""The UI-slot hooks: menu items filtered by permission, customer panels in order."""

from __future__ import annotations

import pytest

from crm_core.extensions import MenuItem, Panel
from crm_core.models import Role, User
from crm_core.services import customers
from crm_core.testing import plugin_module

pytestmark = pytest.mark.plugins()


def _menu(actor):
    return [
        MenuItem("Reports", "reports.index", order=50),
        MenuItem("Deals", "deals.index", order=10, permission="deals.view"),
        MenuItem("Admin", "admin.index", order=90, permission="user.admin"),
    ]


def _panels(customer, actor):
    if customer.lifecycle_stage != "customer":
        return None
    return [
        Panel("invoices", "Open invoices", "billing/panel.html", {"count": 2}, order=20),
        Panel("deals", "Deals", "deals/panel.html", order=10),
    ]


@pytest.fixture
def crm_plugin_modules() -> list:
    return [
        plugin_module(
            "slots", core_api=">=1.0", crm_menu_items=_menu, crm_customer_panels=_panels
        )
    ]


def test_menu_items_are_ordered_and_filtered_by_the_actors_permissions(crm):
    seller = User(email="s@example.com", roles=[Role(name="sales", permissions=["deals.view"])])
    assert [item.label for item in crm.menu_items(None)] == ["Reports"]
    assert [item.label for item in crm.menu_items(seller)] == ["Deals", "Reports"]


def test_customer_panels_are_collected_in_order(crm):
    with crm.unit_of_work() as uow:
        lead = customers.create(uow, {"name": "Lead Ltd"})
        client = customers.create(uow, {"name": "Client Ltd", "lifecycle_stage": "customer"})
    assert crm.customer_panels(lead, None) == []
    panels = crm.customer_panels(client, None)
    assert [panel.name for panel in panels] == ["deals", "invoices"]
    assert panels[1].context == {"count": 2}
