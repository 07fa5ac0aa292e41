"""The product catalogue and its price lists: the one write path, and prices for a deal.

Products have a code unique regardless of case (``abc-1`` and ``ABC-1`` are the same
product), a name, a list price and its currency; deactivating one keeps it on old deals
and quotes but out of new ones. A price list (a market, a partner tier) gives some
products their own price, in the list's currency, at most one per product:
:func:`price_for` is that price, else the product's own. Writes need ``sales.admin``,
reads ``sales.deal.view``; every write is validated, audited (entities ``product`` and
``price_list``) and announced in the outbox, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, NamedTuple

from marshmallow import Schema, fields, validate, validates_schema
from marshmallow import ValidationError as SchemaError
from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.exc import IntegrityError

from crm_core import NotFoundError, UnitOfWork, ValidationError
from crm_core.authz import require
from crm_core.i18n import N_
from crm_core.ids import MAX_ID, as_record_id
from crm_core.schemas import load_or_refuse
from crm_core.schemas.fieldtypes import RequiredText, Text
from crm_sales.models import PriceList, PriceListItem, Product
from crm_sales.schemas import ProductSchema

#: Entity names in the audit trail and the outbox.
PRODUCT, PRICE_LIST = "product", "price_list"
VIEW, ADMIN = "sales.deal.view", "sales.admin"
#: Rows of a list page, at most.
MAX_PAGE = 500
_PRODUCT_FIELDS = ("code", "name", "unit_price", "currency", "active")
_CODE_TAKEN = N_("Another product has this code (regardless of case).")
_NAME_TAKEN = N_("Another price list has this name (regardless of case).")
_CURRENCY = validate.Regexp(
    r"^[A-Z]{3}$", error=N_("Use a three-letter ISO currency code, e.g. EUR.")
)
_MONEY = [
    validate.Range(min=0, error=N_("Must not be negative.")),
    validate.Range(max=Decimal("99999999999999"), error=N_("Too large.")),
]


class PriceListItemSchema(Schema):
    """A product's price on a list: the product by id or by code, and the price."""

    product_id = fields.Integer(
        allow_none=True, load_default=None,
        validate=validate.Range(min=1, max=MAX_ID, error=N_("No such product.")),
    )
    product_code = Text(max_length=40, allow_none=True, load_default=None)
    unit_price = fields.Decimal(places=2, as_string=True, required=True, validate=_MONEY)

    @validates_schema
    def _names_a_product(self, data: Mapping[str, Any], **_kwargs: Any) -> None:
        if data.get("product_id") is None and not data.get("product_code"):
            raise SchemaError(N_("Name the product (its code)."), "product_code")


class PriceListSchema(Schema):
    """A price list: its name, currency, whether it applies, and its products' prices."""

    id = fields.Integer(dump_only=True)
    name = RequiredText(max_length=120)
    currency = fields.String(load_default="EUR", validate=_CURRENCY)
    active = fields.Boolean(load_default=True)
    items = fields.List(fields.Nested(PriceListItemSchema), load_default=list,
                        validate=validate.Length(max=5000))


class PriceListItemOut(Schema):
    """A price list's item as events and the API show it."""

    product_id = fields.Integer()
    unit_price = fields.Decimal(places=2, as_string=True)


class PriceListOut(Schema):
    """A price list as events and the API show it."""

    id = fields.Integer()
    name = fields.String()
    currency = fields.String()
    active = fields.Boolean()
    items = fields.List(fields.Nested(PriceListItemOut))
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()


class Price(NamedTuple):
    """A product's price and the currency it is in."""

    amount: Decimal
    currency: str


# -- products -----------------------------------------------------------------------------


def get_product(uow: UnitOfWork, product_id: Any) -> Product:
    """Product ``product_id``; :class:`NotFoundError` if there is none."""
    require(uow.actor, VIEW)
    ident = as_record_id(product_id)
    found = uow.session.get(Product, ident) if ident is not None and ident > 0 else None
    if found is None:
        raise NotFoundError(PRODUCT, product_id)
    return found


def list_products(
    uow: UnitOfWork, *, after: str | None = None, limit: int = 50, active: bool | None = None
) -> list[Product]:
    """Up to ``limit`` products by code, those after the code ``after`` (the next page);
    ``active`` keeps only the active (or only the inactive) ones."""
    require(uow.actor, VIEW)
    statement = select(Product)
    if after is not None:
        statement = statement.where(Product.code > after)
    if active is not None:
        statement = statement.where(Product.active.is_(active))
    statement = statement.order_by(Product.code).limit(max(1, min(limit, MAX_PAGE)))
    return list(uow.session.scalars(statement))


def create_product(uow: UnitOfWork, data: Mapping[str, Any]) -> Product:
    """Validate ``data`` (:class:`~crm_sales.schemas.ProductSchema`) and add the product."""
    require(uow.actor, ADMIN)
    loaded = _load_product(uow, data, None)
    with _unique(uow, {"code": [_CODE_TAKEN]}):
        product = Product(**{key: loaded[key] for key in _PRODUCT_FIELDS if key in loaded})
        uow.session.add(product)
    uow.record(PRODUCT, "created",
               [(product.id, {k: (None, v) for k, v in _product_fields(product).items()})],
               [product_payload(product)])
    return product


