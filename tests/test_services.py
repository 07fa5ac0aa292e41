"""The service layer: validation, audit, outbox, hooks, optimistic locking and bulk writes."""

from __future__ import annotations

import datetime as dt

import pytest
from marshmallow import fields
from sqlalchemy import func, select, text

from crm_core import ConflictError, HookError, NotFoundError, ValidationError
from crm_core.models import AuditEntry, Contact, Customer, Interaction, OutboxEvent
from crm_core.services import customers, users
from crm_core.testing import plugin_module as plugin

# Core's behaviour on its own: installed plugins stay out, test plugins come from fixtures.
pytestmark = pytest.mark.plugins()


def count(crm, model) -> int:
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))




class Calls:
    """What the observer plugin saw: hook name -> one entry per call."""

    def __init__(self) -> None:
        self.log: dict[str, list[dict]] = {}


# -- create --------------------------------------------------------------------------


def test_create_normalises_input_and_writes_audit_and_event_in_one_transaction(crm):
    with crm.unit_of_work(source="api") as uow:
        customer = customers.create(
            uow,
            {
                "name": "  ACME GmbH ",
                "email": "Info@ACME.example",
                "website": "www.acme.example",
                "country": "de",
                "tags": "vip, partner, vip",
                "phone": "+49 30 1234567",
            },
        )
    assert customer.id is not None
    assert customer.name == "ACME GmbH"
    assert customer.email == "info@acme.example"
    assert customer.website == "https://www.acme.example"
    assert customer.country == "DE"
    assert customer.tags == ["partner", "vip"]
    assert customer.version == 1
    assert customer.created_at.tzinfo is not None
    with crm.session_factory() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.entity == "customer")).one()
        assert (audit.action, audit.entity_id, audit.source) == ("created", str(customer.id), "api")
        assert audit.changes["name"] == [None, "ACME GmbH"]
        assert audit.changes["tags"] == [None, ["partner", "vip"]]
        event = session.scalars(select(OutboxEvent)).one()
        assert (event.type, event.entity_id, event.status) == (
            "customer.created",
            str(customer.id),
            "pending",
        )
        assert event.payload["id"] == customer.id


def test_bad_input_is_refused_field_by_field_and_nothing_is_written(crm):
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        customers.create(
            uow,
            {
                "name": " ",
                "email": "not-an-email",
                "kind": "alien",
                "website": "ftp://x",
                "country": "Germany",
                "unknown": 1,
            },
        )
    messages = caught.value.messages
    assert set(messages) == {"name", "email", "kind", "website", "country", "unknown"}
    assert messages["email"] == ["Not a valid email address."]
    assert count(crm, Customer) == count(crm, AuditEntry) == count(crm, OutboxEvent) == 0


def test_reference_to_a_missing_owner_is_refused(crm):
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        customers.create(uow, {"name": "ACME", "owner_id": 4242})
    assert caught.value.messages == {"owner_id": ["No user with id 4242."]}


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def crm_plugin_modules(calls: Calls) -> list:
    def reject_forbidden(entity, batch):
        calls.log.setdefault("validate", []).append({"entity": entity, "size": len(batch)})
        for change in batch:
            if entity == "customer" and change.data.get("name") == "Forbidden":
                change.reject("name", "This name is not allowed here.")

    def created(changes):
        calls.log.setdefault("created", []).append({"ids": [c.record.id for c in changes]})

    def updated(changes):
        calls.log.setdefault("updated", []).append({"changes": [c.changes for c in changes]})

    def archived(changes):
        calls.log.setdefault("archived", []).append({"ids": [c.record.id for c in changes]})

    def merged(survivor, merged):
        calls.log.setdefault("merged", []).append(
            {"survivor": survivor.id, "merged": [m.id for m in merged]}
        )

    return [
        plugin(
            "observer",
            crm_validate=reject_forbidden,
            crm_on_customers_created=created,
            crm_on_customers_updated=updated,
            crm_on_customers_archived=archived,
            crm_on_customers_merged=merged,
        )
    ]


