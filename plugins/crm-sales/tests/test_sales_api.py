"""Deals and pipelines through the REST API, with real tokens.

``/api/v1/opportunities`` (core's conventions: ``ETag``/``If-Match``, keyset pages,
filters, problem documents, visibility) and the plugin's own routes under
``/api/v1/sales``: moving a deal, its stage history, pipelines and lost reasons, and
their place in the OpenAPI document.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from typing import Any

import hypothesis
import pytest
import schemathesis
from crm_sales.models import LostReason, Stage
from hypothesis import HealthCheck, Phase
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import event, select

from crm_core.models import AuditEntry
from crm_core.services import customers
from crm_core.testing import ApiClient, api_token, make_user
from crm_core.web.api.openapi import build_openapi

PROBLEM = "application/problem+json"
SALES_PERMISSIONS = ["customer.view", "sales.deal.view", "sales.deal.edit", "sales.deal.archive"]


@pytest.fixture
def api(client: Any, crm: Any, seller: Any) -> ApiClient:
    """The API as ``seller`` (every permission, every record)."""
    return ApiClient(client, api_token(crm, seller))


@pytest.fixture
def stages(crm: Any) -> dict[str, int]:
    """The ids of the default pipeline's stages, by name."""
    with crm.session_factory() as session:
        return {stage.name: stage.id for stage in session.scalars(select(Stage))}


def problem(response: Any, status: int) -> dict[str, Any]:
    """Assert ``response`` is a problem document with ``status``; return it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["type"].startswith("urn:crm-core:problem:")
    return body


def create_deal(api: ApiClient, customer_id: int, name: str, **fields: Any) -> dict[str, Any]:
    """A deal made through the API."""
    response = api.post("/opportunities", json={"name": name, "customer_id": customer_id,
                                                **fields})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def etag(response: Any) -> str:
    """The response's ``ETag``."""
    return response.headers["ETag"]  # type: ignore[no-any-return]


# -- the resource ---------------------------------------------------------------------------


def test_create_answers_201_with_location_and_etag_then_get_and_patch(api, acme, stages):
    created = api.post("/opportunities", json={
        "name": "Tools 2027", "customer_id": acme.id, "amount": "1200.50",
        "expected_close": "2027-03-31",
        "lines": [{"description": "Licences", "quantity": "2", "unit_price": "600.25"}],
    })
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/opportunities/{body['id']}")
    assert etag(created) == '"1"'
    assert body["stage_id"] == stages["Qualification"] and body["status"] == "open"
    assert body["lines"][0]["total"] == "1200.50" and body["effective_probability"] == 10

    fetched = api.get(created.headers["Location"])
    assert fetched.status_code == 200 and etag(fetched) == '"1"'
    assert fetched.get_json()["name"] == "Tools 2027"
    assert api.get(f"/opportunities/{body['id']}", headers={"If-None-Match": '"1"'}
                   ).status_code == 304

    path = f"/opportunities/{body['id']}"
    problem(api.patch(path, json={"amount": "2000"}), 428)
    stale = problem(api.patch(path, json={"amount": "2000"}, headers={"If-Match": '"7"'}), 412)
    assert "version 1" in stale["detail"]
    changed = api.patch(path, json={"amount": "2000", "probability": 40},
                        headers={"If-Match": '"1"'})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert etag(changed) == '"2"'
    assert changed.get_json()["amount"] == "2000.00"
    assert changed.get_json()["effective_probability"] == 40
    problem(api.patch(path, json={"amount": "1"}, headers={"If-Match": '"1"'}), 412)


def test_bad_input_is_a_422_naming_the_fields_and_nothing_is_saved(api, acme, crm):
    refused = problem(api.post("/opportunities", json={
        "name": "", "customer_id": acme.id, "amount": "-5", "currency": "euro",
        "probability": 120,
    }), 422)
    assert set(refused["errors"]) == {"name", "amount", "currency", "probability"}
    missing = problem(api.post("/opportunities", json={"name": "X", "customer_id": 999999}), 422)
    assert set(missing["errors"]) == {"customer_id"}
    huge = problem(api.post("/opportunities", json={"name": "X", "customer_id": 2**40}), 422)
    assert "customer_id" in huge["errors"]
    wrong_stage = problem(api.post("/opportunities", json={
        "name": "X", "customer_id": acme.id, "stage_id": 999999}), 422)
    assert set(wrong_stage["errors"]) == {"stage_id"}
    problem(api.post("/opportunities", data="name=x"), 415)
    assert api.get("/opportunities").get_json()["data"] == []
    with crm.session_factory() as session:
        assert session.scalar(select(AuditEntry.id).where(
            AuditEntry.entity == "opportunity")) is None