def update_product(uow: UnitOfWork, product_id: Any, data: Mapping[str, Any]) -> Product:
    """Change the fields given in ``data`` (``active``: false deactivates, true reactivates)."""
    require(uow.actor, ADMIN)
    product = get_product(uow, product_id)
    loaded = _load_product(uow, data, product.id)
    before = _product_fields(product)
    with _unique(uow, {"code": [_CODE_TAKEN]}):
        for key in _PRODUCT_FIELDS:
            if key in loaded:
                setattr(product, key, loaded[key])
    changes = _changes(before, _product_fields(product))
    if changes:
        uow.record(PRODUCT, "updated", [(product.id, changes)], [product_payload(product)])
    return product


def deactivate_product(uow: UnitOfWork, product_id: Any) -> Product:
    """Take a product out of the catalogue's offer (deals and quotes keep their lines)."""
    require(uow.actor, ADMIN)
    product = get_product(uow, product_id)
    if product.active:
        product.active = False
        uow.session.flush()
        uow.record(PRODUCT, "deactivated", [(product.id, {"active": (True, False)})],
                   [product_payload(product)])
    return product


def product_payload(product: Product) -> dict[str, Any]:
    """A product as events and the API show it."""
    return ProductSchema().dump(product)  # type: ignore[no-any-return]


# -- price lists --------------------------------------------------------------------------


def get_price_list(uow: UnitOfWork, price_list_id: Any) -> PriceList:
    """Price list ``price_list_id`` with its items; :class:`NotFoundError` if there is none."""
    require(uow.actor, VIEW)
    ident = as_record_id(price_list_id)
    found = uow.session.get(PriceList, ident) if ident is not None and ident > 0 else None
    if found is None:
        raise NotFoundError(PRICE_LIST, price_list_id)
    return found


def list_price_lists(
    uow: UnitOfWork, *, after: str | None = None, limit: int = 50
) -> list[PriceList]:
    """Up to ``limit`` price lists by name, those after the name ``after``."""
    require(uow.actor, VIEW)
    statement = select(PriceList)
    if after is not None:
        statement = statement.where(PriceList.name > after)
    statement = statement.order_by(PriceList.name).limit(max(1, min(limit, MAX_PAGE)))
    return list(uow.session.scalars(statement))


def create_price_list(uow: UnitOfWork, data: Mapping[str, Any]) -> PriceList:
    """Validate ``data`` (:class:`PriceListSchema`) and add the price list with its items."""
    require(uow.actor, ADMIN)
    loaded = load_or_refuse(PriceListSchema(), data)
    _check_list_name(uow, loaded["name"], None)
    items = _items(uow, loaded["items"])
    with _unique(uow, {"name": [_NAME_TAKEN]}):
        price_list = PriceList(name=loaded["name"], currency=loaded["currency"],
                               active=loaded["active"], items=items)
        uow.session.add(price_list)
    uow.record(PRICE_LIST, "created",
               [(price_list.id, {k: (None, v) for k, v in _list_fields(price_list).items()})],
               [price_list_payload(price_list)])
    return price_list


def update_price_list(uow: UnitOfWork, price_list_id: Any, data: Mapping[str, Any]) -> PriceList:
    """Change the fields given in ``data``; ``items`` replaces every price of the list."""
    require(uow.actor, ADMIN)
    price_list = get_price_list(uow, price_list_id)
    loaded = load_or_refuse(PriceListSchema(), data, partial=True)
    if "name" in loaded:
        _check_list_name(uow, loaded["name"], price_list.id)
    items = _items(uow, loaded["items"]) if "items" in loaded else None
    before = _list_fields(price_list)
    old_prices = {item.product_id: item.unit_price for item in price_list.items}
    with _unique(uow, {"name": [_NAME_TAKEN]}):
        for key in ("name", "currency", "active"):
            if key in loaded:
                setattr(price_list, key, loaded[key])
        if items is not None:
            _replace_items(uow, price_list, items)
    changes = _changes(before, _list_fields(price_list))
    new_prices = {item.product_id: item.unit_price for item in price_list.items}
    if changes or old_prices != new_prices:
        uow.record(PRICE_LIST, "updated", [(price_list.id, changes)],
                   [price_list_payload(price_list)])
    return price_list


def price_list_payload(price_list: PriceList) -> dict[str, Any]:
    """A price list as events and the API show it."""
    return PriceListOut().dump(price_list)  # type: ignore[no-any-return]


# -- prices -------------------------------------------------------------------------------


def price(uow: UnitOfWork, product_id: Any, price_list_id: Any = None) -> Price:
    """What ``product_id`` costs: its price on ``price_list_id`` (when the list is active
    and prices it) in the list's currency, else the product's own price and currency."""
    product = get_product(uow, product_id)
    if price_list_id is not None:
        price_list = get_price_list(uow, price_list_id)
        if price_list.active:
            listed = uow.session.scalar(
                select(PriceListItem.unit_price).where(
                    PriceListItem.price_list_id == price_list.id,
                    PriceListItem.product_id == product.id,
                )
            )
            if listed is not None:
                return Price(listed, price_list.currency)
    return Price(product.unit_price, product.currency)


