"""Pipelines, their stages and the lost reasons: the sales administration's write path.

A pipeline is written whole: its name, whether it is the default, and its stages in
order (:class:`PipelineInputSchema`: :class:`~crm_sales.schemas.PipelineSchema` whose
stages may name the ``id`` of a stored stage, so a renamed stage keeps its deals). The
rules: at least one open stage, exactly one won and at least one lost stage, stage names
unique within the pipeline (whatever the case). A stage deals are in, or went through
(their stage history), cannot be removed, and the outcome of a stage deals are in cannot
change (a deal's ``status`` mirrors it); either is a :class:`ValidationError` naming the
stage. There is always one default pipeline: making one the default unsets the previous
one. Lost reasons are added and deactivated (never deleted: lost deals name them).

Writes need ``sales.admin``, reads ``sales.deal.view`` (or ``sales.admin``). Every write
records an audit entry and an outbox event (``pipeline.created``, ``pipeline.updated``,
``lost_reason.created``, ``lost_reason.deactivated``...).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import func, select, union
from sqlalchemy import update as sql_update

from crm_core import ConflictError, NotFoundError, UnitOfWork, ValidationError, utcnow
from crm_core.authz import has_permission, require
from crm_core.i18n import N_
from crm_core.ids import MAX_ID, as_record_id
from crm_core.schemas import load_or_refuse
from crm_core.schemas.fieldtypes import RequiredText
from crm_sales.models import LostReason, Opportunity, Outcome, Pipeline, Stage, StageStay
from crm_sales.schemas import PipelineSchema, StageSchema

#: The entity names of pipelines and lost reasons in the audit trail and outbox events.
ENTITY, LOST_REASON = "pipeline", "lost_reason"
ADMIN, VIEW = "sales.admin", "sales.deal.view"

#: Why a stage cannot be removed, or its outcome cannot change (``%(name)s``: the stage).
STAGE_IN_USE = N_("Deals are in the stage %(name)s or went through it: it cannot be removed.")
OUTCOME_IN_USE = N_("Deals are in the stage %(name)s: its outcome cannot change.")


class StageInputSchema(StageSchema):
    """A stage as a pipeline is written: ``id`` names a stored stage (none: a new one)."""

    id = fields.Integer(strict=True, allow_none=True, load_default=None,
                        validate=validate.Range(min=1, max=MAX_ID))


class PipelineInputSchema(PipelineSchema):
    """A pipeline with its stages in order, each new or naming a stored stage."""

    stages = fields.List(fields.Nested(StageInputSchema), required=True,
                         validate=validate.Length(min=3, max=30))


class LostReasonSchema(Schema):
    """A reason deals are lost for."""

    id = fields.Integer(dump_only=True)
    name = RequiredText(max_length=120)
    active = fields.Boolean(dump_only=True)


# -- pipelines ----------------------------------------------------------------------------


def list_pipelines(uow: UnitOfWork) -> list[Pipeline]:
    """Every pipeline in order, its stages loaded: two queries."""
    _require_reader(uow)
    return list(uow.session.scalars(
        select(Pipeline).order_by(Pipeline.position, Pipeline.id)
    ))


def get(uow: UnitOfWork, pipeline_id: Any) -> Pipeline:
    """Pipeline ``pipeline_id`` with its stages; :class:`NotFoundError` if there is none."""
    _require_reader(uow)
    ident = as_record_id(pipeline_id)
    found = uow.session.get(Pipeline, ident) if ident is not None else None
    if found is None:
        raise NotFoundError(ENTITY, pipeline_id)
    return found


def create(uow: UnitOfWork, data: Mapping[str, Any]) -> Pipeline:
    """Validate ``data`` and create a pipeline with its stages (new ones: no ``id``)."""
    require(uow.actor, ADMIN)
    loaded = load_or_refuse(PipelineInputSchema(), data)
    errors = _stage_errors(loaded["stages"])
    for index, row in enumerate(loaded["stages"]):
        if row["id"] is not None:
            errors.setdefault("stages", {}).setdefault(index, {})["id"] = [
                N_("A new pipeline's stages have no ids yet.")
            ]
    _check_name(uow, loaded["name"], None, errors)
    if errors:
        raise ValidationError(errors)
    last = uow.session.scalar(select(func.max(Pipeline.position)))
    pipeline = Pipeline(name=loaded["name"], position=(last if last is not None else -1) + 1,
                        is_default=False)
    uow.session.add(pipeline)
    uow.session.flush()
    for position, row in enumerate(loaded["stages"]):
        uow.session.add(Stage(pipeline_id=pipeline.id, position=position, name=row["name"],
                              probability=row["probability"], outcome=row["outcome"]))
    uow.session.flush()
    uow.session.refresh(pipeline, ["stages"])
    has_default = uow.session.scalar(
        select(Pipeline.id).where(Pipeline.is_default.is_(True), Pipeline.id != pipeline.id)
    )
    if loaded["is_default"] or has_default is None:
        _make_default(uow, pipeline)
    uow.record(ENTITY, "created", [(pipeline.id, {
        "name": (None, pipeline.name), "is_default": (None, pipeline.is_default),
        "stages": (None, _stage_summary(pipeline.stages)),
    })], [payload(pipeline)])
    return pipeline


def update(
    uow: UnitOfWork,
    pipeline_id: Any,
    data: Mapping[str, Any],
    *,
    expected_version: int | None = None,
) -> Pipeline:
    """Replace a pipeline's name, default flag and stages with ``data`` (the whole pipeline).

    Stages naming an ``id`` are kept (renamed, moved, re-weighted), the others are
    added; stored stages left out are removed, unless deals use them.
    :class:`ConflictError` when ``expected_version`` (the version the caller edited) is
    not the stored one; every saved change makes a new version, stages' too.
    """
    require(uow.actor, ADMIN)
    pipeline = get(uow, pipeline_id)
    if expected_version is not None and pipeline.version != expected_version:
        raise ConflictError(ENTITY, pipeline.id, expected_version, pipeline.version)
    loaded = load_or_refuse(PipelineInputSchema(), data)
    rows = loaded["stages"]
    errors = _stage_errors(rows)
    _check_name(uow, loaded["name"], pipeline.id, errors)
    stored = {stage.id: stage for stage in pipeline.stages}
    seen: set[int] = set()
    for index, row in enumerate(rows):
        if row["id"] is None:
            continue
        if row["id"] not in stored:
            message = N_("No such stage in this pipeline.")
        elif row["id"] in seen:
            message = N_("This stage is listed twice.")
        else:
            seen.add(row["id"])
            continue
        errors.setdefault("stages", {}).setdefault(index, {})["id"] = [message]
    if pipeline.is_default and not loaded["is_default"]:
        errors["is_default"] = [
            N_("Make another pipeline the default instead: there is always one.")
        ]
    if not errors:
        _check_stages_in_use(uow, stored, rows, seen)
    if errors:
        raise ValidationError(errors)
    before = {"name": pipeline.name, "is_default": pipeline.is_default,
              "stages": _stage_summary(pipeline.stages)}
    _write_stages(uow, pipeline, stored, rows, seen)
    pipeline.name = loaded["name"]
    pipeline.updated_at = utcnow()  # the pipeline's row changes: a new version
    uow.session.flush()
    uow.session.refresh(pipeline, ["stages"])
    if loaded["is_default"] and not pipeline.is_default:
        _make_default(uow, pipeline)
    after = {"name": pipeline.name, "is_default": pipeline.is_default,
             "stages": _stage_summary(pipeline.stages)}
    changes = {key: (before[key], after[key]) for key in after if before[key] != after[key]}
    if changes:
        uow.record(ENTITY, "updated", [(pipeline.id, changes)], [payload(pipeline)])
    return pipeline


def set_default(uow: UnitOfWork, pipeline_id: Any) -> Pipeline:
    """Make pipeline ``pipeline_id`` the default (new deals start in it)."""
    require(uow.actor, ADMIN)
    pipeline = get(uow, pipeline_id)
    if not pipeline.is_default:
        _make_default(uow, pipeline)
        uow.record(ENTITY, "updated", [(pipeline.id, {"is_default": (False, True)})],
                   [payload(pipeline)])
    return pipeline


def payload(pipeline: Pipeline) -> dict[str, Any]:
    """A pipeline with its stages, as events and the API show it."""
    return PipelineSchema().dump(pipeline)  # type: ignore[no-any-return]


def stages_in_use(uow: UnitOfWork, stage_ids: Sequence[int]) -> set[int]:
    """Which of ``stage_ids`` deals are in or went through (archived deals included)."""
    if not stage_ids:
        return set()
    ids = list(stage_ids)
    return set(uow.session.scalars(union(
        select(Opportunity.stage_id).where(Opportunity.stage_id.in_(ids)),
        select(StageStay.stage_id).where(StageStay.stage_id.in_(ids)),
    )))


# -- lost reasons -------------------------------------------------------------------------


def list_lost_reasons(uow: UnitOfWork, *, active: bool | None = None) -> list[LostReason]:
    """The lost reasons by name: all of them, or only the (in)active ones."""
    _require_reader(uow)
    statement = select(LostReason).order_by(LostReason.name, LostReason.id)
    if active is not None:
        statement = statement.where(LostReason.active.is_(active))
    return list(uow.session.scalars(statement))


def get_lost_reason(uow: UnitOfWork, reason_id: Any) -> LostReason:
    """Lost reason ``reason_id``; :class:`NotFoundError` if there is none."""
    _require_reader(uow)
    ident = as_record_id(reason_id)
    found = uow.session.get(LostReason, ident) if ident is not None else None
    if found is None:
        raise NotFoundError(LOST_REASON, reason_id)
    return found


def create_lost_reason(uow: UnitOfWork, data: Mapping[str, Any]) -> LostReason:
    """Validate ``data`` (a ``name``, unique whatever the case) and add an active reason."""
    require(uow.actor, ADMIN)
    loaded = load_or_refuse(LostReasonSchema(), data)
    taken = uow.session.scalar(
        select(LostReason.id).where(func.lower(LostReason.name) == loaded["name"].lower())
    )
    if taken is not None:
        raise ValidationError({"name": [N_("There is a lost reason of that name already.")]})
    reason = LostReason(name=loaded["name"], active=True)
    uow.session.add(reason)
    uow.session.flush()
    uow.record(LOST_REASON, "created",
               [(reason.id, {"name": (None, reason.name), "active": (None, True)})],
               [LostReasonSchema().dump(reason)])
    return reason


def deactivate_lost_reason(uow: UnitOfWork, reason_id: Any) -> LostReason:
    """Stop offering a lost reason (lost deals keep naming it)."""
    return _set_active(uow, reason_id, False)


def activate_lost_reason(uow: UnitOfWork, reason_id: Any) -> LostReason:
    """Offer a deactivated lost reason again."""
    return _set_active(uow, reason_id, True)


# -- helpers ------------------------------------------------------------------------------


def _require_reader(uow: UnitOfWork) -> None:
    """Reading needs ``sales.deal.view``; the sales admin, who writes, may read as well."""
    if not has_permission(uow.actor, ADMIN):
        require(uow.actor, VIEW)


def _stage_errors(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The outcome rules and unique names of a pipeline's stages, as field messages."""
    errors: dict[str, Any] = {}
    names: set[str] = set()
    for index, row in enumerate(rows):
        key = row["name"].casefold()
        if key in names:
            errors.setdefault("stages", {}).setdefault(index, {})["name"] = [
                N_("Another stage of this pipeline has this name.")
            ]
        names.add(key)
    outcomes = [row["outcome"] for row in rows]
    general = []
    if Outcome.OPEN.value not in outcomes:
        general.append(N_("Add at least one open stage."))
    if outcomes.count(Outcome.WON.value) != 1:
        general.append(N_("Have exactly one won stage."))
    if Outcome.LOST.value not in outcomes:
        general.append(N_("Add at least one lost stage."))
    if general:
        errors.setdefault("stages", {})["_schema"] = general
    return errors


