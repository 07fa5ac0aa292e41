"""Quotas: the sales targets of users and teams per month or quarter — set, list, delete.

A quota belongs to a user (``owner_id``) or to a team (``team_id``), never both, for a
period (``month`` or ``quarter``) that begins on ``starts_on``: the first day of a
month, or of a quarter (January, April, July, October). Setting the quota of a target
and period that already has one replaces its amount and currency, so there is one
quota per user or team and period. Writing needs ``sales.admin``, reading
``sales.report.view`` (or ``sales.admin``); a reader sees the quotas of the users
whose deals they see, and team quotas when they see every record or, with visibility
*team*, their own team's. Every write is audited (entity ``quota``) with an outbox event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError as SchemaError
from sqlalchemy import and_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from crm_core import NotFoundError, UnitOfWork, ValidationError
from crm_core.authz import has_permission, owned_by_visible_users, require
from crm_core.errors import PermissionDenied
from crm_core.i18n import N_
from crm_core.models import Team, User, Visibility
from crm_core.schemas import load_or_refuse
from crm_sales.models import Quota
from crm_sales.schemas import QuotaSchema

#: The entity name of quotas in the audit trail and outbox events.
ENTITY = "quota"
ADMIN, VIEW = "sales.admin", "sales.report.view"
#: The months a quarter begins with.
QUARTER_MONTHS = (1, 4, 7, 10)
#: Quotas per page of :func:`list_quotas`, at most.
MAX_PAGE = 200


@dataclass(frozen=True)
class QuotaRow:
    """A quota with the name of its user or team (for lists)."""

    quota: Quota
    owner_name: str | None
    team_name: str | None


def visible_quotas(actor: Any) -> ColumnElement[bool]:
    """The quotas ``actor`` may see: of the users whose deals they see, and team quotas
    when they see everything (or, with visibility *team*, their own team's)."""
    if actor is None or actor.visibility is Visibility.ALL:
        return true()
    own = and_(Quota.owner_id.is_not(None), owned_by_visible_users(actor, Quota.owner_id))
    if actor.visibility is Visibility.TEAM and actor.team_id is not None:
        return or_(own, Quota.team_id == actor.team_id)
    return own


def is_period_start(day: dt.date, period: str) -> bool:
    """Whether ``day`` is the first day of a month (``month``) or of a quarter."""
    return day.day == 1 and (period == "month" or day.month in QUARTER_MONTHS)


def get(uow: UnitOfWork, quota_id: int) -> Quota:
    """Quota ``quota_id``; :class:`NotFoundError` if missing or not visible."""
    _require_read(uow.actor)
    found = uow.session.scalar(
        select(Quota).where(Quota.id == quota_id, visible_quotas(uow.actor))
    )
    if found is None:
        raise NotFoundError(ENTITY, quota_id)
    return found


def list_quotas(
    uow: UnitOfWork,
    *,
    period: str | None = None,
    after: tuple[dt.date, int] | None = None,
    limit: int = 50,
) -> list[QuotaRow]:
    """Visible quotas, latest period first (then newest), ``limit`` of them after the
    ``(starts_on, id)`` of the previous page's last one; one query."""
    _require_read(uow.actor)
    statement = (
        select(Quota, User.name, User.email, Team.name)
        .outerjoin(User, User.id == Quota.owner_id)
        .outerjoin(Team, Team.id == Quota.team_id)
        .where(visible_quotas(uow.actor))
    )
    if period is not None:
        statement = statement.where(Quota.period == period)
    if after is not None:
        starts_on, ident = after
        statement = statement.where(
            or_(Quota.starts_on < starts_on, and_(Quota.starts_on == starts_on, Quota.id < ident))
        )
    statement = statement.order_by(Quota.starts_on.desc(), Quota.id.desc())
    rows = uow.session.execute(statement.limit(max(1, min(limit, MAX_PAGE))))
    return [
        QuotaRow(quota, (name or email) if quota.owner_id is not None else None, team)
        for quota, name, email, team in rows
    ]


def set_quota(uow: UnitOfWork, data: Mapping[str, Any]) -> Quota:
    """Validate ``data`` (:class:`~crm_sales.schemas.QuotaSchema`) and store the quota of
    its user or team for its period, replacing the amount of the one already set."""
    return save_quota(uow, data)[0]


def save_quota(uow: UnitOfWork, data: Mapping[str, Any]) -> tuple[Quota, bool]:
    """:func:`set_quota`, and whether the quota is new (``False``: it replaced the amount
    and currency of the one set before for the same user or team and period)."""
    require(uow.actor, ADMIN)
    loaded = _load(uow, data)
    existing = uow.session.scalar(
        select(Quota).where(
            Quota.owner_id == loaded["owner_id"],
            Quota.team_id == loaded["team_id"],
            Quota.period == loaded["period"],
            Quota.starts_on == loaded["starts_on"],
        )
    )
    if existing is None:
        quota = Quota(**{key: loaded[key] for key in _COLUMNS})
        uow.session.add(quota)
        uow.session.flush()
        changes = {key: (None, getattr(quota, key)) for key in _COLUMNS}
        uow.record(ENTITY, "created", [(quota.id, changes)], [payload(quota)])
        return quota, True
    before = {key: getattr(existing, key) for key in ("amount", "currency")}
    existing.amount = loaded["amount"]
    existing.currency = loaded["currency"]
    uow.session.flush()
    changes = {key: (old, getattr(existing, key)) for key, old in before.items()
               if old != getattr(existing, key)}
    if changes:
        uow.record(ENTITY, "updated", [(existing.id, changes)], [payload(existing)])
    return existing, False


def delete(uow: UnitOfWork, quota_id: int) -> None:
    """Delete quota ``quota_id`` (audited with what it was)."""
    require(uow.actor, ADMIN)
    quota = get(uow, quota_id)
    body = payload(quota)
    changes = {key: (getattr(quota, key), None) for key in _COLUMNS}
    uow.session.delete(quota)
    uow.session.flush()
    uow.record(ENTITY, "deleted", [(quota_id, changes)], [body])


def payload(quota: Quota) -> dict[str, Any]:
    """A quota as events (and an API) show it."""
    return QuotaSchema().dump(quota)  # type: ignore[no-any-return]


# -- helpers ------------------------------------------------------------------------------

#: The loaded keys stored as columns of a quota.
_COLUMNS = ("owner_id", "team_id", "period", "starts_on", "amount", "currency")


def _require_read(actor: Any) -> None:
    """Readers need ``sales.report.view``; the sales admin, who sets quotas, reads them too."""
    if not (has_permission(actor, VIEW) or has_permission(actor, ADMIN)):
        raise PermissionDenied(f"you need the permission {VIEW!r}")


def _load(uow: UnitOfWork, data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` loaded through the schema and checked: every refused field at once, those
    the schema refused and those refused here (user or team, a period's first day)."""
    if not isinstance(data, Mapping):
        load_or_refuse(QuotaSchema(), data)  # refuses what is not an object
    try:
        loaded: dict[str, Any] = QuotaSchema().load(data)
        errors: dict[str, Any] = {}
    except SchemaError as exc:
        loaded, errors = dict(exc.valid_data or {}), dict(exc.messages)  # type: ignore[arg-type]
    for name, messages in _problems(uow, loaded, set(errors)).items():
        errors.setdefault(name, messages)
    if errors:
        raise ValidationError(errors)
    return loaded


def _problems(uow: UnitOfWork, loaded: Mapping[str, Any], refused: set[str],
              ) -> dict[str, list[str]]:
    """A user or a team that exists; a period's first day. Fields the schema ``refused``
    already are not looked at again."""
    errors: dict[str, list[str]] = {}
    if not {"owner_id", "team_id"} & refused:
        errors.update(_target_problems(uow, loaded.get("owner_id"), loaded.get("team_id")))
    period = loaded.get("period", "month")
    if "starts_on" in loaded and "period" not in refused and not is_period_start(
        loaded["starts_on"], period
    ):
        errors["starts_on"] = [
            N_("Use the first day of a month.") if period == "month"
            else N_("Use the first day of a quarter: 1 January, 1 April, 1 July or 1 October.")
        ]
    return errors


def _target_problems(uow: UnitOfWork, owner_id: int | None, team_id: int | None,
                     ) -> dict[str, list[str]]:
    """Either a user or a team (not both, not neither), one that exists."""
    if owner_id is not None and team_id is not None:
        message = N_("Give either a user or a team, not both.")
        return {"owner_id": [message], "team_id": [message]}
    if owner_id is None and team_id is None:
        message = N_("Choose a user or a team.")
        return {"owner_id": [message], "team_id": [message]}
    if owner_id is not None:
        owner = uow.session.get(User, owner_id)
        if owner is None or not owner.active:
            return {"owner_id": [N_("No such active user.")]}
    elif uow.session.get(Team, team_id) is None:
        return {"team_id": [N_("No such team.")]}
    return {}
