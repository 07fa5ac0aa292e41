"""Search: prefix, exact, word and fuzzy matches, ranking, visibility, plugins, query plans."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select

from crm_core import ValidationError, search
from crm_core.authz import visible
from crm_core.extensions import SearchProvider, SearchResult
from crm_core.models import Contact, Customer, Role, Team, User
from crm_core.search import SearchQuery, matching, search_contacts, search_customers
from crm_core.services import contacts, customers, interactions
from crm_core.testing import plugin_module

pytestmark = pytest.mark.plugins()

VIEW = [
    "customer.view",
    "customer.edit",
    "contact.view",
    "contact.edit",
    "interaction.view",
    "interaction.edit",
]


def titles(results: list[SearchResult]) -> list[str]:
    return [result.title for result in results]


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    return {"default_phone_region": "DE"}


@pytest.fixture
def book(crm) -> dict[str, Any]:
    """Customers and contacts with names, emails, phones and cities to find."""
    with crm.unit_of_work() as uow:
        made = {
            "acme": customers.create(
                uow,
                {
                    "name": "ACME GmbH",
                    "email": "info@acme.example",
                    "phone": "030 1234567",
                    "city": "Berlin",
                    "country": "DE",
                },
            ),
            "industries": customers.create(uow, {"name": "Acme Industries", "city": "Hamburg"}),
            "acmetal": customers.create(uow, {"name": "Acmetal"}),
            "big": customers.create(uow, {"name": "Big ACME Corp"}),
            "mueller": customers.create(
                uow, {"name": "Müller Maschinenbau AG", "email": "kontakt@mueller.example"}
            ),
            "schmidt": customers.create(uow, {"name": "Schmidt & Söhne", "city": "München"}),
        }
        made["jane"] = contacts.create(
            uow,
            {
                "customer_id": made["acme"].id,
                "first_name": "Jane",
                "last_name": "Doe",
                "emails": [{"email": "jane@acme.example"}],
                "phones": [{"number": "+49 151 2345678"}],
            },
        )
        made["john"] = contacts.create(
            uow,
            {
                "customer_id": made["schmidt"].id,
                "first_name": "John",
                "last_name": "Smith",
                "emails": [{"email": "john.smith@schmidt.example"}, {"email": "js@home.example"}],
            },
        )
    return made


def run(crm, query: str, **kwargs: Any) -> list[SearchResult]:
    with crm.session_factory() as session:
        return search.search(crm, session, None, query, **kwargs)


def test_exact_and_prefix_matches_rank_before_word_matches(crm, book):
    found = run(crm, "acme")
    assert [(r.entity, r.title, r.score) for r in found] == [
        ("customer", "ACME GmbH", 0.9),
        ("customer", "Acme Industries", 0.9),
        ("customer", "Acmetal", 0.9),
        ("customer", "Big ACME Corp", 0.8),
        ("contact", "Jane Doe", 0.7),  # works for ACME GmbH, mail at acme.example
    ]
    assert found[0].id == book["acme"].id
    assert found[0].subtitle == "info@acme.example · Berlin"
    assert run(crm, "ACME GMBH")[0].score == 1.0  # the whole name
    assert titles(run(crm, "acme ind")) == ["Acme Industries"]
    assert titles(run(crm, "a", entities=["customer"])) == [
        "ACME GmbH",
        "Acme Industries",
        "Acmetal",
    ]
    assert titles(run(crm, "gmbh")) == ["ACME GmbH", "Jane Doe"]


def test_emails_phones_and_cities_are_found(crm, book):
    assert [(r.title, r.score) for r in run(crm, "INFO@acme.example")] == [("ACME GmbH", 1.0)]
    assert titles(run(crm, "info@acme")) == ["ACME GmbH"]  # an email typed half-way
    # The phone as typed, and the same number written internationally (E.164 match).
    for typed in ("030 1234567", "+49 30 1234567", "+49 (0)30 123 45 67", "0049301234567"):
        assert [(r.title, r.score) for r in run(crm, typed)] == [("ACME GmbH", 1.0)], typed
    assert titles(run(crm, "1234567")) == ["ACME GmbH"]
    assert titles(run(crm, "hamb")) == ["Acme Industries"]
    assert titles(run(crm, "munchen")) == ["Schmidt & Söhne"]


def test_contacts_by_name_email_phone_and_company(crm, book):
    assert titles(run(crm, "jane")) == ["Jane Doe"]
    assert titles(run(crm, "doe")) == ["Jane Doe"]
    assert titles(run(crm, "jane@acme.example")) == ["Jane Doe"]
    assert titles(run(crm, "js@home.example")) == ["John Smith"]
    assert titles(run(crm, "0151 2345678")) == ["Jane Doe"]  # national format, region DE
    assert titles(run(crm, "smith schmidt")) == ["John Smith"]  # name and company
    found = run(crm, "john", entities=["contact"])
    assert [(r.title, r.subtitle) for r in found] == [
        ("John Smith", "Schmidt & Söhne · john.smith@schmidt.example")
    ]
    with crm.session_factory() as session:
        assert [c.id for c in search_contacts(session, None, "SMI")] == [book["john"].id]


def test_diacritics_and_typos(crm, book):
    assert titles(run(crm, "muller")) == ["Müller Maschinenbau AG"]
    assert titles(run(crm, "MÜLLER masch")) == ["Müller Maschinenbau AG"]
    assert titles(run(crm, "sohne")) == ["Schmidt & Söhne", "John Smith"]
    typo = run(crm, "Schmitd")
    assert titles(typo) == ["Schmidt & Söhne"]
    assert 0 < typo[0].score < 0.6  # fuzzy hits rank below every exact, prefix or word hit
    assert titles(run(crm, "Mueler")) == ["Müller Maschinenbau AG"]
    assert titles(run(crm, "Industires")) == ["Acme Industries"]
    assert titles(run(crm, "Jnae Doe")) == ["Jane Doe"]
    assert run(crm, "Xylophon") == []
    assert run(crm, "   ") == []


def test_archived_and_merged_records_are_left_out(crm, book):
    with crm.unit_of_work() as uow:
        customers.archive(uow, book["acmetal"].id)
        customers.merge(uow, book["acme"].id, [book["big"].id])
        contacts.archive(uow, book["jane"].id)
    assert titles(run(crm, "acme")) == ["ACME GmbH", "Acme Industries"]


def test_the_index_follows_every_write(crm, book):
    with crm.unit_of_work() as uow:
        customers.update(uow, book["schmidt"].id, {"name": "Schneider KG", "city": "Köln"})
        contacts.update(
            uow, book["jane"].id, {"last_name": "Roe", "emails": [{"email": "jane@roe.example"}]}
        )
        customers.bulk_create(uow, [{"name": "Zeppelin Werke"}, {"name": "Zebra Ltd"}])
    assert run(crm, "sohne") == []
    assert titles(run(crm, "schneider")) == ["Schneider KG", "John Smith"]  # his company's new name
    assert titles(run(crm, "koln")) == ["Schneider KG"]
    assert run(crm, "jane@acme.example") == []
    assert titles(run(crm, "jane roe")) == ["Jane Roe"]
    assert titles(run(crm, "jane@roe")) == ["Jane Roe"]
    assert titles(run(crm, "ze")) == ["Zebra Ltd", "Zeppelin Werke"]


@pytest.fixture
def people(crm) -> dict[str, User]:
    with crm.unit_of_work() as uow:
        north = Team(name="North")
        own = Role(name="own", permissions=VIEW, visibility="own")
        team = Role(name="team", permissions=VIEW, visibility="team")
        no_contacts = Role(name="no-contacts", permissions=["customer.view"], visibility="all")
        users = {
            "ann": User(email="ann@x.example", team=north, roles=[own]),
            "bob": User(email="bob@x.example", team=north, roles=[team]),
            "cid": User(email="cid@x.example", roles=[own]),
            "vic": User(email="vic@x.example", roles=[no_contacts]),
        }
        uow.session.add_all(users.values())
    return users


def test_users_only_ever_find_what_they_may_see(crm, people):
    records = {}
    for name in ("ann", "cid"):
        with crm.unit_of_work(actor=people[name]) as uow:
            mine = customers.create(
                uow, {"name": f"Globex {name}", "email": f"{name}@globex.example"}
            )
            contacts.create(uow, {"customer_id": mine.id, "last_name": f"Globex-{name}"})
            records[name] = mine
    for name, sees in (
        ("ann", {"ann"}),
        ("bob", {"ann"}),
        ("cid", {"cid"}),
        ("vic", {"ann", "cid"}),
    ):
        actor = people[name]
        with crm.session_factory() as session:
            found = search.search(crm, session, actor, "globex")
            by_mail = search.search(crm, session, actor, "cid@globex.example")
            listed = search_customers(session, actor, "glob")
            fuzzy = search_customers(session, actor, "Glbex")
            in_list = session.scalars(
                select(Customer.name).where(
                    matching("customer", "globex"), visible(actor, "customer")
                )
            ).all()
        expected = {f"Globex {who}" for who in sees}
        assert {r.title for r in found if r.entity == "customer"} == expected, name
        contacts_seen = {r.title for r in found if r.entity == "contact"}
        assert contacts_seen == (set() if name == "vic" else {f"Globex-{who}" for who in sees})
        assert {r.title for r in by_mail} == ({"Globex cid"} & expected)
        assert {c.name for c in listed} == {c.name for c in fuzzy} == set(in_list) == expected




CALLS: list[tuple[Any, str, int]] = []


def _search_tickets(session, actor, query, limit):
    CALLS.append((actor, query, limit))
    assert isinstance(query, SearchQuery) and query.words
    tickets = {"T-100": "Printer on fire at ACME", "T-200": "Acme invoice"}
    return [
        SearchResult("ticket", key, title, score=0.95 if key.lower() == query.lower() else 0.75)
        for key, title in tickets.items()
        if query.lower() in title.lower() or query.lower() == key.lower()
    ][:limit]


class TestPluginProviders:
    """A plugin's provider joins the global search."""

    @pytest.fixture
    def crm_plugin_modules(self) -> list[types.ModuleType]:
        CALLS.clear()

        def crm_register_search_providers():
            return [SearchProvider("ticket", _search_tickets, permission="customer.edit")]

        return [
            plugin_module("helpdesk", crm_register_search_providers=crm_register_search_providers)
        ]

    def test_plugins_search_their_entities_with_the_same_ranking(self, crm, book, people):
        assert set(crm.registry.search_providers) == {"customer", "contact", "ticket"}
        found = run(crm, "acme", limit=4)
        assert [(r.entity, r.title) for r in found] == [
            ("customer", "ACME GmbH"),
            ("customer", "Acme Industries"),
            ("customer", "Acmetal"),
            ("customer", "Big ACME Corp"),
        ]
        found = run(crm, "acme", limit=10)
        assert [r.entity for r in found][4:] == ["ticket", "ticket", "contact"]
        assert [(r.entity, r.id) for r in run(crm, "t-200")] == [("ticket", "T-200")]
        assert CALLS[0][0] is None and CALLS[0][2] == 4
        # Only the entities asked for; a provider is skipped without its permission.
        assert {r.entity for r in run(crm, "acme", entities=["ticket", "contact"])} == {
            "ticket",
            "contact",
        }
        with crm.session_factory() as session:
            assert {r.entity for r in search.search(crm, session, people["vic"], "acme")} == {
                "customer"
            }
            assert CALLS[-1][0] is None  # vic (no customer.edit) never reached the provider
        with pytest.raises(ValidationError) as caught, crm.session_factory() as session:
            search.search(crm, session, None, "acme", entities=["customer", "spaceship"])
        assert "spaceship" in caught.value.messages["entities"][0]


