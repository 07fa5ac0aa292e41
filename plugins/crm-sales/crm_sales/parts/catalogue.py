"""The catalogue and quotes part: product and price-list pages, quotes and their PDFs.

Pages (``/sales``): the products (``/products``, by code, a page at a time; the forms
for ``sales.admin``), the price lists (``/price-lists``, their forms with a row per
product price: ``items-<n>-label`` is the product's code, ``items-<n>-unit_price`` its
price), a deal's *Make a quote* (``POST /deals/<id>/quotes``, see
:func:`deal_quotes` for the deal page), a quote (``/quotes/<id>``: lines, totals, the
buttons of its next statuses) and its printout (``/quotes/<id>.pdf``). The customer
page gets a *Quotes* tab, ``/admin`` a link to the catalogue.

The API of products, price lists and quotes is :mod:`crm_sales.parts.catalogue_api`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from crm_core import UnitOfWork, ValidationError
from crm_core.authz import has_permission, require
from crm_core.extensions import CustomerTab, MenuItem
from crm_core.models import Customer
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.forms import (
    field_errors,
    form_data,
    posted_rows,
    refuse_unstorable,
    row_errors,
)
from crm_core.web.ui.names import user_names
from crm_core.web.ui.paging import id_arg, split_page
from crm_core.web.ui.printing import pdf_response
from crm_sales.models import Opportunity, PriceList, Product, Quote
from crm_sales.schemas import ProductSchema
from crm_sales.services import catalogue, quotes
from crm_sales.web import ui

#: Products or price lists per page.
PAGE_SIZE = 50
#: Quotes per page of the customer's *Quotes* tab.
TAB_PAGE = 25
#: Empty price rows the price-list form offers after the stored ones.
EMPTY_ROWS = 3
#: The fields of the product form.
PRODUCT_FIELDS = ("code", "name", "unit_price", "currency")
#: The price-list form's rows: the list's name -> the field of each row's value.
ROWS = {"items": "unit_price"}
#: How the pages name a quote's statuses.
STATUS_LABELS = {
    quotes.QuoteStatus.DRAFT: _l("Draft"),
    quotes.QuoteStatus.SENT: _l("Sent"),
    quotes.QuoteStatus.ACCEPTED: _l("Accepted"),
    quotes.QuoteStatus.REJECTED: _l("Rejected"),
}
#: The buttons that move a quote to a status.
STATUS_ACTIONS = {
    quotes.QuoteStatus.SENT: _l("Mark as sent"),
    quotes.QuoteStatus.ACCEPTED: _l("Mark as accepted"),
    quotes.QuoteStatus.REJECTED: _l("Mark as rejected"),
}



# -- what the part adds to core's slots -------------------------------------------------------


def settings_pages(actor: Any) -> list[MenuItem]:
    """*Products and price lists* on ``/admin``, for the sales administrators."""
    return [MenuItem(_("Products and price lists"), "crm_sales.products", order=40,
                     permission=catalogue.ADMIN)]


def customer_tabs(customer: Customer, actor: Any) -> list[CustomerTab]:
    """*Quotes*: the quotes of the customer's deals the user sees, newest first."""
    if not has_permission(actor, quotes.VIEW):
        return []
    crm = current_crm()
    with crm.unit_of_work(actor=actor, source="ui", write=False) as uow:
        count = quotes.count_of_customer(uow, customer.id)

    def load() -> Mapping[str, Any]:
        before = id_arg("quotes_before")
        with crm.unit_of_work(actor=actor, source="ui", write=False) as uow:
            found = quotes.of_customer(uow, customer.id, before_id=before, limit=TAB_PAGE + 1)
            rows, older = split_page(found, TAB_PAGE, lambda last: url_for(
                "crm_ui.customer_page", customer_id=customer.id, tab="quotes",
                quotes_before=last.id,
            ))
            names = _deal_names(uow, {quote.opportunity_id for quote in rows})
        return {"quotes": rows, "deal_names": names, "older_url": older,
                "status_labels": STATUS_LABELS,
                "newest_url": url_for("crm_ui.customer_page", customer_id=customer.id,
                                      tab="quotes") if before is not None else None}

    return [CustomerTab("quotes", _("Quotes"), "crm_sales/quotes/_customer_tab.html", load,
                        order=30, count=count)]


def deal_quotes(uow: UnitOfWork, deal_id: int) -> dict[str, Any]:
    """The context of ``crm_sales/quotes/_deal_quotes.html`` (the deal page's quotes and
    its *Make a quote* button) for deal ``deal_id``, read in ``uow``."""
    return {
        "deal_id": deal_id,
        "deal_quotes": quotes.of_deal(uow, deal_id, limit=PAGE_SIZE),
        "can_make_quote": has_permission(uow.actor, quotes.EDIT),
        "status_labels": STATUS_LABELS,
        "validity_days": quotes.VALIDITY.days,
    }


