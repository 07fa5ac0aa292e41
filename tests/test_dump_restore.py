"""``crm export --all`` and ``crm restore``: a dump loads into an empty database losslessly.

A rich database is built through the services (customers with tags, contacts with several
emails and phone numbers, interactions, users, roles, teams, tokens, audit entries,
outbox events, a merge, archived records, unicode and nulls) plus rows of every other
table; it is dumped, restored into a fresh database of the same engine, and every row of
every table is compared; the restored database dumps to the same bytes. Restoring refuses
a database that is not empty or not at the dump's revisions, and a damaged or truncated
dump, without leaving anything half-restored.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_core import migrate
from crm_core.db import Base
from crm_core.exports.dump import DumpError, dump_tables, restore, write_dump
from crm_core.models import (
    AuditEntry,
    Customer,
    DeliveryAttempt,
    EventDelivery,
    ImportJob,
    ImportMapping,
    ImportRejection,
    OutboxEvent,
    SavedView,
    Team,
    User,
    Webhook,
)
from crm_core.runtime import CRM
from crm_core.search import search
from crm_core.services import contacts, customers, interactions, tokens, users
from crm_core.testing import CRMCliRunner, crm_test_settings

pytestmark = pytest.mark.plugins("crm_testplugin")

UTC = dt.UTC
#: Tables the rich database must fill (every core table and the test plugin's).
FILLED = {
    "user", "role", "team", "user_role", "api_token", "customer", "customer_tag", "contact",
    "contact_email", "contact_phone", "interaction", "audit_entry", "outbox_event",
    "event_delivery", "delivery_attempt", "webhook", "import_mapping", "import_job",
    "import_rejection", "testplugin_welcome_task",
}


# -- the rich database ----------------------------------------------------------------------------


@pytest.fixture
def rich(crm: CRM) -> dict[str, Any]:
    """A database with rows in every table, made through the services where there are some."""
    with crm.unit_of_work(source="test") as uow:
        users.ensure_default_roles(uow)
        team = Team(name="Nord — Équipe")
        uow.session.add(team)
        uow.session.flush()
        alice = users.create(
            uow, {"email": "alice@example.com", "name": "Alice Ähnlich", "password": "s3cret-pass!",
                  "roles": ["sales"]}
        )
        alice.team_id = team.id
        bob = users.create(uow, {"email": "bob@example.com", "password": "an0ther-pass!",
                                 "roles": ["viewer", "admin"]})
        tokens.create(uow, bob, name="nightly", scopes=("customer.view",),
                      expires_at=dt.datetime(2099, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    with crm.unit_of_work(actor=alice, source="test") as uow:
        duplicate = customers.create(uow, {"name": "Acme GmbH", "email": "info@acme.example",
                                           "tags": ["b2b", "vip"], "country": "DE"})
        ursa = customers.create(uow, {
            "name": 'Ürsa "Major", Ltd.\nSecond line', "kind": "person", "tags": ["日本", "a, b"],
            "phone": "+49 30 1234567", "country": "DE", "website": "ursa.example",
            "street": None, "attributes": {},
        })
        survivor = customers.create(uow, {"name": "ACME", "email": "info@acme.example",
                                          "owner_id": bob.id})
        archived = customers.create(uow, {"name": "Gone Inc"})
        emma = contacts.create(uow, {
            "customer_id": ursa.id, "first_name": "Émma", "last_name": "Zoë;Müller",
            "job_title": None, "consent_email": True,
            "emails": [{"email": "emma@ursa.example", "label": "work"},
                       {"email": "emma@home.example", "label": "home"}],
            "phones": [{"number": "+49 30 555", "label": "mobile"},
                       {"number": "030 666", "label": "work"}],
        })
        lone = contacts.create(uow, {"last_name": "Solo", "external_id": "ERP-1"})
        interactions.create(uow, {
            "customer_id": ursa.id, "contact_id": emma.id, "channel": "call", "direction": "in",
            "occurred_at": dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
            "subject": "Ärger 🎉", "body": "line 1\r\nline 2",
        })
        interactions.create(uow, {
            "customer_id": duplicate.id, "channel": "note",
            "occurred_at": dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        })
    with crm.unit_of_work(source="test") as uow:
        # The merged customer points to one made after it: restored with NULL, then set.
        customers.merge(uow, survivor.id, [duplicate.id])
        customers.archive(uow, archived.id)
        contacts.archive(uow, lone.id)
        event = uow.session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).first()
        hook = Webhook(url="https://hooks.example/ü", secret="s3cr3t", event_types=["contact.*"],
                       created_by_id=bob.id,
                       last_failure_at=dt.datetime(2025, 5, 5, tzinfo=UTC))
        mapping = ImportMapping(name="shop", entity="customer", columns={"Firma": "name"},
                                options={"delimiter": ";"}, created_by_id=alice.id)
        job = ImportJob(entity="customer", format="csv", filename="shop.csv",
                        options={"match_on": "auto"}, total_bytes=1234, created_by_id=alice.id)
        view = SavedView(user_id=alice.id, entity="customer", name="Meine Kunden",
                         query="owner=me&sort=name")
        uow.session.add_all([hook, mapping, job, view])
        uow.session.flush()
        delivery = EventDelivery(event_id=event.id, consumer=f"webhook:{hook.id}",
                                 status="dead", attempts=2, last_status_code=500)
        uow.session.add_all([delivery, ImportRejection(job_id=job.id, line=3, column="E-Mail",
                                                      value=None, reason="Not valid.")])
        uow.session.flush()
        uow.session.add(DeliveryAttempt(delivery_id=delivery.id, duration_ms=12.5,
                                        status_code=500, error="boom"))
    return {"survivor": survivor.id, "duplicate": duplicate.id, "emma": emma.id}


def _dump(crm: CRM) -> bytes:
    buffer = io.BytesIO()
    write_dump(crm, buffer)
    return buffer.getvalue()


def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


@pytest.fixture
def fresh(fresh_database_url: str, tmp_path: Path, crm: CRM) -> Iterator[CRM]:
    """A CRM on an empty database of the same engine, with the same plugins as ``crm``."""
    settings = crm_test_settings(
        fresh_database_url, tmp_path / "fresh", plugins=list(crm.settings.plugins or ())
    )
    runtime = CRM(settings)
    yield runtime
    runtime.dispose()


def _rows(connection: Any, table: Any) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in connection.execute(
        select(table).order_by(*table.primary_key.columns)
    )]


# -- the round trip -------------------------------------------------------------------------------


def test_a_dump_restores_every_row_of_every_table(crm, rich, fresh):
    dumped = _dump(crm)
    lines = _lines(dumped)
    header, footer = json.loads(lines[0]), json.loads(lines[-1])
    assert header["format"] == "crm-core-dump" and header["version"] == 1
    assert set(header["heads"]) == {"crm_core", "crm_testplugin"}
    assert "alembic_version" not in header["tables"]
    assert not any(name.startswith("search_") for name in header["tables"])
    assert {name for name, count in footer["counts"].items() if count} >= FILLED

    summary = restore(fresh, lines)
    assert summary.counts == footer["counts"]

    with crm.session_factory() as session, fresh.engine.connect() as restored:
        source = session.connection()
        for table in dump_tables(crm):
            assert _rows(restored, table) == _rows(source, table), table.name
    merged = [json.loads(line)["row"] for line in lines if b'"merged_into_id":' in line]
    assert any(row.get("merged_into_id") == rich["survivor"] for row in merged)

    again = _lines(_dump(fresh))
    assert again[1:] == lines[1:]
    first, second = json.loads(again[0]), json.loads(lines[0])
    assert first.pop("created_at") and second.pop("created_at")
    assert first == second


def test_values_are_written_losslessly(crm, rich):
    lines = [json.loads(line) for line in _lines(_dump(crm))]
    rows = {}
    for item in lines[1:-1]:
        rows.setdefault(item["table"], []).append(item["row"])
    call = next(r for r in rows["interaction"] if r["channel"] == "call")
    assert call["occurred_at"] == "2024-02-29T23:59:59.999999+00:00"
    assert call["body"] == "line 1\r\nline 2" and call["subject"] == "Ärger 🎉"
    note = next(r for r in rows["interaction"] if r["channel"] == "note")
    assert note["occurred_at"] == "2023-12-31T19:00:00+00:00"  # stored in UTC
    token = rows["api_token"][0]
    assert token["scopes"] == ["customer.view"] and token["revoked_at"] is None
    role = next(r for r in rows["role"] if r["name"] == "viewer")
    assert isinstance(role["permissions"], list)
    assert rows["delivery_attempt"][0]["duration_ms"] == 12.5
    ursa = next(r for r in rows["customer"] if r["name"].startswith("Ürsa"))
    assert ursa["name"] == 'Ürsa "Major", Ltd.\nSecond line' and ursa["attributes"] == {}
    assert sorted(r["tag"] for r in rows["customer_tag"] if r["customer_id"] == ursa["id"]) == [
        "a, b", "日本"
    ]


def test_the_restored_database_works_search_and_new_ids(crm, rich, fresh):
    restore(fresh, _lines(_dump(crm)))
    with fresh.session_factory() as session:
        hits = search(fresh, session, None, "Émma")
        assert [hit.id for hit in hits if hit.entity == "contact"] == [rich["emma"]]
        highest = session.scalar(select(func.max(Customer.id)))
    with fresh.unit_of_work(source="test") as uow:
        created = customers.create(uow, {"name": "After the restore"})
    assert created.id > highest  # PostgreSQL's sequences continue after the restored ids


# -- refusals -------------------------------------------------------------------------------------


def _empty(runtime: CRM) -> bool:
    with runtime.engine.connect() as connection:
        return all(
            connection.execute(select(func.count()).select_from(table)).scalar() == 0
            for table in dump_tables(runtime)
        )


def test_restore_refuses_a_database_that_is_not_empty(crm, rich, fresh):
    lines = _lines(_dump(crm))
    restore(fresh, lines)
    with pytest.raises(DumpError, match="not empty"):
        restore(fresh, lines)


def test_restore_refuses_truncated_or_damaged_dumps_and_restores_nothing(crm, rich, fresh):
    lines = _lines(_dump(crm))
    with pytest.raises(DumpError, match="truncated"):
        restore(fresh, lines[:-1])
    assert _empty(fresh)
    audit = [i for i, line in enumerate(lines) if line.startswith(b'{"table":"audit_entry"')]
    with pytest.raises(DumpError, match="damaged"):
        restore(fresh, lines[: audit[0]] + lines[audit[2] :])  # two rows lost on the way
    assert _empty(fresh)
    broken = [*lines[:-1], lines[-1][: len(lines[-1]) // 2]]
    with pytest.raises(DumpError, match="not JSON"):
        restore(fresh, broken)
    # A row the database refuses, late in the file: nothing of the rows before it stays.
    position = next(i for i, line in enumerate(lines) if b'"table":"interaction"' in line)
    row = json.loads(lines[position])
    row["row"]["customer_id"] = 999_999
    bad = [*lines[:position], (json.dumps(row) + "\n").encode(), *lines[position + 1:]]
    with pytest.raises(Exception):  # noqa: B017 - the database's own integrity error
        restore(fresh, bad)
    assert _empty(fresh)
    with pytest.raises(DumpError, match="not a crm-core dump"):
        restore(fresh, [b'{"hello": "world"}\n'])
    with pytest.raises(DumpError, match="empty"):
        restore(fresh, [])


def test_restore_refuses_other_revisions_and_unknown_tables(crm, rich, fresh):
    lines = _lines(_dump(crm))
    header = json.loads(lines[0])
    header["heads"]["crm_core"] = "0001_core"
    older = [(json.dumps(header) + "\n").encode(), *lines[1:]]
    with pytest.raises(DumpError, match="migration revisions differ"):
        restore(fresh, older)
    header = json.loads(lines[0])
    header["tables"].append("crm_sales_deal")
    with pytest.raises(DumpError, match="crm_sales_deal"):
        restore(fresh, [(json.dumps(header) + "\n").encode(), *lines[1:]])
    assert _empty(fresh)


@pytest.mark.plugins()
def test_a_dump_with_a_plugins_tables_needs_the_plugin(crm, fresh_database_url, tmp_path):
    """Made with crm_testplugin, restored where it is not enabled: refused, by table name."""
    with_plugin = CRM(crm_test_settings(fresh_database_url, tmp_path / "a",
                                        plugins=["crm_testplugin"]))
    migrate.upgrade(with_plugin)
    lines = _lines(_dump(with_plugin))
    with_plugin.dispose()
    without = CRM(crm_test_settings(fresh_database_url, tmp_path / "b", plugins=[]))
    try:
        with pytest.raises(DumpError, match="testplugin_welcome_task"):
            restore(without, lines)
    finally:
        without.dispose()


# -- the command line -----------------------------------------------------------------------------


def test_crm_export_all_and_crm_restore(crm, rich, fresh, runner, tmp_path):
    path = tmp_path / "dump.jsonl"
    dumped = runner.invoke(args=["export", "--all", "-o", str(path)])
    assert dumped.exit_code == 0, dumped.output
    assert "dumped" in dumped.output
    assert json.loads(path.read_bytes().splitlines()[0])["format"] == "crm-core-dump"
    refused = runner.invoke(args=["export", "--all", "contacts"])
    assert refused.exit_code != 0 and "--all" in refused.output

    from crm_core.web.app import create_app

    fresh_runner = CRMCliRunner(create_app(crm=fresh))
    restored = fresh_runner.invoke(args=["restore", str(path)])
    assert restored.exit_code == 0, restored.output
    assert "restored" in restored.output
    again = fresh_runner.invoke(args=["restore", str(path)])
    assert again.exit_code != 0 and "not empty" in again.output
    with fresh.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(User)).scalar() == 2
        assert connection.execute(select(func.count()).select_from(AuditEntry)).scalar() > 0


def test_every_model_table_of_core_is_in_the_dump(crm):
    names = {table.name for table in dump_tables(crm)}
    assert names >= FILLED
    assert names <= set(Base.metadata.tables)
