"""The team pages (``/admin/teams``): the list with member counts and names, a new team,
renaming, deleting after a confirmation; refused names, ``user.admin``, unknown teams."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import select
from ui_support import count_rows, statement_count

from crm_core.models import AuditEntry, Team, User
from crm_core.testing import UiBrowser, make_user, ui_user

pytestmark = pytest.mark.plugins()


def _add_team(crm, name: str) -> Team:
    with crm.unit_of_work(source="test") as uow:
        team = Team(name=name)
        uow.session.add(team)
        uow.session.flush()
    return team


def _names(crm) -> list[str]:
    with crm.session_factory() as session:
        return sorted(session.scalars(select(Team.name)))


def _team_of(crm, user_id: int) -> int | None:
    with crm.session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user.team_id


def _sources(crm, action: str) -> list[str]:
    with crm.session_factory() as session:
        return list(session.scalars(
            select(AuditEntry.source).where(AuditEntry.entity == "team",
                                            AuditEntry.action == action)
        ))


def test_the_list_shows_each_team_with_its_member_count_and_names(crm, ui):
    north, _south = _add_team(crm, "North"), _add_team(crm, "South")
    ana = make_user(crm, "ana@corp.example", [], team=north)
    make_user(crm, "bo@corp.example", [], team=north)
    page = ui.get("/admin/teams")
    assert "<h1>Teams</h1>" in page and 'href="/admin/teams/new"' in page
    north_row = page[page.index(">North</a>"):page.index(">South</a>")]
    assert "<td>2</td>" in north_row
    assert f'href="/admin/users/{ana.id}/edit">ana</a>' in north_row and ">bo</a>" in north_row
    south_row = page[page.index(">South</a>"):]
    assert "<td>0</td>" in south_row and "nobody yet" in south_row
    assert f'href="/admin/teams/{north.id}/edit"' in page
    assert f'href="/admin/teams/{north.id}/delete"' in page


def test_the_list_without_teams_says_so(crm, ui):
    assert "There are no teams yet." in ui.get("/admin/teams")


def test_a_new_team_is_created_through_the_form(crm, ui):
    form = ui.get("/admin/teams/new")
    assert 'name="name"' in form and "Create team" in form and "csrf_token" in form
    response = ui.post("/admin/teams/new", {"name": "  North  "})
    assert response.headers["Location"] == "/admin/teams"
    assert "The team North was created." in ui.get("/admin/teams")
    assert _names(crm) == ["North"]
    assert _sources(crm, "created") == ["ui"]


def test_a_name_another_team_has_in_another_case_is_refused_with_its_message(crm, ui):
    _add_team(crm, "North")
    page = ui.post("/admin/teams/new", {"name": "NORTH"}, status=422).get_data(as_text=True)
    assert 'id="name-errors"' in page and "A team with this name exists already." in page
    assert 'value="NORTH"' in page  # what was typed stays in the field
    page = ui.post("/admin/teams/new", {"name": "  "}, status=422).get_data(as_text=True)
    assert 'id="name-errors"' in page and "Must not be empty." in page
    page = ui.post("/admin/teams/new", {"name": "n" * 121}, status=422).get_data(as_text=True)
    assert "Longer than maximum length 120." in page
    assert _names(crm) == ["North"]
    assert _sources(crm, "created") == []


def test_a_team_is_renamed_through_the_form(crm, ui):
    north, _south = _add_team(crm, "North"), _add_team(crm, "South")
    ana = make_user(crm, "ana@corp.example", [], team=north)
    form = ui.get(f"/admin/teams/{north.id}/edit")
    assert 'value="North"' in form and "Rename the team North" in form
    assert f'href="/admin/users/{ana.id}/edit">ana</a>' in form
    assert f'href="/admin/teams/{north.id}/delete"' in form
    page = ui.post(f"/admin/teams/{north.id}/edit", {"name": "south"}, status=422)
    assert "A team with this name exists already." in page.get_data(as_text=True)
    response = ui.post(f"/admin/teams/{north.id}/edit", {"name": "Northwest"})
    assert response.headers["Location"] == "/admin/teams"
    assert "The team Northwest was saved." in ui.get("/admin/teams")
    assert _names(crm) == ["Northwest", "South"]
    assert _team_of(crm, ana.id) == north.id
    assert _sources(crm, "updated") == ["ui"]


def test_a_team_is_deleted_after_a_confirmation_and_its_members_stay(crm, ui):
    north, south = _add_team(crm, "North"), _add_team(crm, "South")
    ana = make_user(crm, "ana@corp.example", [], team=north)
    bo = make_user(crm, "bo@corp.example", [], team=north)
    cy = make_user(crm, "cy@corp.example", [], team=south)
    page = ui.get(f"/admin/teams/{north.id}/delete")
    assert "Delete the team North?" in page and "Its 2 members keep their accounts" in page
    assert 'method="post"' in page and 'name="csrf_token"' in page
    assert _names(crm) == ["North", "South"]  # asking deletes nothing
    # Without the CSRF token the POST is refused.
    assert ui.client.post(f"/admin/teams/{north.id}/delete").status_code == 400
    assert _names(crm) == ["North", "South"]
    response = ui.post(f"/admin/teams/{north.id}/delete", {})
    assert response.headers["Location"] == "/admin/teams"
    listed = ui.get("/admin/teams")
    assert "The team North was deleted; its 2 members now have no team." in listed
    assert _names(crm) == ["South"]
    assert _team_of(crm, ana.id) is None and _team_of(crm, bo.id) is None
    assert _team_of(crm, cy.id) == south.id
    assert count_rows(crm, User, User.id.in_([ana.id, bo.id])) == 2
    assert _sources(crm, "deleted") == ["ui"]
    ui.post(f"/admin/teams/{south.id}/delete", {})
    assert "The team South was deleted; its 1 member now has no team." in ui.get("/admin/teams")
    empty = _add_team(crm, "Empty")
    ui.post(f"/admin/teams/{empty.id}/delete", {})
    assert "The team Empty was deleted." in ui.get("/admin/teams")


def test_team_names_are_escaped(crm, ui):
    team = _add_team(crm, "<b>R&D</b>")
    for path in ("/admin/teams", f"/admin/teams/{team.id}/edit", f"/admin/teams/{team.id}/delete"):
        page = ui.get(path)
        assert "<b>R&D</b>" not in page and html.escape("<b>R&D</b>") in page, path


def test_unknown_teams_are_not_found(crm, ui):
    for ident in (999999, 2**40):
        ui.get(f"/admin/teams/{ident}/edit", status=404)
        ui.get(f"/admin/teams/{ident}/delete", status=404)
        ui.post(f"/admin/teams/{ident}/edit", {"name": "x"}, status=404)
        ui.post(f"/admin/teams/{ident}/delete", {}, status=404)
    assert "There is no team 999999" in ui.get("/admin/teams/999999/edit", status=404)


def test_the_team_pages_need_user_admin(crm, client):
    north = _add_team(crm, "North")
    ui_user(crm, "hooks@ui.example", ["webhook.admin", "customer.view"])
    browser = UiBrowser(client, "hooks@ui.example")
    browser.get("/admin/teams", status=403)
    browser.get("/admin/teams/new", status=403)
    browser.post("/admin/teams/new", {"name": "Sneaky"}, status=403)
    browser.get(f"/admin/teams/{north.id}/edit", status=403)
    browser.post(f"/admin/teams/{north.id}/edit", {"name": "Sneaky"}, status=403)
    browser.get(f"/admin/teams/{north.id}/delete", status=403)
    browser.post(f"/admin/teams/{north.id}/delete", {}, status=403)
    browser.get("/admin/teams/999999/edit", status=403)  # no peeking at which ids exist
    assert _names(crm) == ["North"]


def test_the_list_takes_as_many_queries_for_many_teams_as_for_few(crm, ui):
    first = _add_team(crm, "Team 00")
    make_user(crm, "one@corp.example", [], team=first)
    few = statement_count(crm, lambda: ui.get("/admin/teams"))
    for number in range(1, 16):
        team = _add_team(crm, f"Team {number:02d}")
        for member in range(3):
            make_user(crm, f"m{number}-{member}@corp.example", [], team=team)
    many = ui.get("/admin/teams")
    assert "Team 15" in many and ">m15-2</a>" in many
    assert statement_count(crm, lambda: ui.get("/admin/teams")) == few, few
