"""``crm webhooks`` and ``crm events``: subscriptions, the outbox, deliveries, dead letters.

They run as the system (like every administration command), with ``cli`` as the
audit source. A webhook's secret is printed by ``create`` and ``rotate-secret`` only,
alone on standard output so a script can capture it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
from flask.cli import AppGroup

from crm_core.cli.common import get_crm, print_table, require_current_database
from crm_core.cli.user import format_messages
from crm_core.errors import ValidationError
from crm_core.models import EventDelivery, Webhook
from crm_core.services import webhooks as service

webhooks = AppGroup("webhooks", help="Manage webhooks: signed HTTP deliveries of events.")
events = AppGroup("events", help="Inspect outbox events and their deliveries; replay dead ones.")


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return "-"
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _run(work: Any) -> Any:
    """Run ``work(uow)`` in a unit of work of the system; refusals become ``Error: ...``."""
    crm = get_crm()
    require_current_database(crm)
    try:
        with crm.unit_of_work(source="cli") as uow:
            return work(uow)
    except ValidationError as exc:
        raise click.ClickException(format_messages(exc.messages)) from exc


def _describe(hook: Webhook) -> str:
    state = "active" if hook.active else f"disabled ({hook.disabled_reason or 'no reason'})"
    return f"webhook {hook.id} ({hook.url}), {state}"


def _delivery_rows(found: list[tuple[EventDelivery, str]]) -> list[list[str]]:
    return [
        [
            str(delivery.id),
            _when(delivery.created_at),
            event_type,
            delivery.consumer,
            delivery.status,
            str(delivery.attempts),
            str(delivery.last_status_code or "-"),
            _short(delivery.last_error, 40),
        ]
        for delivery, event_type in found
    ]


_DELIVERY_HEADERS = ["id", "created", "event", "consumer", "status", "attempts", "code", "error"]


# -- crm webhooks --------------------------------------------------------------------------


@webhooks.command("create")
@click.argument("url")
@click.option(
    "--event",
    "event_types",
    multiple=True,
    required=True,
    metavar="TYPE",
    help="An event type to deliver: contact.created, contact.* or * (repeat for several).",
)
@click.option("--description", default="", help="What the webhook is for.")
def create(url: str, event_types: tuple[str, ...], description: str) -> None:
    """Subscribe URL to events and print its signing secret once.

    The secret alone goes to standard output (``SECRET=$(crm webhooks create ...)``);
    what was created goes to standard error.
    """
    data = {"url": url, "event_types": list(event_types), "description": description}
    hook, secret = _run(lambda uow: service.create(uow, data))
    click.echo(secret)
    click.echo(f"created {_describe(hook)} for {', '.join(hook.event_types)}", err=True)
    click.echo(
        "Give the secret to the receiver now: it verifies signatures with it, and it "
        "will not be shown again.",
        err=True,
    )


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per webhook.")
def list_command(as_json: bool) -> None:
    """List every webhook (never its secret)."""
    found: list[Webhook] = _run(service.list_webhooks)
    if as_json:
        for hook in found:
            click.echo(json.dumps(_webhook_json(hook)))
        return
    if not found:
        click.echo("no webhooks")
        return
    print_table(
        ["id", "state", "url", "events", "failures", "last success", "last failure"],
        [
            [
                str(hook.id),
                "active" if hook.active else "disabled",
                hook.url,
                ",".join(hook.event_types),
                str(hook.failure_streak),
                _when(hook.last_success_at),
                _when(hook.last_failure_at),
            ]
            for hook in found
        ],
    )


def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "description": hook.description,
        "event_types": hook.event_types,
        "active": hook.active,
        "failure_streak": hook.failure_streak,
        "last_success_at": hook.last_success_at.isoformat() if hook.last_success_at else None,
        "last_failure_at": hook.last_failure_at.isoformat() if hook.last_failure_at else None,
        "disabled_at": hook.disabled_at.isoformat() if hook.disabled_at else None,
        "disabled_reason": hook.disabled_reason,
        "version": hook.version,
    }


@webhooks.command("show")
@click.argument("webhook_id", type=int)
@click.option(
    "--deliveries",
    "shown",
    type=click.IntRange(0, 500),
    default=10,
    show_default=True,
    help="How many of its latest deliveries to list.",
)
def show(webhook_id: int, shown: int) -> None:
    """Show webhook WEBHOOK_ID and its latest deliveries."""

    def work(uow: Any) -> tuple[Webhook, list[tuple[EventDelivery, str]]]:
        hook = service.get(uow, webhook_id)
        found = (
            service.list_deliveries(uow, consumer=service.consumer_name(hook.id), limit=shown)
            if shown
            else []
        )
        return hook, found

    hook, found = _run(work)
    for label, value in (
        ("id", str(hook.id)),
        ("url", hook.url),
        ("description", hook.description or "-"),
        ("events", ", ".join(hook.event_types)),
        ("state", "active" if hook.active else "disabled"),
        (
            "disabled",
            f"{_when(hook.disabled_at)}: {hook.disabled_reason}" if hook.disabled_at else "-",
        ),
        ("failure streak", str(hook.failure_streak)),
        ("last success", _when(hook.last_success_at)),
        ("last failure", _when(hook.last_failure_at)),
        ("created", _when(hook.created_at)),
        ("version", str(hook.version)),
    ):
        click.echo(f"{label + ':':<16}{value}")
    if not shown:
        return
    click.echo("")
    if not found:
        click.echo("no deliveries yet")
        return
    print_table(_DELIVERY_HEADERS, _delivery_rows(found))


@webhooks.command("update")
@click.argument("webhook_id", type=int)
@click.option("--url", default=None, help="The new URL.")
@click.option(
    "--event",
    "event_types",
    multiple=True,
    metavar="TYPE",
    help="Replace the event types with these (repeat for several).",
)
@click.option("--description", default=None, help="The new description.")
def update(
    webhook_id: int, url: str | None, event_types: tuple[str, ...], description: str | None
) -> None:
    """Change a webhook's URL, event types or description."""
    data: dict[str, Any] = {}
    if url is not None:
        data["url"] = url
    if event_types:
        data["event_types"] = list(event_types)
    if description is not None:
        data["description"] = description
    if not data:
        raise click.UsageError("nothing to change: give --url, --event or --description")
    hook = _run(lambda uow: service.update(uow, webhook_id, data))
    click.echo(f"updated {_describe(hook)}: {', '.join(hook.event_types)}")