def test_the_list_filters_on_indexed_columns_and_pages_by_cursor(api, crm, seller, acme, stages):
    with crm.unit_of_work(actor=seller, source="test") as uow:
        globex = customers.create(uow, {"name": "Globex", "owner_id": seller.id})
    other_owner = make_user(crm, "other@sales.example", SALES_PERMISSIONS)
    ids = [create_deal(api, acme.id, f"Acme {n}")["id"] for n in range(5)]
    globex_deal = create_deal(api, globex.id, "Globex deal", stage_id=stages["Won"],
                              owner_id=other_owner.id)["id"]
    proposal = create_deal(api, globex.id, "Globex proposal", stage_id=stages["Proposal"])["id"]

    walked = api.collect("/opportunities", query_string={"limit": "2"})
    assert [deal["id"] for deal in walked] == [*ids, globex_deal, proposal]
    first = api.get("/opportunities", query_string={"limit": "2", "sort": "-id"}).get_json()
    assert [deal["id"] for deal in first["data"]] == [proposal, globex_deal]
    assert "cursor=" in first["next"]

    def listed(**query: str) -> list[int]:
        return [deal["id"] for deal in api.collect("/opportunities", query_string=query)]

    assert listed(customer_id=str(globex.id)) == [globex_deal, proposal]
    assert listed(status="won") == [globex_deal]
    assert listed(status="open", customer_id=str(globex.id)) == [proposal]
    assert listed(stage_id=str(stages["Proposal"])) == [proposal]
    assert listed(owner_id=str(other_owner.id)) == [globex_deal]
    assert listed(pipeline_id="1") == [*ids, globex_deal, proposal]
    assert listed(pipeline_id="999") == []
    assert listed(fields="name", limit="500")[0] == ids[0]

    bad = problem(api.get("/opportunities", query_string={"status": "maybe"}), 400)
    assert set(bad["errors"]) == {"status"}
    assert "pipeline_id" in problem(
        api.get("/opportunities", query_string={"pipeline_id": "x"}), 400)["errors"]
    assert "sort" in problem(
        api.get("/opportunities", query_string={"sort": "expected_close"}), 400)["errors"]

    archived = api.delete(f"/opportunities/{ids[0]}", headers={"If-Match": '"1"'})
    assert archived.status_code == 204
    assert ids[0] not in listed()
    assert listed(archived="true") == [ids[0]]
    restored = api.post(f"/opportunities/{ids[0]}/restore", headers={"If-Match": etag(archived)})
    assert restored.status_code == 204 and ids[0] in listed()


def test_the_filters_are_served_by_indexes(api, crm, acme, stages):
    """Each filter's SELECT searches an index of sales_opportunity and never reads it whole
    (PostgreSQL: with sequential scans switched off, the plan still holds none)."""
    create_deal(api, acme.id, "Indexed")
    connection = crm.session_factory.kw["bind"]
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        connection.exec_driver_sql("SET enable_seqscan = off")  # undone by the test's rollback
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM sales_opportunity" in statement and statement.lstrip().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        for name, value, index in (
            # any index led by status (the list's, or one of the forecast's covering ones)
            ("status", "open", "ix_sales_opportunity_status_"),
            ("stage_id", str(stages["Proposal"]), "ix_sales_opportunity_stage"),
            ("pipeline_id", "1", "ix_sales_opportunity_stage"),
            ("owner_id", "1", "ix_sales_opportunity_owner_status_close"),
            ("customer_id", "1", "ix_sales_opportunity_customer"),
        ):
            seen.clear()
            assert api.get("/opportunities", query_string={name: value}).status_code == 200
            statement, parameters = seen[0]
            if postgresql:
                plan = json.dumps(connection.exec_driver_sql(
                    "EXPLAIN (FORMAT JSON) " + statement, parameters).scalar())
                assert f'"Index Name": "{index}' in plan, (name, plan)
                assert not re.search(r'"Seq Scan"[^}]*"sales_opportunity"', plan), (name, plan)
                continue
            lines = [row[3] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters)]
            assert any(line.startswith(f"SEARCH sales_opportunity USING INDEX {index}")
                       for line in lines), (name, lines)
            assert not any(line.startswith("SCAN sales_opportunity") for line in lines), lines
    finally:
        event.remove(connection, "before_cursor_execute", record)


