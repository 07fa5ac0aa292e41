"""The catalogue: products and price lists through their service, pages and API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from crm_sales.models import PriceList, PriceListItem, Product
from crm_sales.parts import catalogue as catalogue_part
from crm_sales.services import catalogue
from sqlalchemy import func, select

from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.models import AuditEntry
from crm_core.testing import ApiClient, UiBrowser, api_token, link_of, sql_statements, ui_user
from crm_core.web.api import Cursor

PROBLEM = "application/problem+json"


def _product(crm: Any, actor: Any, code: str, price: str = "100", **extra: Any) -> Product:
    with crm.unit_of_work(actor=actor, source="test") as uow:
        return catalogue.create_product(
            uow, {"code": code, "name": f"Product {code}", "unit_price": price, **extra})


def _count(crm: Any, model: Any) -> int:
    with crm.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def admin_ui(crm: Any, client: Any) -> UiBrowser:
    """The UI as a sales administrator (who also sees deals)."""
    ui_user(crm, "catalogue@sales.example", ["sales.admin", "sales.deal.view", "user.admin"])
    return UiBrowser(client, "catalogue@sales.example")


# -- products through the service ---------------------------------------------------------


def test_a_product_is_created_changed_and_deactivated_with_its_audit(crm, seller):
    product = _product(crm, seller, "LIC-100", "1250.5", currency="CHF")
    assert product.unit_price == Decimal("1250.50") and product.currency == "CHF"
    with crm.unit_of_work(actor=seller, source="test") as uow:
        changed = catalogue.update_product(uow, product.id, {"name": "Licence", "code": "lic-1"})
        assert (changed.code, changed.name, changed.active) == ("lic-1", "Licence", True)
        catalogue.deactivate_product(uow, product.id)
        catalogue.deactivate_product(uow, product.id)  # already inactive: nothing more
        assert catalogue.get_product(uow, product.id).active is False
        actions = list(uow.session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity == "product",
                                            AuditEntry.entity_id == str(product.id))
            .order_by(AuditEntry.id)))
    assert actions == ["created", "updated", "deactivated"]


def test_a_code_is_unique_in_any_case(crm, seller):
    first = _product(crm, seller, "Widget-1")
    other = _product(crm, seller, "Widget-2")
    for code in ("WIDGET-1", "widget-1", " Widget-1 "):
        with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
            catalogue.create_product(uow, {"code": code, "name": "Twin", "unit_price": "1"})
        assert set(refused.value.messages) == {"code"}
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        catalogue.update_product(uow, other.id, {"code": "wIdGeT-1"})
    assert set(refused.value.messages) == {"code"}
    with crm.unit_of_work(actor=seller, source="test") as uow:  # its own code, in another case
        assert catalogue.update_product(uow, first.id, {"code": "WIDGET-1"}).code == "WIDGET-1"
    assert _count(crm, Product) == 2


def test_bad_product_input_names_each_field_and_saves_nothing(crm, seller):
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        catalogue.create_product(uow, {"code": "", "name": "x" * 201, "unit_price": "-1",
                                       "currency": "euro"})
    assert set(refused.value.messages) == {"code", "name", "unit_price", "currency"}
    for price in ("abc", "NaN", "1e30", None):
        with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
            catalogue.create_product(uow, {"code": "P", "name": "P", "unit_price": price})
        assert set(refused.value.messages) == {"unit_price"}
    assert _count(crm, Product) == 0


def test_catalogue_writes_need_the_sales_admin(crm, seller):
    product = _product(crm, seller, "P-1")
    from crm_core.testing import make_user

    rep = make_user(crm, "rep@sales.example", ["sales.deal.view"])
    with crm.unit_of_work(actor=rep, source="test") as uow:
        assert catalogue.get_product(uow, product.id).code == "P-1"
        assert catalogue.price_for(uow, product.id) == Decimal("100")
        with pytest.raises(PermissionDenied):
            catalogue.create_product(uow, {"code": "P-2", "name": "P", "unit_price": "1"})
        with pytest.raises(PermissionDenied):
            catalogue.update_product(uow, product.id, {"name": "Renamed"})
        with pytest.raises(PermissionDenied):
            catalogue.create_price_list(uow, {"name": "Partners"})
    stranger = make_user(crm, "stranger@sales.example", [])
    with crm.unit_of_work(actor=stranger, source="test") as uow, pytest.raises(PermissionDenied):
        catalogue.list_products(uow)


def test_products_are_listed_by_code_a_page_at_a_time(crm, seller):
    for code in ("C-3", "A-1", "B-2", "D-4"):
        _product(crm, seller, code, active=code != "B-2")
    with crm.unit_of_work(actor=seller, source="test") as uow:
        first = catalogue.list_products(uow, limit=2)
        assert [p.code for p in first] == ["A-1", "B-2"]
        assert [p.code for p in catalogue.list_products(uow, after="B-2", limit=2)] == [
            "C-3", "D-4"]
        assert [p.code for p in catalogue.list_products(uow, active=True)] == ["A-1", "C-3", "D-4"]
        with pytest.raises(NotFoundError):
            catalogue.get_product(uow, 2**40)


# -- price lists and prices ---------------------------------------------------------------


def test_a_price_list_prices_products_by_code_or_id_in_its_currency(crm, seller):
    widget = _product(crm, seller, "WID-1", "100")
    gadget = _product(crm, seller, "GAD-1", "40", currency="USD")
    spare = _product(crm, seller, "SPR-1", "5")
    with crm.unit_of_work(actor=seller, source="test") as uow:
        partners = catalogue.create_price_list(uow, {
            "name": "Partners", "currency": "USD",
            "items": [{"product_code": "wid-1", "unit_price": "85.5"},
                      {"product_id": gadget.id, "unit_price": "35"}],
        })
        assert partners.currency == "USD"
        assert {(i.product_id, i.unit_price) for i in partners.items} == {
            (widget.id, Decimal("85.50")), (gadget.id, Decimal("35"))}
        assert catalogue.price_for(uow, widget.id, partners.id) == Decimal("85.50")
        assert catalogue.price(uow, widget.id, partners.id) == (Decimal("85.50"), "USD")
        assert catalogue.price_for(uow, widget.id) == Decimal("100")
        assert catalogue.price(uow, spare.id, partners.id) == (Decimal("5"), "EUR")
        catalogue.update_price_list(uow, partners.id, {"active": False})
        assert catalogue.price_for(uow, widget.id, partners.id) == Decimal("100")
        with pytest.raises(NotFoundError):
            catalogue.price_for(uow, widget.id, partners.id + 1000)
        with pytest.raises(NotFoundError):
            catalogue.price_for(uow, spare.id + 1000)


def test_a_product_has_one_price_per_list_and_unknown_products_are_refused(crm, seller):
    widget = _product(crm, seller, "WID-1")
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        catalogue.create_price_list(uow, {"name": "Partners", "items": [
            {"product_code": "WID-1", "unit_price": "90"},
            {"unit_price": "3"},
            {"product_code": "WID-1", "unit_price": "-3"},
        ]})
    items = refused.value.messages["items"]
    assert set(items) == {1, 2}
    assert set(items[1]) == {"product_code"} and set(items[2]) == {"unit_price"}
    with pytest.raises(ValidationError) as refused, crm.unit_of_work(actor=seller) as uow:
        catalogue.create_price_list(uow, {"name": "Partners", "items": [
            {"product_code": "WID-1", "unit_price": "90"},
            {"product_code": "nope", "unit_price": "1"},
            {"product_id": widget.id, "unit_price": "80"},
            {"product_id": widget.id + 1000, "unit_price": "80"},
        ]})
    items = refused.value.messages["items"]
    assert set(items) == {1, 2, 3}
    assert set(items[1]) == {"product_code"} and set(items[2]) == {"product_id"}
    assert set(items[3]) == {"product_id"}
    assert _count(crm, PriceList) == 0


def test_updating_the_items_replaces_the_prices_and_names_are_unique(crm, seller):
    widget, gadget, spare = (_product(crm, seller, code) for code in ("W", "G", "S"))
    with crm.unit_of_work(actor=seller, source="test") as uow:
        price_list = catalogue.create_price_list(uow, {"name": "Retail", "items": [
            {"product_id": widget.id, "unit_price": "10"},
            {"product_id": gadget.id, "unit_price": "20"}]})
        catalogue.update_price_list(uow, price_list.id, {"items": [
            {"product_id": gadget.id, "unit_price": "25"},
            {"product_id": spare.id, "unit_price": "30"}]})
        rows = uow.session.execute(
            select(PriceListItem.product_id, PriceListItem.unit_price)
            .where(PriceListItem.price_list_id == price_list.id)).all()
        assert {(p, Decimal(u)) for p, u in rows} == {(gadget.id, Decimal(25)),
                                                      (spare.id, Decimal(30))}
        with pytest.raises(ValidationError) as refused:
            catalogue.create_price_list(uow, {"name": "RETAIL"})
        assert set(refused.value.messages) == {"name"}
        actions = list(uow.session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity == "price_list")))
    assert actions == ["created", "updated"]


# -- pages ----------------------------------------------------------------------------------


def test_the_product_list_pages_by_code(crm, seller, admin_ui, monkeypatch):
    monkeypatch.setattr(catalogue_part, "PAGE_SIZE", 2)
    for code in ("C-3", "A-1", "B-2"):
        _product(crm, seller, code)
    page = admin_ui.get("/sales/products")
    assert "A-1" in page and "B-2" in page and "C-3" not in page
    assert "/sales/products/new" in page
    second = admin_ui.get(link_of(page))
    assert "C-3" in second and "A-1" not in second and 'rel="next"' not in second


def test_the_product_list_reads_a_fixed_number_of_queries(crm, seller, admin_ui):
    _product(crm, seller, "A-1")
    admin_ui.get("/sales/products")
    with sql_statements(crm) as few:
        admin_ui.get("/sales/products")
    for code in ("B", "C", "D", "E", "F"):
        _product(crm, seller, code)
    with sql_statements(crm) as many:
        admin_ui.get("/sales/products")
    assert len(many) == len(few)


def test_the_product_form_shows_each_message_beside_its_field(crm, seller, admin_ui):
    _product(crm, seller, "TAKEN")
    page = admin_ui.post("/sales/products/new", {
        "code": "taken", "name": "", "unit_price": "ten", "currency": "EUR", "active": "1",
    }, status=422).get_data(as_text=True)
    for name in ("code", "name", "unit_price"):
        assert f'id="{name}-errors"' in page
    assert "Not a valid number." in page and 'value="ten"' in page
    assert _count(crm, Product) == 1

    response = admin_ui.post("/sales/products/new", {
        "code": "NEW-1", "name": "New thing", "unit_price": "12.5", "currency": "EUR",
    })
    assert response.headers["Location"].endswith("/sales/products")
    with crm.session_factory() as session:
        created = session.scalars(select(Product).where(Product.code == "NEW-1")).one()
    assert created.unit_price == Decimal("12.50") and created.active is False  # box unticked

    edit = admin_ui.get(f"/sales/products/{created.id}/edit")
    assert 'value="12.50"' in edit and 'value="NEW-1"' in edit
    admin_ui.post(f"/sales/products/{created.id}/edit", {
        "code": "NEW-1", "name": "New thing", "unit_price": "13", "currency": "EUR",
        "active": "1"})
    page = admin_ui.post(f"/sales/products/{created.id}/edit", {
        "code": "NEW-1", "name": "New thing", "unit_price": "-1", "currency": "eur"},
        status=422).get_data(as_text=True)
    assert 'id="unit_price-errors"' in page and 'id="currency-errors"' in page
    with crm.session_factory() as session:
        stored = session.get(Product, created.id)
        assert (stored.unit_price, stored.active) == (Decimal("13"), True)
    admin_ui.get("/sales/products/999999/edit", status=404)
    admin_ui.get(f"/sales/products/{2**40}/edit", status=404)


def test_the_price_list_form_puts_messages_beside_the_rows(crm, seller, admin_ui):
    widget = _product(crm, seller, "WID-1", "100")
    _product(crm, seller, "GAD-1", "50")
    page = admin_ui.get("/sales/price-lists/new")
    assert 'name="items-2-label"' in page and 'name="items-3-label"' not in page
    page = admin_ui.post("/sales/price-lists/new", {
        "name": "Partners", "currency": "EUR", "active": "1",
        "items-0-label": "wid-1", "items-0-unit_price": "90",
        "items-1-label": "", "items-1-unit_price": "",  # empty: left out
        "items-2-label": "", "items-2-unit_price": "5",
        "items-3-label": "GAD-1", "items-3-unit_price": "cheap",
    }, status=422).get_data(as_text=True)
    assert 'id="items-1-label-errors"' in page and 'value="5"' in page
    assert 'id="items-2-unit_price-errors"' in page and 'value="cheap"' in page
    assert 'id="items-0-label-errors"' not in page
    page = admin_ui.post("/sales/price-lists/new", {
        "name": "Partners", "currency": "EUR", "active": "1",
        "items-0-label": "wid-1", "items-0-unit_price": "90",
        "items-1-label": "NOPE", "items-1-unit_price": "5",
    }, status=422).get_data(as_text=True)
    assert 'id="items-1-label-errors"' in page and 'value="NOPE"' in page
    assert "No such product." in page
    assert _count(crm, PriceList) == 0

    admin_ui.post("/sales/price-lists/new", {
        "name": "Partners", "currency": "EUR", "active": "1",
        "items-0-label": "wid-1", "items-0-unit_price": "90",
        "items-1-label": "GAD-1", "items-1-unit_price": "45"})
    with crm.session_factory() as session:
        partners = session.scalars(select(PriceList)).one()
        assert {i.product_id: i.unit_price for i in partners.items}[widget.id] == Decimal(90)
    listing = admin_ui.get("/sales/price-lists")
    assert "Partners" in listing and f"/sales/price-lists/{partners.id}/edit" in listing
    edit = admin_ui.get(f"/sales/price-lists/{partners.id}/edit")
    assert 'value="GAD-1"' in edit and 'value="45.00"' in edit and 'name="items-4-label"' in edit
    admin_ui.post(f"/sales/price-lists/{partners.id}/edit", {
        "name": "Partners", "currency": "EUR", "active": "1",
        "items-0-label": "GAD-1", "items-0-unit_price": "44"})
    with crm.unit_of_work(actor=seller, source="test") as uow:
        assert catalogue.price_for(uow, widget.id, partners.id) == Decimal(100)  # row removed
    page = admin_ui.post(f"/sales/price-lists/{partners.id}/edit", {
        "name": "", "currency": "EUR", "items-0-label": "GAD-1", "items-0-unit_price": "1",
        "items-1-label": "gad-1", "items-1-unit_price": "2"}, status=422).get_data(as_text=True)
    assert 'id="name-errors"' in page
    admin_ui.get("/sales/price-lists/999999/edit", status=404)


def test_the_catalogue_pages_need_their_permissions(crm, app, seller):
    product = _product(crm, seller, "P-1")
    ui_user(crm, "rep@sales.example", ["sales.deal.view"])
    rep = UiBrowser(app.test_client(), "rep@sales.example")
    page = rep.get("/sales/products")
    assert "P-1" in page and "/sales/products/new" not in page and "/edit" not in page
    rep.get("/sales/price-lists")
    denied = rep.get("/sales/products/new", status=403)
    assert "sales.admin" in denied and "<html" in denied  # core's error page, not JSON
    rep.post("/sales/products/new", {"code": "X", "name": "X", "unit_price": "1"}, status=403)
    rep.get(f"/sales/products/{product.id}/edit", status=403)
    rep.post("/sales/price-lists/new", {"name": "Sneaky"}, status=403)
    assert _count(crm, Product) == 1 and _count(crm, PriceList) == 0
    ui_user(crm, "blind@sales.example", ["customer.view"])
    UiBrowser(app.test_client(), "blind@sales.example").get("/sales/products", status=403)


def test_the_admin_page_links_the_catalogue_for_sales_admins(crm, app, admin_ui):
    assert "/sales/products" in admin_ui.get("/admin")
    ui_user(crm, "useradmin@sales.example", ["user.admin"])
    other = UiBrowser(app.test_client(), "useradmin@sales.example")
    assert "/sales/products" not in other.get("/admin")


# -- the API --------------------------------------------------------------------------------


def test_products_through_the_api(crm, client, seller):
    api = ApiClient(client, api_token(crm, seller))
    created = api.post("/sales/products", json={"code": "API-1", "name": "Thing",
                                               "unit_price": "9.90"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["unit_price"] == "9.90" and body["active"] is True
    assert created.headers["Location"].endswith(f"/api/v1/sales/products/{body['id']}")
    assert api.get(f"/sales/products/{body['id']}").get_json()["code"] == "API-1"
    changed = api.patch(f"/sales/products/{body['id']}", json={"unit_price": "10"})
    assert changed.status_code == 200 and changed.get_json()["unit_price"] == "10.00"
    assert api.delete(f"/sales/products/{body['id']}").status_code == 204
    assert api.get(f"/sales/products/{body['id']}").get_json()["active"] is False

    refused = api.post("/sales/products", json={"code": "api-1", "name": "Twin",
                                               "unit_price": "-5"})
    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    assert set(refused.get_json()["errors"]) == {"code", "unit_price"}
    bad_price = api.post("/sales/products", json={"code": "B", "name": "B", "unit_price": "x"})
    assert bad_price.status_code == 422 and set(bad_price.get_json()["errors"]) == {"unit_price"}
    nul = api.post("/sales/products", json={"code": "N\x00", "name": "N", "unit_price": "1"})
    assert nul.status_code == 422 and set(nul.get_json()["errors"]) == {"code"}
    for path in ("/sales/products/999999", "/sales/products/abc", f"/sales/products/{2**40}"):
        missing = api.get(path)
        assert missing.status_code == 404 and missing.mimetype == PROBLEM
    assert api.post("/sales/products", data="x").status_code == 415
    assert ApiClient(client, None).get("/sales/products").status_code == 401


def test_the_api_lists_products_by_code_with_a_cursor(crm, client, seller):
    for code in ("C", "A", "B", "D", "E"):
        _product(crm, seller, code, active=code != "D")
    api = ApiClient(client, api_token(crm, seller))
    first = api.get("/sales/products?limit=2").get_json()
    assert [p["code"] for p in first["data"]] == ["A", "B"] and first["next"]
    codes = [p["code"] for p in api.collect("/sales/products?limit=2")]
    assert codes == ["A", "B", "C", "D", "E"]
    assert [p["code"] for p in api.collect("/sales/products?active=false")] == ["D"]
    assert api.get("/sales/products?cursor=garbage").status_code == 400
    assert api.get("/sales/products?active=maybe").status_code == 400


def test_the_api_needs_the_catalogue_permissions(crm, client, seller):
    product = _product(crm, seller, "P-1")
    from crm_core.testing import make_user

    rep = make_user(crm, "rep@sales.example", ["sales.deal.view"])
    api = ApiClient(client, api_token(crm, rep))
    assert api.get(f"/sales/products/{product.id}").status_code == 200
    denied = api.post("/sales/products", json={"code": "X", "name": "X", "unit_price": "1"})
    assert denied.status_code == 403 and denied.mimetype == PROBLEM
    assert api.patch(f"/sales/products/{product.id}", json={"name": "Y"}).status_code == 403
    assert api.delete(f"/sales/products/{product.id}").status_code == 403
    blind = ApiClient(client, api_token(crm, make_user(crm, "blind@sales.example", [])))
    assert blind.get("/sales/products").status_code == 403


def test_price_lists_through_the_api(crm, client, seller):
    widget, gadget = _product(crm, seller, "W-1"), _product(crm, seller, "G-1")
    api = ApiClient(client, api_token(crm, seller))
    created = api.post("/sales/price-lists", json={
        "name": "Partners", "currency": "CHF",
        "items": [{"product_code": "w-1", "unit_price": "80"},
                  {"product_id": gadget.id, "unit_price": "12.5"}]})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/sales/price-lists/{body['id']}")
    assert (body["name"], body["currency"], body["active"]) == ("Partners", "CHF", True)
    assert sorted((i["product_id"], i["unit_price"]) for i in body["items"]) == sorted(
        [(widget.id, "80.00"), (gadget.id, "12.50")])
    assert api.get(f"/sales/price-lists/{body['id']}").get_json() == body
    changed = api.patch(f"/sales/price-lists/{body['id']}", json={
        "active": False, "items": [{"product_id": widget.id, "unit_price": "75"}]})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["active"] is False
    assert changed.get_json()["items"] == [{"product_id": widget.id, "unit_price": "75.00"}]
    renamed = api.patch(f"/sales/price-lists/{body['id']}", json={"name": "Resellers"})
    assert renamed.get_json()["items"] == changed.get_json()["items"]  # items untouched
    with crm.unit_of_work(actor=seller, source="test") as uow:
        assert catalogue.price(uow, widget.id, body["id"]).amount == Decimal("100.00")  # off
    assert _count(crm, PriceList) == 1


def test_the_price_list_api_names_refused_fields_and_missing_lists(crm, client, seller):
    _product(crm, seller, "W-1")
    api = ApiClient(client, api_token(crm, seller))
    assert api.post("/sales/price-lists", json={"name": "Taken"}).status_code == 201
    refused = api.post("/sales/price-lists", json={
        "name": "taken", "currency": "euro",
        "items": [{"product_code": "W-1", "unit_price": "-1"}, {"product_code": "NOPE",
                                                               "unit_price": "1"}]})
    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    errors = refused.get_json()["errors"]
    assert set(errors) == {"currency", "items"}
    assert set(errors["items"]) == {"0"} and set(errors["items"]["0"]) == {"unit_price"}
    duplicate = api.post("/sales/price-lists", json={"name": "TAKEN"})
    assert duplicate.status_code == 422 and set(duplicate.get_json()["errors"]) == {"name"}
    unknown = api.post("/sales/price-lists", json={
        "name": "Other", "items": [{"product_code": "NOPE", "unit_price": "1"}]})
    assert unknown.get_json()["errors"] == {"items": {"0": {
        "product_code": ["No such product."]}}}
    nul = api.post("/sales/price-lists", json={"name": "N\x00"})
    assert nul.status_code == 422 and set(nul.get_json()["errors"]) == {"name"}
    assert api.post("/sales/price-lists", data="x").status_code == 415
    assert api.post("/sales/price-lists", json=[1]).status_code == 400
    for path in ("/sales/price-lists/999999", "/sales/price-lists/abc",
                 f"/sales/price-lists/{2**40}"):
        assert api.get(path).status_code == 404
        missing = api.patch(path, json={"name": "X"})
        assert missing.status_code == 404 and missing.mimetype == PROBLEM
    assert _count(crm, PriceList) == 1


def test_the_api_lists_price_lists_by_name_with_a_cursor(crm, client, seller):
    for name in ("Retail", "Dealers", "Export", "Asia", "Partners"):
        with crm.unit_of_work(actor=seller, source="test") as uow:
            catalogue.create_price_list(uow, {"name": name})
    api = ApiClient(client, api_token(crm, seller))
    first = api.get("/sales/price-lists?limit=2").get_json()
    assert [p["name"] for p in first["data"]] == ["Asia", "Dealers"]
    assert "cursor=" in first["next"] and "limit=2" in first["next"]
    names = [p["name"] for p in api.collect("/sales/price-lists?limit=2")]
    assert names == ["Asia", "Dealers", "Export", "Partners", "Retail"]
    assert api.get("/sales/price-lists?cursor=garbage").status_code == 400
    assert api.get("/sales/price-lists?limit=0").status_code == 400
    products_cursor = Cursor("code", False, "A", 1).encode()  # made for another list
    wrong = api.get(f"/sales/price-lists?cursor={products_cursor}")
    assert wrong.status_code == 400 and "cursor" in wrong.get_json()["errors"]


def test_the_price_list_api_needs_the_catalogue_permissions(crm, client, seller):
    from crm_core.testing import make_user

    with crm.unit_of_work(actor=seller, source="test") as uow:
        price_list = catalogue.create_price_list(uow, {"name": "Partners"})
    rep = ApiClient(client, api_token(crm, make_user(crm, "rep@sales.example",
                                                     ["sales.deal.view"])))
    assert rep.get("/sales/price-lists").status_code == 200
    assert rep.get(f"/sales/price-lists/{price_list.id}").status_code == 200
    denied = rep.post("/sales/price-lists", json={"name": "Mine"})
    assert denied.status_code == 403 and denied.mimetype == PROBLEM
    assert rep.patch(f"/sales/price-lists/{price_list.id}",
                     json={"name": "Y"}).status_code == 403
    blind = ApiClient(client, api_token(crm, make_user(crm, "blind@sales.example", [])))
    assert blind.get("/sales/price-lists").status_code == 403
    assert blind.get(f"/sales/price-lists/{price_list.id}").status_code == 403
    assert ApiClient(client, None).get("/sales/price-lists").status_code == 401
    assert _count(crm, PriceList) == 1
