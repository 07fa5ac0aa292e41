"""The signed-in user's profile: their name and the language the UI speaks to them.

Saved through :func:`crm_core.services.users.update_profile` (no permission needed: it
only ever changes the actor). Picking "the browser's language" clears the choice.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from crm_core.errors import ValidationError
from crm_core.services import users
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.forms import field_errors


@blueprint.route("/account", methods=["GET", "POST"], endpoint="account")
@page
def profile() -> ResponseReturnValue:
    """Show and change the user's name and language."""
    crm, user = current_crm(), actor()
    values = {"name": user.name, "language": user.language or ""}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {
            "name": request.form.get("name", "").strip(),
            "language": request.form.get("language", ""),
        }
        try:
            with crm.unit_of_work(actor=user, source="ui") as uow:
                users.update_profile(uow, {**values, "language": values["language"] or None})
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        else:
            # The next page is already in the new language: it loads the user afresh.
            flash(_("Your profile was saved."))
            return redirect(url_for("crm_ui.account"))
    return render_template("crm_core/ui/account/profile.html", values=values, errors=errors), (
        422 if errors else 200
    )
