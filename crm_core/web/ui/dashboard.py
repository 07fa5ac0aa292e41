"""The dashboard: what a user sees first — counts, recent interactions, charts, widgets.

Everything on it is limited to the records the user may see. Charts are SVG made on
the server: interactions per week by channel (the last :data:`WEEKS` weeks) and
customers by lifecycle stage. Plugins add widgets (their open tasks, follow-ups,
forecasts) through ``crm_dashboard_widgets``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from crm_core.authz import has_permission, visible
from crm_core.models import Contact, Customer, Interaction, LifecycleStage
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.charts import Series, bar_chart, horizontal_bars

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
            counts["Customers"] = sum(stages.values())
            title = "Customers by lifecycle stage"
            bars = [(stage.capitalize(), stages.get(stage, 0)) for stage in _stages()]
            charts.append((title, horizontal_bars(title, bars)))
        if has_permission(user, "contact.view"):
            counts["Contacts"] = _count(session, Contact, visible(user, "contact"))
        if has_permission(user, "interaction.view"):
            since = _week_start(dt.datetime.now(dt.UTC)) - dt.timedelta(weeks=WEEKS - 1)
            weekly = _interactions_per_week(session, user, since)
            counts["Interactions this week"] = sum(
                count for (week, _channel), count in weekly.items() if week == WEEKS - 1
            )
            charts.insert(0, _weekly_chart(crm, weekly, since))
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
    return {(int(number), channel): count for number, channel, count in rows}


def _week_number(session: Session, since: dt.datetime) -> ColumnElement[int]:
    """Whole weeks between ``since`` and an interaction, in the database's own terms."""
    if session.get_bind().dialect.name == "postgresql":
        seconds = func.extract("epoch", Interaction.occurred_at - since)
    else:
        seconds = (func.julianday(Interaction.occurred_at) - func.julianday(since)) * 86400
    return cast(func.floor(seconds / (7 * 86400)), Integer)


def _weekly_chart(
    crm: Any, weekly: dict[tuple[int, str], int], since: dt.datetime
) -> tuple[str, Markup]:
    channels = sorted({channel for _week, channel in weekly})
    labels = crm.registry.channels
    categories = [
        f"{(since + dt.timedelta(weeks=number)):%d %b}" for number in range(WEEKS)
    ]
    series = [
        Series(
            labels[channel].label if channel in labels else channel,
            [weekly.get((number, channel), 0) for number in range(WEEKS)],
        )
        for channel in channels
    ]
    title = f"Interactions per week by channel, last {WEEKS} weeks"
    return title, bar_chart(title, categories, series)


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
