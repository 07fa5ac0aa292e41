"""Permissions and record visibility, enforced by the services for every caller."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.models import Role, Team, User
from crm_core.services import contacts, customers, interactions

pytestmark = pytest.mark.plugins()

EDIT = [
    "customer.view",
    "customer.edit",
    "contact.view",
    "contact.edit",
    "interaction.view",
    "interaction.edit",
]


@pytest.fixture
def people(crm):
    """Two teams; users with own, team and all visibility, and a read-only viewer."""
    with crm.unit_of_work() as uow:
        north, south = Team(name="North"), Team(name="South")
        own = Role(name="own", permissions=EDIT, visibility="own")
        team = Role(name="team", permissions=EDIT, visibility="team")
        everything = Role(name="all", permissions=EDIT, visibility="all")
        viewer = Role(name="viewer", permissions=["customer.view"], visibility="all")
        users = {
            "ann": User(email="ann@x.example", team=north, roles=[own]),
            "bob": User(email="bob@x.example", team=north, roles=[team]),
            "cid": User(email="cid@x.example", team=south, roles=[own]),
            "dee": User(email="dee@x.example", roles=[everything]),
            "vic": User(email="vic@x.example", roles=[viewer]),
        }
        uow.session.add_all(users.values())
        uow.session.flush()
    return users


def acting(crm, user):
    return crm.unit_of_work(actor=user, source="api")


def test_new_records_belong_to_their_creator_and_others_cannot_see_them(crm, people):
    with acting(crm, people["ann"]) as uow:
        mine = customers.create(uow, {"name": "Ann's account"})
    assert mine.owner_id == people["ann"].id
    with acting(crm, people["cid"]) as uow:
        theirs = customers.create(uow, {"name": "Cid's account"})
    for name, sees in (
        ("ann", {mine.id}),
        ("bob", {mine.id}),  # same team as ann
        ("cid", {theirs.id}),
        ("dee", {mine.id, theirs.id}),
        ("vic", {mine.id, theirs.id}),
    ):
        seen = set()
        for record in (mine, theirs):
            try:
                with acting(crm, people[name]) as uow:
                    seen.add(customers.get(uow, record.id).id)
            except NotFoundError:
                pass
        assert seen == sees, name


def test_writes_need_permissions_and_visibility(crm, people):
    with acting(crm, people["cid"]) as uow:
        theirs = customers.create(uow, {"name": "Cid's account"})
    with pytest.raises(PermissionDenied), acting(crm, people["vic"]) as uow:
        customers.create(uow, {"name": "Nope"})
    with pytest.raises(PermissionDenied), acting(crm, people["dee"]) as uow:
        customers.archive(uow, theirs.id)  # edit, but not archive
    with pytest.raises(NotFoundError), acting(crm, people["ann"]) as uow:
        customers.update(uow, theirs.id, {"name": "Hijacked"})
    with acting(crm, people["ann"]) as uow:
        result = customers.bulk_update(uow, [(theirs.id, {"name": "Hijacked"})])
    assert result.errors == {0: {"id": [f"No customer with id {theirs.id}."]}}


def test_references_to_invisible_records_are_refused(crm, people):
    with acting(crm, people["cid"]) as uow:
        theirs = customers.create(uow, {"name": "Cid's account"})
        their_contact = contacts.create(uow, {"customer_id": theirs.id, "last_name": "Roe"})
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValidationError) as caught, acting(crm, people["ann"]) as uow:
        contacts.create(uow, {"customer_id": theirs.id, "last_name": "Spy"})
    assert caught.value.messages == {"customer_id": [f"No customer with id {theirs.id}."]}
    with acting(crm, people["ann"]) as uow:
        mine = customers.create(uow, {"name": "Mine"})
    with pytest.raises(ValidationError) as caught, acting(crm, people["ann"]) as uow:
        interactions.create(
            uow,
            {
                "customer_id": mine.id,
                "contact_id": their_contact.id,
                "channel": "call",
                "occurred_at": when,
            },
        )
    assert caught.value.messages == {"contact_id": [f"No contact with id {their_contact.id}."]}
    with acting(crm, people["ann"]) as uow:
        logged = interactions.create(
            uow, {"customer_id": mine.id, "channel": "note", "occurred_at": when}
        )
    assert logged.user_id == people["ann"].id
