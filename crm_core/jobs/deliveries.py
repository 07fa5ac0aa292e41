"""From the outbox to the consumers: relay, delivery attempts, retries and dead letters.

The database holds the truth; the task queue only carries delivery ids to workers.

1. :func:`relay` moves committed outbox events to ``event_delivery`` rows, one per
   matching consumer (plugins' :class:`~crm_core.extensions.EventConsumer` and active
   webhooks), marks the events dispatched, commits, then queues the new deliveries.
   ``(event_id, consumer)`` is unique, so an event reaches a consumer through one row.
2. :func:`deliver` claims queued deliveries (``pending`` -> ``running`` with a
   lease), hands each event to its consumer outside any transaction, then records
   the attempt: ``delivered``; or ``pending`` again with exponential backoff; or
   ``dead`` after the last attempt.
3. :func:`requeue_lost` queues again what a dead worker left: deliveries whose lease
   ran out (queued or running). Delivery is therefore at least once; consumers stay
   idempotent with the event id (webhook receivers get it in ``X-CRM-Event-Id``).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from crm_core.db import utcnow
from crm_core.extensions import Event, EventConsumer, matches_event_type
from crm_core.models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventDelivery,
    OutboxEvent,
    OutboxStatus,
    Webhook,
)
from crm_core.services.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from crm_core.runtime import CRM

log = logging.getLogger(__name__)

WEBHOOK_PREFIX = "webhook:"
#: Events relayed per transaction.
RELAY_BATCH = 500
#: The longest wait between two attempts of a delivery.
MAX_BACKOFF = dt.timedelta(hours=6)


@dataclass(frozen=True)
class Outcome:
    """What one attempt of one delivery came to."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: float = 0.0
    give_up: bool = False
    """Stop retrying now (a webhook that is gone); the delivery becomes a dead letter."""
    sent: bool = True
    """Whether the consumer was reached at all (not for a deleted or disabled webhook)."""


class DeliveryFailed(Exception):
    """Raised by a consumer to fail an attempt with an HTTP status code and/or give up."""

    def __init__(self, message: str, status_code: int | None = None, give_up: bool = False):
        super().__init__(message)
        self.status_code = status_code
        self.give_up = give_up


# -- relay ---------------------------------------------------------------------------


def relay(crm: CRM, *, limit: int = RELAY_BATCH) -> int:
    """Turn up to ``limit`` pending outbox events into queued deliveries; return how many.

    Safe with several relays at once: on PostgreSQL each claims other events
    (``FOR UPDATE SKIP LOCKED``); SQLite runs one writer at a time.
    """
    now = utcnow()
    with crm.session_factory() as session:
        # A read first: an idle relay takes no write lock.
        if session.scalar(_PENDING_EXISTS, {"now": now}) is None:
            return 0
    with crm.write_session() as session, session.begin():
        statement = _PENDING_EVENTS.limit(limit)
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        events = session.execute(statement, {"now": now}).all()
        if not events:
            return 0
        consumers = _consumer_patterns(crm, session)
        lease_until = now + _lease(crm)
        rows = [
            {
                "event_id": event.id,
                "consumer": name,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": now,
                "lease_until": lease_until,
                "created_at": now,
            }
            for event in events
            for name, patterns in consumers
            if matches_event_type(patterns, event.type)
        ]
        connection = session.connection()
        ids = list(connection.scalars(_DELIVERY_INSERT, rows)) if rows else []
        connection.execute(
            update(OutboxEvent)
            .where(OutboxEvent.id.in_([event.id for event in events]))
            .values(status=OutboxStatus.DISPATCHED.value)
        )
    if ids:
        crm.queue.deliver(ids)
    return len(events)


def _consumer_patterns(crm: CRM, session: Session) -> list[tuple[str, Sequence[str]]]:
    consumers: list[tuple[str, Sequence[str]]] = [
        (consumer.name, consumer.event_types) for consumer in crm.registry.event_consumers.values()
    ]
    webhooks = session.execute(
        select(Webhook.id, Webhook.event_types).where(Webhook.active.is_(True))
    )
    consumers += [(f"{WEBHOOK_PREFIX}{ident}", patterns) for ident, patterns in webhooks]
    return consumers


# -- delivery ------------------------------------------------------------------------


@dataclass
class _Claimed:
    id: int
    consumer: str
    attempts: int
    event: Event


def deliver(crm: CRM, delivery_ids: Iterable[int]) -> None:
    """Attempt the deliveries ``delivery_ids`` that are due and not taken by another worker."""
    claimed = _claim(crm, list(delivery_ids))
    if not claimed:
        return
    webhooks = _webhooks(crm, claimed)
    outcomes = [(delivery, _attempt(crm, delivery, webhooks)) for delivery in claimed]
    retries = _record(crm, outcomes)
    for delay, ids in retries.items():
        crm.queue.deliver(ids, delay=delay)