def test_bulk_create_writes_good_rows_and_reports_the_others(crm, calls):
    rows = [
        {"name": "Alpha"},
        {"name": ""},
        {"name": "Beta", "email": "beta@example.com"},
        {"name": "Forbidden"},
        "not even a mapping",
        {"name": "Gamma", "tags": ["x"]},
    ]
    with crm.unit_of_work(source="import") as uow:
        result = customers.bulk_create(uow, rows)
    assert [c.name for c in result.records] == ["Alpha", "Beta", "Gamma"]
    assert result.records[2].tags == ["x"]
    assert set(result.errors) == {1, 3, 4}
    assert result.errors[1] == {"name": ["Must not be empty."]}
    assert result.errors[3] == {"name": ["This name is not allowed here."]}
    assert "_schema" in result.errors[4]
    # hooks ran once for the batch, with only the rows that passed the schema
    assert calls.log["validate"] == [{"entity": "customer", "size": 4}]
    assert calls.log["created"] == [{"ids": [c.id for c in result.records]}]
    assert count(crm, Customer) == 3
    assert count(crm, AuditEntry) == 3
    assert count(crm, OutboxEvent) == 3


def test_validation_hook_rejection_on_create_raises_and_writes_nothing(crm):
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        customers.create(uow, {"name": "Forbidden"})
    assert caught.value.messages == {"name": ["This name is not allowed here."]}
    assert count(crm, Customer) == 0


def test_a_raising_event_hook_rolls_back_the_whole_unit_of_work(crm, calls):
    def explode(changes):
        raise RuntimeError("downstream system is on fire")

    crm.pm.register(plugin("exploding", crm_on_customers_updated=explode), name="exploding")
    with crm.unit_of_work() as uow:
        customer = customers.create(uow, {"name": "Stable"})
    with pytest.raises(HookError) as caught, crm.unit_of_work() as uow:
        customers.create(uow, {"name": "Also written in this unit of work"})
        customers.update(uow, customer.id, {"name": "Changed"})
    assert caught.value.hook == "crm_on_customers_updated"
    assert "on fire" in str(caught.value)
    assert count(crm, Customer) == 1
    with crm.session_factory() as session:
        assert session.get(Customer, customer.id).name == "Stable"
    assert count(crm, AuditEntry) == count(crm, OutboxEvent) == 1


# -- update --------------------------------------------------------------------------


def test_update_changes_given_fields_bumps_version_and_records_old_and_new(crm, calls):
    with crm.unit_of_work() as uow:
        customer = customers.create(
            uow, {"name": "ACME", "city": "Berlin", "tags": ["a", "b"], "lifecycle_stage": "lead"}
        )
    with crm.unit_of_work() as uow:
        updated = customers.update(
            uow,
            customer.id,
            {"lifecycle_stage": "customer", "tags": ["b", "c"]},
            expected_version=1,
        )
    assert updated.version == 2
    assert updated.city == "Berlin"
    assert updated.tags == ["b", "c"]
    assert calls.log["updated"] == [
        {"changes": [{"lifecycle_stage": ("lead", "customer"), "tags": (["a", "b"], ["b", "c"])}]}
    ]
    with crm.session_factory() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "updated")).one()
        assert entry.changes == {
            "lifecycle_stage": ["lead", "customer"],
            "tags": [["a", "b"], ["b", "c"]],
        }
        assert session.get(Customer, customer.id).tags == ["b", "c"]


def test_update_without_a_real_change_writes_nothing(crm, calls):
    with crm.unit_of_work() as uow:
        customer = customers.create(uow, {"name": "ACME", "email": "a@acme.example"})
    with crm.unit_of_work() as uow:
        same = customers.update(uow, customer.id, {"name": " ACME ", "email": "A@acme.example"})
    assert same.version == 1
    assert "updated" not in calls.log
    assert count(crm, AuditEntry) == 1


def test_stale_version_is_refused_with_a_conflict(crm):
    with crm.unit_of_work() as uow:
        customer = customers.create(uow, {"name": "ACME"})
        customers.update(uow, customer.id, {"name": "ACME Inc"})
    with pytest.raises(ConflictError) as caught, crm.unit_of_work() as uow:
        customers.update(uow, customer.id, {"name": "Mine"}, expected_version=1)
    assert (caught.value.expected_version, caught.value.current_version) == (1, 2)
    with crm.session_factory() as session:
        assert session.get(Customer, customer.id).name == "ACME Inc"


def test_a_concurrent_write_between_read_and_flush_is_a_conflict(crm):
    with crm.unit_of_work() as uow:
        customer = customers.create(uow, {"name": "ACME"})
    with pytest.raises(ConflictError), crm.unit_of_work() as uow:
        loaded = customers.get(uow, customer.id)
        assert loaded.version == 1
        uow.session.execute(
            text("UPDATE customer SET version = version + 1 WHERE id = :id"), {"id": customer.id}
        )
        customers.update(uow, customer.id, {"name": "Lost update"})


def test_update_of_a_missing_record_is_not_found(crm):
    with pytest.raises(NotFoundError), crm.unit_of_work() as uow:
        customers.update(uow, 987654, {"name": "x"})
    with pytest.raises(NotFoundError), crm.unit_of_work() as uow:
        customers.get(uow, "'; DROP TABLE customer; --")


