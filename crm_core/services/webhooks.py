"""Webhooks and the event deliveries behind them: administration, inspection, replay.

Every function needs ``webhook.admin`` (the system, ``actor=None``, may do all).
Writes are audited and raise outbox events like other services (``webhook.created``,
``webhook.updated``, ``webhook.deleted``, ``webhook.enabled``, ``webhook.disabled``,
``webhook.secret_rotated``, ``delivery.replayed``). A webhook's signing secret is
returned by :func:`create` and :func:`rotate_secret` only: it never enters an audit
entry, an event payload, or anything else this module returns.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm.exc import StaleDataError

from crm_core.authz import require
from crm_core.errors import ConflictError, CRMError, NotFoundError, ValidationError
from crm_core.ids import as_record_id
from crm_core.jobs import deliveries
from crm_core.jobs.deliveries import WEBHOOK_PREFIX
from crm_core.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    OutboxEvent,
    OutboxStatus,
    Webhook,
)
from crm_core.schemas import load_or_refuse
from crm_core.schemas.webhook import MAX_DESCRIPTION_LENGTH, WebhookPatchSchema, WebhookSchema
from crm_core.services.unit_of_work import UnitOfWork
from crm_core.webhooks import new_secret

ADMIN_PERMISSION = "webhook.admin"
ENTITY = "webhook"
DELIVERY_STATUSES = tuple(status.value for status in DeliveryStatus)
EVENT_STATUSES = tuple(status.value for status in OutboxStatus)
DEFAULT_DISABLE_REASON = "disabled by an admin"
#: The fields a change records (and :func:`update` may change).
_FIELDS = ("url", "description", "event_types")
#: Outbox event ids are UUIDs: 36 characters.
_MAX_EVENT_ID_LENGTH = 36


class DeliveryNotDead(CRMError):
    """Only a dead letter can be replayed; this delivery is in another state."""

    def __init__(self, delivery_id: int, status: str) -> None:
        super().__init__(
            f"delivery {delivery_id} is {status}, not dead: only dead letters can be replayed"
        )
        self.delivery_id = delivery_id
        self.status = status


def consumer_name(webhook_id: int) -> str:
    """The ``event_delivery.consumer`` of webhook ``webhook_id``: ``webhook:<id>``."""
    return f"{WEBHOOK_PREFIX}{webhook_id}"


def webhook_id_of(consumer: str) -> int | None:
    """The webhook id of a delivery's ``consumer``, or ``None`` for a plugin's consumer."""
    if consumer.startswith(WEBHOOK_PREFIX):
        return as_record_id(consumer[len(WEBHOOK_PREFIX) :])
    return None


# -- webhooks -----------------------------------------------------------------------------


def create(uow: UnitOfWork, data: Mapping[str, Any]) -> tuple[Webhook, str]:
    """Subscribe a URL to event types; return the webhook and its secret (shown once).

    ``data``: ``url``, ``event_types``, optional ``description`` and ``secret``
    (at least 24 characters; generated when missing). Raises :class:`ValidationError`.
    """
    require(uow.actor, ADMIN_PERMISSION)
    loaded = load_or_refuse(WebhookSchema(), data)
    secret = loaded.pop("secret", None) or new_secret()
    hook = Webhook(
        url=loaded["url"],
        description=loaded["description"],
        event_types=loaded["event_types"],
        secret=secret,
        active=True,
        failure_streak=0,
        created_by_id=uow.actor_id,
    )
    uow.session.add(hook)
    uow.session.flush()
    changes = {name: (None, getattr(hook, name)) for name in (*_FIELDS, "active")}
    uow.record(ENTITY, "created", [(hook.id, changes)], payloads=[_payload(hook)])
    return hook, secret


def get(uow: UnitOfWork, webhook_id: Any) -> Webhook:
    """Webhook ``webhook_id``; :class:`NotFoundError` if there is none."""
    require(uow.actor, ADMIN_PERMISSION)
    ident = as_record_id(webhook_id)
    hook = uow.session.get(Webhook, ident) if ident is not None and ident > 0 else None
    if hook is None:
        raise NotFoundError(ENTITY, webhook_id)
    return hook


def list_webhooks(
    uow: UnitOfWork, *, after_id: int | None = None, limit: int | None = None
) -> builtins.list[Webhook]:
    """Webhooks by id, those after ``after_id``, at most ``limit`` of them."""
    require(uow.actor, ADMIN_PERMISSION)
    statement = select(Webhook).order_by(Webhook.id)
    if after_id is not None:
        statement = statement.where(Webhook.id > after_id)
    if limit is not None:
        statement = statement.limit(limit)
    return [*uow.session.scalars(statement)]


def update(
    uow: UnitOfWork,
    webhook_id: Any,
    data: Mapping[str, Any],
    expected_version: int | None = None,
) -> Webhook:
    """Change ``url``, ``description`` or ``event_types`` (those given in ``data``).

    ``expected_version`` is the version the caller edited: if the webhook has moved on
    since, :class:`ConflictError`. The secret changes through :func:`rotate_secret` only.
    """
    hook = get(uow, webhook_id)
    _check_version(hook, expected_version)
    loaded = load_or_refuse(WebhookPatchSchema(), data, partial=True)
    changes = {
        name: (getattr(hook, name), value)
        for name, value in loaded.items()
        if getattr(hook, name) != value
    }
    if not changes:
        return hook
    for name, (_old, value) in changes.items():
        setattr(hook, name, value)
    _flush(uow, hook)
    uow.record(ENTITY, "updated", [(hook.id, changes)], payloads=[_payload(hook)])
    return hook


def delete(uow: UnitOfWork, webhook_id: Any, expected_version: int | None = None) -> None:
    """Delete the webhook; deliveries still due to it die ("the webhook was deleted")."""
    hook = get(uow, webhook_id)
    _check_version(hook, expected_version)
    changes = {name: (getattr(hook, name), None) for name in _FIELDS}
    payload = _payload(hook)
    ident = hook.id
    uow.session.delete(hook)
    _flush(uow, hook)
    uow.record(ENTITY, "deleted", [(ident, changes)], payloads=[payload])


def enable(uow: UnitOfWork, webhook_id: Any, expected_version: int | None = None) -> Webhook:
    """Deliver to the webhook again, with a fresh failure streak; no-op when it is active.

    Deliveries that died while it was disabled stay dead letters: replay them.
    """
    hook = get(uow, webhook_id)
    _check_version(hook, expected_version)
    if hook.active:
        return hook
    changes: dict[str, tuple[Any, Any]] = {
        "active": (False, True),
        "failure_streak": (hook.failure_streak, 0),
        "disabled_at": (hook.disabled_at, None),
        "disabled_reason": (hook.disabled_reason, None),
    }
    hook.active = True
    hook.failure_streak = 0
    hook.disabled_at = None
    hook.disabled_reason = None
    _flush(uow, hook)
    uow.record(ENTITY, "enabled", [(hook.id, changes)], payloads=[_payload(hook)])
    return hook


def disable(
    uow: UnitOfWork,
    webhook_id: Any,
    reason: str | None = None,
    expected_version: int | None = None,
) -> Webhook:
    """Stop delivering to the webhook, saying why; no-op when it is disabled already.

    Deliveries due meanwhile die; replay them once it is enabled again.
    """
    hook = get(uow, webhook_id)
    _check_version(hook, expected_version)
    text = (reason or "").strip() or DEFAULT_DISABLE_REASON
    if len(text) > MAX_DESCRIPTION_LENGTH:
        raise ValidationError({"reason": [f"Use at most {MAX_DESCRIPTION_LENGTH} characters."]})
    if not hook.active:
        return hook
    try:
        deliveries.disable_webhook(uow, hook, text)
    except StaleDataError as exc:
        raise ConflictError(ENTITY, hook.id, hook.version, None) from exc
    return hook


def rotate_secret(uow: UnitOfWork, webhook_id: Any, expected_version: int | None = None) -> str:
    """Give the webhook a new signing secret and return it (shown once).

    Deliveries from now on are signed with it; the audit entry says that it changed,
    never what it is.
    """
    hook = get(uow, webhook_id)
    _check_version(hook, expected_version)
    secret = new_secret()
    hook.secret = secret
    _flush(uow, hook)
    uow.record(ENTITY, "secret_rotated", [(hook.id, {})], payloads=[_payload(hook)])
    return secret


def _payload(hook: Webhook) -> dict[str, Any]:
    """The body of a ``webhook.*`` event: never the secret."""
    return {
        "id": hook.id,
        "url": hook.url,
        "description": hook.description,
        "event_types": hook.event_types,
        "active": hook.active,
    }


def _check_version(hook: Webhook, expected: int | None) -> None:
    if expected is not None and hook.version != expected:
        raise ConflictError(ENTITY, hook.id, expected, hook.version)


def _flush(uow: UnitOfWork, hook: Webhook) -> None:
    """Flush; a webhook changed by another transaction meanwhile is a :class:`ConflictError`."""
    ident, version = hook.id, hook.version
    try:
        uow.session.flush()
    except StaleDataError as exc:
        raise ConflictError(ENTITY, ident, version, None) from exc


# -- deliveries ---------------------------------------------------------------------------


def list_deliveries(
    uow: UnitOfWork,
    *,
    status: str | None = None,
    consumer: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> builtins.list[tuple[EventDelivery, str]]:
    """Deliveries newest first, each with its event's type; filters combine with AND.

    ``status`` is one of :data:`DELIVERY_STATUSES` (``dead``: the dead letters);
    ``consumer`` a webhook's ``webhook:<id>`` or a plugin consumer's name. Served by
    the indexes on ``(consumer, id)`` and ``(status, next_attempt_at)``.
    """
    require(uow.actor, ADMIN_PERMISSION)
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationError({"status": [f"Use one of: {', '.join(DELIVERY_STATUSES)}."]})
    statement = _deliveries_with_type()
    if status is not None:
        statement = statement.where(EventDelivery.status == status)
    if consumer is not None:
        statement = statement.where(EventDelivery.consumer == consumer)
    if before_id is not None:
        statement = statement.where(EventDelivery.id < before_id)
    statement = statement.order_by(EventDelivery.id.desc()).limit(limit)
    return [(row[0], row[1]) for row in uow.session.execute(statement)]


def get_delivery(uow: UnitOfWork, delivery_id: Any) -> tuple[EventDelivery, str]:
    """Delivery ``delivery_id`` with its event's type; :class:`NotFoundError` if none."""
    require(uow.actor, ADMIN_PERMISSION)
    ident = as_record_id(delivery_id)
    row = None
    if ident is not None and ident > 0:
        row = uow.session.execute(_deliveries_with_type().where(EventDelivery.id == ident)).first()
    if row is None:
        raise NotFoundError("delivery", delivery_id)
    return row[0], row[1]


