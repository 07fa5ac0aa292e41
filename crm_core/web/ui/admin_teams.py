"""Teams (``user.admin``): the list with each team's members, a new team, renaming, deleting.

A team groups users who see each other's records when a role's visibility is ``team``.
Everything goes through :mod:`crm_core.services.teams`, whose messages show beside the
name field. The list takes two queries whatever the number of teams and members (the
teams with their member counts, then the members' names). Who belongs to a team is
chosen on each user's page (:mod:`~crm_core.web.ui.admin_users`); deleting a team (after
a confirmation page, by POST) leaves its members without a team, accounts unchanged.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext

from crm_core.authz import require
from crm_core.errors import ValidationError
from crm_core.models import Team
from crm_core.services import teams
from crm_core.services.teams import ADMIN_PERMISSION
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.forms import field_errors


@blueprint.get("/admin/teams", endpoint="admin_teams")
@page
def teams_list() -> ResponseReturnValue:
    """Every team by name: how many members it has, and who they are."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        summaries = teams.list_teams(uow)
        members = teams.members(uow, [summary.team.id for summary in summaries])
        return render_template(
            "crm_core/ui/admin/teams.html", summaries=summaries, members=members
        )


@blueprint.route("/admin/teams/new", methods=["GET", "POST"], endpoint="admin_new_team")
@page
def new_team() -> ResponseReturnValue:
    """The team form, empty; saving creates the team."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = _posted()
        try:
            with crm.unit_of_work(actor=user, source="ui") as uow:
                name = teams.create(uow, values).name
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        else:
            flash(_("The team %(name)s was created.", name=name))
            return redirect(url_for("crm_ui.admin_teams"))
    return _form(None, values, errors, [])


@blueprint.route("/admin/teams/<int:team_id>/edit", methods=["GET", "POST"],
                 endpoint="admin_edit_team")
@page
def edit_team(team_id: int) -> ResponseReturnValue:
    """The team form, filled in: renaming the team; its members, and the way to delete it."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        team = teams.get(uow, team_id)
        members = teams.members(uow, [team.id]).get(team.id, [])
    if request.method == "GET":
        return _form(team, {"name": team.name}, {}, members)
    values = _posted()
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            name = teams.update(uow, team_id, values).name
    except ValidationError as exc:
        return _form(team, values, field_errors(exc.messages), members)
    flash(_("The team %(name)s was saved.", name=name))
    return redirect(url_for("crm_ui.admin_teams"))


@blueprint.route("/admin/teams/<int:team_id>/delete", methods=["GET", "POST"],
                 endpoint="admin_delete_team")
@page
def delete_team(team_id: int) -> ResponseReturnValue:
    """Ask (GET), then delete the team (POST); its members stay, without a team."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    if request.method == "GET":
        with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
            team = teams.get(uow, team_id)
            members = teams.members(uow, [team.id]).get(team.id, [])
            return render_template(
                "crm_core/ui/admin/team_delete.html", team=team, members=members
            )
    with crm.unit_of_work(actor=user, source="ui") as uow:
        name = teams.get(uow, team_id).name
        former = teams.delete(uow, team_id)
    if former:
        flash(ngettext(
            "The team %(name)s was deleted; its %(num)d member now has no team.",
            "The team %(name)s was deleted; its %(num)d members now have no team.",
            len(former),
            name=name,
        ))
    else:
        flash(_("The team %(name)s was deleted.", name=name))
    return redirect(url_for("crm_ui.admin_teams"))


def _posted() -> dict[str, Any]:
    """The team form's fields as the service takes them."""
    return {"name": request.form.get("name", "")}


def _form(
    team: Team | None,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    members: list[teams.Member],
) -> ResponseReturnValue:
    return render_template(
        "crm_core/ui/admin/team_form.html",
        team=team,
        values=values,
        errors=errors,
        members=members,
        max_length=teams.MAX_NAME_LENGTH,
    ), 422 if errors else 200
