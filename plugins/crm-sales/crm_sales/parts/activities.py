"""Activities and tasks: the user's list, the forms, the API, the slots and the reminders.

Pages (``/sales``): *My activities* (``/activities``) lists the user's open activities by
due date — overdue (marked red), today, upcoming — by keyset on ``(due_at, id)``, 50 a
page, and on the first page those done in the last :data:`DONE_WINDOW`; ``?kind=``
filters. Each open one has a *Done* button with an optional note (logged on the
customer's timeline), each done one *Reopen*. ``/activities/new`` (``?customer_id=``,
``?opportunity_id=``, ``?contact_id=`` preselect) and ``/activities/<id>/edit`` are the
forms, times in the installation's time zone; a refused save shows each message beside
its field (422), a stale edit both versions (409).

API: the resource ``activities`` (``/api/v1/activities``: list with the filters
``assignee_id``, ``opportunity_id``, ``customer_id``, ``done``; create, get, ``PATCH``,
``DELETE`` with ``If-Match``, history) and ``POST /api/v1/sales/activities/<id>/complete``
(and ``/reopen``). An activity's ``version`` (its ETag) counts its saved changes.

Slots: *Activities* in the navigation, *My tasks* on the dashboard (overdue and today's),
*Next activities* on the customer page, and the periodic job
``crm_sales.activity_reminders`` (:func:`crm_sales.services.activities.send_reminders`).
Every write goes through :mod:`crm_sales.services.activities`.
"""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apispec import APISpec
from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import fields
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, object_session
from werkzeug.datastructures import MultiDict

from crm_core import UnitOfWork, utcnow
from crm_core.authz import has_permission, require, visible
from crm_core.errors import (
    ConflictError,
    ValidationError,
)
from crm_core.extensions import Job, MenuItem, Panel
from crm_core.ids import MAX_ID, as_record_id
from crm_core.models import Contact, Customer, User
from crm_core.web.api import (
    ApiResource,
    api_context,
    etag,
    if_match_version,
    json_body,
    json_response,
    path_id,
)
from crm_core.web.api.openapi import add_openapi_contributor, problem_responses, resource_ref
from crm_core.web.api.pagination import int_bounds
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import Difference, differences
from crm_core.web.ui.forms import field_errors, form_data, refuse_unstorable
from crm_core.web.ui.names import customer_names, owner_options, user_names
from crm_core.web.ui.paging import Keyset, split_page
from crm_sales import web
from crm_sales.models import Activity, ActivityKind, Opportunity
from crm_sales.schemas import ActivitySchema
from crm_sales.services import activities
from crm_sales.services.activities import EDIT, VIEW, CompleteSchema, visible_activities
from crm_sales.services.opportunities import VIEW as DEAL_VIEW
from crm_sales.services.opportunities import visible_deals

#: Open activities per page of *My activities*.
PAGE_SIZE = 50
#: Done activities the first page shows, at most, and how far back.
RECENTLY_DONE = 10
DONE_WINDOW = dt.timedelta(days=7)
#: Activities the dashboard's *My tasks* lists, at most (its title counts them all).
WIDGET_ROWS = 10
#: Open activities the customer's *Next activities* panel lists.
PANEL_ROWS = 5
#: How often the reminder job runs (crontab): reminders come at most this late.
REMINDER_SCHEDULE = "*/5 * * * *"
#: The form's fields, in its order.
FORM_FIELDS = (
    "kind", "subject", "notes", "due_at", "reminder_at", "assignee_id", "customer_id",
    "contact_id", "opportunity_id",
)
#: The form's moments (``datetime-local`` inputs, in the installation's time zone).
MOMENTS = ("due_at", "reminder_at")
#: The form's whole-number fields (sent to the schema as numbers, else as typed).
INTEGERS = frozenset({"assignee_id", "customer_id", "contact_id", "opportunity_id"})
#: How pages name the kinds of activity.
KIND_LABELS = {
    ActivityKind.CALL.value: _l("Call"),
    ActivityKind.MEETING.value: _l("Meeting"),
    ActivityKind.TODO.value: _l("To-do"),
}
#: How the conflict table names the fields.
FIELD_LABELS = {
    "kind": _l("Kind"), "subject": _l("Subject"), "notes": _l("Notes"),
    "due_at": _l("Due"), "reminder_at": _l("Reminder"), "assignee_id": _l("Assigned to"),
    "customer_id": _l("Customer"), "contact_id": _l("Contact"), "opportunity_id": _l("Deal"),
}
#: The order of the open activities: soonest due first.
BY_DUE = Keyset("due_at", Activity.due_at, Activity.id, python_type=dt.datetime,
                id_bounds=int_bounds(Activity.id))