def test_matching_filters_keyset_lists(crm, book):
    with crm.session_factory() as session:

        def names(entity: str, query: str) -> list[str]:
            model: Any = Customer if entity == "customer" else Contact
            order = model.name if entity == "customer" else model.last_name
            return list(
                session.scalars(
                    select(order).where(matching(entity, query)).order_by(order, model.id)
                )
            )

        assert names("customer", "acme") == [
            "ACME GmbH",
            "Acme Industries",
            "Acmetal",
            "Big ACME Corp",
        ]
        assert names("customer", "acm gm") == ["ACME GmbH"]
        assert names("customer", "+49301234567") == ["ACME GmbH"]
        assert names("customer", "030 1234567") == ["ACME GmbH"]  # the number as typed
        assert names("customer", "0301234567") == []  # no region given: not read as E.164
        with pytest.raises(ValueError):
            matching("interaction", "x")
    with crm.session_factory() as session:
        clause = matching("customer", "0301234567", region="DE")
        assert session.scalars(select(Customer.name).where(clause)).all() == ["ACME GmbH"]
        assert session.scalars(
            select(Contact.last_name).where(matching("contact", "acme"))
        ).all() == ["Doe"]
        assert session.scalars(select(Contact.last_name).where(matching("contact", "s"))).all() == [
            "Smith"
        ]


