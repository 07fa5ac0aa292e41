"""*My activities* (``/sales/activities``) and its buttons.

The user's open activities by due date — overdue (marked red), today, upcoming — by
keyset on ``(due_at, id)``, :data:`PAGE_SIZE` a page, and on the first page those done in
the last :data:`DONE_WINDOW`; ``?kind=`` filters. Each open one has a *Done* button with
an optional note (logged on the customer's timeline), each done one *Reopen*; a refused
button shows the list again with its message (422).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from crm_core import utcnow
from crm_core.authz import has_permission, require
from crm_core.errors import ValidationError
from crm_core.web.api.pagination import int_bounds
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.forms import field_errors
from crm_core.web.ui.paging import Keyset, split_page
from crm_sales import web
from crm_sales.models import Activity
from crm_sales.parts.activities.common import KIND_LABELS, back, day_bounds, kind_label, link_names
from crm_sales.services import activities
from crm_sales.services.activities import EDIT, VIEW

#: Open activities per page of *My activities*.
PAGE_SIZE = 50
#: Done activities the first page shows, at most, and how far back.
RECENTLY_DONE = 10
DONE_WINDOW = dt.timedelta(days=7)
#: The order of the open activities: soonest due first.
BY_DUE = Keyset("due_at", Activity.due_at, Activity.id, python_type=dt.datetime,
                id_bounds=int_bounds(Activity.id))


def _kind_arg() -> str | None:
    kind = request.args.get("kind") or None
    if kind is not None and kind not in KIND_LABELS:
        abort(400)
    return kind


# -- My activities ----------------------------------------------------------------------------


@web.ui.get("/activities", endpoint="activities")
@page
def activities_page() -> ResponseReturnValue:
    """The user's open activities by due date (overdue, today, upcoming) and the recently
    done ones."""
    return _list_page()


def _list_page(
    errors: Mapping[str, list[str]] | None = None, failed_id: int | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    require(user, VIEW)
    kind = _kind_arg()
    cursor = BY_DUE.cursor()
    now = utcnow()
    tomorrow = day_bounds(now)[1]
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        after = (cursor.value, cursor.id) if cursor is not None else None
        found = activities.list_for_user(uow, user.id, kind=kind, after=after,
                                         limit=PAGE_SIZE + 1)
        rows, next_url = split_page(found, PAGE_SIZE, lambda last: url_for(
            "crm_sales.activities", **{**request.args, "cursor": BY_DUE.token(last)}
        ))
        done: list[Activity] = []
        if cursor is None:
            done = activities.list_for_user(uow, user.id, done=True, kind=kind,
                                            done_since=now - DONE_WINDOW, limit=RECENTLY_DONE)
        names = link_names(uow.session, user, [*rows, *done])
        groups = [
            ("overdue", _("Overdue"), [row for row in rows if row.due_at < now]),
            ("today", _("Today"), [row for row in rows if now <= row.due_at < tomorrow]),
            ("upcoming", _("Upcoming"), [row for row in rows if row.due_at >= tomorrow]),
        ]
        html = render_template(
            "crm_sales/activities/list.html",
            groups=groups,
            done=done,
            names=names,
            kind=kind,
            kinds=[(value, str(text)) for value, text in KIND_LABELS.items()],
            kind_label=kind_label,
            next_url=next_url,
            first_url=url_for("crm_sales.activities", kind=kind) if cursor else None,
            can_edit=has_permission(user, EDIT),
            errors=errors or {},
            failed_id=failed_id,
            # Where the buttons come back to: this page, or (answering a refused button)
            # the page the button was on.
            here=request.full_path.rstrip("?") if request.method == "GET"
            else back(url_for("crm_sales.activities")),
            now=now,
        )
    return html, status


@web.ui.post("/activities/<int:activity_id>/done", endpoint="complete_activity")
@page
def complete_activity(activity_id: int) -> ResponseReturnValue:
    """Mark an activity done, with an optional note; one with a customer is logged on its
    timeline."""
    crm, user = current_crm(), actor()
    require(user, EDIT)
    note = request.form.get("outcome_note", "")
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            done = activities.complete(uow, activity_id, note)
            subject, logged = done.subject, done.interaction_id is not None
    except ValidationError as exc:
        return _list_page(field_errors(exc.messages), activity_id, status=422)
    if logged:
        flash(_("“%(subject)s” is done and logged on the customer's timeline.", subject=subject))
    else:
        flash(_("“%(subject)s” is done.", subject=subject))
    return redirect(back(url_for("crm_sales.activities")))


@web.ui.post("/activities/<int:activity_id>/reopen", endpoint="reopen_activity")
@page
def reopen_activity(activity_id: int) -> ResponseReturnValue:
    """Make a done activity open again."""
    crm, user = current_crm(), actor()
    require(user, EDIT)
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            subject = activities.reopen(uow, activity_id).subject
    except ValidationError as exc:
        return _list_page(field_errors(exc.messages), activity_id, status=422)
    flash(_("“%(subject)s” is open again.", subject=subject))
    return redirect(back(url_for("crm_sales.activities")))


@web.ui.post("/activities/<int:activity_id>/delete", endpoint="delete_activity")
@page
def delete_activity(activity_id: int) -> ResponseReturnValue:
    """Delete an activity (the audit trail keeps it)."""
    crm, user = current_crm(), actor()
    require(user, EDIT)
    with crm.unit_of_work(actor=user, source="ui") as uow:
        subject = activities.delete(uow, activity_id).subject
    flash(_("“%(subject)s” was deleted.", subject=subject))
    return redirect(url_for("crm_sales.activities"))