def test_update_refuses_bad_values_and_keeps_the_record(crm):
    with crm.unit_of_work() as uow:
        customer = customers.create(uow, {"name": "ACME"})
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        customers.update(uow, customer.id, {"name": "", "lifecycle_stage": "bogus"})
    assert set(caught.value.messages) == {"name", "lifecycle_stage"}
    with crm.session_factory() as session:
        assert session.get(Customer, customer.id).name == "ACME"


# -- archive, restore ----------------------------------------------------------------


def test_archive_and_restore(crm, calls):
    with crm.unit_of_work() as uow:
        customer = customers.create(uow, {"name": "ACME"})
    with crm.unit_of_work() as uow:
        archived = customers.archive(uow, customer.id, expected_version=1)
        assert archived.archived and archived.version == 2
        customers.archive(uow, customer.id)  # archiving twice changes nothing
    assert calls.log["archived"] == [{"ids": [customer.id]}]
    with crm.unit_of_work() as uow:
        restored = customers.restore(uow, customer.id)
    assert not restored.archived
    with crm.session_factory() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["created", "archived", "updated"]


# -- merge ---------------------------------------------------------------------------


def test_merge_moves_everything_to_the_survivor_and_leaves_a_trail(crm, calls):
    from crm_core.services import contacts, interactions

    with crm.unit_of_work() as uow:
        survivor = customers.create(uow, {"name": "ACME", "tags": ["a"]})
        duplicate = customers.create(
            uow,
            {
                "name": "Acme Corp.",
                "email": "info@acme.example",
                "city": "Hamburg",
                "tags": ["b"],
            },
        )
        contact = contacts.create(uow, {"customer_id": duplicate.id, "last_name": "Jones"})
        interaction = interactions.create(
            uow,
            {
                "customer_id": duplicate.id,
                "channel": "call",
                "direction": "in",
                "occurred_at": dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC),
            },
        )
    with crm.unit_of_work() as uow:
        merged = customers.merge(
            uow, survivor.id, [duplicate.id], field_sources={"name": duplicate.id}
        )
    assert merged.name == "Acme Corp."
    assert merged.email == "info@acme.example"  # empty on the survivor: filled in
    assert merged.city == "Hamburg"
    assert merged.tags == ["a", "b"]
    assert calls.log["merged"] == [{"survivor": survivor.id, "merged": [duplicate.id]}]
    with crm.session_factory() as session:
        assert session.get(Contact, contact.id).customer_id == survivor.id
        assert session.get(Interaction, interaction.id).customer_id == survivor.id
        gone = session.get(Customer, duplicate.id)
        assert gone.archived and gone.merged_into_id == survivor.id
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "merged")).one()
        assert entry.changes["merged_ids"] == [None, [duplicate.id]]
        assert entry.changes["moved"][1] == {
            "contact": {str(duplicate.id): [contact.id]},
            "interaction": {str(duplicate.id): [interaction.id]},
        }
        assert entry.changes["name"] == ["ACME", "Acme Corp."]


def test_merge_refuses_nonsense(crm):
    with crm.unit_of_work() as uow:
        a = customers.create(uow, {"name": "A"})
        b = customers.create(uow, {"name": "B"})
    for duplicate_ids, field_sources in (([], None), ([a.id], None), ([b.id], {"id": b.id})):
        with pytest.raises(ValidationError), crm.unit_of_work() as uow:
            customers.merge(uow, a.id, duplicate_ids, field_sources=field_sources)
    with crm.unit_of_work() as uow:
        customers.merge(uow, a.id, [b.id])
    with pytest.raises(ValidationError), crm.unit_of_work() as uow:
        customers.merge(uow, a.id, [b.id])  # b is archived now
    with pytest.raises(ValidationError), crm.unit_of_work() as uow:
        customers.restore(uow, b.id)  # merged records come back through undo, not restore


# -- custom attributes and plugin fields ----------------------------------------------


@pytest.fixture
def crm_settings_overrides():
    return {
        "custom_attributes": {
            "customer.vat_id": {"type": "string", "label": "VAT id"},
            "customer.employees": {"type": "integer"},
            "customer.segment": {"type": "choice", "choices": ["smb", "enterprise"]},
            "customer.founded": {"type": "date"},
        }
    }


