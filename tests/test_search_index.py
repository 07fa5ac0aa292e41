"""Deferred search indexing: bulk inserts index their new rows once, and nothing else changes."""

from __future__ import annotations

from sqlalchemy import func, insert, select, text

from crm_core import search
from crm_core.models import Contact, ContactEmail
from crm_core.search_index import deferred_index
from crm_core.services import contacts, customers


def titles(crm, query, **kwargs):
    with crm.session_factory() as session:
        return sorted(r.title for r in search.search(crm, session, None, query, **kwargs))


def best(crm, query, **kwargs):
    with crm.session_factory() as session:
        return search.search(crm, session, None, query, **kwargs)[0].title


def document_count(session) -> int:
    table = "search_contact"
    return session.scalar(text(f"SELECT count(*) FROM {table}"))


def test_a_bulk_insert_indexes_each_new_contact_once(crm):
    with crm.unit_of_work(source="test") as uow:
        acme = customers.create(uow, {"name": "Umbrella Holdings", "city": "Raccoon"})
        before = document_count(uow.session)
        rows = [
            {
                "customer_id": acme.id,
                "first_name": f"Agent{i}",
                "last_name": "Wesker",
                "emails": [{"email": f"a{i}@umbrella.example"}, {"email": f"x{i}@home.example"}],
                "phones": [{"number": f"+49 30 5550{i:03d}"}],
            }
            for i in range(300)
        ]
        made = contacts.bulk_create(uow, rows)
        assert made.ok
        assert document_count(uow.session) == before + 300
        if uow.session.get_bind().dialect.name == "sqlite":
            assert uow.session.scalar(text("SELECT paused FROM search_state")) == 0
            trigrams = uow.session.scalar(text("SELECT count(*) FROM search_contact_trgm"))
            assert trigrams == uow.session.scalar(select(func.count()).select_from(Contact))
    assert best(crm, "agent299") == "Agent299 Wesker"
    assert titles(crm, "x42@home.example") == ["Agent42 Wesker"]
    assert titles(crm, "+49 30 5550123") == ["Agent123 Wesker"]
    assert len(titles(crm, "wesker umbrella", entities=["contact"])) == 20  # the default limit
    assert titles(crm, "umbrel", entities=["customer"]) == ["Umbrella Holdings"]


def test_inserts_outside_the_services_are_still_indexed_by_the_triggers(crm):
    with crm.unit_of_work(source="test") as uow:
        ident = uow.session.execute(
            insert(Contact).values(first_name="Jill", last_name="Valentine").returning(Contact.id)
        ).scalar_one()
        uow.session.execute(
            insert(ContactEmail).values(contact_id=ident, email="jill@stars.example")
        )
    assert titles(crm, "jill@stars.example") == ["Jill Valentine"]


def test_an_entity_without_an_index_defers_nothing(crm):
    with crm.unit_of_work(source="test") as uow:
        with deferred_index(uow.session, "interaction") as new_ids:
            new_ids.add(1)
        if uow.session.get_bind().dialect.name == "sqlite":
            assert uow.session.scalar(text("SELECT paused FROM search_state")) == 0


def test_a_failed_batch_leaves_indexing_on(crm):
    with crm.unit_of_work(source="test") as uow:
        try:
            with deferred_index(uow.session, "contact"):
                raise RuntimeError("the batch failed")
        except RuntimeError:
            pass
        contacts.create(uow, {"first_name": "Chris", "last_name": "Redfield"})
        uow.session.execute(insert(Contact).values(first_name="Barry", last_name="Burton"))
    assert titles(crm, "redfield") == ["Chris Redfield"]
    assert titles(crm, "burton") == ["Barry Burton"]
