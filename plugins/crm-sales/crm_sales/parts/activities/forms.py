"""The activity forms: plan one (``/sales/activities/new``) and edit one
(``/sales/activities/<id>/edit``).

``?customer_id=``, ``?opportunity_id=`` and ``?contact_id=`` preselect the new one's
links; times are in the installation's time zone. A refused save shows each message
beside its field (422), a stale edit both versions (409).
"""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Mapping
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import MultiDict

from crm_core import utcnow
from crm_core.authz import has_permission, require
from crm_core.errors import ConflictError, ValidationError
from crm_core.ids import as_record_id
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import Difference, differences
from crm_core.web.ui.forms import field_errors, form_data, refuse_unstorable
from crm_core.web.ui.names import owner_options
from crm_sales import web
from crm_sales.models import Activity, ActivityKind
from crm_sales.parts.activities.common import (
    KIND_LABELS,
    back,
    day_bounds,
    link_names,
    safe_next,
    zone,
)
from crm_sales.services import activities
from crm_sales.services.activities import EDIT, VIEW

#: The form's fields, in its order.
FORM_FIELDS = (
    "kind", "subject", "notes", "due_at", "reminder_at", "assignee_id", "customer_id",
    "contact_id", "opportunity_id",
)
#: The form's moments (``datetime-local`` inputs, in the installation's time zone).
MOMENTS = ("due_at", "reminder_at")
#: The form's whole-number fields (sent to the schema as numbers, else as typed).
INTEGERS = frozenset({"assignee_id", "customer_id", "contact_id", "opportunity_id"})
#: How the conflict table names the fields.
FIELD_LABELS = {
    "kind": _l("Kind"), "subject": _l("Subject"), "notes": _l("Notes"),
    "due_at": _l("Due"), "reminder_at": _l("Reminder"), "assignee_id": _l("Assigned to"),
    "customer_id": _l("Customer"), "contact_id": _l("Contact"), "opportunity_id": _l("Deal"),
}


# -- times as the inputs hold them ------------------------------------------------------------


def parse_moment(text: str) -> dt.datetime | None:
    """A ``datetime-local`` input (``2026-12-02T14:30``) in the installation's time zone;
    empty: ``None``; :class:`ValueError` when it is no moment."""
    text = text.strip()
    if not text:
        return None
    moment = dt.datetime.fromisoformat(text.replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone())
    moment.astimezone(dt.UTC)  # OverflowError at the edges of time
    return moment


def local_input(moment: dt.datetime | None) -> str:
    """``moment`` as a ``datetime-local`` input holds it, in the installation's time zone."""
    if moment is None:
        return ""
    return moment.astimezone(zone()).strftime("%Y-%m-%dT%H:%M")


# -- the forms --------------------------------------------------------------------------------


@web.ui.route("/activities/new", methods=["GET", "POST"], endpoint="new_activity")
@page
def new_activity() -> ResponseReturnValue:
    """The empty form (``?customer_id=``, ``?contact_id=``, ``?opportunity_id=``
    preselect); saving plans the activity."""
    crm, user = current_crm(), actor()
    require(user, EDIT)
    if request.method == "GET":
        tomorrow = day_bounds(utcnow())[1]
        values = {
            "kind": request.args.get("kind") if request.args.get("kind") in KIND_LABELS
            else ActivityKind.CALL.value,
            "assignee_id": str(user.id),
            "due_at": local_input(tomorrow + dt.timedelta(hours=9)),
            **{name: request.args.get(name, "") for name in
               ("customer_id", "contact_id", "opportunity_id")},
        }
        return _form(None, values, {})
    data, values, errors = _posted(request.form)
    if not errors:
        try:
            refuse_unstorable(request.form, Activity)
            with crm.unit_of_work(actor=user, source="ui") as uow:
                created = activities.create(uow, data)
                subject = created.subject
        except ValidationError as exc:
            errors = field_errors(exc.messages)
    if errors:
        return _form(None, values, errors, status=422)
    flash(_("“%(subject)s” is planned.", subject=subject))
    return redirect(back(url_for("crm_sales.activities")))


@web.ui.route("/activities/<int:activity_id>/edit", methods=["GET", "POST"],
              endpoint="edit_activity")