def test_without_the_permission_the_answer_is_403(client, crm, acme):
    clerk = ApiClient(client, api_token(crm, make_user(crm, "clerk@sales.example",
                                                       ["customer.view"])))
    for response in (clerk.get("/opportunities"), clerk.get("/sales/pipelines"),
                     clerk.get("/sales/lost-reasons")):
        assert "sales.deal.view" in problem(response, 403)["detail"]
    viewer = ApiClient(client, api_token(crm, make_user(crm, "viewer@sales.example",
                                                        ["customer.view", "sales.deal.view"])))
    assert viewer.get("/opportunities").status_code == 200
    refused = problem(viewer.post("/opportunities", json={"name": "X", "customer_id": acme.id}),
                      403)
    assert "sales.deal.edit" in refused["detail"]
    problem(ApiClient(client, None).get("/opportunities"), 401)
    problem(ApiClient(client, None).get("/sales/pipelines"), 401)


def test_a_user_seeing_their_own_records_sees_only_their_deals(client, crm, api, acme, stages):
    rep = make_user(crm, "rep@sales.example", SALES_PERMISSIONS, visibility="own")
    theirs = create_deal(api, acme.id, "Rep's deal", owner_id=rep.id)
    others = create_deal(api, acme.id, "Seller's deal")
    as_rep = ApiClient(client, api_token(crm, rep))
    assert [deal["id"] for deal in as_rep.collect("/opportunities")] == [theirs["id"]]
    assert as_rep.get(f"/opportunities/{theirs['id']}").status_code == 200
    problem(as_rep.get(f"/opportunities/{others['id']}"), 404)
    problem(as_rep.patch(f"/opportunities/{others['id']}", json={"amount": "1"},
                         headers={"If-Match": '"1"'}), 404)
    problem(as_rep.post(f"/sales/opportunities/{others['id']}/move",
                        json={"stage_id": stages["Won"]}, headers={"If-Match": '"1"'}), 404)
    problem(as_rep.get(f"/sales/opportunities/{others['id']}/stages"), 404)
    assert as_rep.get(f"/sales/opportunities/{theirs['id']}/stages").status_code == 200


# -- moving, the stage history ------------------------------------------------------------


def test_moving_a_deal_grows_its_history_and_won_closes_it(api, acme, stages, seller):
    deal = create_deal(api, acme.id, "Mover")
    move = f"/sales/opportunities/{deal['id']}/move"
    problem(api.post(move, json={"stage_id": stages["Proposal"]}), 428)
    problem(api.post(move, json={"stage_id": stages["Proposal"]},
                     headers={"If-Match": '"5"'}), 412)
    moved = api.post(move, json={"stage_id": stages["Proposal"]}, headers={"If-Match": '"1"'})
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["stage_id"] == stages["Proposal"] and etag(moved) == '"2"'
    history = api.get(f"/sales/opportunities/{deal['id']}/stages").get_json()
    assert [stay["stage_name"] for stay in history["data"]] == ["Qualification", "Proposal"]
    assert history["data"][0]["left_at"] is not None and history["data"][1]["left_at"] is None
    assert history["data"][1]["moved_by"] == seller.id and history["next"] is None

    won = api.post(move, json={"stage_id": stages["Won"]}, headers={"If-Match": etag(moved)})
    assert won.status_code == 200
    assert won.get_json()["status"] == "won" and won.get_json()["closed_at"] is not None
    stays = api.collect(f"/sales/opportunities/{deal['id']}/stages",
                        query_string={"limit": "1"})
    assert [(stay["stage_name"], stay["outcome"]) for stay in stays] == [
        ("Qualification", "open"), ("Proposal", "open"), ("Won", "won")]
    assert api.get(f"/opportunities/{deal['id']}").get_json()["status"] == "won"


