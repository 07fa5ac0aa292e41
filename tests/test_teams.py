"""Teams through ``crm_core.services.teams``: names unique whatever the case, renaming,
deleting (members stay, without a team), membership, the audit trail, ``user.admin``."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.models import AuditEntry, OutboxEvent, Team, User
from crm_core.services import teams
from crm_core.testing import make_user

pytestmark = pytest.mark.plugins()


def _team(crm, name: str) -> Team:
    with crm.unit_of_work(source="test") as uow:
        return teams.create(uow, {"name": name})


def _audit(crm, entity: str, action: str | None = None) -> list[tuple[str, str, dict]]:
    with crm.session_factory() as session:
        query = select(AuditEntry).where(AuditEntry.entity == entity).order_by(AuditEntry.id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return [(e.entity_id, e.action, e.changes) for e in session.scalars(query)]


def _team_of(crm, user_id: int) -> int | None:
    with crm.session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.team_id


def test_a_team_is_created_with_its_name_trimmed_and_audited(crm):
    with crm.unit_of_work(source="test") as uow:
        team = teams.create(uow, {"name": "  North  "})
    assert team.id and team.name == "North"
    assert _audit(crm, "team") == [(str(team.id), "created", {"name": [None, "North"]})]
    with crm.session_factory() as session:
        assert session.scalar(select(OutboxEvent.type).where(OutboxEvent.entity == "team")) == (
            "team.created"
        )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Must not be empty."),
        ("   ", "Must not be empty."),
        ("n" * 121, "Longer than maximum length 120."),
        (None, "Field may not be null."),
    ],
)
def test_a_name_must_be_given_and_fit(crm, name, message):
    with crm.unit_of_work(source="test") as uow, pytest.raises(ValidationError) as refused:
        teams.create(uow, {"name": name})
    assert refused.value.messages["name"] == [message]
    with crm.unit_of_work(source="test") as uow, pytest.raises(ValidationError) as refused:
        teams.create(uow, {})
    assert list(refused.value.messages) == ["name"]


def test_a_name_of_exactly_120_characters_is_fine(crm):
    assert _team(crm, "n" * 120).name == "n" * 120


@pytest.mark.parametrize("taken", ["North", "NORTH", " north ", "nOrTh"])
def test_names_are_unique_whatever_the_case(crm, taken):
    _team(crm, "north")
    with crm.unit_of_work(source="test") as uow, pytest.raises(ValidationError) as refused:
        teams.create(uow, {"name": taken})
    assert refused.value.messages == {"name": ["A team with this name exists already."]}


def test_names_beyond_ascii_are_compared_whatever_the_case(crm):
    _team(crm, "Ärzte Süd")
    with crm.unit_of_work(source="test") as uow, pytest.raises(ValidationError):
        teams.create(uow, {"name": "ärzte süd"})


def test_a_team_is_renamed_and_the_rename_audited(crm):
    north = _team(crm, "North")
    _team(crm, "South")
    with crm.unit_of_work(source="test") as uow:
        teams.update(uow, north.id, {"name": "north"})  # its own name in another case
        teams.update(uow, north.id, {"name": "Northwest "})
        teams.update(uow, north.id, {"name": "Northwest"})  # no change: no entry
        teams.update(uow, north.id, {})
    assert [(action, changes) for _id, action, changes in _audit(crm, "team", "updated")] == [
        ("updated", {"name": ["North", "north"]}),
        ("updated", {"name": ["north", "Northwest"]}),
    ]
    with crm.unit_of_work(source="test") as uow, pytest.raises(ValidationError) as refused:
        teams.update(uow, north.id, {"name": "SOUTH"})
    assert refused.value.messages == {"name": ["A team with this name exists already."]}
    with crm.unit_of_work(source="test") as uow, pytest.raises(ValidationError) as refused:
        teams.update(uow, north.id, {"name": ""})
    assert refused.value.messages == {"name": ["Must not be empty."]}
    with crm.session_factory() as session:
        assert session.get(Team, north.id).name == "Northwest"


def test_the_list_has_every_team_by_name_with_its_member_count(crm):
    south, north, empty = _team(crm, "south"), _team(crm, "North"), _team(crm, "Empty")
    make_user(crm, "a@x.example", [], team=north)
    make_user(crm, "b@x.example", [], team=north)
    make_user(crm, "c@x.example", [], team=south)
    make_user(crm, "loner@x.example", [])
    with crm.unit_of_work(source="test") as uow:
        listed = teams.list_teams(uow)
        found = teams.members(uow, [s.team.id for s in listed])
        assert teams.members(uow, []) == {}
    assert [(s.team.name, s.member_count) for s in listed] == [
        ("Empty", 0), ("North", 2), ("south", 1)
    ]
    assert [m.email for m in found[north.id]] == ["a@x.example", "b@x.example"]
    assert [m.label for m in found[south.id]] == ["c"]
    assert empty.id not in found


def test_deleting_a_team_keeps_its_members_without_a_team(crm):
    north, south = _team(crm, "North"), _team(crm, "South")
    ana = make_user(crm, "ana@x.example", [], team=north)
    bo = make_user(crm, "bo@x.example", [], team=north)
    cy = make_user(crm, "cy@x.example", [], team=south)
    with crm.unit_of_work(source="test") as uow:
        assert teams.delete(uow, north.id) == sorted([ana.id, bo.id])
    with crm.session_factory() as session:
        assert session.get(Team, north.id) is None
        assert session.get(Team, south.id) is not None
    assert _team_of(crm, ana.id) is None and _team_of(crm, bo.id) is None
    assert _team_of(crm, cy.id) == south.id
    assert _audit(crm, "team", "deleted") == [
        (str(north.id), "deleted", {"name": ["North", None], "members": [[ana.id, bo.id], []]})
    ]
    assert sorted(_audit(crm, "user", "updated")) == sorted(
        (str(user.id), "updated", {"team_id": [north.id, None]}) for user in (ana, bo)
    )
    # The name is free again.
    assert _team(crm, "north").name == "north"


def test_unknown_teams_are_not_found(crm):
    for ident in (999999, 0, -1, 2**40, "abc", None):
        with crm.unit_of_work(source="test") as uow, pytest.raises(NotFoundError):
            teams.get(uow, ident)
    with crm.unit_of_work(source="test") as uow, pytest.raises(NotFoundError):
        teams.update(uow, 999999, {"name": "x"})
    with crm.unit_of_work(source="test") as uow, pytest.raises(NotFoundError):
        teams.delete(uow, 999999)
    with crm.unit_of_work(source="test") as uow, pytest.raises(NotFoundError):
        teams.set_members(uow, 999999, [])


def test_set_members_makes_exactly_the_given_users_members(crm):
    north, south = _team(crm, "North"), _team(crm, "South")
    ana = make_user(crm, "ana@x.example", [], team=north)
    bo = make_user(crm, "bo@x.example", [], team=north)
    cy = make_user(crm, "cy@x.example", [], team=south)
    dee = make_user(crm, "dee@x.example", [])
    with crm.unit_of_work(source="test") as uow:
        teams.set_members(uow, north.id, [ana.id, str(cy.id), dee.id])
    assert [_team_of(crm, u.id) for u in (ana, bo, cy, dee)] == [north.id, None, north.id, north.id]
    assert sorted(_audit(crm, "user", "updated")) == sorted([
        (str(bo.id), "updated", {"team_id": [north.id, None]}),
        (str(cy.id), "updated", {"team_id": [south.id, north.id]}),
        (str(dee.id), "updated", {"team_id": [None, north.id]}),
    ])
    assert _audit(crm, "team", "updated") == [
        (str(north.id), "updated",
         {"members": [sorted([ana.id, bo.id]), sorted([ana.id, cy.id, dee.id])]}),
    ]
    with crm.unit_of_work(source="test") as uow:
        teams.set_members(uow, north.id, [dee.id, cy.id, ana.id])  # the same: nothing written
    assert len(_audit(crm, "team", "updated")) == 1
    with crm.unit_of_work(source="test") as uow:
        teams.set_members(uow, north.id, [])
    assert [_team_of(crm, u.id) for u in (ana, cy, dee)] == [None, None, None]


def test_set_members_refuses_unknown_users_and_changes_nothing(crm):
    north = _team(crm, "North")
    ana = make_user(crm, "ana@x.example", [], team=north)
    bo = make_user(crm, "bo@x.example", [])
    with crm.unit_of_work(source="test") as uow, pytest.raises(ValidationError) as refused:
        teams.set_members(uow, north.id, [bo.id, 999999, "abc"])
    assert refused.value.messages == {"user_ids": ["No such user: abc, 999999."]}
    assert _team_of(crm, ana.id) == north.id and _team_of(crm, bo.id) is None


def test_every_team_function_needs_user_admin(crm):
    north = _team(crm, "North")
    clerk = make_user(crm, "clerk@x.example", ["customer.view", "customer.edit"])
    calls = [
        lambda uow: teams.list_teams(uow),
        lambda uow: teams.members(uow, [north.id]),
        lambda uow: teams.get(uow, north.id),
        lambda uow: teams.create(uow, {"name": "Sneaky"}),
        lambda uow: teams.update(uow, north.id, {"name": "Sneaky"}),
        lambda uow: teams.delete(uow, north.id),
        lambda uow: teams.set_members(uow, north.id, [clerk.id]),
    ]
    for call in calls:
        with crm.unit_of_work(actor=clerk, source="test") as uow, pytest.raises(PermissionDenied):
            call(uow)
    with crm.session_factory() as session:
        assert list(session.scalars(select(Team.name))) == ["North"]
    admin = make_user(crm, "admin@x.example", ["user.admin"])
    with crm.unit_of_work(actor=admin, source="test") as uow:
        teams.update(uow, north.id, {"name": "Northern"})
    with crm.session_factory() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "updated",
                                                        AuditEntry.entity == "team"))
        assert entry.actor_id == admin.id and entry.source == "test"


def test_a_name_taken_meanwhile_by_another_transaction_is_refused_not_a_database_error(
    crm, monkeypatch
):
    _team(crm, "North")
    # As if a concurrent transaction committed "North" after the check ran.
    monkeypatch.setattr(teams, "_check_name", lambda uow, team, name: None)
    south = _team(crm, "South")
    with crm.unit_of_work(source="test") as uow:
        with pytest.raises(ValidationError) as refused:
            teams.create(uow, {"name": "North"})
        assert refused.value.messages == {"name": ["A team with this name exists already."]}
        with pytest.raises(ValidationError):
            teams.update(uow, south.id, {"name": "North"})
        # The unit of work goes on: only the savepoint was rolled back.
        teams.create(uow, {"name": "West"})
    with crm.session_factory() as session:
        assert sorted(session.scalars(select(Team.name))) == ["North", "South", "West"]
