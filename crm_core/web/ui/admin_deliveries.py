"""A webhook's page (``webhook.admin``): its state, its actions and its delivery log.

The log lists the webhook's deliveries newest first, a page at a time (keyset on the
``(consumer, id)`` index, through :func:`crm_core.services.webhooks.list_deliveries`):
the event, the status, every attempt with the receiver's HTTP status or the error, and
when the next attempt is due. ``?status=dead`` shows the dead letters, each with a
*Replay* button (:func:`~crm_core.services.webhooks.replay_delivery`); one more button
replays all of them (:func:`~crm_core.services.webhooks.replay_dead`).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import select

from crm_core.authz import require
from crm_core.errors import NotFoundError, ValidationError
from crm_core.models import DeliveryAttempt, DeliveryStatus, Webhook
from crm_core.services import webhooks
from crm_core.services.webhooks import ADMIN_PERMISSION, DELIVERY_STATUSES, DeliveryNotDead
from crm_core.web.i18n import number
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import Difference
from crm_core.web.ui.paging import id_arg, split_page

#: Deliveries per page of the log.
PAGE_SIZE = 25
#: Attempts shown per delivery (the newest); the page says how many earlier ones there are.
ATTEMPTS_SHOWN = 10
#: The parts of a webhook a conflict compares, with their labels.
SEEN_LABELS = {"state": _l("State"), "url": _l("URL"), "event_types": _l("Event types")}
#: A delivery's status as people read it (the stored code stays English).
STATUS_TEXTS = {
    DeliveryStatus.PENDING.value: _l("pending"),
    DeliveryStatus.RUNNING.value: _l("running"),
    DeliveryStatus.DELIVERED.value: _l("delivered"),
    DeliveryStatus.DEAD.value: _l("dead"),
}
#: What the log says when no delivery has the status it shows.
NO_DELIVERIES = {
    DeliveryStatus.PENDING.value: _l("No pending deliveries."),
    DeliveryStatus.RUNNING.value: _l("No running deliveries."),
    DeliveryStatus.DELIVERED.value: _l("No delivered deliveries."),
    DeliveryStatus.DEAD.value: _l("No dead letters."),
}


@blueprint.get("/admin/webhooks/<int:webhook_id>", endpoint="admin_webhook")
@page
def webhook_page(webhook_id: int) -> ResponseReturnValue:
    """The webhook, its actions and its deliveries (``?status=dead``: the dead letters)."""
    return render_webhook(webhook_id)


@blueprint.post(
    "/admin/webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/replay",
    endpoint="admin_replay_delivery",
)
@page
def replay_delivery(webhook_id: int, delivery_id: int) -> ResponseReturnValue:
    """Give one dead letter of the webhook a fresh set of attempts."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            hook = webhooks.get(uow, webhook_id)
            delivery, event_type = webhooks.get_delivery(uow, delivery_id)
            if delivery.consumer != webhooks.consumer_name(hook.id):
                raise NotFoundError("delivery", delivery_id)
            webhooks.replay_delivery(uow, delivery.id)
    except DeliveryNotDead as exc:
        alert = _(
            "Delivery %(id)s is %(status)s: only dead letters can be replayed.",
            id=exc.delivery_id, status=STATUS_TEXTS.get(exc.status, exc.status),
        )
        return render_webhook(webhook_id, alert=alert, status=409)
    flash(_("Delivery %(id)s (%(event_type)s) will be tried again.",
            id=delivery_id, event_type=event_type))
    return redirect(_back(webhook_id))


