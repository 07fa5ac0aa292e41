"""Webhooks (``webhook.admin``): the list, a new subscription, and what is done to one.

Everything goes through :mod:`crm_core.services.webhooks`, as the API does. The signing
secret of a new webhook, and the new secret after a rotation, is shown once, on the page
that answers the form (``Cache-Control: no-store``). Disabling (with a reason), enabling,
rotating and deleting carry the version the user saw: when the webhook changed in the
meantime (the worker disabled it, another admin edited it), nothing is done and the
webhook's page (:mod:`~crm_core.web.ui.admin_deliveries`) says what changed (409).
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from crm_core.authz import require
from crm_core.errors import ConflictError, ValidationError
from crm_core.services import webhooks
from crm_core.services.webhooks import ADMIN_PERMISSION
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.admin_deliveries import render_webhook, seen_state
from crm_core.web.ui.conflicts import posted_version
from crm_core.web.ui.forms import field_errors
from crm_core.web.ui.paging import id_arg, split_page

#: Webhooks per page of the list.
PAGE_SIZE = 50
#: The event types offered as checkboxes, by group; others (plugins') are typed in.
EVENT_TYPE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Everything", ("*",)),
    ("Customers", ("customer.*", "customer.created", "customer.updated", "customer.archived",
                   "customer.merged")),
    ("Contacts", ("contact.*", "contact.created", "contact.updated", "contact.archived",
                  "contact.merged")),
    ("Interactions", ("interaction.*", "interaction.created", "interaction.updated",
                      "interaction.archived")),
    ("Administration", ("user.*", "api_token.*", "webhook.*", "delivery.replayed")),
)


@blueprint.get("/admin/webhooks", endpoint="admin_webhooks")
@page
def webhooks_list() -> ResponseReturnValue:
    """Every webhook by id: URL, event types, active or disabled and why, failures."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    after_id = id_arg("after")
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        found = webhooks.list_webhooks(uow, after_id=after_id, limit=PAGE_SIZE + 1)
        rows, next_url = split_page(
            found, PAGE_SIZE, lambda last: url_for("crm_ui.admin_webhooks", after=last.id)
        )
        return render_template(
            "crm_core/ui/admin/webhooks.html",
            hooks=rows,
            next_url=next_url,
            first_page=after_id is not None,
        )


@blueprint.route("/admin/webhooks/new", methods=["GET", "POST"], endpoint="admin_new_webhook")
@page
def new_webhook() -> ResponseReturnValue:
    """The subscription form: URL, description, event types; shows the new secret once."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    values: dict[str, Any] = {"event_types": []}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        chosen = request.form.getlist("event_types")
        other = request.form.get("other_event_types", "")
        data = {
            "url": request.form.get("url", ""),
            "description": request.form.get("description", ""),
            "event_types": chosen + [part for part in re.split(r"[\s,]+", other) if part],
        }
        values = {**data, "event_types": chosen, "other_event_types": other}
        try:
            with crm.unit_of_work(actor=user, source="ui") as uow:
                hook, secret = webhooks.create(uow, data)
                shown = {"id": hook.id, "url": hook.url}
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        else:
            return _secret_page(shown, secret, created=True)
    return render_template(
        "crm_core/ui/admin/webhook_form.html",
        values=values,
        errors=errors,
        groups=[(title, [(name, _type_text(name)) for name in names])
                for title, names in EVENT_TYPE_GROUPS],
    ), 422 if errors else 200


@blueprint.post("/admin/webhooks/<int:webhook_id>/rotate-secret", endpoint="admin_rotate_secret")
@page
def rotate_secret(webhook_id: int) -> ResponseReturnValue:
    """A new signing secret, shown once; the old one stops working at once."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    version = posted_version(request.form)
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            hook = webhooks.get(uow, webhook_id)
            secret = webhooks.rotate_secret(uow, hook.id, expected_version=version)
            shown = {"id": hook.id, "url": hook.url}
    except ConflictError:
        return render_webhook(webhook_id, conflict=True, status=409)
    return _secret_page(shown, secret, created=False)


@blueprint.post("/admin/webhooks/<int:webhook_id>/disable", endpoint="admin_disable_webhook")
@page
def disable_webhook(webhook_id: int) -> ResponseReturnValue:
    """Stop delivering to the webhook, saying why (deliveries due meanwhile die)."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    version = posted_version(request.form)
    reason = request.form.get("reason", "")
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            webhooks.disable(uow, webhook_id, reason, expected_version=version)
    except ValidationError as exc:
        errors = field_errors(exc.messages)
        return render_webhook(webhook_id, errors=errors, values={"reason": reason}, status=422)
    except ConflictError:
        return render_webhook(webhook_id, conflict=True, status=409)
    flash("The webhook is disabled: nothing is delivered to it until it is enabled.")
    return redirect(url_for("crm_ui.admin_webhook", webhook_id=webhook_id))


@blueprint.post("/admin/webhooks/<int:webhook_id>/enable", endpoint="admin_enable_webhook")
@page
def enable_webhook(webhook_id: int) -> ResponseReturnValue:
    """Deliver to the webhook again, with a fresh failure streak."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    version = posted_version(request.form)
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            webhooks.enable(uow, webhook_id, expected_version=version)
    except ConflictError:
        return render_webhook(webhook_id, conflict=True, status=409)
    flash("The webhook is enabled. Dead letters of the meantime stay dead: replay them below.")
    return redirect(url_for("crm_ui.admin_webhook", webhook_id=webhook_id))


@blueprint.route(
    "/admin/webhooks/<int:webhook_id>/delete", methods=["GET", "POST"],
    endpoint="admin_delete_webhook",
)
@page
def delete_webhook(webhook_id: int) -> ResponseReturnValue:
    """Ask, then delete the webhook; deliveries still due to it die."""
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    if request.method == "GET":
        with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
            hook = webhooks.get(uow, webhook_id)
            return render_template(
                "crm_core/ui/admin/webhook_delete.html", hook=hook, seen=seen_state(hook)
            )
    version = posted_version(request.form)
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            url = webhooks.get(uow, webhook_id).url
            webhooks.delete(uow, webhook_id, expected_version=version)
    except ConflictError:
        return render_webhook(webhook_id, conflict=True, status=409)
    flash(f"The webhook for {url} was deleted.")
    return redirect(url_for("crm_ui.admin_webhooks"))


def _secret_page(hook: dict[str, Any], secret: str, *, created: bool) -> ResponseReturnValue:
    """The page that shows a signing secret, once: never cached, never shown again."""
    html = render_template(
        "crm_core/ui/admin/webhook_secret.html", hook=hook, secret=secret, created=created
    )
    return html, 200, {"Cache-Control": "no-store"}


def _type_text(name: str) -> str:
    if name == "*":
        return "* (every event)"
    entity, action = name.split(".", 1)
    return f"{name} (every {entity.replace('_', ' ')} event)" if action == "*" else name