def _check_name(uow: UnitOfWork, name: str, own_id: int | None, errors: dict[str, Any]) -> None:
    statement = select(Pipeline.id).where(func.lower(Pipeline.name) == name.lower())
    if own_id is not None:
        statement = statement.where(Pipeline.id != own_id)
    if uow.session.scalar(statement) is not None:
        errors["name"] = [N_("There is a pipeline of that name already.")]


def _check_stages_in_use(
    uow: UnitOfWork, stored: Mapping[int, Stage], rows: Sequence[Mapping[str, Any]],
    kept: set[int],
) -> None:
    """Refuse removing stages deals use, and changing the outcome of stages deals are in."""
    removed = [stage for ident, stage in stored.items() if ident not in kept]
    used = stages_in_use(uow, [stage.id for stage in removed])
    messages = [STAGE_IN_USE % {"name": stage.name} for stage in removed if stage.id in used]
    changed = {row["id"]: index for index, row in enumerate(rows)
               if row["id"] is not None and stored[row["id"]].outcome != row["outcome"]}
    errors: dict[str, Any] = {}
    if changed:
        occupied = set(uow.session.scalars(
            select(Opportunity.stage_id).where(Opportunity.stage_id.in_(list(changed))).distinct()
        ))
        for ident in sorted(occupied):
            errors.setdefault("stages", {})[changed[ident]] = {
                "outcome": [OUTCOME_IN_USE % {"name": stored[ident].name}]
            }
    if messages:
        errors.setdefault("stages", {})["_schema"] = messages
    if errors:
        raise ValidationError(errors)


