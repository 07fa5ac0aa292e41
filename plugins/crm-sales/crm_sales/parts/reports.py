"""Reports in the UI and the API: the forecast, the funnel, quotas, and their slots.

Pages (``sales.report.view``): ``/sales/forecast`` (period kind, range, grouping; per
currency a chart of weighted, committed and won against the quota per period, and a
table) and ``/sales/funnel`` (pipeline, cohort of creation dates, breakdown; the funnel
as horizontal bars, the conversion table, the outcomes and the breakdown table). The
quota administration (``sales.admin``) is ``/sales/quotas``: the quotas, latest period
first, with a form to set one and a button to delete each. Filters are plain GET forms
(a refused value shows beside its field, status 422); every figure comes from
:mod:`crm_sales.services.reports`, every write goes through
:mod:`crm_sales.services.quotas`.

The API of the forecast, the funnel and quotas is :mod:`crm_sales.parts.reports_api`.

Slots: *Forecast* and *Funnel* in the navigation, *Quotas* among the settings pages,
and the dashboard widget *This month's forecast* (the user's own deals and quota).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

import flask_babel
from babel.dates import format_skeleton
from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from crm_core.authz import has_permission, require
from crm_core.errors import ValidationError
from crm_core.extensions import MenuItem, Panel
from crm_core.models import Team, User
from crm_core.web.i18n import number
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.charts import Series, bar_chart, horizontal_bars
from crm_core.web.ui.forms import field_errors, form_data, refuse_unstorable
from crm_core.web.ui.names import owner_options
from crm_sales import web
from crm_sales.models import Quota
from crm_sales.services import funnel, quotas, reports
from crm_sales.services.funnel import Funnel
from crm_sales.services.reports import Forecast, Period

#: Quotas per page of the quota administration.
QUOTA_PAGE = 50
#: The quota form's fields, in its order.
QUOTA_FIELDS = ("owner_id", "team_id", "period", "starts_on", "amount", "currency")


# -- pages ----------------------------------------------------------------------------------


@web.ui.get("/forecast", endpoint="forecast")
@page
def forecast_page() -> ResponseReturnValue:
    """The forecast: a chart and a table per currency, for the periods and grouping asked."""
    crm, user = current_crm(), actor()
    require(user, reports.VIEW)
    errors: dict[str, list[str]] = {}
    result: Forecast | None = None
    try:
        with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
            result = reports.forecast(uow, **reports.forecast_args(request.args))
    except ValidationError as exc:
        errors = field_errors(exc.messages)
    values = dict(request.args.items())
    if result is not None:
        values.update(period=result.kind, by=result.by, **{
            "from": result.start.isoformat(), "to": result.end.isoformat()})
    sections = [] if result is None else _forecast_sections(result)
    html = render_template(
        "crm_sales/reports/forecast.html",
        result=result,
        sections=sections,
        values=values,
        errors=errors,
        labels={} if result is None else {p: period_label(p) for p in result.periods},
        group_label=group_label,
        api_url=url_for("crm_sales_api.forecast", **_kept(values)),
    )
    return html, 422 if errors else 200


@web.ui.get("/funnel", endpoint="funnel")
@page
def funnel_page() -> ResponseReturnValue:
    """The funnel of a pipeline for a cohort: the chart, conversions, outcomes, breakdown."""
    crm, user = current_crm(), actor()
    require(user, reports.VIEW)
    errors: dict[str, list[str]] = {}
    result: Funnel | None = None
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        choices = funnel.pipelines(uow)
        try:
            result = funnel.funnel(uow, **funnel.funnel_args(request.args))
        except ValidationError as exc:
            errors = field_errors(exc.messages)
    values = dict(request.args.items())
    chart = None
    if result is not None:
        values.update(pipeline_id=result.pipeline_id, by=result.by or "", **{
            "from": result.start.isoformat(), "to": result.end.isoformat()})
        title = _("Deals that entered each stage of %(pipeline)s", pipeline=result.pipeline_name)
        chart = horizontal_bars(
            title, [(step.name, step.entered) for step in result.steps], number_format=number
        )
    html = render_template(
        "crm_sales/reports/funnel.html",
        result=result,
        chart=chart,
        pipelines=choices,
        breakdowns=_breakdown_choices(),
        values=values,
        errors=errors,
        open_steps=[] if result is None else [s for s in result.steps if s.outcome != "lost"],
        breakdown_title=_breakdown_title(result),
        breakdown_label=breakdown_label,
        api_url=url_for("crm_sales_api.funnel", **_kept(values)),
    )
    return html, 422 if errors else 200


@web.ui.route("/quotas", methods=["GET", "POST"], endpoint="quotas")
@page
def quotas_page() -> ResponseReturnValue:
    """The quotas, latest period first, and the form that sets one (``sales.admin``)."""
    crm, user = current_crm(), actor()
    require(user, quotas.ADMIN)
    values: dict[str, Any] = {"period": "month", "currency": "EUR"}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {key: request.form.get(key, "") for key in QUOTA_FIELDS}
        try:
            refuse_unstorable(request.form, Quota)
            with crm.unit_of_work(actor=user, source="ui") as uow:
                quota = quotas.set_quota(uow, _quota_data(request.form))
                saved = (quota.period, quota.starts_on)
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        else:
            flash(_("The quota for %(period)s was saved.",
                    period=period_label(reports.Period(*saved))))
            return redirect(url_for("crm_sales.quotas"))
    after = _quota_cursor(request.args.get("after"))
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        found = quotas.list_quotas(uow, after=after, limit=QUOTA_PAGE + 1)
        users = owner_options(uow.session)
        teams = [(row.id, row.name) for row in uow.session.execute(
            select(Team.id, Team.name).order_by(Team.name))]
        if request.method == "GET":
            this_month = reports.period_of(reports.today(uow), "month")
            values["starts_on"] = this_month.starts_on.isoformat()
    rows = found[:QUOTA_PAGE]
    next_url = None
    if len(found) > QUOTA_PAGE:
        last = rows[-1].quota
        next_url = url_for("crm_sales.quotas", after=f"{last.starts_on.isoformat()}.{last.id}")
    html = render_template(
        "crm_sales/reports/quotas.html",
        rows=rows,
        labels={row.quota.id: period_label(reports.Period(row.quota.period, row.quota.starts_on))
                for row in rows},
        users=users,
        teams=teams,
        values=values,
        errors=errors,
        next_url=next_url,
        first_url=url_for("crm_sales.quotas") if after is not None else None,
    )
    return html, 422 if errors else 200


@web.ui.post("/quotas/<int:quota_id>/delete", endpoint="delete_quota")
@page
def delete_quota(quota_id: int) -> ResponseReturnValue:
    """Delete a quota (``sales.admin``)."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui") as uow:
        quota = quotas.get(uow, quota_id)
        label = period_label(reports.Period(quota.period, quota.starts_on))
        quotas.delete(uow, quota_id)
    flash(_("The quota for %(period)s was deleted.", period=label))
    return redirect(url_for("crm_sales.quotas"))


