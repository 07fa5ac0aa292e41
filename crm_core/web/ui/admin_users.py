"""Users (``user.admin``): the list of staff accounts, a new one, changing and deactivating one.

The list is sorted by email and paged with a cursor on its unique index; each user's
roles and team come with the page (``selectin``), not a query per row. Every change goes
through :mod:`crm_core.services.users` (``create``, ``update``, ``set_active``), whose
messages show beside the fields. Roles have their own pages
(:mod:`~crm_core.web.ui.admin_roles`).
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.authz import require
from crm_core.errors import ValidationError
from crm_core.models import Role, Team, User
from crm_core.services import users
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.forms import field_errors
from crm_core.web.ui.paging import Keyset, split_page

#: Users per page of the list.
PAGE_SIZE = 50
#: The text fields of the new-user form (the roles are checkboxes).
USER_FIELDS = ("email", "name", "password")
#: The order of the list.
BY_EMAIL = Keyset("email", User.email, User.id)


@blueprint.get("/admin/users", endpoint="admin_users")
@page
def users_list() -> ResponseReturnValue:
    """Every staff account by email: name, roles, team, active, last sign-in; next page."""
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    cursor = BY_EMAIL.cursor()
    with crm.session_factory() as session:
        # roles and team: selectin, one query each
        found = list(session.scalars(BY_EMAIL.page(select(User), cursor, PAGE_SIZE)))
    rows, next_url = split_page(
        found, PAGE_SIZE, lambda last: url_for("crm_ui.admin_users", cursor=BY_EMAIL.token(last))
    )
    return render_template(
        "crm_core/ui/admin/users.html", users=rows, next_url=next_url,
        first_page=cursor is not None,
    )


@blueprint.route("/admin/users/new", methods=["GET", "POST"], endpoint="admin_new_user")
@page
def new_user() -> ResponseReturnValue:
    """The new-account form: email, name, roles, a first password."""
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    values: dict[str, Any] = {"roles": []}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        data: dict[str, Any] = {name: request.form.get(name, "") for name in USER_FIELDS}
        data["roles"] = request.form.getlist("roles")
        values = {"email": data["email"], "name": data["name"], "roles": data["roles"]}
        try:
            with crm.unit_of_work(actor=user, source="ui") as uow:
                created = users.create(uow, data)
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        else:
            flash(_("%(email)s can now sign in.", email=created.email))
            return redirect(url_for("crm_ui.admin_users"))
    with crm.session_factory() as session:
        role_options = _role_options(session)
    return render_template(
        "crm_core/ui/admin/user_form.html",
        values=values,
        errors=errors,
        role_options=role_options,
        min_password=users.MIN_PASSWORD_LENGTH,
    ), 422 if errors else 200


@blueprint.route("/admin/users/<int:user_id>/edit", methods=["GET", "POST"],
                 endpoint="admin_edit_user")
@page
def edit_user(user_id: int) -> ResponseReturnValue:
    """A user's name, roles and team; and the button that deactivates or reactivates them."""
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        target = users.get(uow, user_id)
        stored = _stored_values(target)
    if request.method == "GET":
        return _edit_form(target, stored, {})
    data: dict[str, Any] = {
        "name": request.form.get("name", ""),
        "roles": request.form.getlist("roles"),
        "team_id": request.form.get("team_id") or None,
    }
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            users.update(uow, user_id, data)
    except ValidationError as exc:
        return _edit_form(target, {**data, "team_id": data["team_id"] or ""},
                          field_errors(exc.messages))
    flash(_("%(email)s was saved.", email=target.email))
    return redirect(url_for("crm_ui.admin_users"))


@blueprint.post("/admin/users/<int:user_id>/deactivate", endpoint="admin_deactivate_user")
@page
def deactivate_user(user_id: int) -> ResponseReturnValue:
    """Deactivate a user: no sign-in, signed out at once, API tokens refused."""
    return _set_active(user_id, False)


@blueprint.post("/admin/users/<int:user_id>/reactivate", endpoint="admin_reactivate_user")
@page
def reactivate_user(user_id: int) -> ResponseReturnValue:
    """Let a deactivated user sign in (and use their tokens) again."""
    return _set_active(user_id, True)


def _set_active(user_id: int, active: bool) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            target = users.set_active(uow, user_id, active)
            email = target.email
    except ValidationError as exc:
        with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
            target = users.get(uow, user_id)
            stored = _stored_values(target)
        return _edit_form(target, stored, field_errors(exc.messages))
    if active:
        flash(_("%(email)s can sign in again.", email=email))
    else:
        flash(_("%(email)s was deactivated.", email=email))
    return redirect(url_for("crm_ui.admin_edit_user", user_id=user_id))


def _edit_form(
    target: User, values: dict[str, Any], errors: dict[str, list[str]]
) -> ResponseReturnValue:
    crm = current_crm()
    with crm.session_factory() as session:
        role_options = _role_options(session)
        teams = list(session.execute(select(Team.id, Team.name).order_by(Team.name)))
    return render_template(
        "crm_core/ui/admin/user_edit.html",
        target=target,
        values=values,
        errors=errors,
        role_options=role_options,
        team_options=[(row.id, row.name) for row in teams],
    ), 422 if errors else 200


def _stored_values(target: User) -> dict[str, Any]:
    """What the edit form shows for a stored user."""
    return {"name": target.name, "roles": [role.name for role in target.roles],
            "team_id": target.team_id or ""}


def _role_options(session: Session) -> list[tuple[str, str]]:
    """The roles as checkboxes offer them: (name, "name: description"), by name."""
    rows = session.execute(select(Role.name, Role.description).order_by(Role.name))
    return [(row.name, f"{row.name}: {row.description}" if row.description else row.name)
            for row in rows]