def delivery_attempts(
    uow: UnitOfWork, delivery_id: int, *, limit: int = 100
) -> builtins.list[DeliveryAttempt]:
    """The latest ``limit`` attempts of a delivery, newest first (replays included)."""
    require(uow.actor, ADMIN_PERMISSION)
    statement = (
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery_id)
        .order_by(DeliveryAttempt.id.desc())
        .limit(limit)
    )
    return [*uow.session.scalars(statement)]


def replay_delivery(uow: UnitOfWork, delivery_id: Any) -> EventDelivery:
    """Give dead letter ``delivery_id`` a fresh set of attempts, queued once ``uow`` commits.

    :class:`NotFoundError` if there is no such delivery, :class:`DeliveryNotDead` if it
    is not dead (pending, running or delivered).
    """
    delivery, _type = get_delivery(uow, delivery_id)
    if delivery.status != DeliveryStatus.DEAD.value:
        raise DeliveryNotDead(delivery.id, delivery.status)
    if not deliveries.replay(uow, [delivery.id]):
        uow.session.refresh(delivery)
        raise DeliveryNotDead(delivery.id, delivery.status)
    uow.session.refresh(delivery)
    return delivery


def replay_dead(uow: UnitOfWork, *, consumer: str | None = None) -> builtins.list[int]:
    """Replay every dead letter (of ``consumer`` if given); return the ids, ascending."""
    return deliveries.replay(uow, consumer=consumer)


