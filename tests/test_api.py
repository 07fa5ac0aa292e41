"""The conventions of ``/api/v1``, end to end through the Flask test client with real tokens.

Keyset pagination, sorting, filters, sparse fields, ``ETag``/``If-Match``/``If-None-Match``,
problem documents for every error, archive and restore, and a plugin's resource that
gets all of it (and its place in the OpenAPI document) for free.
"""

from __future__ import annotations

import datetime as dt
import html
import types
from typing import Any

import pytest
from marshmallow import Schema, fields
from marshmallow import ValidationError as SchemaError
from sqlalchemy import and_, update

from crm_core import ValidationError
from crm_core.authz import visible
from crm_core.models import Customer, User
from crm_core.schemas.fieldtypes import EmailAddress, RequiredText
from crm_core.services import contacts, customers, interactions
from crm_core.testing import ApiClient as Api
from crm_core.testing import api_token as token_for
from crm_core.testing import make_user
from crm_core.testing import plugin_module as _plugin
from crm_core.web.api import ApiResource

pytestmark = pytest.mark.plugins()

PREFIX = "/api/v1"
PROBLEM = "application/problem+json"


# -- a plugin with a resource of its own -----------------------------------------------------------


class LeadSchema(Schema):
    """A customer still at the lead stage, as the test plugin's API shows it."""

    id = fields.Integer(dump_only=True)
    name = RequiredText(max_length=300)
    email = EmailAddress(allow_none=True)
    version = fields.Integer(dump_only=True)
    archived = fields.Boolean(dump_only=True)


def _load_lead(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """The plugin's service validates with its own schema, as the resource documents."""
    try:
        return LeadSchema().load(data, partial=partial)
    except SchemaError as exc:
        raise ValidationError(exc.messages) from exc  # type: ignore[arg-type]


def _create_lead(uow: Any, data: Any) -> Customer:
    return customers.create(uow, {**_load_lead(data), "lifecycle_stage": "lead"})


def _update_lead(uow: Any, record_id: Any, data: Any, **kwargs: Any) -> Customer:
    return customers.update(uow, record_id, _load_lead(data, partial=True), **kwargs)


LEADS = ApiResource(
    name="leads",
    entity="customer",
    model=Customer,
    # No ``restore``: the resource gets no restore route and no restore operation.
    service=types.SimpleNamespace(
        get=customers.get, create=_create_lead, update=_update_lead, archive=customers.archive
    ),
    schema=LeadSchema,
    filters={"email": lambda value: Customer.email == value.strip().lower()},
    sorts={"name": Customer.name},
    default_sort="name",
    visibility=lambda actor: and_(visible(actor, "customer"), Customer.lifecycle_stage == "lead"),
    description="Customers at the lead stage (a plugin's resource).",
)

#: Set ``customer_id`` to make the next update of that customer race another transaction.
RACE: dict[str, int | None] = {"customer_id": None}




def _race(uow: Any, entity: str, batch: Any) -> None:
    """Another transaction changes the customer after the API read it, before it writes."""
    target = RACE["customer_id"]
    if entity == "customer" and target is not None and any(c.record is not None for c in batch):
        RACE["customer_id"] = None
        uow.session.execute(
            update(Customer)
            .where(Customer.id == target)
            .values(version=Customer.version + 1)
            .execution_options(synchronize_session=False)
        )


LEADS_PLUGIN = _plugin("crm_test_leads_api", crm_register_api_resources=lambda: [LEADS])
RACE_PLUGIN = _plugin("crm_test_race", crm_validate=_race)


@pytest.fixture
def crm_plugin_modules() -> list[Any]:
    """Every test here runs with the leads resource and the (dormant) race plugin."""
    return [LEADS_PLUGIN, RACE_PLUGIN]


# -- clients with real tokens ----------------------------------------------------------------------


@pytest.fixture
def admin(crm: Any) -> User:
    """A user holding every permission, seeing every record."""
    return make_user(crm, "admin@api.example", sorted(crm.registry.permissions))


@pytest.fixture
def api(client: Any, crm: Any, admin: User) -> Api:
    """The API as ``admin``, through a real bearer token."""
    return Api(client, token_for(crm, admin))


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status``; return it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["type"].startswith("urn:crm-core:problem:")
    assert body["title"]
    return body


def walk(api: Api, path: str) -> list[int]:
    """Ids of every record of a list, following ``next`` to the last page."""
    seen: list[int] = []
    url: str | None = path
    pages = 0
    while url is not None:
        response = api.get(url)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        seen.extend(record["id"] for record in body["data"])
        url = body["next"]
        pages += 1
        assert pages < 100
    return seen


def add_customers(crm: Any, actor: User, rows: list[dict[str, Any]]) -> list[Customer]:
    """Create customers through the service, as ``actor``."""
    with crm.unit_of_work(actor=actor) as uow:
        result = customers.bulk_create(uow, rows)
    assert result.ok, result.errors
    return result.records


# -- pagination and sorting ------------------------------------------------------------------------


def test_walking_next_visits_every_record_once_in_order_despite_equal_names(api, crm, admin):
    names = ["Acme"] * 7 + [f"Firm {i:02d}" for i in range(9)] + ["Zeta"] * 5
    created = add_customers(crm, admin, [{"name": name} for name in names])
    ours = {c.id for c in created}
    ascending = [c.id for c in sorted(created, key=lambda c: (c.name, c.id))]
    descending = [c.id for c in sorted(created, key=lambda c: (c.name, c.id), reverse=True)]
    for sort, expected in (("name", ascending), ("-name", descending), ("id", sorted(ours))):
        seen = walk(api, f"/customers?sort={sort}&limit=4")
        assert len(seen) == len(set(seen)), f"duplicates with sort={sort}"
        assert [ident for ident in seen if ident in ours] == expected, sort


def test_a_page_holds_limit_records_and_next_keeps_the_query(api, crm, admin):
    add_customers(crm, admin, [{"name": f"Tagged {i}", "tags": ["pager"]} for i in range(5)])
    first = api.get("/customers?tag=pager&limit=2&sort=-name").get_json()
    assert [r["name"] for r in first["data"]] == ["Tagged 4", "Tagged 3"]
    assert "tag=pager" in first["next"] and "sort=-name" in first["next"]
    last = api.get(api.get(first["next"]).get_json()["next"]).get_json()
    assert [r["name"] for r in last["data"]] == ["Tagged 0"]
    assert last["next"] is None


def test_equal_timestamps_paginate_by_id_too(api, crm, admin):
    [customer] = add_customers(crm, admin, [{"name": "Busy"}])
    when = dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)
    with crm.unit_of_work(actor=admin) as uow:
        result = interactions.bulk_create(
            uow,
            [
                {"customer_id": customer.id, "channel": "note", "occurred_at": when}
                for _ in range(7)
            ],
        )
    made = sorted((record.id for record in result.records), reverse=True)
    seen = walk(api, f"/interactions?customer_id={customer.id}&limit=3")  # -occurred_at
    assert seen == made


