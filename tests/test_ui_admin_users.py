"""Changing users and roles in the UI, through ``crm_core.services.users``: a user's name,
roles and team, deactivating and reactivating them, and creating and changing roles.

Refused forms show each field's message and change nothing; nobody can lock themselves
out (deactivate themself, or take ``user.admin`` away from themself).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from ui_support import loyalty_plugin

from crm_core.models import AuditEntry, Role, Team, User
from crm_core.testing import UiBrowser, api_token, make_user, ui_user


@pytest.fixture
def crm_plugin_modules() -> list[Any]:
    """A plugin with a permission of its own, to group the role form's checkboxes by."""
    return [loyalty_plugin()]


@pytest.fixture
def team(crm: Any) -> Team:
    with crm.unit_of_work(source="test") as uow:
        north = Team(name="North")
        uow.session.add(north)
        uow.session.flush()
    return north


def _user(crm: Any, email: str) -> User:
    with crm.session_factory() as session:
        found = session.scalar(select(User).where(User.email == email))
        assert found is not None
        return found


def _role(crm: Any, name: str) -> Role | None:
    with crm.session_factory() as session:
        return session.scalar(select(Role).where(Role.name == name))


def _audit(crm: Any, entity: str, action: str) -> list[str]:
    with crm.session_factory() as session:
        return list(session.scalars(
            select(AuditEntry.source).where(AuditEntry.entity == entity,
                                            AuditEntry.action == action)
        ))


# -- changing a user ------------------------------------------------------------------------------


def test_a_users_name_roles_and_team_are_changed_through_the_form(crm, ui, default_roles, team):
    target = make_user(crm, "ana@corp.example", ["customer.view"])
    listed = ui.get("/admin/users")
    assert f'href="/admin/users/{target.id}/edit">ana</a>' in listed
    form = ui.get(f"/admin/users/{target.id}/edit")
    assert 'value="role-ana@corp.example" checked' in form and 'value="sales"' in form
    assert f'<option value="{team.id}">North</option>' in form
    response = ui.post(
        f"/admin/users/{target.id}/edit",
        {"name": "Ana Nowak", "roles": ["sales", "viewer"], "team_id": str(team.id)},
    )
    assert response.headers["Location"] == "/admin/users"
    assert "ana@corp.example was saved." in ui.get("/admin/users")
    stored = _user(crm, "ana@corp.example")
    assert stored.name == "Ana Nowak" and stored.team_id == team.id
    assert sorted(role.name for role in stored.roles) == ["sales", "viewer"]
    assert _audit(crm, "user", "updated") == ["ui"]
    ui.post(f"/admin/users/{target.id}/edit", {"name": "Ana Nowak", "team_id": ""})
    stored = _user(crm, "ana@corp.example")
    assert stored.team_id is None and stored.roles == []


def test_a_refused_user_change_shows_each_message_and_changes_nothing(crm, ui, default_roles):
    target = make_user(crm, "ana@corp.example", ["customer.view"])
    page = ui.post(
        f"/admin/users/{target.id}/edit",
        {"name": "n" * 201, "roles": ["sales"], "team_id": "abc"},
        status=422,
    ).get_data(as_text=True)
    assert 'id="name-errors"' in page and 'id="team_id-errors"' in page
    assert "Not a valid integer." in page and 'value="sales" checked' in page
    page = ui.post(
        f"/admin/users/{target.id}/edit", {"name": "Ana", "roles": ["ghost"], "team_id": "999999"},
        status=422,
    ).get_data(as_text=True)
    assert 'id="roles-errors"' in page and "No such role: ghost." in page
    page = ui.post(
        f"/admin/users/{target.id}/edit", {"name": "Ana", "team_id": "999999"}, status=422
    ).get_data(as_text=True)
    assert 'id="team_id-errors"' in page and "No such team." in page
    stored = _user(crm, "ana@corp.example")
    assert stored.name == "ana" and [role.name for role in stored.roles] == [
        "role-ana@corp.example"
    ]
    assert _audit(crm, "user", "updated") == []
    ui.get("/admin/users/999999/edit", status=404)
    ui.get(f"/admin/users/{2**40}/edit", status=404)


def test_an_admin_cannot_take_user_admin_away_from_themself(crm, ui, default_roles):
    me = _user(crm, "ui-admin@example.com")
    page = ui.post(
        f"/admin/users/{me.id}/edit", {"name": "me", "roles": ["sales"]}, status=422
    ).get_data(as_text=True)
    assert "You would lose user.admin yourself" in page
    assert [role.name for role in _user(crm, "ui-admin@example.com").roles] == [
        "role-ui-admin@example.com"
    ]
    ui.post(f"/admin/users/{me.id}/edit", {"name": "me", "roles": ["admin", "sales"]})
    assert sorted(r.name for r in _user(crm, "ui-admin@example.com").roles) == ["admin", "sales"]


# -- deactivating and reactivating ----------------------------------------------------------------


