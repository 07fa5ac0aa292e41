"""Deals: create, change, move between stages, archive and restore — the one write path.

Every write validates through :class:`~crm_sales.schemas.OpportunitySchema`, checks the
actor's permissions and the references (customer, stage of the pipeline, owner,
contacts, products, lost reason), writes the deal with its stage history, records an
audit entry and an outbox event (``opportunity.created``, ``.updated``,
``.stage_changed``, ``.archived``...) and calls crm-sales's own hooks
(:mod:`crm_sales.hookspecs`), all in the caller's transaction: a failing hook rolls it
all back. Which deals a user sees follows their role's visibility on the deal's owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy import update as sql_update
from sqlalchemy.sql.elements import ColumnElement

from crm_core import ConflictError, NotFoundError, UnitOfWork, ValidationError, utcnow
from crm_core.authz import owned_by_visible_users, require, visible
from crm_core.i18n import N_
from crm_core.ids import MAX_ID
from crm_core.models import Contact, Customer, User
from crm_core.schemas import load_or_refuse
from crm_sales.models import (
    LostReason,
    Opportunity,
    OpportunityContact,
    OpportunityLine,
    Outcome,
    Pipeline,
    Product,
    Stage,
    StageStay,
)
from crm_sales.schemas import MoveSchema, OpportunitySchema
from crm_sales.services import funnel_store

#: The entity name of deals in the audit trail, outbox events and permissions' checks.
ENTITY = "opportunity"
VIEW, EDIT, ARCHIVE = "sales.deal.view", "sales.deal.edit", "sales.deal.archive"
#: Fields a change records in the audit trail (lines and contacts as counts).
_AUDITED = (
    "name", "customer_id", "pipeline_id", "stage_id", "status", "owner_id", "amount",
    "currency", "expected_close", "probability", "committed", "source", "next_step",
    "lost_reason_id", "archived",
)


def visible_deals(actor: Any) -> ColumnElement[bool]:
    """The deals ``actor`` may see: by the deal's owner, as their role's visibility says."""
    return owned_by_visible_users(actor, Opportunity.owner_id)


def get(uow: UnitOfWork, opportunity_id: Any) -> Opportunity:
    """Deal ``opportunity_id``; :class:`NotFoundError` if missing or not visible."""
    require(uow.actor, VIEW)
    ident = opportunity_id if isinstance(opportunity_id, int) else _as_id(opportunity_id)
    found = None
    if ident is not None:
        found = uow.session.scalar(
            select(Opportunity).where(Opportunity.id == ident, visible_deals(uow.actor))
        )
    if found is None:
        raise NotFoundError(ENTITY, opportunity_id)
    return found


def create(uow: UnitOfWork, data: Mapping[str, Any]) -> Opportunity:
    """Validate ``data`` and create a deal in its stage (its first stay begins now)."""
    require(uow.actor, EDIT)
    loaded = load_or_refuse(OpportunitySchema(), data)
    pipeline, stage = _pipeline_and_stage(uow, loaded.get("pipeline_id"), loaded.get("stage_id"))
    if "owner_id" not in loaded:
        loaded["owner_id"] = uow.actor_id
    _check_references(uow, loaded)
    now = utcnow()
    deal = Opportunity(
        **{key: loaded[key] for key in _COLUMNS if key in loaded},
        pipeline_id=pipeline.id,
        stage_id=stage.id,
        status=stage.outcome,
        stage_entered_at=now,
        closed_at=now if stage.outcome != Outcome.OPEN else None,
    )
    deal.stage = stage
    _set_children(deal, loaded)
    uow.session.add(deal)
    uow.session.flush()
    uow.session.add(StageStay(opportunity_id=deal.id, stage_id=stage.id, entered_at=now,
                              moved_by=uow.actor_id))
    funnel_store.added(uow.session, [deal.id])
    uow.record(ENTITY, "created", [(deal.id, {k: (None, v) for k, v in _audited(deal).items()})],
               [payload(deal)])
    uow.call_hook("crm_sales_on_opportunity_created", uow=uow, opportunity=deal)
    _announce_outcome(uow, deal, stage)
    return deal


def update(
    uow: UnitOfWork,
    opportunity_id: Any,
    data: Mapping[str, Any],
    *,
    expected_version: int | None = None,
) -> Opportunity:
    """Change the fields given in ``data``; a new ``stage_id`` moves the deal (history,
    hooks). :class:`ConflictError` when ``expected_version`` is not the stored one."""
    require(uow.actor, EDIT)
    deal = get(uow, opportunity_id)
    _check_version(deal, expected_version)
    funnel = funnel_store.changing(uow.session, [deal.id])
    schema = OpportunitySchema()
    # Top-level fields may be left out; a line or contact given must be whole.
    loaded = load_or_refuse(schema, data, partial=tuple(schema.fields))
    before = _audited(deal)
    target_stage = None
    if "pipeline_id" in loaded or "stage_id" in loaded:
        pipeline_id = loaded.get("pipeline_id", deal.pipeline_id)
        stage_id = loaded.get("stage_id")
        if stage_id is None and pipeline_id == deal.pipeline_id:
            stage_id = deal.stage_id
        _pipeline, target_stage = _pipeline_and_stage(uow, pipeline_id, stage_id)
    _check_references(uow, loaded)
    for key in _COLUMNS:
        if key in loaded:
            setattr(deal, key, loaded[key])
    _set_children(deal, loaded)
    moved_from = None
    if target_stage is not None and target_stage.id != deal.stage_id:
        moved_from = deal.stage
        _enter(uow, deal, target_stage)
    funnel.apply()
    after = _audited(deal)
    changes = {key: (before[key], after[key]) for key in after if before[key] != after[key]}
    if changes or "lines" in loaded or "contacts" in loaded:
        uow.record(ENTITY, "updated", [(deal.id, changes)], [payload(deal)])
    if moved_from is not None:
        _announce_move(uow, deal, moved_from, target_stage)  # type: ignore[arg-type]
    return deal


def move(
    uow: UnitOfWork,
    opportunity_id: Any,
    data: Mapping[str, Any],
    *,
    expected_version: int | None = None,
) -> Opportunity:
    """Move a deal to ``data["stage_id"]`` of its pipeline (the board's drag, the form's
    select); to a lost stage with an optional ``lost_reason_id``."""
    require(uow.actor, EDIT)
    deal = get(uow, opportunity_id)
    _check_version(deal, expected_version)
    loaded = load_or_refuse(MoveSchema(), data)
    _pipeline, stage = _pipeline_and_stage(uow, deal.pipeline_id, loaded["stage_id"])
    if stage.id == deal.stage_id:
        return deal
    if loaded.get("lost_reason_id") is not None:
        if stage.outcome != Outcome.LOST:
            raise ValidationError({"lost_reason_id": [N_("Only a lost deal has a lost reason.")]})
        _check_references(uow, {"lost_reason_id": loaded["lost_reason_id"]})
        deal.lost_reason_id = loaded["lost_reason_id"]
    before = _audited(deal)
    previous = deal.stage
    funnel = funnel_store.changing(uow.session, [deal.id])
    _enter(uow, deal, stage)
    funnel.apply()
    after = _audited(deal)
    changes = {key: (before[key], after[key]) for key in after if before[key] != after[key]}
    uow.record(ENTITY, "stage_changed", [(deal.id, changes)], [payload(deal)])
    _announce_move(uow, deal, previous, stage)
    return deal


def archive(uow: UnitOfWork, opportunity_id: Any, *, expected_version: int | None = None,
            ) -> Opportunity:
    """Hide a deal from lists and reports (it stays in the history; ``restore`` undoes)."""
    return _set_archived(uow, opportunity_id, True, expected_version)


def restore(uow: UnitOfWork, opportunity_id: Any, *, expected_version: int | None = None,
            ) -> Opportunity:
    """Bring an archived deal back."""
    return _set_archived(uow, opportunity_id, False, expected_version)


def payload(deal: Opportunity) -> dict[str, Any]:
    """A deal as events and the API show it."""
    return OpportunitySchema().dump(deal)  # type: ignore[no-any-return]


def stage_history(uow: UnitOfWork, opportunity_id: Any) -> list[StageStay]:
    """Every stay of a deal in a stage, oldest first (one query)."""
    deal = get(uow, opportunity_id)
    return list(
        uow.session.scalars(
            select(StageStay)
            .where(StageStay.opportunity_id == deal.id)
            .order_by(StageStay.entered_at, StageStay.id)
        )
    )


def default_pipeline(uow: UnitOfWork) -> Pipeline:
    """The default pipeline (else the first one)."""
    found = uow.session.scalar(
        select(Pipeline).order_by(Pipeline.is_default.desc(), Pipeline.position, Pipeline.id)
    )
    if found is None:
        raise ValidationError({"pipeline_id": [N_("There is no pipeline yet.")]})
    return found


# -- helpers ------------------------------------------------------------------------------

#: Loaded keys stored as columns of the deal as they are.
_COLUMNS = (
    "name", "customer_id", "owner_id", "amount", "currency", "expected_close", "probability",
    "committed", "source", "next_step", "lost_reason_id",
)


def _as_id(value: Any) -> int | None:
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if 0 < number <= MAX_ID else None


def _check_version(deal: Opportunity, expected: int | None) -> None:
    if expected is not None and deal.version != expected:
        raise ConflictError(ENTITY, deal.id, expected, deal.version)


def _pipeline_and_stage(uow: UnitOfWork, pipeline_id: Any, stage_id: Any) -> tuple[Pipeline, Stage]:
    """The pipeline (default if ``None``) and its stage (its first if ``None``)."""
    if pipeline_id is None and stage_id is not None:
        stage = uow.session.get(Stage, stage_id)
        if stage is None:
            raise ValidationError({"stage_id": [N_("No such stage.")]})
        return stage.pipeline, stage
    if pipeline_id is None:
        pipeline = default_pipeline(uow)
    else:
        pipeline = uow.session.get(Pipeline, pipeline_id)
        if pipeline is None:
            raise ValidationError({"pipeline_id": [N_("No such pipeline.")]})
    if stage_id is None:
        if not pipeline.stages:
            raise ValidationError({"pipeline_id": [N_("The pipeline has no stages.")]})
        return pipeline, pipeline.stages[0]
    stage = next((s for s in pipeline.stages if s.id == stage_id), None)
    if stage is None:
        raise ValidationError({"stage_id": [N_("Choose a stage of the deal's pipeline.")]})
    return pipeline, stage


def _check_references(uow: UnitOfWork, loaded: Mapping[str, Any]) -> None:
    """Refuse references to rows that do not exist or that the actor may not see."""
    errors: dict[str, Any] = {}
    session = uow.session
    if "customer_id" in loaded:
        found = session.scalar(
            select(Customer.id).where(
                Customer.id == loaded["customer_id"], visible(uow.actor, "customer")
            )
        )
        if found is None:
            errors["customer_id"] = [N_("No such customer.")]
    if loaded.get("owner_id") is not None:
        owner = session.get(User, loaded["owner_id"])
        if owner is None or not owner.active:
            errors["owner_id"] = [N_("No such active user.")]
    if loaded.get("lost_reason_id") is not None and session.get(
        LostReason, loaded["lost_reason_id"]
    ) is None:
        errors["lost_reason_id"] = [N_("No such lost reason.")]
    contact_ids = [row["contact_id"] for row in loaded.get("contacts", ())]
    if contact_ids:
        known = set(session.scalars(
            select(Contact.id).where(Contact.id.in_(contact_ids), visible(uow.actor, "contact"))
        ))
        problems = {i: {"contact_id": [N_("No such contact.")]}
                    for i, ident in enumerate(contact_ids) if ident not in known}
        if len(set(contact_ids)) != len(contact_ids):
            errors["contacts"] = [N_("Name each contact once.")]
        elif problems:
            errors["contacts"] = problems
    product_ids = {row["product_id"] for row in loaded.get("lines", ()) if row["product_id"]}
    if product_ids:
        known = set(session.scalars(select(Product.id).where(Product.id.in_(product_ids))))
        problems = {i: {"product_id": [N_("No such product.")]}
                    for i, row in enumerate(loaded["lines"])
                    if row["product_id"] and row["product_id"] not in known}
        if problems:
            errors["lines"] = problems
    if errors:
        raise ValidationError(errors)


def _set_children(deal: Opportunity, loaded: Mapping[str, Any]) -> None:
    if "contacts" in loaded:
        deal.contacts = [OpportunityContact(contact_id=row["contact_id"], role=row["role"])
                         for row in loaded["contacts"]]
    if "lines" in loaded:
        deal.lines = [OpportunityLine(position=position, **row)
                      for position, row in enumerate(loaded["lines"])]


def _enter(uow: UnitOfWork, deal: Opportunity, stage: Stage) -> None:
    """End the deal's current stay, begin one in ``stage``, follow its outcome."""
    now = utcnow()
    uow.session.execute(
        sql_update(StageStay)
        .where(StageStay.opportunity_id == deal.id, StageStay.left_at.is_(None))
        .values(left_at=now)
        .execution_options(synchronize_session=False)
    )
    uow.session.add(StageStay(opportunity_id=deal.id, stage_id=stage.id, entered_at=now,
                              moved_by=uow.actor_id))
    deal.stage_id = stage.id
    deal.stage = stage
    deal.pipeline_id = stage.pipeline_id
    deal.status = stage.outcome
    deal.stage_entered_at = now
    deal.closed_at = now if stage.outcome != Outcome.OPEN else None
    if stage.outcome != Outcome.LOST:
        deal.lost_reason_id = None


