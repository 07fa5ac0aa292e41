"""Every API endpoint, core's and plugins': anonymous 401, no permission 403, unseen 404.

The endpoints come from the app's URL map, so a new route is in the matrix the day
it is added; a route this test cannot place fails it until the test learns it. Every
installed plugin is loaded, plus one registered here that serves a resource of its own.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import and_

from crm_core.authz import visible
from crm_core.models import Customer, Role, User
from crm_core.services import contacts, customers, interactions, tokens
from crm_core.testing import api_token, plugin_module
from crm_core.web.api import ApiResource

#: A plugin's resource: the customers at the lead stage, with a visibility rule of its own.
#: Core's API and the test's own resource: installed plugins (crm-sales...) have their own
#: permission tests.
pytestmark = pytest.mark.plugins()

LEADS = ApiResource(
    name="leads",
    entity="customer",
    model=Customer,
    service=customers,
    visibility=lambda actor: and_(visible(actor, "customer"), Customer.lifecycle_stage == "lead"),
)
LEADS_PLUGIN = plugin_module("crm_test_matrix_leads", crm_register_api_resources=lambda: [LEADS])

PUBLIC = {"/api/v1/openapi.json", "/api/v1/docs"}
#: Resources that are not records with an owner: a caller sees all of them or none (their
#: permission decides), so visibility's 404 does not apply; any id will do.
UNOWNED = {"users", "webhooks", "deliveries", "events", "imports", "import-mappings", "exports"}
#: Answer every signed-in caller about themselves: what they may export is a list, empty
#: without any view permission.
SELF_SERVICE = {"/api/v1/users/me", "/api/v1/exports"}


@pytest.fixture
def crm_plugin_modules():
    """The installed plugins, and the one serving ``leads``."""
    return [LEADS_PLUGIN]


@pytest.fixture
def world(crm):
    """An owner of every record, and three callers: no rights, own-visibility, and outsider."""
    with crm.unit_of_work() as uow:
        everything = sorted(crm.registry.permissions)
        owner = User(email="owner@x.example", roles=[Role(name="all", permissions=everything)])
        powerless = User(email="nobody@x.example", roles=[Role(name="none", permissions=[])])
        outsider = User(
            email="outsider@x.example",
            roles=[Role(name="own", permissions=everything, visibility="own")],
        )
        uow.session.add_all([owner, powerless, outsider])
        uow.session.flush()
    with crm.unit_of_work(actor=owner) as uow:
        customer = customers.create(uow, {"name": "Owner's customer"})
        lead = customers.create(uow, {"name": "Owner's lead", "lifecycle_stage": "lead"})
        contact = contacts.create(uow, {"customer_id": customer.id, "last_name": "Doe"})
        interaction = interactions.create(
            uow,
            {
                "customer_id": customer.id,
                "channel": "call",
                "direction": "in",
                "occurred_at": dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC),
            },
        )
    bearer = {}
    with crm.unit_of_work() as uow:
        for name, user in (("powerless", powerless), ("outsider", outsider)):
            _token, plain = tokens.create(uow, user, name="matrix")
            bearer[name] = {"Authorization": f"Bearer {plain}"}
    records = {
        "customers": customer.id,
        "contacts": contact.id,
        "interactions": interaction.id,
        "leads": lead.id,
    }
    return {"records": records, "bearer": bearer, "owner": owner}


def endpoints(app):
    """(method, rule) for every API route but the public ones."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule in PUBLIC:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule))
    return sorted(found)


def fill(rule: str, world) -> tuple[str, bool]:
    """The URL for ``rule`` with a record of another user; whether it names a record."""
    match = re.match(r"^/api/v1/([^/]+)/<(?:int:)?(\w+)>(.*)$", rule)
    if match is None:
        return rule, False
    resource, _name, rest = match.groups()
    rest = re.sub(r"<(?:int:)?\w+>", "1", rest)  # e.g. the merge to undo: any id will do
    if resource == "users":
        return f"/api/v1/users/{world['owner'].id}{rest}", False
    if resource == "exports":
        return "/api/v1/exports/customers.csv", False
    if resource in UNOWNED:
        return f"/api/v1/{resource}/1{rest}", False
    assert resource in world["records"], f"the matrix does not know {rule}: teach it"
    return f"/api/v1/{resource}/{world['records'][resource]}{rest}", True


def call(client, method, url, headers=None):
    headers = {"If-Match": '"1"', **(headers or {})}
    body = {} if method in ("POST", "PATCH", "PUT") else None
    return client.open(url, method=method, json=body, headers=headers)


def test_the_matrix_covers_the_api(app):
    rules = {rule for _method, rule in endpoints(app)}
    assert {
        "/api/v1/customers",
        "/api/v1/customers/<record_id>",
        "/api/v1/customers/<record_id>/merges/<merge_id>/undo",
        "/api/v1/leads/<record_id>/history",
        "/api/v1/search",
        "/api/v1/users",
    } <= rules


def test_anonymous_callers_get_401_everywhere(app, client, world):
    for method, rule in endpoints(app):
        url, _ = fill(rule, world)
        response = call(client, method, url)
        assert response.status_code == 401, (method, rule, response.json)
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_callers_without_the_permission_get_403(app, client, world):
    for method, rule in endpoints(app):
        if rule in SELF_SERVICE:
            continue
        url, _ = fill(rule, world)
        response = call(client, method, url, world["bearer"]["powerless"])
        assert response.status_code == 403, (method, rule, response.json)
        assert response.mimetype == "application/problem+json"


def test_records_outside_the_callers_visibility_are_404(app, client, world):
    for method, rule in endpoints(app):
        url, names_record = fill(rule, world)
        if not names_record:
            continue
        response = call(client, method, url, world["bearer"]["outsider"])
        assert response.status_code == 404, (method, rule, response.json)


def test_lists_leave_out_records_outside_the_callers_visibility(client, world):
    for resource, ident in world["records"].items():
        response = client.get(f"/api/v1/{resource}", headers=world["bearer"]["outsider"])
        assert response.status_code == 200, resource
        assert ident not in [item["id"] for item in response.json["data"]], resource


def test_search_and_q_filters_leave_out_records_outside_the_callers_visibility(app, world):
    searches = {"/api/v1/search": "Owner", "/api/v1/customers": "Owner", "/api/v1/contacts": "Doe"}
    owner = {"Authorization": f"Bearer {api_token(app.extensions['crm'], world['owner'])}"}
    client = app.test_client()
    for url, text in searches.items():
        for caller, sees in ((owner, True), (world["bearer"]["outsider"], False)):
            response = client.get(url, query_string={"q": text}, headers=caller)
            assert response.status_code == 200, (url, response.json)
            assert bool(response.json["data"]) is sees, (url, response.json)
