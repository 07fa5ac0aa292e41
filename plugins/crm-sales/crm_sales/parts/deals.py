"""Deals in the UI: the pipeline board, the list, the deal's page, its forms, and its slots.

The board (``/sales/board``) shows a pipeline's stages as columns of cards: the open
deals in open stages, and in the won and lost columns the deals closed in the last
:data:`RECENTLY_CLOSED`. Each card moves its deal with a small form, without JavaScript
(a lost stage asks why first); a move carries the version the user saw, so a deal someone
else moved meanwhile is not moved again (409). The board reads its cards in one query
(at most :data:`BOARD_CARDS` per column, ranked by a window function) and the columns'
counts and sums in one grouped query.

The list (``/sales/deals``) searches names and filters by status, owner, pipeline, stage
and customer, by keyset on the expected close date (nulls last) and the id. The deal's
page shows its details, contacts, lines and stage history; the forms edit contacts and
lines as repeated rows, like core's contact form. Every write goes through
:mod:`crm_sales.services.opportunities`.

Slots (:mod:`crm_sales.web`): the *Deals* navigation entry, the customer's *Open deals*
panel and *Deals* tab, the dashboard's *My open deals*, and the timeline entries of stage
changes (:func:`timeline_entries`, wired to ``crm_timeline_entries`` in
:mod:`crm_sales.plugin`) with their renderer.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session, aliased, join, object_session, outerjoin
from werkzeug.datastructures import MultiDict

from crm_core import utcnow
from crm_core.authz import has_permission, require, visible
from crm_core.errors import (
    ConflictError,
    NotFoundError,
    ValidationError,
)
from crm_core.extensions import CustomerTab, MenuItem, Panel, TimelineEntry, TimelineRenderer
from crm_core.ids import as_record_id
from crm_core.models import Contact, Customer, User
from crm_core.web.api.pagination import Cursor, int_bounds
from crm_core.web.api.problems import ApiProblem
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import Difference, differences, form_version, posted_version
from crm_core.web.ui.forms import field_errors, refuse_unstorable
from crm_core.web.ui.names import customer_names, owner_options, user_names
from crm_core.web.ui.paging import split_page
from crm_sales import web
from crm_sales.models import (
    ContactRole,
    LostReason,
    Opportunity,
    Outcome,
    Pipeline,
    Product,
    Stage,
    StageStay,
)
from crm_sales.services import opportunities
from crm_sales.services.opportunities import ARCHIVE, EDIT, VIEW, visible_deals

#: Cards per column of the board, at most (the column says how many more there are).
BOARD_CARDS = 100
#: How long won and lost deals stay on the board after closing.
RECENTLY_CLOSED = dt.timedelta(days=30)
#: Deals per page of the list.
PAGE_SIZE = 50
#: Open deals on the customer's panel and on the dashboard widget.
PANEL_DEALS = 5
#: Deals the customer's tab lists, at most (a link leads to the list for the others).
TAB_DEALS = 200
#: Contacts the form offers in its selects: the customer's first ones by name.
CONTACT_OPTIONS = 200
#: Empty rows the form offers after the stored contacts and lines.
EMPTY_ROWS = 2
#: The timeline entry type of a deal's move to a stage.
STAGE_CHANGE = "sales.stage_change"
#: The single-value fields of the deal form, in its order.
FORM_FIELDS = (
    "name", "customer_id", "pipeline_id", "stage_id", "amount", "currency", "expected_close",
    "probability", "owner_id", "source", "next_step",
)
#: The form's checkboxes.
FLAGS = ("committed",)
#: The form's whole-number fields (sent to the schema as numbers, else as typed).
INTEGERS = frozenset({"customer_id", "pipeline_id", "stage_id", "probability", "owner_id"})
#: The repeated rows: list name -> its fields, and the fields that make a row non-empty.
ROWS = {
    "contacts": ("contact_id", "role"),
    "lines": ("description", "quantity", "unit_price", "discount_percent", "product_id"),
}
ROW_CONTENT = {
    "contacts": ("contact_id",),
    "lines": ("description", "quantity", "unit_price", "discount_percent"),
}
#: What the empty rows hold at first.
ROW_DEFAULTS = {"contacts": {"role": ContactRole.OTHER.value}, "lines": {}}
#: How pages name a deal's status.
STATUS_LABELS = {
    Outcome.OPEN.value: _l("Open"),
    Outcome.WON.value: _l("Won"),
    Outcome.LOST.value: _l("Lost"),
}
#: How pages name a contact's role in a deal.
ROLE_LABELS = {
    ContactRole.DECISION_MAKER.value: _l("Decision maker"),
    ContactRole.INFLUENCER.value: _l("Influencer"),
    ContactRole.CHAMPION.value: _l("Champion"),
    ContactRole.USER.value: _l("User"),
    ContactRole.OTHER.value: _l("Other"),
}
#: How the conflict table names the fields.
FIELD_LABELS = {
    "name": _l("Name"), "customer_id": _l("Customer"), "pipeline_id": _l("Pipeline"),
    "stage_id": _l("Stage"), "amount": _l("Amount"), "currency": _l("Currency"),
    "expected_close": _l("Expected close"), "probability": _l("Probability"),
    "owner_id": _l("Owner"), "source": _l("Source"), "next_step": _l("Next step"),
    "committed": _l("Committed"), "contacts": _l("Contacts"), "lines": _l("Lines"),
}
#: Deals' owners and stages' movers, aliased: visibility filters select from ``User`` in
#: subqueries, which an unaliased ``User`` of the outer query would correlate away.
_Owner = aliased(User, name="owner")
_Mover = aliased(User, name="mover")
#: The sort key of deals without an expected close date: after every real day.
NO_CLOSE_DATE = dt.date.max.toordinal() + 1



# -- what pages show ----------------------------------------------------------------------------


@dataclass
class Column:
    """A column of the board: a stage, its cards, how many deals and how much money."""

    stage: Stage
    cards: list[Any] = field(default_factory=list)
    count: int = 0
    sums: list[tuple[str, Decimal]] = field(default_factory=list)

    @property
    def more(self) -> int:
        """Deals of the column the board leaves out."""
        return max(self.count - len(self.cards), 0)


def status_label(status: str | None) -> str:
    """The name of a deal's status in the request's language (else the code)."""
    return str(STATUS_LABELS.get(status or "", status or ""))


def role_label(role: str | None) -> str:
    """The name of a contact's role in a deal in the request's language (else the code)."""
    return str(ROLE_LABELS.get(role or "", role or ""))


def weighted(amount: Decimal | None, probability: int | None) -> Decimal:
    """``amount`` times ``probability`` percent, to the cent."""
    return (Decimal(amount or 0) * Decimal(probability or 0) / Decimal(100)).quantize(
        Decimal("0.01")
    )


def duration_text(delta: dt.timedelta) -> str:
    """A stay's length as people say it: minutes, hours (under two days) or days."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 60:
        return ngettext("%(num)d minute", "%(num)d minutes", minutes)
    hours = minutes // 60
    if hours < 48:
        return ngettext("%(num)d hour", "%(num)d hours", hours)
    return ngettext("%(num)d day", "%(num)d days", hours // 24)


def _sums(rows: Iterable[Any]) -> list[tuple[str, Decimal]]:
    """``(currency, amount)`` rows added up per currency, by currency."""
    totals: dict[str, Decimal] = {}
    for currency, amount in rows:
        totals[currency] = totals.get(currency, Decimal(0)) + Decimal(amount or 0)
    return sorted((currency, total.quantize(Decimal("0.01"))) for currency, total in totals.items())


def _pipelines(session: Session) -> list[Pipeline]:
    """Every pipeline with its stages, in their order (two queries)."""
    return list(session.scalars(select(Pipeline).order_by(Pipeline.position, Pipeline.id)))


def _id_arg(name: str) -> int | None:
    """The query parameter ``name`` as a record id; empty: ``None``; not an id: 400."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    ident = as_record_id(raw)
    if ident is None or ident < 1:
        abort(400)
    return ident


def _integer(text: str) -> Any:
    """A form's whole number as a number; anything else as typed (the schema refuses it)."""
    return int(text) if re.fullmatch(r"[+-]?\d{1,18}", text) else text


def _plain(value: Decimal | None) -> str:
    """A decimal as a form shows it: no trailing zeros, no exponent."""
    if value is None:
        return ""
    text = format(Decimal(value).normalize(), "f")
    return text


def _money_text(value: Decimal | None) -> str:
    """An amount as a form shows it: two decimals."""
    return "" if value is None else f"{Decimal(value):.2f}"


@contextmanager
def _reading(record: Any = None) -> Iterator[Session]:
    """The session ``record`` was read with (a slot called inside a page's unit of work),
    else a new one."""
    session = object_session(record) if record is not None else None
    if session is not None:
        yield session
        return
    with current_crm().session_factory() as own:
        yield own


def _deal_columns() -> tuple[Any, ...]:
    """The columns lists and cards show of a deal."""
    return (
        Opportunity.id, Opportunity.name, Opportunity.customer_id, Opportunity.pipeline_id,
        Opportunity.stage_id, Opportunity.status, Opportunity.amount, Opportunity.currency,
        Opportunity.owner_id, Opportunity.expected_close, Opportunity.probability,
        Opportunity.version, Opportunity.closed_at,
    )


def _with_names(user: User, source: Any, deals: Any, *columns: Any) -> Select[Any]:
    """``columns`` of ``source`` (a FROM whose deals' columns are ``deals``) with the names
    of the deals' customers (those ``user`` may see) and owners, joined explicitly (the
    visibility filters' subqueries leave the ORM no single side to join from)."""
    joined = outerjoin(
        outerjoin(source, Customer,
                  and_(Customer.id == deals.customer_id, visible(user, "customer"))),
        _Owner, _Owner.id == deals.owner_id,
    )
    return select(
        *columns, Customer.name.label("customer_name"), _Owner.name.label("owner_name"),
        _Owner.email.label("owner_email"),
    ).select_from(joined)


def _deals_with_stages(user: User) -> Select[Any]:
    """Deals' list columns with their stage's name, their customer's and owner's names."""
    return _with_names(
        user, join(Opportunity, Stage, Stage.id == Opportunity.stage_id), Opportunity,
        *_deal_columns(), Stage.name.label("stage_name"),
    )


# -- the board ----------------------------------------------------------------------------------


@web.ui.get("/board", endpoint="board")
@page
def board() -> ResponseReturnValue:
    """A pipeline's stages as columns of deal cards, each card with its move form."""
    crm, user = current_crm(), actor()
    require(user, VIEW)
    wanted = _id_arg("pipeline")
    with crm.session_factory() as session:
        pipelines = _pipelines(session)
        if wanted is None:
            pipeline = next((p for p in pipelines if p.is_default), None) or (
                pipelines[0] if pipelines else None
            )
        else:
            pipeline = next((p for p in pipelines if p.id == wanted), None)
            if pipeline is None:
                raise NotFoundError("pipeline", wanted)
        columns = _board_columns(session, user, pipeline) if pipeline is not None else []
        return render_template(
            "crm_sales/deals/board.html",
            pipelines=pipelines,
            pipeline=pipeline,
            columns=columns,
            next_stage=_following([stage.id for stage in pipeline.stages] if pipeline else []),
            can_edit=has_permission(user, EDIT),
            status_label=status_label,
            closed_days=RECENTLY_CLOSED.days,
        )


def _board_columns(session: Session, user: User, pipeline: Pipeline) -> list[Column]:
    """The board's columns: the cards in one query, the counts and sums in another."""
    since = utcnow() - RECENTLY_CLOSED
    clauses = (
        Opportunity.pipeline_id == pipeline.id,
        Opportunity.archived.is_(False),
        visible_deals(user),
        or_(Opportunity.status == Outcome.OPEN.value, Opportunity.closed_at >= since),
    )
    rank = func.row_number().over(
        partition_by=Opportunity.stage_id,
        order_by=(Opportunity.expected_close.asc().nulls_last(), Opportunity.id),
    ).label("rank")
    ranked = select(*_deal_columns(), rank).where(*clauses).subquery()
    cards = session.execute(
        _with_names(user, ranked, ranked.c, ranked)
        .where(ranked.c.rank <= BOARD_CARDS)
        .order_by(ranked.c.stage_id, ranked.c.rank)
    ).all()
    totals = session.execute(
        select(Opportunity.stage_id, Opportunity.currency, func.count(),
               func.sum(Opportunity.amount))
        .where(*clauses)
        .group_by(Opportunity.stage_id, Opportunity.currency)
    ).all()
    columns = {stage.id: Column(stage) for stage in pipeline.stages}
    for card in cards:
        if card.stage_id in columns:
            columns[card.stage_id].cards.append(card)
    money: dict[int, list[tuple[str, Decimal]]] = {}
    for stage_id, currency, count, amount in totals:
        if stage_id in columns:
            columns[stage_id].count += count
            money.setdefault(stage_id, []).append((currency, amount))
    for stage_id, rows in money.items():
        columns[stage_id].sums = _sums(rows)
    return list(columns.values())


def _following(stage_ids: list[int]) -> dict[int, int]:
    """Each stage's following stage (the last one's: the first), as the move forms preselect."""
    return {ident: stage_ids[(index + 1) % len(stage_ids)]
            for index, ident in enumerate(stage_ids)}


# -- moving, archiving --------------------------------------------------------------------------


@dataclass(frozen=True)
class DealSnapshot:
    """What the move and conflict pages show of a deal, read before a write."""

    id: int
    name: str
    version: int
    stage_id: int
    stage_name: str
    pipeline_id: int
    stages: list[tuple[int, str, str]]
    """The pipeline's stages: id, name, outcome."""
    lost_reasons: list[tuple[int, str]]
    archived: bool


def _snapshot(uow: Any, deal_id: int) -> DealSnapshot:
    deal = opportunities.get(uow, deal_id)
    stages = list(uow.session.execute(
        select(Stage.id, Stage.name, Stage.outcome)
        .where(Stage.pipeline_id == deal.pipeline_id)
        .order_by(Stage.position, Stage.id)
    ))
    reasons = list(uow.session.execute(
        select(LostReason.id, LostReason.name)
        .where(or_(LostReason.active.is_(True), LostReason.id == deal.lost_reason_id))
        .order_by(LostReason.name)
    ))
    return DealSnapshot(
        deal.id, deal.name, deal.version, deal.stage_id, deal.stage.name, deal.pipeline_id,
        [(row.id, row.name, row.outcome) for row in stages],
        [(row.id, row.name) for row in reasons],
        deal.archived,
    )


@web.ui.route("/deals/<int:deal_id>/move", methods=["GET", "POST"], endpoint="move_deal")
@page
def move_deal(deal_id: int) -> ResponseReturnValue:
    """The move form (a stage, and why a lost deal was lost); posting moves the deal.

    The board's cards post here too: a move to a lost stage without a ``lost_reason_id``
    field shows this form first, to ask why.
    """
    crm, user = current_crm(), actor()
    require(user, EDIT)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        deal = _snapshot(uow, deal_id)
    back = "board" if request.values.get("back") == "board" else "deal"
    if request.method == "GET":
        stage = _integer(request.args.get("stage_id", "").strip())
        if not isinstance(stage, int):
            stage = _following([row[0] for row in deal.stages]).get(deal.stage_id, "")
        values = {"stage_id": stage, "version": deal.version}
        return _move_page(deal, values, {}, back)
    version = posted_version(request.form)
    values = {**request.form.to_dict(), "version": version}
    stage_id = _integer(request.form.get("stage_id", "").strip())
    outcome = next((row[2] for row in deal.stages if row[0] == stage_id), None)
    if outcome == Outcome.LOST.value and "lost_reason_id" not in request.form:
        return _move_page(deal, values, {}, back, asking=True)
    data: dict[str, Any] = {"stage_id": stage_id}
    reason = request.form.get("lost_reason_id", "").strip()
    if reason:
        data["lost_reason_id"] = _integer(reason)
    try:
        refuse_unstorable(request.form, Opportunity)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            moved = opportunities.move(uow, deal_id, data, expected_version=version)
            stage_name, pipeline_id = moved.stage.name, moved.pipeline_id
    except ValidationError as exc:
        return _move_page(deal, values, field_errors(exc.messages), back, status=422)
    except ConflictError:
        return _conflict_page(deal_id, "move", values, back)
    if stage_id == deal.stage_id:
        flash(_("%(deal)s is already in %(stage)s.", deal=deal.name, stage=stage_name))
    else:
        flash(_("%(deal)s moved to %(stage)s.", deal=deal.name, stage=stage_name))
    if back == "board":
        return redirect(url_for("crm_sales.board", pipeline=pipeline_id) + f"#deal-{deal_id}")
    return redirect(url_for("crm_sales.deal", deal_id=deal_id))


def _move_page(
    deal: DealSnapshot,
    values: Mapping[str, Any],
    errors: dict[str, list[str]],
    back: str,
    *,
    asking: bool = False,
    status: int = 200,
) -> ResponseReturnValue:
    other = [text for name, texts in errors.items()
             if name not in ("stage_id", "lost_reason_id") for text in texts]
    return render_template(
        "crm_sales/deals/move.html",
        deal=deal,
        values=values,
        errors=errors,
        other_errors=other,
        back=back,
        asking=asking,
        stage_options=[(ident, name) for ident, name, _outcome in deal.stages],
        reason_options=deal.lost_reasons,
    ), status


def _conflict_page(
    deal_id: int, action: str, posted: Mapping[str, Any], back: str
) -> ResponseReturnValue:
    """409: someone else changed the deal after the user saw it; nothing was done."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        now = _snapshot(uow, deal_id)
    return render_template(
        "crm_sales/deals/conflict.html",
        deal=now,
        action=action,
        posted=posted,
        back=back,
        target=next((name for ident, name, _o in now.stages
                     if str(ident) == str(posted.get("stage_id")) and ident != now.stage_id),
                    None),
    ), 409


@web.ui.post("/deals/<int:deal_id>/archive", endpoint="archive_deal")
@page
def archive_deal(deal_id: int) -> ResponseReturnValue:
    """Archive the deal (hidden from the board, lists and reports; *Restore* undoes)."""
    return _set_archived(deal_id, archived=True)


@web.ui.post("/deals/<int:deal_id>/restore", endpoint="restore_deal")
@page
def restore_deal(deal_id: int) -> ResponseReturnValue:
    """Bring an archived deal back."""
    return _set_archived(deal_id, archived=False)


def _set_archived(deal_id: int, *, archived: bool) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    require(user, ARCHIVE)
    version = posted_version(request.form)
    change = opportunities.archive if archived else opportunities.restore
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            name = change(uow, deal_id, expected_version=version).name
    except ConflictError:
        action = "archive" if archived else "restore"
        return _conflict_page(deal_id, action, {"version": version}, "deal")
    if archived:
        flash(_("%(deal)s was archived.", deal=name))
    else:
        flash(_("%(deal)s was restored.", deal=name))
    return redirect(url_for("crm_sales.deal", deal_id=deal_id))


# -- the list -----------------------------------------------------------------------------------


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


def _by_close_date(statement: Select[Any]) -> Select[Any]:
    return statement.order_by(Opportunity.expected_close.asc().nulls_last(), Opportunity.id)


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
    pipeline_id, stage_id = _id_arg("pipeline"), _id_arg("stage")
    customer_id = _id_arg("customer_id")
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
        statement = _deals_with_stages(user).where(*clauses)
        found = session.execute(_by_close_date(statement).limit(PAGE_SIZE + 1)).all()
        rows, next_url = split_page(found, PAGE_SIZE, lambda last: url_for(
            "crm_sales.deals", **{**request.args, "cursor": _close_token(last)}
        ))
        pipelines = _pipelines(session)
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


# -- the deal's page ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stay:
    """One stay of a deal in a stage, as the history shows it."""

    stage: str
    outcome: str
    entered_at: dt.datetime
    left_at: dt.datetime | None
    moved_by: str | None
    length: str


def stage_history(session: Session, deal_id: int) -> list[Stay]:
    """A deal's stays, oldest first, with the stages' and movers' names (one query).

    Read it for a deal the user may see (:func:`opportunities.get` first)."""
    rows = session.execute(
        select(StageStay.entered_at, StageStay.left_at, Stage.name, Stage.outcome, _Mover.name,
               _Mover.email)
        .join(Stage, Stage.id == StageStay.stage_id)
        .outerjoin(_Mover, _Mover.id == StageStay.moved_by)
        .where(StageStay.opportunity_id == deal_id)
        .order_by(StageStay.entered_at, StageStay.id)
    ).all()
    now = utcnow()
    return [
        Stay(stage, outcome, entered, left, (name or email) if (name or email) else None,
             duration_text((left or now) - entered))
        for entered, left, stage, outcome, name, email in rows
    ]


@web.ui.get("/deals/<int:deal_id>", endpoint="deal")
@page
def deal_page(deal_id: int) -> ResponseReturnValue:
    """The deal: details, contacts with roles, lines with totals, stage history, actions."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        deal = opportunities.get(uow, deal_id)
        session = uow.session
        customer_name = customer_names(session, user, {deal.customer_id}).get(deal.customer_id)
        owner = user_names(session, {deal.owner_id}).get(deal.owner_id or 0)
        pipeline_name = session.scalar(select(Pipeline.name).where(Pipeline.id == deal.pipeline_id))
        reason = (session.scalar(select(LostReason.name)
                                 .where(LostReason.id == deal.lost_reason_id))
                  if deal.lost_reason_id is not None else None)
        people = _contact_names(session, user, [c.contact_id for c in deal.contacts])
        product_ids = {line.product_id for line in deal.lines if line.product_id}
        products = {
            row.id: f"{row.code} · {row.name}"
            for row in session.execute(
                select(Product.id, Product.code, Product.name).where(Product.id.in_(product_ids))
            )
        } if product_ids else {}
        return render_template(
            "crm_sales/deals/detail.html",
            deal=deal,
            customer_name=customer_name,
            owner=owner,
            pipeline_name=pipeline_name,
            lost_reason=reason,
            contacts=[(c.contact_id, people.get(c.contact_id), role_label(c.role))
                      for c in deal.contacts],
            lines=deal.lines,
            products=products,
            lines_total=sum((line.total for line in deal.lines), Decimal(0)),
            weighted_amount=weighted(deal.amount, deal.effective_probability),
            history=stage_history(session, deal.id),
            sections=_deal_sections(uow, deal),
            status_label=status_label,
            can_edit=has_permission(user, EDIT),
            can_archive=has_permission(user, ARCHIVE),
        )


def _deal_sections(uow: Any, deal: Opportunity) -> list[Panel]:
    """What other parts show on the deal's page, in ``order``: the quotes of the catalogue
    part (its ``deal_quotes(uow, deal_id)``), and every part's ``deal_panels(uow, deal)``.
    Each section's template renders its own card."""
    sections: list[Panel] = []
    for part in web.parts():
        if part.__name__ == "crm_sales.parts.catalogue" and hasattr(part, "deal_quotes"):
            sections.append(Panel("quotes", _("Quotes"), "crm_sales/quotes/_deal_quotes.html",
                                  part.deal_quotes(uow, deal.id), order=10))
    sections += web.collect("deal_panels", uow, deal)
    return sorted(sections, key=lambda section: section.order)


def _contact_names(session: Session, user: User, ids: Iterable[int]) -> dict[int, str]:
    """The names of the contacts among ``ids`` that ``user`` may see (one query)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(Contact.id, Contact.first_name, Contact.last_name)
        .where(Contact.id.in_(wanted), visible(user, "contact"))
    )
    return {row.id: " ".join(p for p in (row.first_name, row.last_name) if p) or str(row.id)
            for row in rows}


# -- create and edit ----------------------------------------------------------------------------


@web.ui.route("/deals/new", methods=["GET", "POST"], endpoint="new_deal")
@page
def new_deal() -> ResponseReturnValue:
    """The empty deal form (``?customer_id=`` preselects the customer); saving creates it."""
    crm, user = current_crm(), actor()
    require(user, EDIT)
    if request.method == "GET":
        values: dict[str, Any] = {
            "customer_id": request.args.get("customer_id", "").strip(),
            "owner_id": str(user.id), "currency": "EUR",
        }
        with crm.session_factory() as session:
            default = next((p for p in _pipelines(session) if p.is_default), None)
        if default is not None:
            values["pipeline_id"] = str(default.id)
        return _form(None, values, _put_rows(values, {}), {})
    data, values, counts = _posted(request.form)
    try:
        refuse_unstorable(request.form, Opportunity)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            created = opportunities.create(uow, data)
            created_id, created_name = created.id, created.name
    except ValidationError as exc:
        return _form(None, values, counts, _errors(exc.messages, values), status=422)
    flash(_("%(name)s was created.", name=created_name))
    return redirect(url_for("crm_sales.deal", deal_id=created_id))


@web.ui.route("/deals/<int:deal_id>/edit", methods=["GET", "POST"], endpoint="edit_deal")
@page
def edit_deal(deal_id: int) -> ResponseReturnValue:
    """The deal form filled in; saving checks that nobody else saved in between."""
    crm, user = current_crm(), actor()
    require(user, EDIT)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        deal = opportunities.get(uow, deal_id)
        stored = _stored_values(deal)
        stored_rows = _stored_rows(deal)
        heading = {"id": deal.id, "name": deal.name, "version": deal.version}
    if request.method == "GET":
        values = dict(stored)
        return _form(heading, values, _put_rows(values, stored_rows), {})
    version = posted_version(request.form)
    data, values, counts = _posted(request.form)
    try:
        refuse_unstorable(request.form, Opportunity)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            saved = opportunities.update(uow, deal_id, data, expected_version=version)
            name = saved.name
    except ValidationError as exc:
        return _form(heading, values, counts, _errors(exc.messages, values), status=422)
    except ConflictError:
        values["version"] = str(heading["version"])  # "save mine anyway" overwrites deliberately
        conflict = _differences(stored, stored_rows, data, values)
        return _form(heading, values, counts, {}, conflict=conflict, status=409)
    flash(_("%(name)s was saved.", name=name))
    return redirect(url_for("crm_sales.deal", deal_id=deal_id))


def _form(
    deal: Mapping[str, Any] | None,
    values: dict[str, Any],
    counts: dict[str, int],
    errors: dict[str, list[str]],
    *,
    conflict: list[Difference] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    customer_id = as_record_id(values.get("customer_id") or "")
    owner_id = as_record_id(values.get("owner_id") or "")
    with crm.session_factory() as session:
        pipelines = _pipelines(session)
        owners = owner_options(session, owner_id)
        customer_name = (customer_names(session, user, {customer_id}).get(customer_id)
                         if customer_id is not None else None)
        chosen = [as_record_id(values.get(f"contacts-{i}-contact_id") or "")
                  for i in range(counts["contacts"])]
        contact_options = _contact_options(
            session, user, customer_id if customer_name else None,
            [ident for ident in chosen if ident is not None],
        )
        if customer_name:
            customer_hint = _("Now: %(name)s (customer %(number)s).",
                              name=customer_name, number=customer_id)
        else:
            customer_hint = _("The number in the address of the customer's page.")
        other = [text for name, texts in errors.items() if not _is_form_field(name)
                 for text in texts]
        return render_template(
            "crm_sales/deals/form.html",
            deal=deal,
            values=values,
            counts=counts,
            version=form_version(values, None),
            errors=errors,
            other_errors=other,
            conflict=conflict,
            pipelines=pipelines,
            pipeline_options=[(p.id, p.name) for p in pipelines],
            owner_options=owners,
            customer_hint=customer_hint,
            contact_options=contact_options,
            role_options=[(role, role_label(role)) for role in ROLE_LABELS],
            cancel_url=_cancel_url(deal, customer_id if customer_name else None),
        ), status


def _contact_options(
    session: Session, user: User, customer_id: int | None, chosen: list[int]
) -> list[tuple[int, str]] | None:
    """The contacts the form's selects offer: the customer's (the first
    :data:`CONTACT_OPTIONS` by name) and those already chosen; ``None`` without a customer
    (the form then asks for contacts' numbers)."""
    if customer_id is None:
        return None
    rows = session.execute(
        select(Contact.id, Contact.first_name, Contact.last_name)
        .where(Contact.customer_id == customer_id, Contact.archived.is_(False),
               visible(user, "contact"))
        .order_by(Contact.last_name, Contact.first_name, Contact.id)
        .limit(CONTACT_OPTIONS)
    )
    options = {row.id: " ".join(p for p in (row.first_name, row.last_name) if p) or str(row.id)
               for row in rows}
    missing = [ident for ident in chosen if ident not in options]
    if missing:
        names = _contact_names(session, user, missing)
        for ident in missing:
            options[ident] = names.get(ident) or _("Contact %(number)s", number=ident)
    return list(options.items())


def _cancel_url(deal: Mapping[str, Any] | None, customer_id: int | None) -> str:
    if deal is not None:
        return url_for("crm_sales.deal", deal_id=deal["id"])
    if customer_id is not None:
        return url_for("crm_ui.customer_page", customer_id=customer_id)
    return url_for("crm_sales.board")


def _posted(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """The posted form as service data, as the values to show again, and the rows per list."""
    data: dict[str, Any] = {}
    for name in FORM_FIELDS:
        if name not in form:
            continue
        text = form.get(name, "").strip()
        if name in ("pipeline_id", "stage_id"):
            if text:  # empty: the default pipeline, its first stage (or the deal's stage)
                data[name] = _integer(text)
        elif name in INTEGERS:
            data[name] = _integer(text) if text else None
        elif name == "expected_close":
            data[name] = text or None
        elif name == "amount":
            data[name] = text or "0"
        elif name == "currency":
            data[name] = text.upper() or None
        else:
            data[name] = text
    for flag in FLAGS:
        data[flag] = bool(form.get(flag))
    values: dict[str, Any] = {name: form.get(name, "") for name in FORM_FIELDS}
    values.update({flag: "1" if data[flag] else "" for flag in FLAGS})
    if "version" in form:
        values["version"] = form.get("version", "")
    rows = {name: _posted_rows(form, name) for name in ROWS}
    data["contacts"] = [
        {"contact_id": _integer(row["contact_id"]), "role": row["role"] or ContactRole.OTHER.value}
        for row in rows["contacts"]
    ]
    data["lines"] = [_line_data(row) for row in rows["lines"]]
    return data, values, _put_rows(values, rows)


def _posted_rows(form: Mapping[str, str], name: str) -> list[dict[str, str]]:
    """The non-empty rows ``<name>-<n>-<field>`` of the form, in order of ``n``."""
    pattern = re.compile(rf"{re.escape(name)}-(\d{{1,4}})-(\w+)")
    numbers = sorted({
        int(found.group(1)) for key in form
        if (found := pattern.fullmatch(key)) and found.group(2) in ROWS[name]
    })
    rows = []
    for number in numbers:
        row = {part: (form.get(f"{name}-{number}-{part}") or "").strip() for part in ROWS[name]}
        if any(row[part] for part in ROW_CONTENT[name]):
            rows.append(row)
    return rows


def _line_data(row: Mapping[str, str]) -> dict[str, Any]:
    """A posted line as service data: empty quantity, price and discount take the defaults."""
    line: dict[str, Any] = {"description": row["description"]}
    for part in ("quantity", "unit_price", "discount_percent"):
        if row[part]:
            line[part] = row[part]
    line["product_id"] = _integer(row["product_id"]) if row["product_id"] else None
    return line


def _put_rows(values: dict[str, Any], rows: Mapping[str, list[dict[str, str]]]) -> dict[str, int]:
    """Write ``rows`` into ``values`` as the form's fields; return each list's row count."""
    counts = {}
    for name, parts in ROWS.items():
        items = rows.get(name, [])
        for index, item in enumerate(items):
            for part in parts:
                values[f"{name}-{index}-{part}"] = item.get(part, "")
        for index in range(len(items), len(items) + EMPTY_ROWS):
            for part in parts:
                values[f"{name}-{index}-{part}"] = ROW_DEFAULTS[name].get(part, "")
        counts[name] = len(items) + EMPTY_ROWS
    return counts


def _stored_values(deal: Opportunity) -> dict[str, Any]:
    """What the form shows for a stored deal (text, as the inputs hold it)."""
    values: dict[str, Any] = {
        name: "" if getattr(deal, name) is None else str(getattr(deal, name))
        for name in FORM_FIELDS
    }
    values["amount"] = _money_text(deal.amount)
    values["expected_close"] = deal.expected_close.isoformat() if deal.expected_close else ""
    values["committed"] = "1" if deal.committed else ""
    values["version"] = str(deal.version)
    return values


def _stored_rows(deal: Opportunity) -> dict[str, list[dict[str, str]]]:
    return {
        "contacts": [{"contact_id": str(c.contact_id), "role": c.role} for c in deal.contacts],
        "lines": [
            {
                "description": line.description,
                "quantity": _plain(line.quantity),
                "unit_price": _money_text(line.unit_price),
                "discount_percent": _plain(line.discount_percent),
                "product_id": str(line.product_id or ""),
            }
            for line in deal.lines
        ],
    }


def _errors(messages: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, list[str]]:
    """The service's messages by form field: a row's beside that row's field."""
    errors: dict[str, list[str]] = {}
    for name, value in messages.items():
        key = str(name)
        if key in ROWS and isinstance(value, Mapping):
            for index, inner in value.items():
                if isinstance(inner, Mapping):
                    for part, texts in inner.items():
                        shown = part in ROWS[key] and part != "product_id"
                        target = f"{key}-{index}-{part}" if shown else key
                        errors.setdefault(target, []).extend(_texts(texts))
                else:
                    errors.setdefault(key, []).extend(_texts(inner))
        else:
            errors.setdefault(key, []).extend(_texts(value))
    if "customer_id" in errors and not str(values.get("customer_id", "")).strip():
        errors["customer_id"] = [_("Give the customer's number.")]
    return errors


def _texts(value: Any) -> list[str]:
    """Every message in ``value``, in the request's language."""
    return field_errors({"_": value})["_"]


def _is_form_field(name: str) -> bool:
    return name in FORM_FIELDS or name in FLAGS or name.split("-", 1)[0] in ROWS


def _differences(
    stored: Mapping[str, Any],
    stored_rows: Mapping[str, list[dict[str, str]]],
    data: Mapping[str, Any],
    values: Mapping[str, Any],
) -> list[Difference]:
    """The fields where the stored deal and the user's form differ, as text."""
    found = differences(stored, values, FORM_FIELDS, FIELD_LABELS)
    yes_no = {flag: {"": _("no"), "1": _("yes")} for flag in FLAGS}
    found += differences(
        {flag: yes_no[flag][stored.get(flag) or ""] for flag in FLAGS},
        {flag: yes_no[flag][values.get(flag) or ""] for flag in FLAGS},
        FLAGS, FIELD_LABELS,
    )
    theirs = _rows_text(stored_rows)
    yours = _rows_text({
        "contacts": [{"contact_id": str(row["contact_id"]), "role": row["role"]}
                     for row in data.get("contacts", [])],
        "lines": [{key: str(value or "") for key, value in row.items()}
                  for row in data.get("lines", [])],
    })
    for name in ROWS:
        if theirs[name] != yours[name]:
            found.append(Difference(str(FIELD_LABELS[name]), theirs[name], yours[name]))
    return found


def _rows_text(rows: Mapping[str, list[Mapping[str, str]]]) -> dict[str, str]:
    contacts = "; ".join(
        f"{row['contact_id']} ({role_label(row.get('role'))})" for row in rows.get("contacts", [])
    )
    lines = "; ".join(
        f"{row.get('description', '')}: {_plain(_decimal(row.get('quantity'), '1'))} x "
        f"{_money_text(_decimal(row.get('unit_price'), '0'))}"
        f", -{_plain(_decimal(row.get('discount_percent'), '0'))}%"
        for row in rows.get("lines", [])
    )
    return {"contacts": contacts, "lines": lines}


def _decimal(text: str | None, default: str) -> Decimal | None:
    try:
        return Decimal(text or default)
    except ArithmeticError:
        return None


# -- slots: navigation, customer page, dashboard ------------------------------------------------


def menu_items(actor: User) -> list[MenuItem]:
    """*Deals* in the navigation: the board."""
    return [MenuItem(_l("Deals"), "crm_sales.board", order=30, permission=VIEW)]


def _open_deals(customer_id: int | None, owner_id: int | None, user: User) -> Select[Any]:
    """The visible, open, active deals of a customer or an owner, next closing first."""
    statement = select(*_deal_columns(), Stage.name.label("stage_name"),
                       Stage.probability.label("stage_probability")).join(
        Stage, Stage.id == Opportunity.stage_id
    ).where(
        Opportunity.status == Outcome.OPEN.value, Opportunity.archived.is_(False),
        visible_deals(user),
    )
    if customer_id is not None:
        statement = statement.where(Opportunity.customer_id == customer_id)
    if owner_id is not None:
        statement = statement.where(Opportunity.owner_id == owner_id)
    return _by_close_date(statement)


def _open_totals(
    session: Session, user: User, clause: ColumnElement[bool]
) -> tuple[int, list[tuple[str, Decimal]], list[tuple[str, Decimal]]]:
    """How many open deals match ``clause``, their amounts and weighted amounts by currency
    (one grouped query)."""
    percent = func.coalesce(Opportunity.probability, Stage.probability)
    rows = session.execute(
        select(
            Opportunity.currency, func.count(), func.sum(Opportunity.amount),
            func.sum(Opportunity.amount * percent, type_=Opportunity.amount.type),
        )
        .join(Stage, Stage.id == Opportunity.stage_id)
        .where(clause, Opportunity.status == Outcome.OPEN.value,
               Opportunity.archived.is_(False), visible_deals(user))
        .group_by(Opportunity.currency)
    ).all()
    count = sum(row[1] for row in rows)
    amounts = _sums((row[0], row[2]) for row in rows)
    weights = _sums((row[0], Decimal(row[3] or 0) / Decimal(100)) for row in rows)
    return count, amounts, weights


def customer_panels(customer: Customer, actor: User) -> list[Panel]:
    """*Open deals*: the customer's next closing open deals and their weighted total."""
    if not has_permission(actor, VIEW):
        return []
    with _reading(customer) as session:
        deals = session.execute(_open_deals(customer.id, None, actor).limit(PANEL_DEALS)).all()
        count, _amounts, weights = _open_totals(
            session, actor, Opportunity.customer_id == customer.id
        )
    return [Panel(
        "sales-open-deals", _("Open deals"), "crm_sales/deals/_customer_panel.html",
        {
            "deals": [(deal, weighted(deal.amount, _probability(deal))) for deal in deals],
            "count": count, "weighted_totals": weights, "customer_id": customer.id,
            "can_edit": has_permission(actor, EDIT),
        },
        order=20,
    )]


def _probability(deal: Any) -> int:
    return deal.probability if deal.probability is not None else deal.stage_probability


def customer_tabs(customer: Customer, actor: User) -> list[CustomerTab]:
    """*Deals*: every deal of the customer, with their count beside the title."""
    if not has_permission(actor, VIEW):
        return []
    clauses = (Opportunity.customer_id == customer.id, Opportunity.archived.is_(False),
               visible_deals(actor))
    with _reading(customer) as session:
        count = session.scalar(select(func.count()).select_from(Opportunity).where(*clauses)) or 0

    def load() -> dict[str, Any]:
        with _reading(customer) as session:
            statement = _deals_with_stages(actor).where(*clauses).order_by(
                case((Opportunity.status == Outcome.OPEN.value, 0), else_=1),
                Opportunity.expected_close.asc().nulls_last(), Opportunity.id,
            ).limit(TAB_DEALS)
            deals = session.execute(statement).all()
        return {
            "deals": deals, "count": count, "customer_id": customer.id,
            "status_label": status_label, "can_edit": has_permission(actor, EDIT),
        }

    return [CustomerTab("deals", _("Deals"), "crm_sales/deals/_customer_tab.html", load,
                        order=20, count=count)]


def dashboard_widgets(actor: User) -> list[Panel]:
    """*My open deals*: the user's next closing open deals and what they add up to."""
    if not has_permission(actor, VIEW):
        return []
    with _reading() as session:
        deals = session.execute(_open_deals(None, actor.id, actor).limit(PANEL_DEALS)).all()
        count, amounts, _weights = _open_totals(session, actor, Opportunity.owner_id == actor.id)
        names = customer_names(session, actor, {deal.customer_id for deal in deals})
    return [Panel(
        "sales-my-deals", _("My open deals"), "crm_sales/deals/_dashboard_widget.html",
        {"deals": deals, "count": count, "totals": amounts, "customer_names": names},
        order=20,
    )]


# -- slots: the customer's timeline -------------------------------------------------------------


def timeline_renderers() -> list[TimelineRenderer]:
    """How a stage change looks on the customer's timeline."""
    return [TimelineRenderer(STAGE_CHANGE, "crm_sales/deals/_timeline_stage_change.html")]


def timeline_entries(
    session: Session,
    actor: User | None,
    customer_id: int,
    before: Any,
    limit: int,
    types: frozenset[str] | None,
    channels: frozenset[str] | None,
) -> list[TimelineEntry]:
    """The stage changes of the customer's deals that ``actor`` may see, newest first, after
    ``before`` (core's ``crm_timeline_entries``); a deal's first stay is where it started."""
    if (types is not None and STAGE_CHANGE not in types) or channels is not None:
        return []  # stage changes are on no channel
    if not has_permission(actor, VIEW):
        return []
    previous = func.lag(StageStay.stage_id).over(
        partition_by=StageStay.opportunity_id, order_by=(StageStay.entered_at, StageStay.id)
    ).label("previous_stage_id")
    stays = (
        select(StageStay.id, StageStay.opportunity_id, StageStay.stage_id, StageStay.entered_at,
               StageStay.moved_by, previous)
        .join(Opportunity, Opportunity.id == StageStay.opportunity_id)
        .where(Opportunity.customer_id == customer_id, Opportunity.archived.is_(False),
               visible_deals(actor))
        .subquery()
    )
    reached, left = aliased(Stage), aliased(Stage)
    statement = (
        select(stays.c.id, stays.c.entered_at, stays.c.opportunity_id, Opportunity.name,
               reached.name, reached.outcome, left.name, _Mover.name, _Mover.email)
        .join(Opportunity, Opportunity.id == stays.c.opportunity_id)
        .join(reached, reached.id == stays.c.stage_id)
        .outerjoin(left, left.id == stays.c.previous_stage_id)
        .outerjoin(_Mover, _Mover.id == stays.c.moved_by)
    )
    if before is not None:
        statement = statement.where(_before(before, stays.c.entered_at, stays.c.id))
    rows = session.execute(
        statement.order_by(stays.c.entered_at.desc(), stays.c.id.desc()).limit(limit)
    ).all()
    entries = []
    for ident, entered, deal_id, deal, stage, outcome, was, name, email in rows:
        if was is None:
            title = f"{deal} started in {stage}"
        else:
            title = f"{deal} moved from {was} to {stage}"
        entries.append(TimelineEntry(
            type=STAGE_CHANGE, id=ident, occurred_at=entered, title=title,
            url=f"{web.ui.url_prefix}/deals/{deal_id}",
            extra={"deal_id": deal_id, "deal": deal, "stage": stage, "outcome": outcome,
                   "previous_stage": was, "moved_by": name or email},
        ))
    return entries


def _before(cursor: Any, moment: Any, ident: Any) -> ColumnElement[bool]:
    """Stays after ``cursor`` in the timeline's newest-first order of (moment, type, id)."""
    if cursor.type > STAGE_CHANGE:
        return moment <= cursor.occurred_at
    if cursor.type < STAGE_CHANGE:
        return moment < cursor.occurred_at
    if not isinstance(cursor.id, int) or isinstance(cursor.id, bool):
        return moment <= cursor.occurred_at  # numbers come after any text id
    return or_(moment < cursor.occurred_at, and_(moment == cursor.occurred_at, ident < cursor.id))