# -- filters and sparse fields ---------------------------------------------------------------------


def test_filters_narrow_lists_and_combine(api, crm, admin):
    add_customers(
        crm,
        admin,
        [
            {"name": "Vip One", "tags": ["vip", "north"], "email": "one@vip.example"},
            {"name": "Vip Two", "tags": ["vip"], "lifecycle_stage": "customer"},
            {"name": "Plain", "tags": ["north"], "email": "plain@example.com"},
        ],
    )

    def names(query: str) -> list[str]:
        response = api.get(f"/customers?{query}")
        assert response.status_code == 200, response.get_json()
        return [record["name"] for record in response.get_json()["data"]]

    assert names("tag=vip") == ["Vip One", "Vip Two"]
    assert names("tag=vip&tag=north") == ["Vip One", "Vip Two"]  # one value per filter
    assert names("tag=north&lifecycle_stage=lead") == ["Plain", "Vip One"]
    assert names("email=ONE@Vip.Example") == ["Vip One"]
    assert names("email=%20plain@example.com%20") == ["Plain"]
    assert names("tag=vip&lifecycle_stage=customer") == ["Vip Two"]
    assert names(f"owner_id={admin.id}&tag=north") == ["Plain", "Vip One"]
    assert names("tag=nobody") == []


def test_contact_email_filter_ignores_case(api, crm, admin):
    with crm.unit_of_work(actor=admin) as uow:
        contacts.create(
            uow, {"last_name": "Lovelace", "emails": [{"email": "Ada@Engine.example"}]}
        )
        contacts.create(uow, {"last_name": "Babbage", "emails": [{"email": "cb@engine.example"}]})
    response = api.get("/contacts?email=ADA@ENGINE.EXAMPLE")
    assert [c["last_name"] for c in response.get_json()["data"]] == ["Lovelace"]
    assert response.get_json()["data"][0]["emails"] == [
        {"label": "work", "email": "ada@engine.example"}
    ]