@webhooks.command("enable")
@click.argument("webhook_id", type=int)
def enable(webhook_id: int) -> None:
    """Deliver to WEBHOOK_ID again (its failure streak starts from 0)."""
    hook = _run(lambda uow: service.enable(uow, webhook_id))
    click.echo(f"enabled {_describe(hook)}")
    click.echo(
        f"deliveries that died meanwhile: crm events deliveries --status dead "
        f"--consumer {service.consumer_name(hook.id)}",
        err=True,
    )


@webhooks.command("disable")
@click.argument("webhook_id", type=int)
@click.option("--reason", default=None, help="Why (kept as the webhook's disabled reason).")
def disable(webhook_id: int, reason: str | None) -> None:
    """Stop delivering to WEBHOOK_ID."""
    hook = _run(lambda uow: service.disable(uow, webhook_id, reason))
    click.echo(f"disabled webhook {hook.id} ({hook.url}): {hook.disabled_reason}")


@webhooks.command("rotate-secret")
@click.argument("webhook_id", type=int)
def rotate_secret(webhook_id: int) -> None:
    """Give WEBHOOK_ID a new signing secret and print it once (alone on standard output)."""
    secret = _run(lambda uow: service.rotate_secret(uow, webhook_id))
    click.echo(secret)
    click.echo(
        f"webhook {webhook_id} signs with the new secret from its next delivery on; "
        "give it to the receiver now: it will not be shown again.",
        err=True,
    )


@webhooks.command("delete")
@click.argument("webhook_id", type=int)
def delete(webhook_id: int) -> None:
    """Delete WEBHOOK_ID; deliveries still due to it become dead letters."""

    def work(uow: Any) -> str:
        url = service.get(uow, webhook_id).url
        service.delete(uow, webhook_id)
        return url

    url = _run(work)
    click.echo(f"deleted webhook {webhook_id} ({url})")


# -- crm events ------------------------------------------------------------------------------