def _announce_move(uow: UnitOfWork, deal: Opportunity, previous: Stage, stage: Stage) -> None:
    uow.call_hook("crm_sales_on_stage_changed", uow=uow, opportunity=deal, previous=previous,
                  stage=stage)
    _announce_outcome(uow, deal, stage)


def _announce_outcome(uow: UnitOfWork, deal: Opportunity, stage: Stage) -> None:
    if stage.outcome == Outcome.WON:
        uow.call_hook("crm_sales_on_opportunity_won", uow=uow, opportunity=deal)
    elif stage.outcome == Outcome.LOST:
        uow.call_hook("crm_sales_on_opportunity_lost", uow=uow, opportunity=deal)


def _set_archived(uow: UnitOfWork, opportunity_id: Any, archived: bool,
                  expected_version: int | None) -> Opportunity:
    require(uow.actor, ARCHIVE)
    deal = get(uow, opportunity_id)
    _check_version(deal, expected_version)
    if deal.archived != archived:
        funnel = funnel_store.changing(uow.session, [deal.id])
        deal.archived = archived
        funnel.apply()
        uow.record(ENTITY, "archived" if archived else "restored",
                   [(deal.id, {"archived": (not archived, archived)})], [payload(deal)])
    return deal


def _audited(deal: Opportunity) -> dict[str, Any]:
    values = {key: getattr(deal, key) for key in _AUDITED}
    values["lines"] = len(deal.lines)
    values["contacts"] = len(deal.contacts)
    return values