def test_a_refused_move_names_the_field_and_changes_nothing(api, acme, stages, crm):
    deal = create_deal(api, acme.id, "Stuck")
    move = f"/sales/opportunities/{deal['id']}/move"
    with crm.session_factory() as session:
        reason = session.scalars(select(LostReason.id)).first()
    cases = [
        ({"stage_id": 999999}, "stage_id"),
        ({"stage_id": "3"}, "stage_id"),
        ({}, "stage_id"),
        ({"stage_id": stages["Proposal"], "lost_reason_id": reason}, "lost_reason_id"),
        ({"stage_id": stages["Lost"], "lost_reason_id": 999999}, "lost_reason_id"),
        ({"stage_id": 2**40}, "stage_id"),
        ({"stage_id": stages["Won"], "surprise": True}, "surprise"),
    ]
    for body, field in cases:
        refused = problem(api.post(move, json=body, headers={"If-Match": '"1"'}), 422)
        assert field in refused["errors"], (body, refused)
    problem(api.post(move, data="stage_id=3", headers={"If-Match": '"1"'}), 415)
    problem(api.post(move, json=[1], headers={"If-Match": '"1"'}), 400)
    problem(api.post("/sales/opportunities/abc/move", json={"stage_id": 1},
                     headers={"If-Match": '"1"'}), 404)
    problem(api.post("/sales/opportunities/99999/move", json={"stage_id": 1},
                     headers={"If-Match": '"1"'}), 404)
    lost = api.post(move, json={"stage_id": stages["Lost"], "lost_reason_id": reason},
                    headers={"If-Match": '"1"'})
    assert lost.status_code == 200
    assert lost.get_json()["lost_reason_id"] == reason and lost.get_json()["status"] == "lost"
    history = api.get(f"/sales/opportunities/{deal['id']}/stages").get_json()["data"]
    assert len(history) == 2


def test_the_stage_history_pages_and_refuses_bad_cursors(api, acme, stages):
    deal = create_deal(api, acme.id, "Traveller")
    version = '"1"'
    for name in ("Needs analysis", "Proposal", "Negotiation", "Proposal"):
        moved = api.post(f"/sales/opportunities/{deal['id']}/move",
                         json={"stage_id": stages[name]}, headers={"If-Match": version})
        version = etag(moved)
    path = f"/sales/opportunities/{deal['id']}/stages"
    page = api.get(path, query_string={"limit": "2"}).get_json()
    assert len(page["data"]) == 2 and page["next"]
    every = api.collect(path, query_string={"limit": "2"})
    assert [stay["stage_name"] for stay in every] == [
        "Qualification", "Needs analysis", "Proposal", "Negotiation", "Proposal"]
    assert len({stay["id"] for stay in every}) == 5
    problem(api.get(path, query_string={"cursor": "nonsense"}), 400)
    problem(api.get(path, query_string={"limit": "0"}), 400)


# -- pipelines, lost reasons ---------------------------------------------------------------


def test_pipelines_come_with_their_stages_in_order(api):
    body = api.get("/sales/pipelines").get_json()
    assert body["next"] is None
    [pipeline] = body["data"]
    assert pipeline["name"] == "New business" and pipeline["is_default"] is True
    assert [(s["name"], s["probability"], s["outcome"]) for s in pipeline["stages"]] == [
        ("Qualification", 10, "open"), ("Needs analysis", 25, "open"), ("Proposal", 50, "open"),
        ("Negotiation", 75, "open"), ("Won", 100, "won"), ("Lost", 0, "lost"),
    ]


