"""Roles and permissions (``user.admin``): the roles, a new role, changing one.

A role is a name, a description, the permissions it grants — a checkbox per registered
permission, grouped by prefix (``customer``, ``contact``, a plugin's name) — and which
records its users see (their own, their team's, all). Changes go through
:func:`crm_core.services.users.create_role` and :func:`~crm_core.services.users.update_role`,
whose messages show beside the fields.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from crm_core.authz import require
from crm_core.errors import ValidationError
from crm_core.models import Role, Visibility
from crm_core.services import users
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.admin import permission_groups
from crm_core.web.ui.forms import field_errors

#: The visibility choices of the role form, with what they mean.
VISIBILITY_OPTIONS = (
    (Visibility.OWN.value, _l("Own: the records they own")),
    (Visibility.TEAM.value, _l("Team: the records of their team")),
    (Visibility.ALL.value, _l("All: every record")),
)


@blueprint.get("/admin/roles", endpoint="admin_roles")
@page
def roles_list() -> ResponseReturnValue:
    """Every role: its description, visibility and permissions grouped by prefix."""
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    with crm.session_factory() as session:
        roles = list(session.scalars(select(Role).order_by(Role.name)))
    registered = crm.registry.permissions
    return render_template(
        "crm_core/ui/admin/roles.html",
        roles=[
            (role, permission_groups(role.permissions),
             sorted(set(role.permissions) - set(registered)))
            for role in roles
        ],
    )


@blueprint.route("/admin/roles/new", methods=["GET", "POST"], endpoint="admin_new_role")
@page
def new_role() -> ResponseReturnValue:
    """The role form, empty; saving creates the role."""
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    values: dict[str, Any] = {"visibility": Visibility.OWN.value, "permissions": []}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        data = _posted()
        values = data
        try:
            with crm.unit_of_work(actor=user, source="ui") as uow:
                created = users.create_role(uow, data)
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        else:
            flash(_("The role %(name)s was created.", name=created.name))
            return redirect(url_for("crm_ui.admin_roles"))
    return _form(None, values, errors)


@blueprint.route("/admin/roles/<int:role_id>/edit", methods=["GET", "POST"],
                 endpoint="admin_edit_role")
@page
def edit_role(role_id: int) -> ResponseReturnValue:
    """The role form, filled in; saving changes the role for every user who has it."""
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        role = users.get_role(uow, role_id)
        stored = {"name": role.name, "description": role.description,
                  "visibility": role.visibility, "permissions": list(role.permissions)}
    if request.method == "GET":
        return _form(role, stored, {})
    data = _posted()
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            users.update_role(uow, role_id, data)
    except ValidationError as exc:
        return _form(role, data, field_errors(exc.messages))
    flash(_("The role %(name)s was saved.", name=data["name"] or role.name))
    return redirect(url_for("crm_ui.admin_roles"))


def _posted() -> dict[str, Any]:
    """The role form's fields as the service takes them."""
    return {
        "name": request.form.get("name", ""),
        "description": request.form.get("description", ""),
        "visibility": request.form.get("visibility", ""),
        "permissions": request.form.getlist("permissions"),
    }


def _form(role: Role | None, values: dict[str, Any], errors: dict[str, list[str]]) -> Any:
    registered = current_crm().registry.permissions
    groups: list[tuple[str, list[tuple[str, str]]]] = permission_groups(registered)
    kept = sorted(set(role.permissions) - set(registered)) if role is not None else []
    if kept:
        groups.append((_("not registered any more"), [(name, name) for name in kept]))
    return render_template(
        "crm_core/ui/admin/role_form.html",
        role=role,
        values=values,
        errors=errors,
        groups=groups,
        visibility_options=VISIBILITY_OPTIONS,
    ), 422 if errors else 200