def kind_label(kind: str | None) -> str:
    """The name of a kind of activity in the request's language (else the code)."""
    return str(KIND_LABELS.get(kind or "", kind or ""))


# -- time -------------------------------------------------------------------------------------


def zone() -> dt.tzinfo:
    """The installation's time zone (the ``timezone`` setting; UTC without one)."""
    name = getattr(current_crm().settings, "timezone", None) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def day_bounds(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The start of ``now``'s day and of the next one, in the installation's time zone."""
    local = now.astimezone(zone())
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + dt.timedelta(days=1)  # wall-clock arithmetic: midnight again


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


# -- reading for pages ------------------------------------------------------------------------


def _session_of(record: Any) -> Session | None:
    return object_session(record) if record is not None else None


def link_names(session: Session, user: User, rows: Iterable[Activity]) -> dict[str, dict[int, str]]:
    """The names of the customers, contacts and deals of ``rows`` that ``user`` may see:
    one query per kind of record, however many rows."""
    rows = list(rows)
    names: dict[str, dict[int, str]] = {"customer": {}, "contact": {}, "deal": {}}
    if has_permission(user, "customer.view"):
        names["customer"] = customer_names(session, user, {row.customer_id for row in rows})
    contact_ids = sorted({row.contact_id for row in rows if row.contact_id is not None})
    if contact_ids and has_permission(user, "contact.view"):
        found = session.execute(
            select(Contact.id, Contact.first_name, Contact.last_name)
            .where(Contact.id.in_(contact_ids), visible(user, "contact"))
        )
        names["contact"] = {
            row.id: f"{row.first_name or ''} {row.last_name or ''}".strip() or f"#{row.id}"
            for row in found
        }
    deal_ids = sorted({row.opportunity_id for row in rows if row.opportunity_id is not None})
    if deal_ids and has_permission(user, DEAL_VIEW):
        found = session.execute(
            select(Opportunity.id, Opportunity.name)
            .where(Opportunity.id.in_(deal_ids), visible_deals(user))
        )
        names["deal"] = {row.id: row.name for row in found}
    return names


def _safe_next(target: str | None) -> str | None:
    """``target`` if it is a path of this site (where a form came from), else ``None``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def _back(default: str) -> str:
    return _safe_next(request.form.get("next") or request.args.get("next")) or default


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
            else _back(url_for("crm_sales.activities")),
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
    return redirect(_back(url_for("crm_sales.activities")))


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
    return redirect(_back(url_for("crm_sales.activities")))


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
    return redirect(_back(url_for("crm_sales.activities")))


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
    return redirect(_back(url_for("crm_sales.activities")))


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
        next=_safe_next(request.values.get("next")),
        cancel_url=_safe_next(request.values.get("next")) or url_for("crm_sales.activities"),
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


# -- slots ------------------------------------------------------------------------------------


def menu_items(actor: User) -> list[MenuItem]:
    """*Activities* in the navigation: the user's list."""
    return [MenuItem(_l("Activities"), "crm_sales.activities", order=35, permission=VIEW)]


def dashboard_widgets(actor: User) -> list[Panel]:
    """*My tasks*: the user's overdue and today's open activities, counted in the title."""
    if not has_permission(actor, VIEW):
        return []
    crm = current_crm()
    now = utcnow()
    tomorrow = day_bounds(now)[1]
    with crm.unit_of_work(actor=actor, source="ui", write=False) as uow:
        rows = activities.list_for_user(uow, actor.id, due_before=tomorrow, limit=WIDGET_ROWS)
        count = len(rows)
        if count == WIDGET_ROWS:
            count = activities.count_open(uow, actor.id, due_before=tomorrow)
        names = link_names(uow.session, actor, rows)
        items = [_item(row) for row in rows]
    return [Panel(
        "sales-my-tasks", _("My tasks (%(count)s)", count=count),
        "crm_sales/activities/_dashboard_widget.html",
        {"items": items, "count": count, "now": now, "names": names, "kind_label": kind_label,
         "can_edit": has_permission(actor, EDIT)},
        order=10,
    )]


def customer_panels(customer: Customer, actor: User) -> list[Panel]:
    """*Next activities*: the customer's next open activities and *Plan an activity*."""
    if not has_permission(actor, VIEW):
        return []
    session = _session_of(customer)
    if session is not None:
        items, names = _next_activities(session, customer.id, actor)
    else:
        with current_crm().session_factory() as own:
            items, names = _next_activities(own, customer.id, actor)
    return [Panel(
        "sales-next-activities", _("Next activities"),
        "crm_sales/activities/_customer_panel.html",
        {"items": items, "now": utcnow(), "assignees": names, "customer_id": customer.id,
         "kind_label": kind_label, "can_edit": has_permission(actor, EDIT)},
        order=30,
    )]


def _next_activities(
    session: Session, customer_id: int, user: User
) -> tuple[list[types.SimpleNamespace], dict[int, str]]:
    reading = UnitOfWork(current_crm(), session, actor=user, source="ui")  # reads only
    rows = activities.next_for_customer(reading, customer_id, limit=PANEL_ROWS)
    items = [_item(row) for row in rows]
    return items, user_names(session, {item.assignee_id for item in items})


def _item(activity: Activity) -> types.SimpleNamespace:
    """The columns slots show of an activity, readable after its session closed."""
    return types.SimpleNamespace(**{
        name: getattr(activity, name) for name in (
            "id", "kind", "subject", "due_at", "assignee_id", "customer_id", "contact_id",
            "opportunity_id", "done_at",
        )
    })


def _send_reminders(crm: Any) -> None:
    """The ``crm_sales.activity_reminders`` job."""
    activities.send_reminders(crm)


def jobs() -> list[Job]:
    """``crm_sales.activity_reminders``: every few minutes, ``activity.reminder_due`` once
    per activity whose reminder time has come."""
    return [Job("crm_sales.activity_reminders", _send_reminders, schedule=REMINDER_SCHEDULE)]


# -- the API ----------------------------------------------------------------------------------


class ActivityOut(ActivitySchema):
    """An activity as the API shows it: its fields, when it was reminded, its version."""

    reminded_at = fields.AwareDateTime(dump_only=True, allow_none=True)
    updated_at = fields.AwareDateTime(dump_only=True)
    version = fields.Integer(
        dump_only=True,
        metadata={"description": "Changes with every change: send it back in `If-Match`."},
    )


def _done_is(raw: str) -> ColumnElement[bool]:
    """`true`: only done activities; `false`: only open ones."""
    if raw not in ("true", "false"):
        raise ValueError(raw)
    return Activity.done_at.is_not(None) if raw == "true" else Activity.done_at.is_(None)


ACTIVITIES = ApiResource(
    name="activities",
    entity=activities.ENTITY,
    model=Activity,
    # ``DELETE`` deletes: activities are not archived (the audit trail keeps them).
    service=types.SimpleNamespace(
        get=activities.get, create=activities.create, update=activities.update,
        archive=activities.delete,
    ),
    permission="sales.activity",
    schema=ActivityOut,
    visibility=visible_activities,
    filters={
        # Each is served by an index: (assignee_id, done_at, due_at), (opportunity_id,
        # due_at), (customer_id, due_at); ``done`` by the first with ``assignee_id`` (or
        # for users who see their own activities only).
        "assignee_id": Activity.assignee_id,
        "opportunity_id": Activity.opportunity_id,
        "customer_id": Activity.customer_id,
        "done": _done_is,
    },
    description="Activities (crm-sales): calls, meetings and to-dos with a due time and an "
    "assignee, linked to a customer, contact or deal. `DELETE` deletes one. Complete one "
    "with `POST /sales/activities/{id}/complete`: linked to a customer, it is logged on "
    "the customer's timeline as an interaction.",
)


def api_resources() -> list[ApiResource]:
    """The ``activities`` resource."""
    return [ACTIVITIES]


@web.api.post("/activities/<record_id>/complete", endpoint="activity_complete")
def activity_complete(record_id: str) -> Response:
    """Complete an activity (body: optional ``outcome_note``); ``If-Match`` optional."""
    crm, user = api_context()
    ident = path_id(record_id, "activity", Activity.id)
    body = json_body(Activity, optional=True)
    unknown = sorted(set(body) - set(CompleteSchema().fields))
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    note = body.get("outcome_note", "")
    if not isinstance(note, str):
        raise ValidationError({"outcome_note": ["Not a valid string."]})
    expected = if_match_version(required=False)
    with crm.unit_of_work(actor=user, source="api") as uow:
        done = activities.complete(uow, ident, note, expected_version=expected)
        data, tag = ActivityOut().dump(done), etag(done)
    return json_response(data, headers={"ETag": tag})


@web.api.post("/activities/<record_id>/reopen", endpoint="activity_reopen")
def activity_reopen(record_id: str) -> Response:
    """Make a done activity open again; ``If-Match`` optional."""
    crm, user = api_context()
    ident = path_id(record_id, "activity", Activity.id)
    expected = if_match_version(required=False)
    with crm.unit_of_work(actor=user, source="api") as uow:
        reopened = activities.reopen(uow, ident, expected_version=expected)
        data, tag = ActivityOut().dump(reopened), etag(reopened)
    return json_response(data, headers={"ETag": tag})


def describe(spec: APISpec) -> None:
    """Add ``/sales/activities/{id}/complete`` and ``/reopen`` to the OpenAPI document."""
    record_id = {
        "name": "record_id", "in": "path", "required": True,
        "description": "The id of the activity.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }
    if_match = {
        "name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
        "description": "The ETag you read; when given, a changed activity is a 409.",
    }
    answer = {
        "description": "The activity.",
        "headers": {"ETag": {"$ref": "#/components/headers/ETag"}},
        "content": {"application/json": {"schema": resource_ref(spec, ACTIVITIES.name)}},
    }
    spec.path(path="/sales/activities/{record_id}/complete", parameters=[record_id],
              operations={"post": {
                  "operationId": "activities_complete",
                  "tags": [ACTIVITIES.name],
                  "summary": "Complete an activity",
                  "description": "Sets `done_at`. A call, meeting or to-do linked to a "
                  "customer is logged on the customer's timeline as an interaction (channel "
                  "`call`, `meeting` or `note`; needs `interaction.edit`) whose id is kept "
                  "in `interaction_id`. A done activity is refused (422).",
                  "parameters": [if_match],
                  "requestBody": {"required": False, "content": {"application/json": {
                      "schema": {"type": "object", "additionalProperties": False,
                                 "properties": {"outcome_note": {
                                     "type": "string", "maxLength": 10000,
                                     "description": "How it went: the interaction's text."}}},
                  }}},
                  "responses": {"200": answer,
                                **problem_responses(400, 401, 403, 404, 409, 412, 415, 422)},
              }})
    spec.path(path="/sales/activities/{record_id}/reopen", parameters=[record_id],
              operations={"post": {
                  "operationId": "activities_reopen",
                  "tags": [ACTIVITIES.name],
                  "summary": "Reopen a done activity",
                  "description": "Clears `done_at` (the interaction it logged stays). An "
                  "open activity is refused (422).",
                  "parameters": [if_match],
                  "responses": {"200": answer,
                                **problem_responses(401, 403, 404, 409, 412, 422)},
              }})


def _add_to_openapi(state: BlueprintSetupState) -> None:
    add_openapi_contributor(state.app, describe)


web.api.record_once(_add_to_openapi)