def _claim(crm: CRM, ids: list[int]) -> list[_Claimed]:
    now = utcnow()
    with crm.write_session() as session, session.begin():
        rows = session.execute(
            update(EventDelivery)
            .where(EventDelivery.id.in_(ids), _claimable(now))
            .values(
                status=DeliveryStatus.RUNNING.value,
                attempts=EventDelivery.attempts + 1,
                lease_until=now + _lease(crm),
            )
            .returning(
                EventDelivery.id,
                EventDelivery.consumer,
                EventDelivery.attempts,
                EventDelivery.event_id,
            )
        ).all()
        if not rows:
            return []
        events = {
            event.id: _event(event)
            for event in session.scalars(
                select(OutboxEvent).where(OutboxEvent.id.in_({row.event_id for row in rows}))
            )
        }
    return [
        _Claimed(row.id, row.consumer, row.attempts, events[row.event_id])
        for row in sorted(rows, key=lambda row: row.id)
    ]


def _claimable(now: dt.datetime) -> Any:
    """Due, and queued or taken by a worker whose lease ran out (it died)."""
    return and_(
        EventDelivery.next_attempt_at <= now,
        or_(
            EventDelivery.status == DeliveryStatus.PENDING.value,
            and_(
                EventDelivery.status == DeliveryStatus.RUNNING.value,
                EventDelivery.lease_until < now,
            ),
        ),
    )


def _event(row: OutboxEvent) -> Event:
    return Event(
        id=row.id,
        type=row.type,
        entity=row.entity,
        entity_id=row.entity_id,
        payload=row.payload,
        occurred_at=row.occurred_at,
        actor_id=row.actor_id,
    )


def _webhooks(crm: CRM, claimed: Sequence[_Claimed]) -> dict[int, Webhook]:
    wanted = {
        int(delivery.consumer[len(WEBHOOK_PREFIX) :])
        for delivery in claimed
        if delivery.consumer.startswith(WEBHOOK_PREFIX)
    }
    if not wanted:
        return {}
    with crm.session_factory() as session:
        return {
            hook.id: hook for hook in session.scalars(select(Webhook).where(Webhook.id.in_(wanted)))
        }


def _attempt(crm: CRM, delivery: _Claimed, webhooks: dict[int, Webhook]) -> Outcome:
    handler = _handler(crm, delivery.consumer, webhooks)
    started = time.perf_counter()
    try:
        if isinstance(handler, str):
            return Outcome(False, None, handler, _ms(started), give_up=True, sent=False)
        handler(crm, delivery.event)
    except DeliveryFailed as exc:
        return Outcome(False, exc.status_code, str(exc), _ms(started), give_up=exc.give_up)
    except Exception as exc:
        log.warning(
            "delivery %s of event %s to %s failed: %r",
            delivery.id,
            delivery.event.id,
            delivery.consumer,
            exc,
        )
        return Outcome(False, None, f"{type(exc).__name__}: {exc}", _ms(started))
    return Outcome(True, getattr(handler, "status_code", None), None, _ms(started))


def _handler(
    crm: CRM, consumer: str, webhooks: dict[int, Webhook]
) -> Callable[[CRM, Event], Any] | str:
    """The consumer's handler, or why there is none (the delivery then dies)."""
    if consumer.startswith(WEBHOOK_PREFIX):
        from crm_core.webhooks import WebhookSender

        hook = webhooks.get(int(consumer[len(WEBHOOK_PREFIX) :]))
        if hook is None:
            return "the webhook was deleted"
        if not hook.active:
            return f"the webhook is disabled: {hook.disabled_reason or 'by an admin'}"
        return WebhookSender(hook, timeout=crm.settings.webhook_timeout)
    registered: EventConsumer | None = crm.registry.event_consumers.get(consumer)
    if registered is None:
        return f"no consumer {consumer!r} is registered (plugin uninstalled?)"
    return registered.handle


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _record(crm: CRM, outcomes: Sequence[tuple[_Claimed, Outcome]]) -> dict[float, list[int]]:
    """Store the attempts and the deliveries' new states; return retries by delay."""
    now = utcnow()
    retries: dict[float, list[int]] = {}
    with crm.write_session() as session, session.begin():
        connection = session.connection()
        connection.execute(
            _ATTEMPT_INSERT,
            [
                {
                    "delivery_id": delivery.id,
                    "attempted_at": now,
                    "duration_ms": outcome.duration_ms,
                    "ok": outcome.ok,
                    "status_code": outcome.status_code,
                    "error": outcome.error,
                }
                for delivery, outcome in outcomes
            ],
        )
        finished = []
        for delivery, outcome in outcomes:
            row = {
                "b_id": delivery.id,
                "b_attempts": delivery.attempts,
                "last_status_code": outcome.status_code,
                "last_error": outcome.error,
                "delivered_at": None,
                "next_attempt_at": now,
                "lease_until": None,
            }
            if outcome.ok:
                row.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now)
            elif outcome.give_up or delivery.attempts >= _max_attempts(crm, delivery.consumer):
                row.update(status=DeliveryStatus.DEAD.value)
                log.warning(
                    "delivery %s of event %s to %s is dead after %s attempts: %s",
                    delivery.id,
                    delivery.event.id,
                    delivery.consumer,
                    delivery.attempts,
                    outcome.error,
                )
            else:
                delay = backoff(crm.settings.event_retry_seconds, delivery.attempts)
                row.update(
                    status=DeliveryStatus.PENDING.value,
                    next_attempt_at=now + dt.timedelta(seconds=delay),
                    lease_until=now + dt.timedelta(seconds=delay) + _lease(crm),
                )
                retries.setdefault(round(delay, 3), []).append(delivery.id)
            finished.append(row)
        connection.execute(_FINISH, finished)
        _update_webhooks(crm, session, outcomes, now)
    return retries


