"""The catalogue and quotes in the REST API (``/api/v1/sales``), and their OpenAPI description.

- ``products``: the catalogue by code (a cursor pages it, ``active=true|false``
  filters), create, read, change, and ``DELETE`` deactivates (a product stays on deals
  and quotes);
- ``price-lists``: by name with a cursor, create, read, change (``items``, when given,
  replaces every price of the list); each item names its product by ``product_id`` or
  ``product_code``;
- ``POST opportunities/<id>/quotes`` (a draft of the deal's lines), ``GET quotes/<id>``,
  ``POST quotes/<id>/status``.

Products and price lists are routes of their own, not
:class:`~crm_core.web.api.ApiResource`\\ s: a resource needs a ``version`` for
``ETag``/``If-Match``, and they have none. Every write goes through
:mod:`crm_sales.services.catalogue` or :mod:`crm_sales.services.quotes`, with their
permissions: reading needs ``sales.deal.view``, changing the catalogue ``sales.admin``
(as the catalogue pages), making quotes ``sales.deal.edit``.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from flask import Response, request, url_for
from flask.blueprints import BlueprintSetupState

from crm_core import ValidationError
from crm_core.web.api import (
    Cursor,
    api_context,
    cursor_arg,
    json_body,
    json_response,
    keyset_page,
    parse_limit,
    path_id,
)
from crm_core.web.api.openapi import (
    add_openapi_contributor,
    input_ref,
    limit_parameter,
    page_of,
    problem_responses,
    schema_ref,
)
from crm_sales.models import Opportunity, PriceList, Product, Quote
from crm_sales.parts.api_common import (
    add_tag,
    bool_arg,
    cursor_parameter,
    id_parameter,
    json_content,
)
from crm_sales.schemas import ProductSchema
from crm_sales.services import catalogue, quotes
from crm_sales.services.catalogue import PriceListOut, PriceListSchema
from crm_sales.services.quotes import QuoteSchema, StatusSchema
from crm_sales.web import api

# -- products ---------------------------------------------------------------------------------


@api.get("/products", endpoint="products_list")
def api_products() -> Response:
    """``GET /products``: the catalogue by code; ``active=true|false``; ``next`` pages on."""
    crm, user = api_context()
    limit = parse_limit(request.args.get("limit"))
    cursor = cursor_arg("code", Product.code, Product.id)
    active = bool_arg("active")
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        found = catalogue.list_products(uow, after=None if cursor is None else cursor.value,
                                        limit=limit + 1, active=active)
        rows, next_url = keyset_page(found, limit, lambda last: Cursor(
            "code", False, last.code, last.id))
        data = [catalogue.product_payload(product) for product in rows]
    return json_response({"data": data, "next": next_url})


@api.post("/products", endpoint="product_create")
def api_create_product() -> Response:
    """``POST /products``: validate and add; ``201`` with ``Location``."""
    crm, user = api_context()
    body = json_body(Product)
    with crm.unit_of_work(actor=user, source="api") as uow:
        data = catalogue.product_payload(catalogue.create_product(uow, body))
    location = url_for("crm_sales_api.product_get", record_id=data["id"])
    return json_response(data, 201, {"Location": location})


@api.get("/products/<record_id>", endpoint="product_get")
def api_product(record_id: str) -> Response:
    """``GET /products/<id>``."""
    crm, user = api_context()
    ident = path_id(record_id, "product", Product.id)
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        data = catalogue.product_payload(catalogue.get_product(uow, ident))
    return json_response(data)


@api.patch("/products/<record_id>", endpoint="product_update")
def api_update_product(record_id: str) -> Response:
    """``PATCH /products/<id>``: change the fields given."""
    crm, user = api_context()
    ident = path_id(record_id, "product", Product.id)
    body = json_body(Product)
    with crm.unit_of_work(actor=user, source="api") as uow:
        data = catalogue.product_payload(catalogue.update_product(uow, ident, body))
    return json_response(data)


@api.delete("/products/<record_id>", endpoint="product_deactivate")
def api_deactivate_product(record_id: str) -> Response:
    """``DELETE /products/<id>``: deactivate (the product stays on deals and quotes)."""
    crm, user = api_context()
    ident = path_id(record_id, "product", Product.id)
    with crm.unit_of_work(actor=user, source="api") as uow:
        catalogue.deactivate_product(uow, ident)
    return Response(status=204)


# -- price lists ------------------------------------------------------------------------------


@api.get("/price-lists", endpoint="price_lists_list")
def api_price_lists() -> Response:
    """``GET /price-lists``: the price lists by name, with their items; ``next`` pages on."""
    crm, user = api_context()
    limit = parse_limit(request.args.get("limit"))
    cursor = cursor_arg("name", PriceList.name, PriceList.id)
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        found = catalogue.list_price_lists(uow, after=None if cursor is None else cursor.value,
                                            limit=limit + 1)
        rows, next_url = keyset_page(found, limit, lambda last: Cursor(
            "name", False, last.name, last.id))
        data = [catalogue.price_list_payload(price_list) for price_list in rows]
    return json_response({"data": data, "next": next_url})


@api.post("/price-lists", endpoint="price_list_create")
def api_create_price_list() -> Response:
    """``POST /price-lists``: validate and add the list with its items; ``201``."""
    crm, user = api_context()
    body = json_body(PriceList)
    with crm.unit_of_work(actor=user, source="api") as uow:
        data = catalogue.price_list_payload(catalogue.create_price_list(uow, body))
    location = url_for("crm_sales_api.price_list_get", record_id=data["id"])
    return json_response(data, 201, {"Location": location})


@api.get("/price-lists/<record_id>", endpoint="price_list_get")
def api_price_list(record_id: str) -> Response:
    """``GET /price-lists/<id>``: the list with its items."""
    crm, user = api_context()
    ident = path_id(record_id, "price list", PriceList.id)
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        data = catalogue.price_list_payload(catalogue.get_price_list(uow, ident))
    return json_response(data)


@api.patch("/price-lists/<record_id>", endpoint="price_list_update")
def api_update_price_list(record_id: str) -> Response:
    """``PATCH /price-lists/<id>``: change the fields given; ``items`` replaces the prices."""
    crm, user = api_context()
    ident = path_id(record_id, "price list", PriceList.id)
    body = json_body(PriceList)
    with crm.unit_of_work(actor=user, source="api") as uow:
        data = catalogue.price_list_payload(catalogue.update_price_list(uow, ident, body))
    return json_response(data)


# -- quotes -----------------------------------------------------------------------------------


@api.post("/opportunities/<record_id>/quotes", endpoint="quote_create")
def api_create_quote(record_id: str) -> Response:
    """``POST /opportunities/<id>/quotes``: a draft quote of the deal's lines; ``201``.

    The body is optional: ``{"valid_until": "2026-12-31"}``.
    """
    crm, user = api_context()
    ident = path_id(record_id, "opportunity", Opportunity.id)
    body = json_body(Quote, optional=True)
    unknown = sorted(set(body) - {"valid_until"})
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    with crm.unit_of_work(actor=user, source="api") as uow:
        data = quotes.payload(quotes.create_from_opportunity(uow, ident, body.get("valid_until")))
    location = url_for("crm_sales_api.quote_get", record_id=data["id"])
    return json_response(data, 201, {"Location": location})


@api.get("/quotes/<record_id>", endpoint="quote_get")
def api_quote(record_id: str) -> Response:
    """``GET /quotes/<id>``: the quote with its lines."""
    crm, user = api_context()
    ident = path_id(record_id, "quote", Quote.id)
    with crm.unit_of_work(actor=user, source="api", write=False) as uow:
        data = quotes.payload(quotes.get(uow, ident))
    return json_response(data)


@api.post("/quotes/<record_id>/status", endpoint="quote_set_status")
def api_quote_status(record_id: str) -> Response:
    """``POST /quotes/<id>/status`` with ``{"status": "sent"}`` (then accepted or rejected)."""
    crm, user = api_context()
    ident = path_id(record_id, "quote", Quote.id)
    body = json_body(Quote)
    with crm.unit_of_work(actor=user, source="api") as uow:
        data = quotes.payload(quotes.set_status(uow, ident, body.get("status")))
    return json_response(data)


# -- the OpenAPI document ---------------------------------------------------------------------


def describe(spec: APISpec) -> None:
    """Add the catalogue's and the quotes' routes to the OpenAPI document being built."""
    _describe_products(spec)
    _describe_price_lists(spec)
    _describe_quotes(spec)


def _describe_products(spec: APISpec) -> None:
    tag = add_tag(spec, "products", "The product catalogue (crm-sales): codes unique in any "
                  "case, list prices. Reading needs `sales.deal.view`, changing `sales.admin`.")
    product = json_content(schema_ref(spec, ProductSchema))
    creating = input_ref(spec, ProductSchema)
    patch = input_ref(spec, ProductSchema, partial=True)
    spec.path(path="/sales/products", operations={
        "get": {
            "operationId": "products_list", "tags": [tag],
            "summary": "List products",
            "description": "The catalogue by code; follow `next` for the following page.",
            "parameters": [limit_parameter(), cursor_parameter(), {
                "name": "active", "in": "query", "schema": {"type": "boolean"},
                "description": "`true`: only the products offered; `false`: only the "
                "deactivated ones; absent: all.",
            }],
            "responses": {
                "200": {"description": "One page of products.", "content": json_content(
                    page_of(schema_ref(spec, ProductSchema), "A page of products."))},
                **problem_responses(400, 401, 403),
            },
        },
        "post": {
            "operationId": "products_create", "tags": [tag],
            "summary": "Create a product",
            "description": "Validate and add a product; `Location` names it.",
            "requestBody": {"required": True, "content": json_content(creating)},
            "responses": {
                "201": {"description": "Created.", "headers": _location(), "content": product},
                **problem_responses(400, 401, 403, 415, 422),
            },
        },
    })
    spec.path(path="/sales/products/{record_id}", parameters=[id_parameter("product")],
              operations={
        "get": {
            "operationId": "products_get", "tags": [tag], "summary": "Get a product",
            "responses": {"200": {"description": "The product.", "content": product},
                          **problem_responses(401, 403, 404)},
        },
        "patch": {
            "operationId": "products_update", "tags": [tag], "summary": "Change a product",
            "description": "Only the fields sent change; `active: false` deactivates it.",
            "requestBody": {"required": True, "content": json_content(patch)},
            "responses": {"200": {"description": "The changed product.", "content": product},
                          **problem_responses(400, 401, 403, 404, 415, 422)},
        },
        "delete": {
            "operationId": "products_deactivate", "tags": [tag],
            "summary": "Deactivate a product",
            "description": "It leaves the offer for new deals; deals and quotes keep it.",
            "responses": {"204": {"description": "Deactivated (or inactive already)."},
                          **problem_responses(401, 403, 404)},
        },
    })


def _describe_price_lists(spec: APISpec) -> None:
    tag = add_tag(spec, "price_lists", "Price lists (crm-sales): a market's or a partner "
                  "tier's prices of some products, in the list's currency. Reading needs "
                  "`sales.deal.view`, changing `sales.admin`.")
    price_list = json_content(schema_ref(spec, PriceListOut, "PriceList"))
    creating = input_ref(spec, PriceListSchema, "PriceList")
    patch = input_ref(spec, PriceListSchema, "PriceList", partial=True)
    spec.path(path="/sales/price-lists", operations={
        "get": {
            "operationId": "price_lists_list", "tags": [tag],
            "summary": "List price lists",
            "description": "The price lists by name, each with its items; follow `next`.",
            "parameters": [limit_parameter(), cursor_parameter()],
            "responses": {
                "200": {"description": "One page of price lists.", "content": json_content(
                    page_of(schema_ref(spec, PriceListOut, "PriceList"),
                            "A page of price lists."))},
                **problem_responses(400, 401, 403),
            },
        },
        "post": {
            "operationId": "price_lists_create", "tags": [tag],
            "summary": "Create a price list",
            "description": "Validate and add the list with its items (at most one per "
            "product, each naming it by `product_id` or `product_code`); `Location` names it.",
            "requestBody": {"required": True, "content": json_content(creating)},
            "responses": {
                "201": {"description": "Created.", "headers": _location(),
                        "content": price_list},
                **problem_responses(400, 401, 403, 415, 422),
            },
        },
    })
    spec.path(path="/sales/price-lists/{record_id}", parameters=[id_parameter("price list")],
              operations={
        "get": {
            "operationId": "price_lists_get", "tags": [tag],
            "summary": "Get a price list",
            "responses": {"200": {"description": "The list and its items.",
                                  "content": price_list},
                          **problem_responses(401, 403, 404)},
        },
        "patch": {
            "operationId": "price_lists_update", "tags": [tag],
            "summary": "Change a price list",
            "description": "Only the fields sent change; `items`, when sent, replaces every "
            "price of the list.",
            "requestBody": {"required": True, "content": json_content(patch)},
            "responses": {"200": {"description": "The changed list.", "content": price_list},
                          **problem_responses(400, 401, 403, 404, 415, 422)},
        },
    })


def _describe_quotes(spec: APISpec) -> None:
    tag = add_tag(spec, "quotes", "Quotes (crm-sales): a deal's lines at the time, numbered "
                  "per year; draft, then sent, then accepted or rejected. Reading needs "
                  "`sales.deal.view`, making and changing `sales.deal.edit`.")
    quote = json_content(schema_ref(spec, QuoteSchema))
    creating = input_ref(spec, QuoteSchema)
    spec.path(path="/sales/opportunities/{record_id}/quotes",
              parameters=[id_parameter("opportunity")], operations={"post": {
                  "operationId": "quotes_create", "tags": [tag],
                  "summary": "Make a quote of a deal",
                  "description": "A draft of the deal's lines and totals, valid until "
                  f"`valid_until` (default: {quotes.VALIDITY.days} days from today). The body "
                  "is optional. A deal "
                  "without lines is refused (422).",
                  "requestBody": {"required": False, "content": json_content(creating)},
                  "responses": {
                      "201": {"description": "Made.", "headers": _location(), "content": quote},
                      **problem_responses(400, 401, 403, 404, 415, 422),
                  },
              }})
    spec.path(path="/sales/quotes/{record_id}", parameters=[id_parameter("quote")],
              operations={"get": {
                  "operationId": "quotes_get", "tags": [tag], "summary": "Get a quote",
                  "responses": {"200": {"description": "The quote with its lines.",
                                        "content": quote},
                                **problem_responses(401, 403, 404)},
              }})
    spec.path(path="/sales/quotes/{record_id}/status", parameters=[id_parameter("quote")],
              operations={"post": {
                  "operationId": "quotes_set_status", "tags": [tag],
                  "summary": "Change a quote's status",
                  "description": "A draft is sent; a sent quote is accepted or rejected. "
                  "Any other step is refused (422).",
                  "requestBody": {"required": True, "content": json_content(
                      schema_ref(spec, StatusSchema, "QuoteStatusChange", output=False))},
                  "responses": {"200": {"description": "The quote.", "content": quote},
                                **problem_responses(400, 401, 403, 404, 415, 422)},
              }})


def _location() -> dict[str, Any]:
    return {"Location": {"description": "The new record's URL.", "required": True,
                         "schema": {"type": "string", "format": "uri-reference"}}}


def _add_to_openapi(state: BlueprintSetupState) -> None:
    add_openapi_contributor(state.app, describe)


api.record_once(_add_to_openapi)
