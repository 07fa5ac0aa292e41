"""The activities' slot functions (:mod:`crm_sales.web` gathers them for core's hooks).

*Activities* in the navigation, *My tasks* on the dashboard (the user's overdue and
today's open activities), *Next activities* on the customer's page, and the periodic job
``crm_sales.activity_reminders`` (:func:`crm_sales.services.activities.send_reminders`).
"""

from __future__ import annotations

import types
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session, object_session

from crm_core import UnitOfWork, utcnow
from crm_core.authz import has_permission
from crm_core.extensions import Job, MenuItem, Panel
from crm_core.models import Customer, User
from crm_core.web.ui.access import current_crm
from crm_core.web.ui.names import user_names
from crm_sales.models import Activity
from crm_sales.parts.activities.common import day_bounds, kind_label, link_names
from crm_sales.services import activities
from crm_sales.services.activities import EDIT, VIEW

#: Activities the dashboard's *My tasks* lists, at most (its title counts them all).
WIDGET_ROWS = 10
#: Open activities the customer's *Next activities* panel lists.
PANEL_ROWS = 5
#: How often the reminder job runs (crontab): reminders come at most this late.
REMINDER_SCHEDULE = "*/5 * * * *"


def _session_of(record: Any) -> Session | None:
    return object_session(record) if record is not None else None


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
