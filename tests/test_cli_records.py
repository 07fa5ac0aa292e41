"""``crm search``, ``crm duplicates``, ``crm merge`` and ``crm unmerge`` against the test app."""

from __future__ import annotations

import json

import pytest

from crm_core.models import Contact, Customer
from crm_core.services import contacts, customers

pytestmark = pytest.mark.plugins()


@pytest.fixture
def twins(crm):
    """Two records of one company, with a contact each."""
    with crm.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "Acme Tools", "email": "info@acme.example"})
        twin = customers.create(
            uow, {"name": "ACME Tools GmbH", "email": "info@acme.example", "city": "Berlin"}
        )
        contacts.create(uow, {"customer_id": acme.id, "last_name": "Roadrunner"})
        moved = contacts.create(uow, {"customer_id": twin.id, "last_name": "Coyote"})
    return {"acme": acme.id, "twin": twin.id, "moved": moved.id}


def test_search_prints_hits_as_a_table_or_json(runner, twins):
    table = runner.invoke(args=["search", "acme"])
    assert table.exit_code == 0, table.output
    assert "Acme Tools" in table.output and "customer" in table.output
    lines = runner.invoke(args=["search", "roadrunner", "--json"]).output.splitlines()
    assert [json.loads(line)["entity"] for line in lines] == ["contact"]
    unknown = runner.invoke(args=["search", "x", "--entity", "planet"])
    assert unknown.exit_code != 0 and "planet" in unknown.output


def test_duplicates_lists_the_twin_with_its_reasons(runner, twins):
    result = runner.invoke(args=["duplicates", "customers", str(twins["acme"])])
    assert result.exit_code == 0, result.output
    assert "ACME Tools GmbH" in result.output and "email" in result.output
    missing = runner.invoke(args=["duplicates", "customers", "999999"])
    assert missing.exit_code != 0


def test_merge_then_unmerge_from_the_command_line(runner, crm, twins):
    merged = runner.invoke(
        args=["merge", "customers", str(twins["acme"]), str(twins["twin"]), "--keep",
              f"name={twins['twin']}"]
    )
    assert merged.exit_code == 0, merged.output
    merge_id = merged.stdout.strip().rsplit(" ", 1)[-1]
    with crm.session_factory() as session:
        assert session.get(Customer, twins["acme"]).name == "ACME Tools GmbH"
        assert session.get(Customer, twins["twin"]).archived
        assert session.get(Contact, twins["moved"]).customer_id == twins["acme"]

    undone = runner.invoke(args=["unmerge", "customers", merge_id])
    assert undone.exit_code == 0, undone.output
    with crm.session_factory() as session:
        assert session.get(Customer, twins["acme"]).name == "Acme Tools"
        assert not session.get(Customer, twins["twin"]).archived
        assert session.get(Contact, twins["moved"]).customer_id == twins["twin"]
    again = runner.invoke(args=["unmerge", "customers", merge_id])
    assert again.exit_code != 0 and "undone" in again.output


def test_merge_refuses_bad_choices_with_a_message(runner, twins):
    bad_keep = runner.invoke(args=["merge", "customers", str(twins["acme"]),
                                   str(twins["twin"]), "--keep", "name"])
    assert bad_keep.exit_code != 0 and "FIELD=ID" in bad_keep.output
    unknown_field = runner.invoke(args=["merge", "customers", str(twins["acme"]),
                                        str(twins["twin"]), "--keep", "id=1"])
    assert unknown_field.exit_code != 0 and "field_sources" in unknown_field.output