def test_lost_reasons_list_and_filter(api, crm, seller):
    from crm_sales.services import pipelines

    with crm.unit_of_work(actor=seller, source="test") as uow:
        price = uow.session.scalars(select(LostReason).where(LostReason.name == "Price")).one()
        pipelines.deactivate_lost_reason(uow, price.id)
    every = api.get("/sales/lost-reasons").get_json()["data"]
    names = [reason["name"] for reason in every]
    assert names == sorted(names) and "Price" in names
    active = api.get("/sales/lost-reasons", query_string={"active": "true"}).get_json()["data"]
    assert "Price" not in [reason["name"] for reason in active]
    inactive = api.get("/sales/lost-reasons", query_string={"active": "false"}).get_json()
    assert [reason["name"] for reason in inactive["data"]] == ["Price"]
    assert "active" in problem(api.get("/sales/lost-reasons", query_string={"active": "yes"}),
                               400)["errors"]


def test_unknown_sales_routes_answer_with_problems(api):
    problem(api.get("/sales/nothing-here"), 404)
    problem(api.delete("/sales/pipelines"), 405)


# -- the OpenAPI document -----------------------------------------------------------------


def test_the_openapi_document_describes_deals_and_the_sales_routes(client):
    document = client.get("/api/v1/openapi.json").get_json()
    paths = document["paths"]
    assert set(paths["/opportunities"]) == {"get", "post"}
    assert {"get", "patch", "delete"} <= set(paths["/opportunities/{record_id}"])
    assert "/opportunities/{record_id}/restore" in paths
    listing = {p["name"] for p in paths["/opportunities"]["get"]["parameters"]}
    assert {"status", "stage_id", "pipeline_id", "owner_id", "customer_id"} <= listing
    move = paths["/sales/opportunities/{record_id}/move"]["post"]
    assert {"200", "412", "422", "428"} <= set(move["responses"])
    assert "/sales/opportunities/{record_id}/stages" in paths
    assert "/sales/pipelines" in paths and "/sales/lost-reasons" in paths
    schemathesis.openapi.from_dict(document).validate()  # raises on any violation


def test_the_document_is_built_without_warnings(app):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. apispec's "Multiple schemas resolved to the name"
        build_openapi(app)


#: Generated requests per operation and mode (``CRM_SCHEMATHESIS_EXAMPLES`` fuzzes deeper).
MAX_EXAMPLES = int(os.environ.get("CRM_SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


#: crm-sales's operations: deals, and every route under ``/sales`` (the catalogue, quotes,
#: reports and quotas included) but the activities' (``test_sales_activities`` fuzzes them).
OURS = ("/opportunities", "/sales/")
NOT_OURS = ("/sales/activities/",)


def test_schemathesis_finds_no_server_error_in_the_sales_operations(app, api, acme):
    deal = create_deal(api, acme.id, "Fuzzed", lines=[{"description": "A", "unit_price": "1"}])
    auth = {"Authorization": f"Bearer {api.token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    ours = [op for op in operations
            if op.path.startswith(OURS) and not op.path.startswith(NOT_OURS)]
    assert len(ours) >= 30
    failures: list[str] = []
    runs = ((schemathesis.GenerationMode.POSITIVE, False),
            (schemathesis.GenerationMode.NEGATIVE, False),
            (schemathesis.GenerationMode.POSITIVE, True))
    for operation in ours:
        for mode, existing in runs:
            if existing and "{record_id}" not in operation.path:
                continue
            try:
                _fuzz(operation, mode, app.test_client(), auth, deal["id"] if existing else None)
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}, existing={existing}):\n{exc}")
    assert not failures, "\n\n".join(failures)


def _fuzz(operation: Any, mode: Any, client: Any, auth: dict[str, str],
          deal_id: int | None) -> None:
    """Up to :data:`MAX_EXAMPLES` generated requests; with ``deal_id``, aimed at that deal
    with its current ``ETag`` where ``If-Match`` is taken."""

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                         database=None, phases=[Phase.explicit, Phase.generate],
                         suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        if deal_id is not None:
            case.path_parameters = {**(case.path_parameters or {}), "record_id": deal_id}
            if case.headers and "If-Match" in case.headers:
                current = client.get(f"/api/v1/opportunities/{deal_id}", headers=auth)
                case.headers["If-Match"] = current.headers.get("ETag", '"0"')
        case.call_and_validate(headers=auth, checks=CHECKS)

    run()