def test_custom_attributes_are_validated_by_type(crm):
    with crm.unit_of_work() as uow:
        customer = customers.create(
            uow,
            {
                "name": "ACME",
                "attributes": {"vat_id": "DE123", "employees": "40", "founded": "1999-04-01"},
            },
        )
    assert customer.attributes == {"vat_id": "DE123", "employees": 40, "founded": "1999-04-01"}
    with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
        customers.create(
            uow,
            {"name": "X", "attributes": {"employees": "many", "segment": "huge", "colour": "red"}},
        )
    assert set(caught.value.messages["attributes"]) == {"employees", "segment", "colour"}
    with crm.unit_of_work() as uow:
        updated = customers.update(
            uow, customer.id, {"attributes": {"segment": "smb", "vat_id": None}}
        )
    assert updated.attributes == {"employees": 40, "founded": "1999-04-01", "segment": "smb"}


def test_plugin_fields_extend_the_schema_and_reach_the_hooks(crm):
    seen = []

    def schema_fields(entity):
        if entity == "customer":
            return {"credit_limit": fields.Decimal(required=True, as_string=True)}
        return None

    def created(changes):
        seen.extend(change.data["credit_limit"] for change in changes)

    extension = plugin("credit", crm_schema_fields=schema_fields, crm_on_customers_created=created)
    from crm_core import CRM

    runtime = CRM(crm.settings, plugins=[extension], discover_plugins=False, engine=crm.engine)
    runtime.session_factory = crm.session_factory
    with pytest.raises(ValidationError) as caught, runtime.unit_of_work() as uow:
        customers.create(uow, {"name": "ACME"})
    assert caught.value.messages == {"credit_limit": ["Missing data for required field."]}
    with runtime.unit_of_work() as uow:
        customers.create(uow, {"name": "ACME", "credit_limit": "1000.50"})
    assert [str(value) for value in seen] == ["1000.50"]


# -- users ---------------------------------------------------------------------------


def test_users_get_default_roles_and_hashed_passwords(crm):
    with crm.unit_of_work() as uow:
        roles = {role.name: role for role in users.ensure_default_roles(uow)}
        assert users.ensure_default_roles(uow) == []
        user = users.create(
            uow, {"email": "Ann@Example.com", "password": "correct horse", "roles": ["sales"]}
        )
    assert "customer.edit" in roles["sales"].permissions
    assert "user.admin" not in roles["sales"].permissions
    assert set(roles["admin"].permissions) >= {"user.admin", "customer.merge"}
    assert all(p.endswith(".view") for p in roles["viewer"].permissions)
    assert user.email == "ann@example.com"
    assert user.password_hash != "correct horse"
    assert user.check_password("correct horse") and not user.check_password("wrong")
    assert "customer.edit" in user.permissions
    for data, field_name in (
        ({"email": "ann@example.com", "password": "another one"}, "email"),
        ({"email": "bob@example.com", "password": "short"}, "password"),
        ({"email": "bob@example.com", "password": "long enough", "roles": ["boss"]}, "roles"),
    ):
        with pytest.raises(ValidationError) as caught, crm.unit_of_work() as uow:
            users.create(uow, data)
        assert field_name in caught.value.messages


def test_bulk_update_checks_the_batch_once_and_reports_each_refused_item(crm, calls):
    with crm.unit_of_work() as uow:
        a, b, c = customers.bulk_create(
            uow, [{"name": "A"}, {"name": "B", "city": "Oslo"}, {"name": "C"}]
        ).records
    calls.log.clear()
    items = [
        (a.id, {"city": "Bergen"}),
        (b.id, {"city": "Oslo"}),  # no change
        (987654, {"city": "Nowhere"}),
        (c.id, {"lifecycle_stage": "bogus"}),
        (c.id, {"name": "Forbidden"}),
        ("not-an-id", {"city": "x"}),
    ]
    with crm.unit_of_work(source="import") as uow:
        result = customers.bulk_update(uow, items)
    assert [record.id for record in result.records] == [a.id, b.id]
    assert result.errors == {
        2: {"id": ["No customer with id 987654."]},
        3: {"lifecycle_stage": ["Must be one of: lead, prospect, customer, former."]},
        4: {"name": ["This name is not allowed here."]},
        5: {"id": ["No customer with id 'not-an-id'."]},
    }
    assert calls.log["validate"] == [{"entity": "customer", "size": 3}]
    assert calls.log["updated"] == [{"changes": [{"city": (None, "Bergen")}]}]
    with crm.session_factory() as session:
        assert session.get(Customer, a.id).version == 2
        assert session.get(Customer, b.id).version == 1
        updates = session.scalars(select(AuditEntry).where(AuditEntry.action == "updated")).all()
        assert [(u.entity_id, u.source) for u in updates] == [(str(a.id), "import")]
