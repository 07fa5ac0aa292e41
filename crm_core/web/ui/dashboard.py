"""The dashboard: what a user sees first — counts, recent interactions, charts, widgets.

Everything on it is limited to the records the user may see. Charts are SVG made on
the server: interactions per week by channel (the last :data:`WEEKS` weeks) and
customers by lifecycle stage. Plugins add widgets (their open tasks, follow-ups,
forecasts) through ``crm_dashboard_widgets``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import flask_babel
from babel.dates import format_skeleton
from flask import render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import ngettext
from markupsafe import Markup
from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from crm_core.authz import has_permission, visible
from crm_core.models import Contact, Customer, Interaction, LifecycleStage
from crm_core.web.i18n import number
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.charts import Series, bar_chart, horizontal_bars
from crm_core.web.ui.names import channel_label, stage_label

#: Weeks of interactions the chart shows, this one included.
WEEKS = 12
#: Interactions listed under "Recent interactions".
RECENT = 10


@blueprint.get("/")
@page
def dashboard() -> ResponseReturnValue:
    """Counts, recent interactions, the two charts and plugins' widgets."""
    crm, user = current_crm(), actor()
    counts: dict[str, int] = {}
    recent: list[Any] = []
    charts: list[tuple[str, Markup]] = []
    with crm.session_factory() as session:
        if has_permission(user, "customer.view"):
            stages = _customers_by_stage(session, user)
            counts[_("Customers")] = sum(stages.values())
            title = _("Customers by lifecycle stage")
            bars = [(stage_label(stage), stages.get(stage, 0)) for stage in _stages()]
            charts.append((title, horizontal_bars(title, bars, number_format=number)))
        if has_permission(user, "contact.view"):
            counts[_("Contacts")] = _count(session, Contact, visible(user, "contact"))
        if has_permission(user, "interaction.view"):
            since = _week_start(dt.datetime.now(dt.UTC)) - dt.timedelta(weeks=WEEKS - 1)
            weekly = _interactions_per_week(session, user, since)
            counts[_("Interactions this week")] = sum(
                count for (week, _channel), count in weekly.items() if week == WEEKS - 1
            )
            charts.insert(0, _weekly_chart(weekly, since))
            recent = _recent_interactions(session, user)
    widgets = crm.dashboard_widgets(user)
    return render_template(
        "crm_core/ui/dashboard.html", counts=counts, recent=recent, charts=charts, widgets=widgets
    )


def _stages() -> list[str]:
    return [stage.value for stage in LifecycleStage]


def _count(session: Session, model: Any, clause: ColumnElement[bool]) -> int:
    statement = select(func.count()).select_from(model).where(clause, model.archived.is_(False))
    return session.scalar(statement) or 0


def _customers_by_stage(session: Session, user: Any) -> dict[str, int]:
    rows = session.execute(
        select(Customer.lifecycle_stage, func.count())
        .where(visible(user, "customer"), Customer.archived.is_(False))
        .group_by(Customer.lifecycle_stage)
    )
    return {stage: count for stage, count in rows}


def _interactions_per_week(
    session: Session, user: Any, since: dt.datetime
) -> dict[tuple[int, str], int]:
    """``(week number since ``since``, channel) -> count``, grouped by the database."""
    week = _week_number(session, since)
    rows = session.execute(
        select(week, Interaction.channel, func.count())
        .where(
            Interaction.occurred_at >= since,
            Interaction.archived.is_(False),
            visible(user, "interaction"),
        )
        .group_by(week, Interaction.channel)
    )
    return {(int(ordinal), channel): count for ordinal, channel, count in rows}


def _week_number(session: Session, since: dt.datetime) -> ColumnElement[int]:
    """Whole weeks between ``since`` and an interaction, in the database's own terms."""
    if session.get_bind().dialect.name == "postgresql":
        seconds = func.extract("epoch", Interaction.occurred_at - since)
    else:
        seconds = (func.julianday(Interaction.occurred_at) - func.julianday(since)) * 86400
    return cast(func.floor(seconds / (7 * 86400)), Integer)


def _weekly_chart(weekly: dict[tuple[int, str], int], since: dt.datetime) -> tuple[str, Markup]:
    channels = sorted({channel for _week, channel in weekly})
    locale = flask_babel.get_locale()
    categories = [  # the Monday of each week, as the language writes a day ("Dec 2", "2. Dez.")
        format_skeleton("MMMd", (since + dt.timedelta(weeks=week)).date(), locale=locale)
        for week in range(WEEKS)
    ]
    series = [
        Series(channel_label(channel), [weekly.get((week, channel), 0) for week in range(WEEKS)])
        for channel in channels
    ]
    title = ngettext(
        "Interactions per week by channel, last %(num)d week",
        "Interactions per week by channel, last %(num)d weeks",
        WEEKS,
    )
    return title, bar_chart(title, categories, series, number_format=number)


def _recent_interactions(session: Session, user: Any) -> list[Any]:
    return list(
        session.execute(
            select(
                Interaction.id,
                Interaction.channel,
                Interaction.subject,
                Interaction.occurred_at,
                Interaction.customer_id,
                Customer.name.label("customer_name"),
            )
            .join(Customer, Customer.id == Interaction.customer_id)
            .where(Interaction.archived.is_(False), visible(user, "interaction"))
            .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
            .limit(RECENT)
        )
    )


def _week_start(moment: dt.datetime) -> dt.datetime:
    """Monday 00:00 UTC of ``moment``'s week."""
    day = moment.astimezone(dt.UTC).date()
    monday = day - dt.timedelta(days=day.weekday())
    return dt.datetime.combine(monday, dt.time(), tzinfo=dt.UTC)