@events.command("list")
@click.option("--type", "event_type", default=None, help="Only events of this type.")
@click.option("--entity", default=None, help="Only events about this entity (contact...).")
@click.option("--entity-id", default=None, help="Only events about this record (with --entity).")
@click.option("--status", type=click.Choice(service.EVENT_STATUSES), default=None)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
def list_events(
    event_type: str | None,
    entity: str | None,
    entity_id: str | None,
    status: str | None,
    limit: int,
) -> None:
    """The latest outbox events, newest first."""
    found = _run(
        lambda uow: service.list_events(
            uow, type=event_type, entity=entity, entity_id=entity_id, status=status, limit=limit
        )
    )
    if not found:
        click.echo("no events")
        return
    print_table(
        ["id", "occurred", "type", "record", "status"],
        [
            [
                event.id,
                _when(event.occurred_at),
                event.type,
                f"{event.entity} {event.entity_id}",
                event.status,
            ]
            for event in found
        ],
    )


@events.command("deliveries")
@click.option(
    "--status",
    type=click.Choice(service.DELIVERY_STATUSES),
    default=None,
    help="Only deliveries in this state (dead: the dead letters).",
)
@click.option("--consumer", default=None, help="Only this consumer's: webhook:ID or a name.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
def list_deliveries(status: str | None, consumer: str | None, limit: int) -> None:
    """The latest deliveries of events to consumers, newest first."""
    found = _run(
        lambda uow: service.list_deliveries(uow, status=status, consumer=consumer, limit=limit)
    )
    if not found:
        click.echo("no deliveries")
        return
    print_table(_DELIVERY_HEADERS, _delivery_rows(found))


@events.command("show-delivery")
@click.argument("delivery_id", type=int)
def show_delivery(delivery_id: int) -> None:
    """Show delivery DELIVERY_ID and its attempts, newest first."""

    def work(uow: Any) -> tuple[EventDelivery, str, list[Any]]:
        delivery, event_type = service.get_delivery(uow, delivery_id)
        return delivery, event_type, service.delivery_attempts(uow, delivery.id)

    delivery, event_type, attempts = _run(work)
    for label, value in (
        ("id", str(delivery.id)),
        ("event", f"{delivery.event_id} ({event_type})"),
        ("consumer", delivery.consumer),
        ("status", delivery.status),
        ("attempts", str(delivery.attempts)),
        ("next attempt", _when(delivery.next_attempt_at) if delivery.status == "pending" else "-"),
        ("delivered", _when(delivery.delivered_at)),
        ("last error", delivery.last_error or "-"),
    ):
        click.echo(f"{label + ':':<14}{value}")
    click.echo("")
    if not attempts:
        click.echo("no attempts yet")
        return
    print_table(
        ["attempted", "ms", "ok", "code", "error"],
        [
            [
                _when(attempt.attempted_at),
                f"{attempt.duration_ms:.0f}",
                "yes" if attempt.ok else "no",
                str(attempt.status_code or "-"),
                _short(attempt.error),
            ]
            for attempt in attempts
        ],
    )


@events.command("replay")
@click.argument("delivery_ids", type=int, nargs=-1)
@click.option("--all-dead", is_flag=True, help="Replay every dead letter.")
@click.option("--consumer", default=None, help="With --all-dead: only this consumer's.")
def replay(delivery_ids: tuple[int, ...], all_dead: bool, consumer: str | None) -> None:
    """Give dead deliveries a fresh set of attempts: DELIVERY_ID... or --all-dead.

    Given ids must all be dead letters, or nothing is replayed.
    """
    if bool(delivery_ids) == all_dead:
        raise click.UsageError("give delivery ids or --all-dead (not both)")
    if consumer is not None and not all_dead:
        raise click.UsageError("--consumer goes with --all-dead")

    def work(uow: Any) -> list[int]:
        if all_dead:
            return service.replay_dead(uow, consumer=consumer)
        return [service.replay_delivery(uow, ident).id for ident in dict.fromkeys(delivery_ids)]

    replayed = _run(work)
    if not replayed:
        click.echo("no dead letters to replay")
        return
    noun = "delivery" if len(replayed) == 1 else "deliveries"
    click.echo(f"replayed {len(replayed)} {noun}: {', '.join(str(i) for i in replayed)}")