def test_limits(crm, book):
    assert len(run(crm, "acme", limit=2)) == 2
    assert len(run(crm, "acme", limit=10_000)) == 5  # at most MAX_LIMIT
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValidationError), crm.session_factory() as session:
            search.search(crm, session, None, "acme", limit=bad)
    assert SearchQuery("x" * 500) == "x" * search.MAX_QUERY_LENGTH


# -- query plans ---------------------------------------------------------------------------

#: The tables whose full scan would make a query slow on a big database.
BIG_TABLES = ("customer", "contact", "contact_email", "contact_phone", "interaction")


@contextmanager
def captured_selects(session) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements ``session`` runs in the block, with their parameters."""
    statements: list[tuple[str, Any]] = []
    connection = session.connection()

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", record)


def plans(session, statements: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """``(statement, plan)`` of each statement, the plan as text."""
    connection = session.connection()
    result = []
    for statement, parameters in statements:
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = "\n".join(row[3] for row in rows)
        else:
            rows = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plan = json.dumps(rows.scalar())
        result.append((statement, plan))
    return result


def test_main_queries_use_indexes(crm, book, people):
    """The list page, name-prefix and email search and a timeline page read indexes only.

    SQLite: ``EXPLAIN QUERY PLAN`` shows index searches and FTS5 virtual tables, never a
    ``SCAN`` of a big table nor a sort of it. PostgreSQL chooses by statistics (a test
    table is tiny), so with sequential scans discouraged each query must be able to use
    the index built for it.
    """
    from crm_core import timeline

    actor = people["bob"]  # team visibility: a filter on the owner
    with crm.unit_of_work() as uow:
        interactions.create(
            uow,
            {
                "customer_id": book["acme"].id,
                "channel": "call",
                "occurred_at": "2026-05-04T10:00:00Z",
            },
        )
    with crm.session_factory() as session:
        sqlite = session.get_bind().dialect.name == "sqlite"
        if not sqlite:
            session.execute(select(1))
            session.connection().exec_driver_sql("SET LOCAL enable_seqscan = off")
        cases: dict[str, list[tuple[str, str]]] = {}
        for label, run_query in {
            "list": lambda: session.scalars(
                select(Customer)
                .where(visible(None, "customer"), Customer.archived.is_(False))
                .order_by(Customer.name, Customer.id)
                .limit(51)
            ).all(),
            "name prefix": lambda: search_customers(session, None, "Acme Ind"),
            "email": lambda: search_customers(session, None, "info@acme.example"),
            "words": lambda: search_customers(session, None, "industries"),
            "own name prefix": lambda: search_customers(session, actor, "Acme"),
            "timeline": lambda: timeline.timeline(crm, session, None, book["acme"].id, limit=20),
        }.items():
            with captured_selects(session) as statements:
                run_query()
            cases[label] = plans(session, statements)

    def main(label: str, table: str) -> str:
        """The plan of the case's first query of ``table`` (the others load related rows)."""
        pattern = re.compile(rf"\bFROM {table}\b")
        return next(plan for statement, plan in cases[label] if pattern.search(statement))

    if sqlite:
        for label, found in cases.items():
            for statement, plan in found:
                scans = [
                    line
                    for line in plan.splitlines()
                    if re.match(rf"SCAN ({'|'.join(BIG_TABLES)})\b", line)
                ]
                assert not scans, f"{label}: {statement}\n{plan}"
        assert main("list", "customer") == (
            "SEARCH customer USING INDEX ix_customer_archived_name (archived=?)"
        )
        assert main("name prefix", "customer") == (
            "SEARCH customer USING INDEX ix_search_customer_name (name>? AND name<?)"
        )
        assert (
            main("email", "customer") == "SEARCH customer USING INDEX ix_customer_email (email=?)"
        )
        words = [plan for statement, plan in cases["words"] if "search_customer" in statement]
        assert words and words[0].startswith("SCAN search_customer VIRTUAL TABLE INDEX")
        assert "SEARCH customer USING INTEGER PRIMARY KEY" in words[0]
        assert main("timeline", "interaction") == (
            "SEARCH interaction USING INDEX ix_interaction_customer_id_occurred_at (customer_id=?)"
        )
        assert "TEMP B-TREE" not in main("timeline", "interaction")
    else:
        assert "ix_customer_archived_name" in main("list", "customer")
        assert "ix_search_customer_name" in main("name prefix", "customer")
        assert "ix_customer_email" in main("email", "customer")
        words = [plan for statement, plan in cases["words"] if "translate(lower(" in statement]
        assert words and "ix_search_customer_document" in words[0]
        assert "ix_interaction_customer_id_occurred_at" in main("timeline", "interaction")


@pytest.mark.parametrize(
    "query",
    [
        "a" * 5000,
        "%_\\",
        "'; DROP TABLE customer; --",
        '"*',
        "NEAR(acme gmbh)",
        "acme AND OR NOT",
        "x@",
        "@",
        "+",
        "()",
        "😀 acme",
        "名字",
        "\x00acme\udcff",
    ],
)
def test_any_text_is_a_query(crm, book, query):
    found = run(crm, query)
    assert all(0 < hit.score <= 1 for hit in found)
    with crm.session_factory() as session:
        for entity, model in (("customer", Customer), ("contact", Contact)):
            session.scalars(select(model.id).where(matching(entity, query))).all()
