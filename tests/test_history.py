"""Audit history: who changed which field from what to what, when, through which channel."""

from __future__ import annotations

import pytest

from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.history import history
from crm_core.models import Role, Team, User
from crm_core.services import contacts, customers, interactions

pytestmark = pytest.mark.plugins()

READ = [
    "customer.view",
    "customer.edit",
    "contact.view",
    "contact.edit",
    "interaction.view",
    "interaction.edit",
    "audit.view",
]


@pytest.fixture
def people(crm) -> dict[str, User]:
    with crm.unit_of_work() as uow:
        north = Team(name="North")
        own = Role(name="own", permissions=READ, visibility="own")
        everything = Role(name="all", permissions=READ, visibility="all")
        blind = Role(name="blind", permissions=["customer.view", "customer.edit"], visibility="all")
        admin = Role(name="admin", permissions=[*READ, "user.admin"], visibility="all")
        users = {
            "ann": User(email="ann@x.example", name="Ann", team=north, roles=[own]),
            "cid": User(email="cid@x.example", name="Cid", roles=[own]),
            "dee": User(email="dee@x.example", roles=[everything]),
            "vic": User(email="vic@x.example", roles=[blind]),
            "root": User(email="root@x.example", roles=[admin]),
        }
        uow.session.add_all(users.values())
    return users


def test_changes_newest_first_with_actor_source_and_fields(crm, people):
    ann = people["ann"]
    with crm.unit_of_work(actor=ann, source="ui") as uow:
        acme = customers.create(uow, {"name": "ACME", "city": "Berlin"})
    with crm.unit_of_work(actor=ann, source="api") as uow:
        customers.update(uow, acme.id, {"city": "Hamburg", "tags": ["vip"]})
    with crm.unit_of_work(source="import") as uow:
        customers.update(uow, acme.id, {"name": "ACME GmbH"})
    with crm.session_factory() as session:
        page = history(session, ann, "customer", acme.id)
    assert page.next_before_id is None
    assert [(e.action, e.source, e.actor_email) for e in page.entries] == [
        ("updated", "import", None),
        ("updated", "api", "ann@x.example"),
        ("created", "ui", "ann@x.example"),
    ]
    assert page.entries[0].changes == {"name": ["ACME", "ACME GmbH"]}
    assert page.entries[1].changes == {"city": ["Berlin", "Hamburg"], "tags": [[], ["vip"]]}
    assert page.entries[1].actor_id == ann.id
    assert page.entries[2].changes["city"] == [None, "Berlin"]
    assert page.entries[0].occurred_at >= page.entries[2].occurred_at
    assert page.entries[0].occurred_at.tzinfo is not None


def test_keyset_pages(crm, people):
    with crm.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "ACME"})
        for number in range(6):
            customers.update(uow, acme.id, {"city": f"City {number}"})
        customers.create(uow, {"name": "Noise"})  # another record's history stays apart
    with crm.session_factory() as session:
        seen = []
        before = None
        while True:
            page = history(session, None, "customer", str(acme.id), before_id=before, limit=3)
            seen += page.entries
            if page.next_before_id is None:
                break
            before = page.next_before_id
        assert len(seen) == 7
        assert [e.id for e in seen] == sorted((e.id for e in seen), reverse=True)
        assert [e.action for e in seen] == ["updated"] * 6 + ["created"]
        for bad in ({"limit": 0}, {"limit": 501}, {"before_id": "x"}, {"limit": True}):
            with pytest.raises(ValidationError):
                history(session, None, "customer", acme.id, **bad)


def test_merges_and_archiving_are_in_the_history(crm):
    with crm.unit_of_work() as uow:
        acme = customers.create(uow, {"name": "ACME"})
        dupe = customers.create(uow, {"name": "Acme", "email": "info@acme.example"})
        customers.merge(uow, acme.id, [dupe.id])
        customers.archive(uow, acme.id)
    with crm.session_factory() as session:
        mine = history(session, None, "customer", acme.id).entries
        theirs = history(session, None, "customer", dupe.id).entries
    assert [e.action for e in mine] == ["archived", "merged", "created"]
    assert mine[1].changes["email"] == [None, "info@acme.example"]
    assert mine[1].changes["merged_ids"] == [None, [dupe.id]]
    assert [e.action for e in theirs] == ["merged_into", "created"]


def test_visibility_and_permissions(crm, people):
    with crm.unit_of_work(actor=people["cid"]) as uow:
        theirs = customers.create(uow, {"name": "Cid's"})
        contact = contacts.create(uow, {"customer_id": theirs.id, "last_name": "Roe"})
        logged = interactions.create(
            uow,
            {"customer_id": theirs.id, "channel": "note", "occurred_at": "2026-01-01T10:00:00Z"},
        )
    with crm.session_factory() as session:
        for entity, ident in (("customer", theirs.id), ("contact", contact.id)):
            # Someone who may not see the record cannot read its history either.
            with pytest.raises(NotFoundError):
                history(session, people["ann"], entity, ident)
            assert history(session, people["cid"], entity, ident).entries
            assert history(session, people["dee"], entity, ident).entries
        with pytest.raises(NotFoundError):
            history(session, people["ann"], "interaction", logged.id)
        assert history(session, people["dee"], "interaction", logged.id).entries
        with pytest.raises(PermissionDenied):
            history(session, people["vic"], "customer", theirs.id)  # no audit.view
        with pytest.raises(NotFoundError):
            history(session, None, "customer", 987654)
        with pytest.raises(NotFoundError):
            history(session, None, "customer", "DROP TABLE")
        for huge in (2**31, 10**30, str(10**30)):
            with pytest.raises(NotFoundError):
                history(session, None, "customer", huge)
        with pytest.raises(ValidationError):
            history(session, None, "customer", theirs.id, before_id=2**63)
        # Users and roles: administrators only.
        with pytest.raises(PermissionDenied):
            history(session, people["dee"], "user", people["ann"].id)
        assert history(session, people["root"], "user", people["ann"].id).next_before_id is None
        with pytest.raises(ValueError):
            history(session, None, "spaceship", 1)


def test_a_plugin_entity_with_its_own_visibility(crm, people):
    """Plugins pass their model and visibility clause (here: users as a stand-in)."""
    with crm.unit_of_work() as uow:
        uow.record("user", "updated", [(people["cid"].id, {"name": ("Cid", "Cidney")})])
    with crm.session_factory() as session:
        visible_only = User.team_id == people["ann"].team_id
        with pytest.raises(NotFoundError):
            history(
                session,
                people["ann"],
                "user",
                people["cid"].id,
                model=User,
                visibility=visible_only,
            )
        page = history(
            session, people["ann"], "user", people["cid"].id, model=User, visibility=None
        )
        assert [(e.action, e.changes) for e in page.entries] == [
            ("updated", {"name": ["Cid", "Cidney"]})
        ]