def backoff(base: float, attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: doubling, with jitter."""
    delay = min(base * 2 ** (attempts - 1), MAX_BACKOFF.total_seconds())
    return delay * random.uniform(0.8, 1.2)


def _max_attempts(crm: CRM, consumer: str) -> int:
    registered = crm.registry.event_consumers.get(consumer)
    if registered is not None and registered.max_attempts:
        return registered.max_attempts
    return crm.settings.event_max_attempts


def _update_webhooks(
    crm: CRM, session: Session, outcomes: Sequence[tuple[_Claimed, Outcome]], now: dt.datetime
) -> None:
    """Keep each webhook's failure streak; disable one that keeps failing (with a notice).

    Core UPDATEs that leave ``version`` alone: delivery statistics are not an edit, so
    they neither change the webhook's ETag nor conflict with an admin's edit.
    """
    by_hook: dict[int, list[Outcome]] = {}
    for delivery, outcome in outcomes:
        if delivery.consumer.startswith(WEBHOOK_PREFIX) and outcome.sent:
            by_hook.setdefault(int(delivery.consumer[len(WEBHOOK_PREFIX) :]), []).append(outcome)
    for ident, results in by_hook.items():
        successes = [i for i, outcome in enumerate(results) if outcome.ok]
        values: dict[str, Any] = {}
        if successes:
            values["failure_streak"] = len(results) - successes[-1] - 1
            values["last_success_at"] = now
        else:
            values["failure_streak"] = Webhook.failure_streak + len(results)
        if len(successes) < len(results):
            values["last_failure_at"] = now
        streak = session.scalar(
            update(Webhook)
            .where(Webhook.id == ident, Webhook.active.is_(True))
            .values(**values)
            .returning(Webhook.failure_streak)
        )
        if streak is None:
            continue  # deleted or disabled meanwhile
        reason = None
        if any(outcome.give_up and outcome.status_code == 410 for outcome in results):
            reason = "the receiver answered 410 Gone"
        elif streak >= crm.settings.webhook_disable_after:
            last = results[-1]
            reason = f"{streak} failed attempts in a row; the last: {last.error}"
        if reason is not None:
            hook = session.get(Webhook, ident)
            if hook is not None:
                disable_webhook(UnitOfWork(crm, session, source="worker"), hook, reason)


def disable_webhook(uow: UnitOfWork, hook: Webhook, reason: str) -> None:
    """Stop delivering to ``hook``: the notice is its ``disabled_reason``, an audit entry,
    a ``webhook.disabled`` event and a warning in the log."""
    hook.active = False
    hook.disabled_at = utcnow()
    hook.disabled_reason = reason
    uow.session.flush()
    uow.record(
        "webhook",
        "disabled",
        [(hook.id, {"active": (True, False), "disabled_reason": (None, reason)})],
        payloads=[{"id": hook.id, "url": hook.url, "reason": reason}],
    )
    log.warning("webhook %s (%s) disabled: %s", hook.id, hook.url, reason)


# -- recovery and replay ------------------------------------------------------------


def requeue_lost(crm: CRM, *, limit: int = 1000) -> int:
    """Queue again deliveries whose lease ran out (their worker or message was lost)."""
    now = utcnow()
    with crm.session_factory() as session:
        if session.scalar(_LOST.limit(1), {"now": now}) is None:
            return 0
    with crm.write_session() as session, session.begin():
        ids = list(session.scalars(_LOST.limit(limit), {"now": now}))
        if ids:
            session.execute(
                update(EventDelivery)
                .where(EventDelivery.id.in_(ids))
                .values(status=DeliveryStatus.PENDING.value, lease_until=now + _lease(crm))
            )
    if ids:
        log.info("queueing %s deliveries again whose worker was lost", len(ids))
        crm.queue.deliver(ids)
    return len(ids)


def replay(
    uow: UnitOfWork, delivery_ids: Iterable[int] | None = None, *, consumer: str | None = None
) -> list[int]:
    """Give dead deliveries a fresh set of attempts; queue them once ``uow`` commits.

    ``delivery_ids`` picks dead letters by id; without, every dead letter (of
    ``consumer`` if given) is replayed. Returns the ids replayed.
    """
    from crm_core.authz import require

    require(uow.actor, "webhook.admin")
    now = utcnow()
    statement = update(EventDelivery).where(EventDelivery.status == DeliveryStatus.DEAD.value)
    if delivery_ids is not None:
        statement = statement.where(EventDelivery.id.in_(list(delivery_ids)))
    if consumer is not None:
        statement = statement.where(EventDelivery.consumer == consumer)
    ids = list(
        uow.session.scalars(
            statement.values(
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                lease_until=now + _lease(uow.crm),
            ).returning(EventDelivery.id)
        )
    )
    if ids:
        uow.record("delivery", "replayed", [(ident, {}) for ident in ids])
        crm = uow.crm
        uow.after_commit(lambda: crm.queue.deliver(ids))
    return sorted(ids)


def prune(crm: CRM, *, batch: int = 5000) -> int:
    """Delete events dispatched more than ``event_retention_days`` ago whose deliveries all
    succeeded (with those deliveries and their attempts); return how many.

    Dead letters and deliveries still under way keep their event. Runs in short
    transactions of ``batch`` events, so writers are not held up.
    """
    cutoff = utcnow() - dt.timedelta(days=crm.settings.event_retention_days)
    unfinished = (
        select(EventDelivery.id)
        .where(
            EventDelivery.event_id == OutboxEvent.id,
            EventDelivery.status != DeliveryStatus.DELIVERED.value,
        )
        .exists()
    )
    old = (
        select(OutboxEvent.id)
        .where(
            OutboxEvent.status == OutboxStatus.DISPATCHED.value,
            OutboxEvent.available_at < cutoff,
            ~unfinished,
        )
        .limit(batch)
    )
    removed = 0
    while True:
        with crm.write_session() as session, session.begin():
            ids = list(session.scalars(old))
            if ids:
                # Their deliveries and attempts go with them (ON DELETE CASCADE).
                session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(ids)))
        removed += len(ids)
        if len(ids) < batch:
            return removed


def prune_job(crm: CRM) -> None:
    """The daily ``crm_core.prune_events`` job: :func:`prune`, logged."""
    removed = prune(crm)
    log.info(
        "pruned %s delivered events older than %s days", removed, crm.settings.event_retention_days
    )


def _lease(crm: CRM) -> dt.timedelta:
    return dt.timedelta(seconds=crm.settings.event_lease_seconds)


#: Statements built once (building one costs more than running it).
_PENDING_EVENTS = (
    select(OutboxEvent.id, OutboxEvent.type)
    .where(
        OutboxEvent.status == OutboxStatus.PENDING.value,
        OutboxEvent.available_at <= bindparam("now"),
    )
    .order_by(OutboxEvent.available_at)
)
_PENDING_EXISTS = _PENDING_EVENTS.with_only_columns(OutboxEvent.id).limit(1)
_DELIVERY_INSERT = insert(EventDelivery).returning(EventDelivery.id)
_ATTEMPT_INSERT = insert(DeliveryAttempt)
#: A delivery's outcome, written only if no other worker took it over meanwhile (after
#: its lease ran out, another claim raised ``attempts``).
_FINISH = (
    update(EventDelivery)
    .where(
        EventDelivery.id == bindparam("b_id"),
        EventDelivery.attempts == bindparam("b_attempts"),
        EventDelivery.status == DeliveryStatus.RUNNING.value,
    )
    .values(
        status=bindparam("status"),
        last_status_code=bindparam("last_status_code"),
        last_error=bindparam("last_error"),
        delivered_at=bindparam("delivered_at"),
        next_attempt_at=bindparam("next_attempt_at"),
        lease_until=bindparam("lease_until"),
    )
)
_LOST = select(EventDelivery.id).where(
    EventDelivery.status.in_([DeliveryStatus.PENDING.value, DeliveryStatus.RUNNING.value]),
    EventDelivery.next_attempt_at <= bindparam("now"),
    EventDelivery.lease_until < bindparam("now"),
)