# -- products ---------------------------------------------------------------------------------


@ui.get("/products", endpoint="products")
@page
def products_list() -> ResponseReturnValue:
    """The catalogue by code, :data:`PAGE_SIZE` at a time (``after``: the last code seen)."""
    crm, user = current_crm(), actor()
    after = _text_arg("after")
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        found = catalogue.list_products(uow, after=after, limit=PAGE_SIZE + 1)
    rows, next_url = split_page(found, PAGE_SIZE, lambda last: url_for(
        "crm_sales.products", after=last.code))
    return render_template(
        "crm_sales/catalogue/products.html", products=rows, next_url=next_url,
        first_url=url_for("crm_sales.products") if after is not None else None,
        can_edit=has_permission(user, catalogue.ADMIN),
    )


@ui.route("/products/new", methods=["GET", "POST"], endpoint="new_product")
@page
def new_product() -> ResponseReturnValue:
    """The empty product form; saving adds the product to the catalogue."""
    crm, user = current_crm(), actor()
    require(user, catalogue.ADMIN)
    if request.method == "GET":
        return _product_form(None, {"currency": "EUR", "active": "1"}, {})
    data, values = _posted_product(request.form)
    try:
        refuse_unstorable(request.form, Product)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            created = catalogue.create_product(uow, data)
            code = created.code
    except ValidationError as exc:
        return _product_form(None, values, field_errors(exc.messages), status=422)
    flash(_("Product %(code)s was created.", code=code))
    return redirect(url_for("crm_sales.products"))


@ui.route("/products/<int:product_id>/edit", methods=["GET", "POST"], endpoint="edit_product")
@page
def edit_product(product_id: int) -> ResponseReturnValue:
    """The product form filled in; unticking *Active* takes it out of new deals."""
    crm, user = current_crm(), actor()
    require(user, catalogue.ADMIN)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        product = catalogue.get_product(uow, product_id)
        stored = _product_values(product)
    if request.method == "GET":
        return _product_form(product, stored, {})
    data, values = _posted_product(request.form)
    try:
        refuse_unstorable(request.form, Product)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            saved = catalogue.update_product(uow, product.id, data)
            code = saved.code
    except ValidationError as exc:
        return _product_form(product, values, field_errors(exc.messages), status=422)
    flash(_("Product %(code)s was saved.", code=code))
    return redirect(url_for("crm_sales.products"))