def test_a_deactivated_user_is_signed_out_and_their_tokens_stop(crm, app, client, ui):
    target = ui_user(crm, "ana@corp.example", ["customer.view"])
    plain = api_token(crm, target)
    theirs = app.test_client()
    UiBrowser(theirs, "ana@corp.example")  # signed in on a client of their own
    bearer = {"Authorization": f"Bearer {plain}"}
    assert theirs.get("/api/v1/customers", headers=bearer).status_code == 200
    response = ui.post(f"/admin/users/{target.id}/deactivate", {})
    assert response.headers["Location"] == f"/admin/users/{target.id}/edit"
    page = ui.get(f"/admin/users/{target.id}/edit")
    assert "ana@corp.example was deactivated." in page and "Reactivate ana@corp.example" in page
    assert not _user(crm, "ana@corp.example").active
    assert theirs.get("/").status_code == 302  # signed out at the next request
    assert app.test_client().get("/api/v1/customers", headers=bearer).status_code == 401
    assert "deactivated" in ui.get("/admin/users")
    ui.post(f"/admin/users/{target.id}/reactivate", {})
    assert _user(crm, "ana@corp.example").active
    assert app.test_client().get("/api/v1/customers", headers=bearer).status_code == 200
    UiBrowser(app.test_client(), "ana@corp.example")  # signs in again
    assert _audit(crm, "user", "deactivated") == ["ui"]
    assert _audit(crm, "user", "reactivated") == ["ui"]


def test_nobody_can_deactivate_themself(crm, ui):
    me = _user(crm, "ui-admin@example.com")
    page = ui.post(f"/admin/users/{me.id}/deactivate", {}, status=422).get_data(as_text=True)
    assert "You cannot deactivate yourself." in page
    assert _user(crm, "ui-admin@example.com").active
    ui.post("/admin/users/999999/deactivate", {}, status=404)


# -- roles ----------------------------------------------------------------------------------------


def test_a_new_role_is_created_with_its_permissions_and_visibility(crm, ui):
    form = ui.get("/admin/roles/new")
    assert '<legend>loyalty</legend>' in form and '<legend>customer</legend>' in form
    assert 'id="permissions-loyalty-card-view" name="permissions" value="loyalty.card.view"' in form
    response = ui.post(
        "/admin/roles/new",
        {"name": "loyalty-desk", "description": "Hands out cards", "visibility": "team",
         "permissions": ["customer.view", "loyalty.card.view"]},
    )
    assert response.headers["Location"] == "/admin/roles"
    page = ui.get("/admin/roles")
    assert "The role loyalty-desk was created." in page and "Hands out cards" in page
    role = _role(crm, "loyalty-desk")
    assert role.permissions == ["customer.view", "loyalty.card.view"]
    assert role.visibility == "team" and _audit(crm, "role", "created") == ["ui"]


def test_a_refused_role_shows_each_message_and_saves_nothing(crm, ui, default_roles):
    with crm.session_factory() as session:
        before = session.scalar(select(func.count()).select_from(Role))
    page = ui.post(
        "/admin/roles/new",
        {"name": "", "description": "d" * 501, "visibility": "galaxy",
         "permissions": ["customer.view"]},
        status=422,
    ).get_data(as_text=True)
    for name in ("name", "description", "visibility"):
        assert f'id="{name}-errors"' in page, name
    assert "Use one of: own, team, all." in page and 'value="customer.view" checked' in page
    page = ui.post(
        "/admin/roles/new", {"name": "sales", "visibility": "all", "permissions": ["x.y"]},
        status=422,
    ).get_data(as_text=True)
    assert "A role with this name exists already." in page and "No such permission: x.y." in page
    with crm.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Role)) == before


def test_changing_a_role_keeps_permissions_no_plugin_registers_any_more(crm, ui):
    make_user(crm, "clerk@corp.example", ["customer.view", "gone.thing"], visibility="own")
    role = _role(crm, "role-clerk@corp.example")
    listed = ui.get("/admin/roles")
    assert f'href="/admin/roles/{role.id}/edit"' in listed
    form = ui.get(f"/admin/roles/{role.id}/edit")
    assert "<legend>not registered any more</legend>" in form
    assert 'value="gone.thing" checked' in form
    ui.post(
        f"/admin/roles/{role.id}/edit",
        {"name": "clerk", "description": "", "visibility": "all",
         "permissions": ["customer.view", "contact.view", "gone.thing"]},
    )
    changed = _role(crm, "clerk")
    assert changed.id == role.id and changed.visibility == "all"
    assert changed.permissions == ["contact.view", "customer.view", "gone.thing"]
    assert _user(crm, "clerk@corp.example").permissions == frozenset(changed.permissions)
    ui.get("/admin/roles/999999/edit", status=404)


def test_an_admin_cannot_take_user_admin_out_of_their_only_admin_role(crm, ui):
    mine = _role(crm, "role-ui-admin@example.com")
    kept = [name for name in mine.permissions if name != "user.admin"]
    page = ui.post(
        f"/admin/roles/{mine.id}/edit",
        {"name": mine.name, "visibility": "all", "permissions": kept},
        status=422,
    ).get_data(as_text=True)
    assert "You would lose user.admin yourself" in page
    assert "user.admin" in _role(crm, "role-ui-admin@example.com").permissions


def test_changing_users_and_roles_needs_user_admin(crm, client, default_roles):
    target = make_user(crm, "ana@corp.example", ["customer.view"])
    ui_user(crm, "hooks@ui.example", ["webhook.admin"])
    browser = UiBrowser(client, "hooks@ui.example")
    role = _role(crm, "sales")
    browser.get(f"/admin/users/{target.id}/edit", status=403)
    browser.post(f"/admin/users/{target.id}/edit", {"name": "x", "roles": ["admin"]}, status=403)
    browser.post(f"/admin/users/{target.id}/deactivate", {}, status=403)
    browser.get("/admin/roles/new", status=403)
    browser.post("/admin/roles/new", {"name": "sneaky", "permissions": ["user.admin"]}, status=403)
    browser.post(f"/admin/roles/{role.id}/edit", {"name": "sales", "permissions": []}, status=403)
    stored = _user(crm, "ana@corp.example")
    assert stored.active and stored.name == "ana" and _role(crm, "sneaky") is None
    assert _role(crm, "sales").permissions == role.permissions