# -- slots ------------------------------------------------------------------------------------


def menu_items(actor: User) -> list[MenuItem]:
    """*Forecast* and *Funnel* in the navigation."""
    return [
        MenuItem(_("Forecast"), "crm_sales.forecast", order=40, permission=reports.VIEW),
        MenuItem(_("Funnel"), "crm_sales.funnel", order=41, permission=reports.VIEW),
    ]


def settings_pages(actor: User) -> list[MenuItem]:
    """*Quotas* among the settings pages, for the sales admin."""
    return [MenuItem(_("Quotas"), "crm_sales.quotas", order=40, permission=quotas.ADMIN)]


def dashboard_widgets(actor: User) -> list[Panel]:
    """*This month's forecast*: the user's weighted, committed and won against their quota."""
    if not has_permission(actor, reports.VIEW):
        return []
    crm = current_crm()
    with crm.unit_of_work(actor=actor, source="ui", write=False) as uow:
        day = reports.today(uow)
        result = reports.forecast(uow, "month", day, day, "owner", owner_id=actor.id)
    figures = [(currency, result.totals(currency)[0]) for currency in result.currencies()]
    month = result.periods[0]
    context = {
        "figures": figures,
        "month": period_label(month),
        "url": url_for("crm_sales.forecast", period="month", by="owner",
                       **{"from": month.starts_on.isoformat(), "to": month.ends_on.isoformat()}),
    }
    return [Panel("sales-forecast", _("This month's forecast"),
                  "crm_sales/reports/_widget.html", context, order=20)]