def _deliveries_with_type() -> Select[Any]:
    return select(EventDelivery, OutboxEvent.type).join(
        OutboxEvent, OutboxEvent.id == EventDelivery.event_id
    )


# -- events ---------------------------------------------------------------------------------


def list_events(
    uow: UnitOfWork,
    *,
    type: str | None = None,
    entity: str | None = None,
    entity_id: str | None = None,
    status: str | None = None,
    before: tuple[dt.datetime, str] | None = None,
    limit: int = 50,
) -> builtins.list[OutboxEvent]:
    """Outbox events newest first (by ``occurred_at``, then id); filters combine with AND.

    ``before`` is ``(occurred_at, id)`` of the last event of the previous page.
    """
    require(uow.actor, ADMIN_PERMISSION)
    if status is not None and status not in EVENT_STATUSES:
        raise ValidationError({"status": [f"Use one of: {', '.join(EVENT_STATUSES)}."]})
    statement = select(OutboxEvent)
    for column, value in (
        (OutboxEvent.type, type),
        (OutboxEvent.entity, entity),
        (OutboxEvent.entity_id, entity_id),
        (OutboxEvent.status, status),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if before is not None:
        occurred_at, ident = before
        statement = statement.where(
            OutboxEvent.occurred_at <= occurred_at,
            or_(
                OutboxEvent.occurred_at < occurred_at,
                and_(OutboxEvent.occurred_at == occurred_at, OutboxEvent.id < ident),
            ),
        )
    statement = statement.order_by(OutboxEvent.occurred_at.desc(), OutboxEvent.id.desc())
    return [*uow.session.scalars(statement.limit(limit))]


def get_event(uow: UnitOfWork, event_id: str) -> OutboxEvent:
    """Outbox event ``event_id``; :class:`NotFoundError` if there is none."""
    require(uow.actor, ADMIN_PERMISSION)
    event = None
    if (
        isinstance(event_id, str)
        and 0 < len(event_id) <= _MAX_EVENT_ID_LENGTH
        and "\x00" not in event_id
    ):
        event = uow.session.get(OutboxEvent, event_id)
    if event is None:
        raise NotFoundError("event", event_id)
    return event


def event_deliveries(uow: UnitOfWork, event_id: str) -> builtins.list[EventDelivery]:
    """Every delivery of event ``event_id``, one per consumer, by id."""
    require(uow.actor, ADMIN_PERMISSION)
    statement = (
        select(EventDelivery).where(EventDelivery.event_id == event_id).order_by(EventDelivery.id)
    )
    return [*uow.session.scalars(statement)]


#: ``webhooks.list(uow)``, like the other services' names; :func:`list_webhooks` inside.
list = list_webhooks
