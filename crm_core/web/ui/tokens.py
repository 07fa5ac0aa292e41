"""API tokens: the signed-in user's own (``/account/tokens``) and everyone's (``/admin/tokens``).

Everything goes through :mod:`crm_core.services.tokens`: a new token (a name, scopes
among the user's own permissions, an optional last day) is shown in plain text once,
on the page that answers the form (``Cache-Control: no-store``; the database keeps only
its digest), and never again. Revoking works at once. A user with ``user.admin`` also
sees every user's tokens, newest first and paged by id, and can revoke any of them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from crm_core.authz import require
from crm_core.errors import NotFoundError, ValidationError
from crm_core.ids import as_record_id
from crm_core.models import ApiToken
from crm_core.services import tokens
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.admin import now, permission_groups
from crm_core.web.ui.forms import field_errors
from crm_core.web.ui.paging import id_arg, split_page

#: Tokens per page of ``/admin/tokens``.
PAGE_SIZE = 50


# -- the user's own tokens --------------------------------------------------------------------


@blueprint.route("/account/tokens", methods=["GET", "POST"], endpoint="account_tokens")
@page
def account_tokens() -> ResponseReturnValue:
    """The user's tokens and the form for a new one; a new token's plain text is shown once."""
    crm, user = current_crm(), actor()
    values: dict[str, Any] = {"scopes": []}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        scopes = request.form.getlist("scopes")
        expires_on = request.form.get("expires_on", "").strip()
        values = {"name": name, "scopes": scopes, "expires_on": expires_on}
        try:
            expires_at = expiry(expires_on)
        except ValueError:
            errors["expires_on"] = [_("Give a date, e.g. 2027-01-31.")]
        if not errors:
            try:
                with crm.unit_of_work(actor=user, source="ui") as uow:
                    token, plain = tokens.create(
                        uow, user, name=name, scopes=scopes, expires_at=expires_at
                    )
            except ValidationError as exc:
                errors = field_errors(exc.messages)
                if "expires_at" in errors:
                    errors["expires_on"] = errors.pop("expires_at")
            else:
                html = render_template(
                    "crm_core/ui/account/token_created.html", token=token, plain=plain
                )
                return html, 200, {"Cache-Control": "no-store"}
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        own = tokens.list_for(uow, user)
    return render_template(
        "crm_core/ui/account/tokens.html",
        tokens=own,
        values=values,
        errors=errors,
        scope_groups=permission_groups(user.permissions),
        now=now(),
    ), 422 if errors else 200


@blueprint.post("/account/tokens/<int:token_id>/revoke", endpoint="revoke_own_token")
@page
def revoke_own_token(token_id: int) -> ResponseReturnValue:
    """Revoke one of the user's own tokens (another user's is not found here)."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui") as uow:
        token = tokens.get(uow, _token_id(token_id))
        if token.user_id != user.id:
            raise NotFoundError("api_token", token_id)
        tokens.revoke(uow, token.id)
        label = _label(token)
    flash(_("The token %(label)s was revoked: it no longer works.", label=label))
    return redirect(url_for("crm_ui.account_tokens"))


# -- everyone's tokens ------------------------------------------------------------------------


@blueprint.get("/admin/tokens", endpoint="admin_tokens")
@page
def admin_tokens() -> ResponseReturnValue:
    """Every user's tokens, newest first, a page at a time (``user.admin``)."""
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    before = id_arg()
    statement = select(ApiToken).order_by(ApiToken.id.desc()).limit(PAGE_SIZE + 1)
    if before is not None:
        statement = statement.where(ApiToken.id < before)
    with crm.session_factory() as session:
        found = list(session.scalars(statement))  # each token's user: joined, same query
    rows, next_url = split_page(
        found, PAGE_SIZE, lambda last: url_for("crm_ui.admin_tokens", before=last.id)
    )
    return render_template(
        "crm_core/ui/admin/tokens.html",
        tokens=rows,
        next_url=next_url,
        first_page=before is not None,
        now=now(),
    )


@blueprint.post("/admin/tokens/<int:token_id>/revoke", endpoint="admin_revoke_token")
@page
def admin_revoke_token(token_id: int) -> ResponseReturnValue:
    """Revoke any user's token (``user.admin``)."""
    crm, user = current_crm(), actor()
    require(user, "user.admin")
    with crm.unit_of_work(actor=user, source="ui") as uow:
        token = tokens.revoke(uow, _token_id(token_id))
        label, owner = _label(token), token.user.email
    flash(_("The token %(label)s of %(owner)s was revoked: it no longer works.",
            label=label, owner=owner))
    return redirect(url_for("crm_ui.admin_tokens"))


# -- helpers ----------------------------------------------------------------------------------


def expiry(text: str) -> dt.datetime | None:
    """The end of the day ``text`` (``YYYY-MM-DD``), UTC: the token works through that day.

    Empty: ``None`` (no expiry). :class:`ValueError` for anything else.
    """
    if not text:
        return None
    day = dt.date.fromisoformat(text)
    try:
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    except OverflowError as exc:  # 9999-12-31: there is no day after
        raise ValueError(text) from exc


def _token_id(raw: int) -> int:
    """``raw`` if it can name a token (a 32-bit id), else :class:`NotFoundError`."""
    if as_record_id(raw) is None:
        raise NotFoundError("api_token", raw)
    return raw


def _label(token: ApiToken) -> str:
    if token.name:
        return _("“%(name)s” (%(prefix)s…)", name=token.name, prefix=token.prefix)
    return f"{token.prefix}…"
