"""The pipeline board (``/sales/board``), moving a deal to a stage, archiving and restoring.

The board shows a pipeline's stages as columns of cards: the open deals in open stages,
and in the won and lost columns the deals closed in the last :data:`RECENTLY_CLOSED`.
Each card moves its deal with a small form, without JavaScript (a lost stage asks why
first); a move carries the version the user saw, so a deal someone else moved meanwhile
is not moved again (409). The board reads its cards in one query (at most
:data:`BOARD_CARDS` per column, ranked by a window function) and the columns' counts and
sums in one grouped query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from crm_core import utcnow
from crm_core.authz import has_permission, require
from crm_core.errors import ConflictError, NotFoundError, ValidationError
from crm_core.models import User
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import posted_version
from crm_core.web.ui.forms import field_errors, refuse_unstorable
from crm_sales import web
from crm_sales.models import LostReason, Opportunity, Outcome, Pipeline, Stage
from crm_sales.parts.deals.common import (
    all_pipelines,
    deal_columns,
    form_integer,
    id_arg,
    status_label,
    sums_by_currency,
    with_names,
)
from crm_sales.services import opportunities
from crm_sales.services.opportunities import ARCHIVE, EDIT, VIEW, visible_deals

#: Cards per column of the board, at most (the column says how many more there are).
BOARD_CARDS = 100
#: How long won and lost deals stay on the board after closing.
RECENTLY_CLOSED = dt.timedelta(days=30)


# -- the board ----------------------------------------------------------------------------------


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


@web.ui.get("/board", endpoint="board")
@page
def board() -> ResponseReturnValue:
    """A pipeline's stages as columns of deal cards, each card with its move form."""
    crm, user = current_crm(), actor()
    require(user, VIEW)
    wanted = id_arg("pipeline")
    with crm.session_factory() as session:
        pipelines = all_pipelines(session)
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
    ranked = select(*deal_columns(), rank).where(*clauses).subquery()
    cards = session.execute(
        with_names(user, ranked, ranked.c, ranked)
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
        columns[stage_id].sums = sums_by_currency(rows)
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
        stage = form_integer(request.args.get("stage_id", "").strip())
        if not isinstance(stage, int):
            stage = _following([row[0] for row in deal.stages]).get(deal.stage_id, "")
        values = {"stage_id": stage, "version": deal.version}
        return _move_page(deal, values, {}, back)
    version = posted_version(request.form)
    values = {**request.form.to_dict(), "version": version}
    stage_id = form_integer(request.form.get("stage_id", "").strip())
    outcome = next((row[2] for row in deal.stages if row[0] == stage_id), None)
    if outcome == Outcome.LOST.value and "lost_reason_id" not in request.form:
        return _move_page(deal, values, {}, back, asking=True)
    data: dict[str, Any] = {"stage_id": stage_id}
    reason = request.form.get("lost_reason_id", "").strip()
    if reason:
        data["lost_reason_id"] = form_integer(reason)
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