def _posted_product(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The posted product form as service data, and as the values to show again."""
    data = form_data(form, PRODUCT_FIELDS)
    for name in ("code", "name"):
        if name in data:
            data[name] = data[name] or ""
    for name in ("unit_price", "currency"):
        if name in data and data[name] is None:
            del data[name]  # a required price is then missing; the currency its default
    data["active"] = bool(form.get("active"))
    values: dict[str, Any] = {name: form.get(name, "") for name in PRODUCT_FIELDS}
    values["active"] = "1" if data["active"] else ""
    return data, values


def _product_values(product: Product) -> dict[str, Any]:
    dumped = ProductSchema().dump(product)
    values = {name: str(dumped.get(name) or "") for name in PRODUCT_FIELDS}
    values["active"] = "1" if product.active else ""
    return values


def _product_form(product: Product | None, values: dict[str, Any],
                  errors: dict[str, list[str]], *, status: int = 200) -> ResponseReturnValue:
    other = [text for name, texts in errors.items()
             if name not in (*PRODUCT_FIELDS, "active") for text in texts]
    return render_template(
        "crm_sales/catalogue/product_form.html", product=product, values=values,
        errors=errors, other_errors=other,
    ), status


# -- price lists ------------------------------------------------------------------------------


@ui.get("/price-lists", endpoint="price_lists")
@page
def price_lists() -> ResponseReturnValue:
    """The price lists by name, with their currency and how many products they price."""
    crm, user = current_crm(), actor()
    after = _text_arg("after")
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        found = catalogue.list_price_lists(uow, after=after, limit=PAGE_SIZE + 1)
        rows, next_url = split_page(found, PAGE_SIZE, lambda last: url_for(
            "crm_sales.price_lists", after=last.name))
        counts = {row.id: len(row.items) for row in rows}  # items come with the lists (selectin)
    return render_template(
        "crm_sales/catalogue/price_lists.html", price_lists=rows, counts=counts,
        next_url=next_url,
        first_url=url_for("crm_sales.price_lists") if after is not None else None,
        can_edit=has_permission(user, catalogue.ADMIN),
    )


@ui.route("/price-lists/new", methods=["GET", "POST"], endpoint="new_price_list")
@page
def new_price_list() -> ResponseReturnValue:
    """The empty price-list form; saving adds the list with its prices."""
    crm, user = current_crm(), actor()
    require(user, catalogue.ADMIN)
    if request.method == "GET":
        values: dict[str, Any] = {"currency": "EUR", "active": "1"}
        return _price_list_form(None, values, _put_rows(values, []), {})
    data, values, count = _posted_price_list(request.form)
    try:
        refuse_unstorable(request.form, PriceList)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            created = catalogue.create_price_list(uow, data)
            name = created.name
    except ValidationError as exc:
        return _price_list_form(None, values, count, _price_errors(exc.messages), status=422)
    flash(_("Price list %(name)s was created.", name=name))
    return redirect(url_for("crm_sales.price_lists"))


@ui.route("/price-lists/<int:price_list_id>/edit", methods=["GET", "POST"],
          endpoint="edit_price_list")
@page
def edit_price_list(price_list_id: int) -> ResponseReturnValue:
    """The price-list form filled in: the stored prices by product code, and empty rows."""
    crm, user = current_crm(), actor()
    require(user, catalogue.ADMIN)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        price_list = catalogue.get_price_list(uow, price_list_id)
        stored = {"name": price_list.name, "currency": price_list.currency,
                  "active": "1" if price_list.active else ""}
        stored_rows = _stored_rows(uow, price_list)
    if request.method == "GET":
        return _price_list_form(price_list, stored, _put_rows(stored, stored_rows), {})
    data, values, count = _posted_price_list(request.form)
    try:
        refuse_unstorable(request.form, PriceList)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            saved = catalogue.update_price_list(uow, price_list.id, data)
            name = saved.name
    except ValidationError as exc:
        return _price_list_form(price_list, values, count, _price_errors(exc.messages),
                                status=422)
    flash(_("Price list %(name)s was saved.", name=name))
    return redirect(url_for("crm_sales.price_lists"))


def _posted_price_list(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """The posted form as service data, as the values to show again, and its row count."""
    data = form_data(form, ("name", "currency"))
    if "name" in data:
        data["name"] = data["name"] or ""
    if data.get("currency", "") is None:
        del data["currency"]
    data["active"] = bool(form.get("active"))
    values: dict[str, Any] = {name: form.get(name, "") for name in ("name", "currency")}
    values["active"] = "1" if data["active"] else ""
    rows = posted_rows(form, "items", ROWS["items"]) or []
    data["items"] = [
        {"product_code": row.get("label") or None,
         **({"unit_price": row["unit_price"]} if row.get("unit_price") else {})}
        for row in rows
    ]
    return data, values, _put_rows(values, rows)


def _put_rows(values: dict[str, Any], rows: list[Mapping[str, str]]) -> int:
    """Write ``rows`` into ``values`` as the form's fields; return the rows to show."""
    for index, row in enumerate(rows):
        values[f"items-{index}-label"] = row.get("label", "")
        values[f"items-{index}-unit_price"] = row.get("unit_price", "")
    return len(rows) + EMPTY_ROWS


def _stored_rows(uow: UnitOfWork, price_list: PriceList) -> list[dict[str, str]]:
    """The list's prices as form rows, by product code (one query for the codes)."""
    ids = [item.product_id for item in price_list.items]
    codes = _product_codes(uow, ids)
    rows = [{"label": codes.get(item.product_id, ""),
             "unit_price": f"{item.unit_price:.2f}"} for item in price_list.items]
    return sorted(rows, key=lambda row: row["label"])


def _price_errors(messages: Mapping[str, Any]) -> dict[str, list[str]]:
    """The service's messages by form field: a row's product (by code or id) is its label."""
    renamed: dict[str, Any] = dict(messages)
    items = messages.get("items")
    if isinstance(items, Mapping):
        renamed["items"] = {
            index: {("label" if key in ("product_code", "product_id") else key): texts
                    for key, texts in row.items()} if isinstance(row, Mapping) else row
            for index, row in items.items()
        }
    return row_errors(renamed, ROWS)


def _price_list_form(price_list: PriceList | None, values: dict[str, Any], count: int,
                     errors: dict[str, list[str]], *, status: int = 200) -> ResponseReturnValue:
    other = [text for name, texts in errors.items()
             if name not in ("name", "currency", "active", "items")
             and not name.startswith("items-") for text in texts]
    return render_template(
        "crm_sales/catalogue/price_list_form.html", price_list=price_list, values=values,
        count=count, errors=errors, other_errors=other,
    ), status


# -- quotes -----------------------------------------------------------------------------------


@ui.post("/deals/<int:deal_id>/quotes", endpoint="make_quote")
@page
def make_quote(deal_id: int) -> ResponseReturnValue:
    """*Make a quote* on the deal page: a draft of the deal's lines, then its page."""
    crm, user = current_crm(), actor()
    require(user, quotes.EDIT)
    try:
        refuse_unstorable(request.form, Quote)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            quote = quotes.create_from_opportunity(
                uow, deal_id, request.form.get("valid_until", "").strip() or None)
            quote_id, number = quote.id, quote.number
    except ValidationError as exc:
        return render_template(
            "crm_sales/quotes/refused.html", deal_url=_deal_url(deal_id),
            errors=field_errors(exc.messages),
        ), 422
    flash(_("Quote %(number)s was made.", number=number))
    return redirect(url_for("crm_sales.quote_page", quote_id=quote_id))


@ui.get("/quotes/<int:quote_id>", endpoint="quote_page")
@page
def quote_page(quote_id: int) -> ResponseReturnValue:
    """The quote: its customer, deal, lines, totals and the buttons of its next statuses."""
    return _quote_page(quote_id)


@ui.get("/quotes/<int:quote_id>.pdf", endpoint="quote_pdf")
@page
def quote_pdf(quote_id: int) -> ResponseReturnValue:
    """The quote as a printable PDF: customer and address, lines, totals, validity."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        context = _quote_context(uow, quote_id)
        html = render_template("crm_sales/quotes/print.html", **context)
    return pdf_response(html, f"quote-{context['quote'].number}.pdf")


@ui.post("/quotes/<int:quote_id>/status", endpoint="quote_status")
@page
def quote_status(quote_id: int) -> ResponseReturnValue:
    """A status button of the quote page (sent, accepted, rejected)."""
    crm, user = current_crm(), actor()
    require(user, quotes.EDIT)
    status = request.form.get("status", "")
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            quote = quotes.set_status(uow, quote_id, status)
            number, label = quote.number, str(STATUS_LABELS[quote.status])
    except ValidationError as exc:
        return _quote_page(quote_id, field_errors(exc.messages), status=422)
    flash(_("Quote %(number)s: %(status)s.", number=number, status=label))
    return redirect(url_for("crm_sales.quote_page", quote_id=quote_id))


def _quote_page(quote_id: int, errors: dict[str, list[str]] | None = None, *,
                status: int = 200) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        context = _quote_context(uow, quote_id)
        can_edit = has_permission(user, quotes.EDIT)
        actions = [(value, str(STATUS_ACTIONS[value]))
                   for value in quotes.allowed_statuses(context["quote"])] if can_edit else []
        html = render_template("crm_sales/quotes/quote.html", **context, actions=actions,
                               errors=errors or {})
    return html, status


def _quote_context(uow: UnitOfWork, quote_id: int) -> dict[str, Any]:
    """What the quote page and its printout show, in a fixed number of queries."""
    quote = quotes.get(uow, quote_id)
    deal = uow.session.execute(
        select(Opportunity.id, Opportunity.name, Opportunity.customer_id)
        .where(Opportunity.id == quote.opportunity_id)
    ).one()
    customer = uow.session.get(Customer, deal.customer_id)
    product_ids = {line.product_id for line in quote.lines if line.product_id is not None}
    codes = _product_codes(uow, product_ids)
    makers = user_names(uow.session, [quote.created_by])
    return {
        "quote": quote, "deal": deal, "deal_url": _deal_url(deal.id), "customer": customer,
        "codes": codes, "maker": makers.get(quote.created_by) if quote.created_by else None,
        "status_label": STATUS_LABELS.get(quote.status, quote.status),
    }


def _deal_url(deal_id: int) -> str:
    """The deal's page (the deals part's ``/sales/deals/<id>``)."""
    return f"{request.script_root}{ui.url_prefix}/deals/{deal_id}"


def _product_codes(uow: UnitOfWork, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = uow.session.execute(select(Product.id, Product.code).where(Product.id.in_(wanted)))
    return {row.id: row.code for row in rows}


def _deal_names(uow: UnitOfWork, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = uow.session.execute(select(Opportunity.id, Opportunity.name)
                               .where(Opportunity.id.in_(ids)))
    return {row.id: row.name for row in rows}


def _text_arg(name: str) -> str | None:
    """A query parameter that pages a list (the last value seen); NUL in it is a 400."""
    value = request.args.get(name)
    if value is not None and ("\x00" in value or len(value) > 300):
        abort(400)
    return value or None