def _write_stages(
    uow: UnitOfWork, pipeline: Pipeline, stored: Mapping[int, Stage],
    rows: Sequence[Mapping[str, Any]], kept: set[int],
) -> None:
    """Delete, rename (through unique temporary names, so swapped names never collide),
    change and add stages, in the order of ``rows``."""
    session = uow.session
    for ident, stage in stored.items():
        if ident not in kept:
            session.delete(stage)
    session.flush()
    renamed = [row for row in rows if row["id"] is not None
               and stored[row["id"]].name != row["name"]]
    for row in renamed:
        stored[row["id"]].name = f"~{uuid.uuid4().hex}"
    if renamed:
        session.flush()
    for position, row in enumerate(rows):
        values = {"name": row["name"], "probability": row["probability"],
                  "outcome": row["outcome"], "position": position}
        if row["id"] is None:
            session.add(Stage(pipeline_id=pipeline.id, **values))
        else:
            for key, value in values.items():
                setattr(stored[row["id"]], key, value)


def _make_default(uow: UnitOfWork, pipeline: Pipeline) -> None:
    """Unset the previous default (auditing it) and make ``pipeline`` the default."""
    previous = list(uow.session.scalars(
        select(Pipeline.id).where(Pipeline.is_default.is_(True), Pipeline.id != pipeline.id)
    ))
    if previous:
        uow.session.execute(
            sql_update(Pipeline).where(Pipeline.id.in_(previous)).values(is_default=False)
            .execution_options(synchronize_session="fetch")
        )
        uow.record(ENTITY, "updated", [(ident, {"is_default": (True, False)})
                                       for ident in previous])
    pipeline.is_default = True
    uow.session.flush()


def _stage_summary(stages: Sequence[Stage]) -> list[str]:
    """The stages in order as the audit trail shows them: ``Proposal (50 %, open)``."""
    return [f"{stage.name} ({stage.probability} %, {stage.outcome})" for stage in stages]


def _set_active(uow: UnitOfWork, reason_id: Any, active: bool) -> LostReason:
    require(uow.actor, ADMIN)
    reason = get_lost_reason(uow, reason_id)
    if reason.active != active:
        reason.active = active
        uow.session.flush()
        uow.record(LOST_REASON, "activated" if active else "deactivated",
                   [(reason.id, {"active": (not active, active)})],
                   [LostReasonSchema().dump(reason)])
    return reason