# -- helpers ----------------------------------------------------------------------------------


def period_label(period: Period) -> str:
    """A month as the language writes it ("Jan 2026"), a quarter as "Q1 2026"."""
    if period.kind == "month":
        return format_skeleton("yMMM", period.starts_on, locale=flask_babel.get_locale())
    return _("Q%(quarter)d %(year)d", quarter=period.quarter, year=period.starts_on.year)


def _forecast_sections(result: Forecast) -> list[dict[str, Any]]:
    """Per currency: its chart (per period: weighted, committed, won, quota) and totals."""
    sections = []
    categories = [period_label(p) for p in result.periods]
    for currency in result.currencies():
        totals = result.totals(currency)
        series = [
            Series(_("Weighted"), [float(f.weighted) for f in totals]),
            Series(_("Committed"), [float(f.committed) for f in totals]),
            Series(_("Won"), [float(f.won) for f in totals]),
            Series(_("Quota"), [float(f.quota or 0) for f in totals]),
        ]
        title = _("Forecast in %(currency)s", currency=currency)
        chart = bar_chart(title, categories, series, stacked=False, number_format=number)
        rows = [row for row in result.rows if row.currency == currency]
        sections.append({"currency": currency, "chart": chart, "rows": rows,
                         "totals": list(zip(result.periods, totals, strict=True))})
    return sections


def group_label(by: str, name: str | None) -> str:
    """How the forecast names a group: its name, or what a group without one is."""
    if name is not None:
        return name
    if by == "owner":
        return _("No owner")
    if by == "team":
        return _("No team")
    return _("All deals")


def _breakdown_choices() -> list[tuple[str, str]]:
    return [("owner", _("Owner")), ("product", _("Product")),
            ("segment", _("Segment (industry)")), ("region", _("Region (country)"))]


def _breakdown_title(result: Funnel | None) -> str:
    if result is None or result.by is None:
        return ""
    return dict(_breakdown_choices())[result.by]


def breakdown_label(by: str | None, label: str | None) -> str:
    """How the funnel's breakdown names a part: its name, or what a part without one is."""
    if label is not None:
        return label
    return {
        "owner": _("No owner"),
        "product": _("No product"),
        "segment": _("No industry"),
        "region": _("No country"),
    }.get(by or "", _("Other"))


def _kept(values: Mapping[str, Any]) -> dict[str, str]:
    """The report's own query parameters among ``values`` (for the JSON link)."""
    names = ("period", "from", "to", "by", "pipeline_id")
    return {name: str(values[name]) for name in names if values.get(name) not in (None, "")}


def _quota_data(form: Mapping[str, str]) -> dict[str, Any]:
    """The quota form as the service takes it: numbers as numbers, empty as none."""
    data = form_data(form, QUOTA_FIELDS)  # type: ignore[arg-type]
    for key in ("owner_id", "team_id"):
        value = data.get(key)
        if isinstance(value, str) and re.fullmatch(r"\d{1,19}", value):
            data[key] = int(value)
    for key in ("period", "currency"):
        if data.get(key) is None:
            data.pop(key, None)
    return data


def _quota_cursor(raw: str | None) -> tuple[dt.date, int] | None:
    """The ``after`` parameter (``2026-04-01.17``) of the quota list; a bad one: 400."""
    if raw is None:
        return None
    found = re.fullmatch(r"(\d{4}-\d{2}-\d{2})\.(\d{1,18})", raw)
    if found is None:
        abort(400)
    try:
        return dt.date.fromisoformat(found.group(1)), int(found.group(2))
    except ValueError:
        abort(400)