@page
def edit_activity(activity_id: int) -> ResponseReturnValue:
    """The form filled in; saving checks that nobody else saved in between."""
    crm, user = current_crm(), actor()
    require(user, VIEW)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        stored_activity = activities.get(uow, activity_id)
        record = _record(stored_activity)
        stored = _stored_values(stored_activity)
    if request.method == "GET":
        return _form(record, dict(stored), {})
    require(user, EDIT)
    data, values, errors = _posted(request.form)
    expected = _posted_version(request.form)
    if not errors:
        try:
            refuse_unstorable(request.form, Activity)
            with crm.unit_of_work(actor=user, source="ui") as uow:
                activities.update(uow, activity_id, data, expected_version=expected)
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        except ConflictError:
            values["version"] = stored["version"]  # saving again overwrites deliberately
            conflict = differences(stored, values, FORM_FIELDS, FIELD_LABELS)
            return _form(record, values, {}, conflict=conflict, status=409)
    if errors:
        return _form(record, values, errors, status=422)
    flash(_("“%(subject)s” was saved.", subject=data.get("subject") or record.subject))
    return redirect(back(url_for("crm_sales.activities")))


def _record(activity: Activity) -> types.SimpleNamespace:
    """What the form shows of a stored activity besides its fields."""
    return types.SimpleNamespace(
        id=activity.id, subject=activity.subject, due_at=activity.due_at,
        done_at=activity.done_at,
        interaction_id=activity.interaction_id, customer_id=activity.customer_id,
    )


def _form(
    record: types.SimpleNamespace | None,
    values: dict[str, Any],
    errors: Mapping[str, list[str]],
    *,
    conflict: list[Difference] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    assignee_id = as_record_id(values.get("assignee_id") or "")
    ids = {name: as_record_id(values.get(name) or "") for name in
           ("customer_id", "contact_id", "opportunity_id")}
    with crm.session_factory() as session:
        assignees = owner_options(session, assignee_id)
        probe = types.SimpleNamespace(**ids)
        names = link_names(session, user, [probe])  # type: ignore[list-item]
    hints = {
        "customer_id": _hint(names["customer"].get(ids["customer_id"]), ids["customer_id"],
                             _("The number in the address of the customer's page; empty: the "
                               "deal's or the contact's customer, or none.")),
        "contact_id": _hint(names["contact"].get(ids["contact_id"]), ids["contact_id"],
                            _("The number in the address of the contact's page; empty: none.")),
        "opportunity_id": _hint(names["deal"].get(ids["opportunity_id"]), ids["opportunity_id"],
                                _("The number in the address of the deal's page; empty: none.")),
    }
    other = [text for name, texts in errors.items() if name not in FORM_FIELDS for text in texts]
    return render_template(
        "crm_sales/activities/form.html",
        activity=record,
        values=values,
        errors=errors,
        other_errors=other,
        conflict=conflict,
        kinds=[(value, str(text)) for value, text in KIND_LABELS.items()],
        assignees=assignees,
        hints=hints,
        zone_name=str(zone()),
        next=safe_next(request.values.get("next")),
        cancel_url=safe_next(request.values.get("next")) or url_for("crm_sales.activities"),
        can_edit=has_permission(user, EDIT),
    ), status


def _hint(name: str | None, ident: int | None, otherwise: str) -> str:
    if name:
        return _("Now: %(name)s (number %(number)s).", name=name, number=ident)
    return otherwise


def _posted(
    form: MultiDict[str, str],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """The posted form as service data, the values to show again, and the moments that
    could not be read."""
    data = form_data(form, FORM_FIELDS)
    values: dict[str, Any] = {name: form.get(name, "") for name in FORM_FIELDS}
    if "version" in form:
        values["version"] = form.get("version", "")
    errors: dict[str, list[str]] = {}
    for name in ("subject", "notes"):
        if name in data:
            data[name] = data[name] or ""
    for name in INTEGERS:
        text = data.get(name)
        if isinstance(text, str) and text.isascii() and text.isdigit():
            data[name] = int(text)
    for name in MOMENTS:
        if name not in data:
            continue
        try:
            data[name] = parse_moment(data[name] or "")
        except (ValueError, OverflowError):
            errors[name] = [_("Give a date and time, e.g. %(example)s.",
                              example="2026-12-02 14:30")]
    if data.get("due_at") is None and "due_at" not in errors:
        data.pop("due_at", None)  # the schema says it is required
    for name in MOMENTS:
        if isinstance(data.get(name), dt.datetime):
            data[name] = data[name].isoformat()
    return data, values, errors


def _posted_version(form: MultiDict[str, str]) -> int | None:
    raw = form.get("version", "")
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()):
        abort(400)
    return int(raw)


def _stored_values(activity: Activity) -> dict[str, Any]:
    """What the form shows for a stored activity (text, as the inputs hold it)."""
    values: dict[str, Any] = {}
    for name in FORM_FIELDS:
        value = getattr(activity, name)
        if name in MOMENTS:
            values[name] = local_input(value)
        else:
            values[name] = "" if value is None else str(value)
    values["version"] = str(activities.version(activity))
    return values
