"""What several of the activity modules share: the names of the kinds of activity, the
installation's time zone and day, the names of the customers, contacts and deals
activities link to, and where a form goes back to.

Not a part: it adds no views and fills no slot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import request
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.authz import has_permission, visible
from crm_core.models import Contact, User
from crm_core.web.ui.access import current_crm
from crm_core.web.ui.names import customer_names
from crm_sales.models import Activity, ActivityKind, Opportunity
from crm_sales.services.opportunities import VIEW as DEAL_VIEW
from crm_sales.services.opportunities import visible_deals

#: How pages name the kinds of activity.
KIND_LABELS = {
    ActivityKind.CALL.value: _l("Call"),
    ActivityKind.MEETING.value: _l("Meeting"),
    ActivityKind.TODO.value: _l("To-do"),
}


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


# -- reading for pages ------------------------------------------------------------------------


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


# -- where a form goes back to ----------------------------------------------------------------


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path of this site (where a form came from), else ``None``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    return target


def back(default: str) -> str:
    """Where a form or button goes back to: its ``next`` (posted, else in the query) if
    that is a path of this site, else ``default``."""
    return safe_next(request.form.get("next") or request.args.get("next")) or default