def price_for(uow: UnitOfWork, product_id: Any, price_list_id: Any = None) -> Decimal:
    """The amount of :func:`price`: the list's price for the product, else the product's."""
    return price(uow, product_id, price_list_id).amount


# -- helpers ------------------------------------------------------------------------------


@contextmanager
def _unique(uow: UnitOfWork, refusal: Mapping[str, list[str]]) -> Iterator[None]:
    """Write inside a savepoint; a unique constraint the write breaks (another transaction
    took the code or name meanwhile) is ``refusal``, and the caller's transaction lives on."""
    try:
        with uow.session.begin_nested():
            yield
            uow.session.flush()
    except IntegrityError as exc:
        raise ValidationError(refusal) from exc


def _same_text(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` equals ``text`` regardless of case, as the database folds case (SQLite:
    ASCII letters only), on both sides alike."""
    return func.lower(column) == func.lower(literal(text))


def _load_product(uow: UnitOfWork, data: Mapping[str, Any], own_id: int | None) -> dict[str, Any]:
    """``data`` loaded (partly, for product ``own_id``); a code another product has is
    refused along with the schema's messages, so a form shows every message at once."""
    try:
        loaded = load_or_refuse(ProductSchema(), data, partial=own_id is not None)
    except ValidationError as exc:
        code = data.get("code") if isinstance(data, Mapping) else None
        if "code" not in exc.messages and isinstance(code, str) and code.strip() \
                and "\x00" not in code and _code_taken(uow, code.strip(), own_id):
            exc.messages["code"] = [_CODE_TAKEN]
        raise
    if "code" in loaded and _code_taken(uow, loaded["code"], own_id):
        raise ValidationError({"code": [_CODE_TAKEN]})
    return loaded


def _code_taken(uow: UnitOfWork, code: str, own_id: int | None) -> bool:
    statement = select(Product.id).where(_same_text(Product.code, code))
    if own_id is not None:
        statement = statement.where(Product.id != own_id)
    return uow.session.scalar(statement.limit(1)) is not None


def _check_list_name(uow: UnitOfWork, name: str, own_id: int | None) -> None:
    statement = select(PriceList.id).where(_same_text(PriceList.name, name))
    if own_id is not None:
        statement = statement.where(PriceList.id != own_id)
    if uow.session.scalar(statement.limit(1)) is not None:
        raise ValidationError({"name": [_NAME_TAKEN]})


def _items(uow: UnitOfWork, rows: Sequence[Mapping[str, Any]]) -> list[PriceListItem]:
    """The rows as items: each names an existing product, each product once."""
    ids = {row["product_id"] for row in rows if row.get("product_id") is not None}
    codes = {row["product_code"] for row in rows
             if row.get("product_id") is None and row.get("product_code")}
    known_ids: set[int] = set()
    by_code: dict[str, int] = {}
    if ids:
        known_ids = set(uow.session.scalars(select(Product.id).where(Product.id.in_(ids))))
    if codes:
        found = uow.session.execute(select(Product.code, Product.id).where(
            func.lower(Product.code).in_([func.lower(literal(code)) for code in codes])
        ))
        by_code = {code.lower(): ident for code, ident in found}
    problems: dict[int, dict[str, list[str]]] = {}
    seen: set[int] = set()
    items = []
    for index, row in enumerate(rows):
        product_id: int | None
        if row.get("product_id") is not None:
            field = "product_id"
            product_id = row["product_id"] if row["product_id"] in known_ids else None
        else:
            field, product_id = "product_code", by_code.get(row["product_code"].lower())
        if product_id is None:
            problems[index] = {field: [N_("No such product.")]}
        elif product_id in seen:
            problems[index] = {field: [N_("The list prices this product already.")]}
        else:
            seen.add(product_id)
            items.append(PriceListItem(product_id=product_id, unit_price=row["unit_price"]))
    if problems:
        raise ValidationError({"items": problems})
    return items


def _replace_items(uow: UnitOfWork, price_list: PriceList, items: list[PriceListItem]) -> None:
    """Make ``items`` the list's prices: changed prices in place, the others added or gone."""
    wanted = {item.product_id: item.unit_price for item in items}
    for item in list(price_list.items):
        if item.product_id not in wanted:
            price_list.items.remove(item)
        else:
            item.unit_price = wanted.pop(item.product_id)
    uow.session.flush()  # removals first: a product dropped and added keeps its primary key
    for product_id, unit_price in wanted.items():
        price_list.items.append(PriceListItem(product_id=product_id, unit_price=unit_price))


def _product_fields(product: Product) -> dict[str, Any]:
    return {key: getattr(product, key) for key in _PRODUCT_FIELDS}


def _list_fields(price_list: PriceList) -> dict[str, Any]:
    return {"name": price_list.name, "currency": price_list.currency,
            "active": price_list.active, "items": len(price_list.items)}


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {key: (before[key], after[key]) for key in after if before[key] != after[key]}
