"""The deals list (``/sales/deals``).

It searches names and filters by status, owner, pipeline, stage and customer, and pages
by keyset on the expected close date (nulls last) and the id, :data:`PAGE_SIZE` a page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import ColumnElement, and_, or_

from crm_core.authz import has_permission, require
from crm_core.web.api.pagination import Cursor, int_bounds
from crm_core.web.api.problems import ApiProblem
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.names import customer_names
from crm_core.web.ui.paging import split_page
from crm_sales import web
from crm_sales.models import Opportunity
from crm_sales.parts.deals.common import (
    STATUS_LABELS,
    all_pipelines,
    by_close_date,
    deals_with_stages,
    id_arg,
    status_label,
)
from crm_sales.services.opportunities import EDIT, VIEW, visible_deals

#: Deals per page of the list.
PAGE_SIZE = 50
#: The sort key of deals without an expected close date: after every real day.
NO_CLOSE_DATE = dt.date.max.toordinal() + 1


def _close_cursor() -> Cursor | None:
    """The list's ``cursor``: where the previous page ended; a bad one: 400."""
    token = request.args.get("cursor")
    if not token:
        return None
    try:
        return Cursor.decode(
            token, sort="expected_close", descending=False, python_type=int,
            value_bounds=(1, NO_CLOSE_DATE), id_bounds=int_bounds(Opportunity.id),
        )
    except ApiProblem:
        abort(400)


def _after_close(cursor: Cursor) -> ColumnElement[bool]:
    """Deals after ``cursor`` by expected close (no date: last), then id."""
    if cursor.value == NO_CLOSE_DATE:
        return and_(Opportunity.expected_close.is_(None), Opportunity.id > cursor.id)
    day = dt.date.fromordinal(cursor.value)
    return or_(
        Opportunity.expected_close > day,
        and_(Opportunity.expected_close == day, Opportunity.id > cursor.id),
        Opportunity.expected_close.is_(None),
    )


def _close_token(row: Any) -> str:
    """The cursor of the page after ``row``."""
    day = row.expected_close.toordinal() if row.expected_close else NO_CLOSE_DATE
    return Cursor("expected_close", False, day, row.id).encode()


@web.ui.get("/deals", endpoint="deals")
@page
def deals_list() -> ResponseReturnValue:
    """The deals the user may see: search, filters, by expected close date, next page."""
    crm, user = current_crm(), actor()
    require(user, VIEW)
    query = request.args.get("q", "").strip()
    status = request.args.get("status", "")
    owner = request.args.get("owner", "")
    if status not in ("", *STATUS_LABELS) or owner not in ("", "me") or "\x00" in query:
        abort(400)
    pipeline_id, stage_id = id_arg("pipeline"), id_arg("stage")
    customer_id = id_arg("customer_id")
    cursor = _close_cursor()
    with crm.session_factory() as session:
        clauses: list[ColumnElement[bool]] = [Opportunity.archived.is_(False), visible_deals(user)]
        if query:
            escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(Opportunity.name.ilike(f"%{escaped}%", escape="\\"))
        if status:
            clauses.append(Opportunity.status == status)
        if owner == "me":
            clauses.append(Opportunity.owner_id == user.id)
        if pipeline_id is not None:
            clauses.append(Opportunity.pipeline_id == pipeline_id)
        if stage_id is not None:
            clauses.append(Opportunity.stage_id == stage_id)
        if customer_id is not None:
            clauses.append(Opportunity.customer_id == customer_id)
        if cursor is not None:
            clauses.append(_after_close(cursor))
        statement = deals_with_stages(user).where(*clauses)
        found = session.execute(by_close_date(statement).limit(PAGE_SIZE + 1)).all()
        rows, next_url = split_page(found, PAGE_SIZE, lambda last: url_for(
            "crm_sales.deals", **{**request.args, "cursor": _close_token(last)}
        ))
        pipelines = all_pipelines(session)
        customer_name = (customer_names(session, user, {customer_id}).get(customer_id)
                         if customer_id is not None else None)
        filtered = {key: value for key, value in request.args.items() if key != "cursor"}
        return render_template(
            "crm_sales/deals/list.html",
            deals=rows,
            query=query,
            status=status,
            owner=owner,
            pipeline_id=pipeline_id,
            stage_id=stage_id,
            customer_id=customer_id,
            customer_name=customer_name,
            pipelines=pipelines,
            pipeline_names={p.id: p.name for p in pipelines},
            statuses=list(STATUS_LABELS.items()),
            status_label=status_label,
            next_url=next_url,
            first_url=url_for("crm_sales.deals", **filtered) if cursor is not None else None,
            can_edit=has_permission(user, EDIT),
        )