@blueprint.post("/admin/webhooks/<int:webhook_id>/replay-dead", endpoint="admin_replay_dead")
@page
def replay_dead(webhook_id: int) -> ResponseReturnValue:
    """Replay every dead letter of the webhook."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    with crm.unit_of_work(actor=user, source="ui") as uow:
        hook = webhooks.get(uow, webhook_id)
        replayed = webhooks.replay_dead(uow, consumer=webhooks.consumer_name(hook.id))
    if replayed:
        flash(ngettext("%(count)s dead letter will be tried again.",
                       "%(count)s dead letters will be tried again.",
                       len(replayed), count=number(len(replayed))))
    else:
        flash(_("There were no dead letters to replay."))
    return redirect(_back(webhook_id))


def render_webhook(
    webhook_id: int,
    *,
    errors: dict[str, list[str]] | None = None,
    values: dict[str, Any] | None = None,
    conflict: bool = False,
    alert: str | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    """The webhook's page; forms that were refused come back with ``errors`` and ``values``.

    ``conflict``: an action was refused because the webhook changed after the user opened
    the page; the page says what changed (from the form's ``seen-*`` fields).
    """
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    wanted = request.args.get("status") or None
    if wanted is not None and wanted not in DELIVERY_STATUSES:
        abort(400)
    before = id_arg()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        hook = webhooks.get(uow, webhook_id)
        try:
            found = webhooks.list_deliveries(
                uow,
                status=wanted,
                consumer=webhooks.consumer_name(hook.id),
                before_id=before,
                limit=PAGE_SIZE + 1,
            )
        except ValidationError:
            abort(400)
        rows, next_url = split_page(found, PAGE_SIZE, lambda last: url_for(
            "crm_ui.admin_webhook", webhook_id=hook.id, status=wanted, before=last[0].id
        ))
        attempts = _attempts(uow.session, [delivery.id for delivery, _type in rows])
        html = render_template(
            "crm_core/ui/admin/webhook.html",
            hook=hook,
            seen=seen_state(hook),
            deliveries=rows,
            attempts=attempts,
            attempts_shown=ATTEMPTS_SHOWN,
            status_filter=wanted,
            statuses=DELIVERY_STATUSES,
            status_texts=STATUS_TEXTS,
            no_deliveries=NO_DELIVERIES,
            dead=DeliveryStatus.DEAD.value,
            next_url=next_url,
            first_page=before is not None,
            errors=errors or {},
            values=values or {},
            conflict=differences(hook, request.form) if conflict else None,
            alert=alert,
        )
    return html, status


def seen_state(hook: Webhook) -> dict[str, str]:
    """What the user sees of ``hook``, sent back with every action to explain a conflict."""
    if hook.active:
        state = _("active")
    else:
        state = _("disabled (%(reason)s)", reason=hook.disabled_reason or _("no reason"))
    return {
        "state": state,
        "url": hook.url,
        "event_types": ", ".join(hook.event_types),
    }


def differences(hook: Webhook, form: Any) -> list[Difference]:
    """How ``hook`` now differs from what the posted ``seen-*`` fields say the user saw.

    Each :class:`~crm_core.web.ui.conflicts.Difference` has what the user saw as ``yours``.
    """
    return [
        Difference(str(SEEN_LABELS[name]), stored, form.get(f"seen-{name}", ""))
        for name, stored in seen_state(hook).items()
        if stored != form.get(f"seen-{name}", "")
    ]


def _attempts(session: Any, delivery_ids: list[int]) -> dict[int, list[DeliveryAttempt]]:
    """The attempts of the page's deliveries, newest first: one query for the whole page."""
    found: dict[int, list[DeliveryAttempt]] = {}
    if not delivery_ids:
        return found
    statement = (
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(delivery_ids))
        .order_by(DeliveryAttempt.delivery_id, DeliveryAttempt.id.desc())
    )
    for attempt in session.scalars(statement):
        found.setdefault(attempt.delivery_id, []).append(attempt)
    return found


def _back(webhook_id: int) -> str:
    """The page a replay came from: the log, its status filter kept."""
    wanted = request.form.get("status") or None
    if wanted not in DELIVERY_STATUSES:
        wanted = None
    return url_for("crm_ui.admin_webhook", webhook_id=webhook_id, status=wanted)