def test_sparse_fields_on_lists_and_records(api, crm, admin):
    [customer] = add_customers(crm, admin, [{"name": "Sparse", "email": "s@example.com"}])
    listed = api.get("/customers?fields=name,email").get_json()["data"]
    assert listed and all(set(record) == {"id", "name", "email"} for record in listed)
    one = api.get(f"/customers/{customer.id}?fields=tags").get_json()
    assert one == {"id": customer.id, "tags": []}
    body = problem(api.get("/customers?fields=name,secret"), 400)
    assert "fields" in body["errors"] and "secret" in body["detail"]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("sort=shoe_size", "sort"),
        ("sort=-", "sort"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=WzEsMiwzXQ", "cursor"),  # valid base64 JSON, not a cursor
        ("archived=maybe", "archived"),
        ("owner_id=abc", "owner_id"),
        ("owner_id=99999999999999999999999", "owner_id"),
        ("owner_id=%C2%B2", "owner_id"),  # a superscript two is a digit, not a number
        ("email=a%00b", "email"),
    ],
)
def test_bad_query_parameters_are_400_problems_naming_them(api, query, parameter):
    body = problem(api.get(f"/customers?{query}"), 400)
    assert parameter in body["errors"], body
    assert body["instance"] == f"{PREFIX}/customers"


def test_a_cursor_only_works_with_its_own_sort(api, crm, admin):
    add_customers(crm, admin, [{"name": f"C{i}"} for i in range(3)])
    token = api.get("/customers?limit=1&sort=name").get_json()["next"].split("cursor=")[1]
    token = token.split("&")[0]
    body = problem(api.get(f"/customers?limit=1&sort=-name&cursor={token}"), 400)
    assert body["errors"] == {"cursor": ["Made for another sort order."]}


# -- create, read, versions ------------------------------------------------------------------------


def test_create_answers_201_with_location_and_etag(api):
    response = api.post("/customers", json={"name": "  Acme GmbH ", "tags": "b, a ,a"})
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["name"] == "Acme GmbH" and created["tags"] == ["a", "b"]
    assert created["version"] == 1 and response.headers["ETag"] == '"1"'
    location = response.headers["Location"]
    assert location.endswith(f"{PREFIX}/customers/{created['id']}")
    fetched = api.get(location)
    assert fetched.status_code == 200
    assert fetched.get_json() == created


def test_empty_optional_fields_are_stored_as_null(api, crm, admin):
    created = api.post("/customers", json={"name": "Blank", "street": "", "email": "  "})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["street"] is None and created.get_json()["email"] is None
    [customer] = add_customers(crm, admin, [{"name": "Talked to"}])
    when = "2024-05-01T09:30:00+02:00"
    made = api.post(
        "/interactions",
        json={"customer_id": customer.id, "channel": "note", "occurred_at": when},
    ).get_json()
    assert made["source"] == "api"
    # ``source`` may be null in input (meaning "where the write comes from") but is never
    # null when stored: a PATCH with null keeps it.
    patched = api.patch(
        f"/interactions/{made['id']}", json={"source": None, "subject": "Hi"},
        headers={"If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["source"] == "api" and patched.get_json()["subject"] == "Hi"


def test_etag_and_if_none_match(api):
    created = api.post("/customers", json={"name": "Cached"}).get_json()
    url = f"/customers/{created['id']}"
    response = api.get(url)
    assert response.headers["ETag"] == '"1"'
    for sent in ('"1"', 'W/"1"', '"0", "1"', "*"):
        not_modified = api.get(url, headers={"If-None-Match": sent})
        assert not_modified.status_code == 304, sent
        assert not_modified.data == b"" and not_modified.headers["ETag"] == '"1"'
    assert api.get(url, headers={"If-None-Match": '"0"'}).status_code == 200


def test_patch_needs_the_current_version(api):
    created = api.post("/customers", json={"name": "Versioned"}).get_json()
    url = f"/customers/{created['id']}"
    missing = problem(api.patch(url, json={"name": "No precondition"}), 428)
    assert "If-Match" in missing["detail"]
    problem(api.patch(url, json={"name": "Nonsense"}, headers={"If-Match": "yesterday"}), 412)
    problem(api.patch(url, json={"name": "Superscript"}, headers={"If-Match": '"\u00b9"'}), 412)
    changed = api.patch(url, json={"city": "Berlin"}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["city"] == "Berlin" and changed.headers["ETag"] == '"2"'
    stale = api.patch(url, json={"city": "Paris"}, headers={"If-Match": '"1"'})
    problem(stale, 412)
    assert stale.headers["ETag"] == '"2"'
    assert api.get(url).get_json()["city"] == "Berlin"
    weak = api.patch(url, json={"city": "Hamburg"}, headers={"If-Match": 'W/"2"'})
    assert weak.status_code == 200 and weak.get_json()["version"] == 3


def test_a_change_landing_during_the_request_is_a_409_not_an_overwrite(api, crm):
    created = api.post("/customers", json={"name": "Contested"}).get_json()
    RACE["customer_id"] = created["id"]
    try:
        response = api.patch(
            f"/customers/{created['id']}", json={"name": "Mine"}, headers={"If-Match": '"1"'}
        )
    finally:
        RACE["customer_id"] = None
    body = problem(response, 409)
    assert body["type"].endswith(":conflict")
    with crm.session_factory() as session:
        assert session.get(Customer, created["id"]).name == "Contested"


def test_validation_errors_are_422_with_messages_per_field(api):
    body = problem(api.post("/customers", json={"name": " ", "email": "nope", "bogus": 1}), 422)
    assert body["type"].endswith(":validation")
    assert set(body["errors"]) == {"name", "email", "bogus"}
    assert all(isinstance(m, list) and m for m in body["errors"].values())
    nested = problem(
        api.post("/contacts", json={"last_name": "X", "emails": [{"email": "not an email"}]}),
        422,
    )
    assert nested["errors"] == {"emails": {"0": {"email": ["Not a valid email address."]}}}
    read_only = problem(api.post("/customers", json={"name": "X", "id": 5, "version": 9}), 422)
    assert set(read_only["errors"]) == {"id", "version"}
    unstorable = problem(
        api.post("/customers", json={"name": "Nul\u0000", "owner_id": 2**40}), 422
    )
    assert set(unstorable["errors"]) == {"name", "owner_id"}


def test_an_invalid_patch_changes_nothing(api):
    created = api.post("/customers", json={"name": "Stable"}).get_json()
    url = f"/customers/{created['id']}"
    body = problem(api.patch(url, json={"country": "Germany"}, headers={"If-Match": '"1"'}), 422)
    assert "country" in body["errors"]
    assert api.get(url).get_json() == created


def test_bodies_must_be_json_objects(api):
    form = api.post("/customers", data={"name": "Form"})
    assert "application/json" in problem(form, 415)["detail"]
    text = api.post("/customers", data="name=x", content_type="text/plain")
    problem(text, 415)
    problem(api.post("/customers", json=[{"name": "A list"}]), 400)
    problem(api.post("/customers", data="{not json", content_type="application/json"), 400)
    deep = "[" * 100_000 + "]" * 100_000
    problem(api.post("/customers", data=deep, content_type="application/json"), 400)


# -- errors outside the resources' routes ----------------------------------------------------------


def test_unknown_urls_and_methods_are_problems(api, client):
    problem(api.get("/no-such-thing"), 404)
    problem(client.get(f"{PREFIX}/no-such-thing"), 404)  # even unauthenticated
    for ident in ("999999", "abc", "0", "-1", "99999999999999999999999", "\u00b2"):
        body = problem(api.get(f"/customers/{ident}"), 404)
        assert body["instance"].startswith(f"{PREFIX}/customers/")
        assert body["instance"].isascii()
    wrong_method = api("PUT", "/customers/1", json={"name": "Put"})
    problem(wrong_method, 405)
    assert "PATCH" in wrong_method.headers["Allow"]
    problem(api.delete("/customers"), 405)


def test_authentication_and_permissions(client, crm, admin):
    anonymous = client.get(f"{PREFIX}/customers")
    problem(anonymous, 401)
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    problem(Api(client, "crm_00000000_" + "x" * 43).get("/customers"), 401)
    reader = Api(client, token_for(crm, admin, scopes=("customer.view",)))
    assert reader.get("/customers").status_code == 200
    body = problem(reader.post("/customers", json={"name": "Not allowed"}), 403)
    assert "customer.edit" in body["detail"]
    problem(reader.get("/contacts"), 403)


def test_records_outside_visibility_are_404_and_missing_from_lists(client, crm, admin):
    [theirs] = add_customers(crm, admin, [{"name": "Admin's account"}])
    own = make_user(
        crm, "own@api.example", ["customer.view", "customer.edit"], visibility="own"
    )
    api = Api(client, token_for(crm, own))
    mine = api.post("/customers", json={"name": "Own account"}).get_json()
    assert walk(api, "/customers") == [mine["id"]]
    problem(api.get(f"/customers/{theirs.id}"), 404)
    patched = api.patch(f"/customers/{theirs.id}", json={"name": "x"}, headers={"If-Match": '"1"'})
    problem(patched, 404)


# -- archive and restore ---------------------------------------------------------------------------


def test_archive_hides_from_lists_and_restore_brings_back(api):
    created = api.post("/customers", json={"name": "Seasonal", "tags": ["archive-test"]})
    record = created.get_json()
    url = f"/customers/{record['id']}"
    problem(api.delete(url), 428)
    problem(api.delete(url, headers={"If-Match": '"7"'}), 412)
    archived = api.delete(url, headers={"If-Match": '"1"'})
    assert archived.status_code == 204 and archived.data == b""
    assert archived.headers["ETag"] == '"2"'

    def listed(archived_filter: str) -> list[int]:
        query = f"/customers?tag=archive-test&archived={archived_filter}"
        return [r["id"] for r in api.get(query).get_json()["data"]]

    assert listed("false") == [] and listed("true") == [record["id"]]
    assert listed("any") == [record["id"]]
    assert api.get(url).get_json()["archived"] is True  # still readable by id
    again = api.delete(url, headers={"If-Match": '"2"'})
    assert again.status_code == 204 and again.headers["ETag"] == '"2"'  # nothing changed
    restored = api.post(f"{url}/restore", headers={"If-Match": '"2"'})
    assert restored.status_code == 204 and restored.headers["ETag"] == '"3"'
    assert listed("false") == [record["id"]]
    problem(api.post(f"{url}/restore"), 428)


# -- a plugin's resource ---------------------------------------------------------------------------


def test_a_plugin_resource_gets_every_convention(api, crm, admin):
    add_customers(crm, admin, [{"name": "Already a customer", "lifecycle_stage": "customer"}])
    created = api.post("/leads", json={"name": "Fresh Lead", "email": "LEAD@example.com"})
    assert created.status_code == 201, created.get_json()
    lead = created.get_json()
    assert set(lead) == {"id", "name", "email", "version", "archived"}
    assert lead["email"] == "lead@example.com"
    assert created.headers["Location"].endswith(f"{PREFIX}/leads/{lead['id']}")
    listed = api.get("/leads").get_json()
    assert [r["name"] for r in listed["data"]] == ["Fresh Lead"]
    assert api.get("/leads?email=Lead@Example.com").get_json()["data"][0]["id"] == lead["id"]
    assert api.get(f"/customers/{lead['id']}").get_json()["lifecycle_stage"] == "lead"
    url = f"/leads/{lead['id']}"
    problem(api.patch(url, json={"name": "Renamed"}), 428)
    renamed = api.patch(url, json={"name": "Renamed"}, headers={"If-Match": '"1"'})
    assert renamed.get_json()["name"] == "Renamed" and renamed.headers["ETag"] == '"2"'
    problem(api.post("/leads", json={"name": "Lead", "lifecycle_stage": "lead"}), 422)
    problem(api.get("/leads?sort=email"), 400)
    problem(api.post(f"{url}/restore", headers={"If-Match": '"2"'}), 404)  # no restore


def test_a_plugin_resource_is_in_the_openapi_document_and_the_docs(client):
    document = client.get(f"{PREFIX}/openapi.json").get_json()
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/leads"])
    assert {"get", "patch", "delete"} <= set(paths["/leads/{record_id}"])
    assert "/leads/{record_id}/restore" not in paths
    assert "/customers/{record_id}/restore" in paths
    schemas = document["components"]["schemas"]
    assert set(schemas["Lead"]["properties"]) == {"id", "name", "email", "version", "archived"}
    assert schemas["LeadInput"]["required"] == ["name"]
    assert "Customer" in schemas  # the core schema keeps its name
    sort = next(p for p in paths["/leads"]["get"]["parameters"] if p["name"] == "sort")
    assert sort["schema"]["enum"] == ["id", "name", "-id", "-name"]
    assert {"name": "leads", "description": LEADS.description} in document["tags"]
    page = client.get(f"{PREFIX}/docs").get_data(as_text=True)
    assert "Resource <code>leads</code>" in page and LEADS.description in html.unescape(page)
