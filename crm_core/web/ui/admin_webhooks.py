"""Webhooks (``webhook.admin``): the list, a new subscription, and what is done to one.

Everything goes through :mod:`crm_core.services.webhooks`, as the API does. The signing
secret of a new webhook, and the new secret after a rotation, is shown once, on the page
that answers the form (``Cache-Control: no-store``). Editing (URL, description, event
types: the new-webhook form, filled in), disabling (with a reason), enabling, rotating and
deleting carry the version the user saw: when the webhook changed in the meantime (the
worker disabled it, another admin edited it), nothing is done and the page says what
changed (409): the edit form beside what is stored now, the others on the webhook's page
(:mod:`~crm_core.web.ui.admin_deliveries`).
"""

from __future__ import annotations

import re
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm_core.authz import require
from crm_core.errors import ConflictError, ValidationError
from crm_core.models import Webhook
from crm_core.services import webhooks
from crm_core.services.webhooks import ADMIN_PERMISSION
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.admin_deliveries import render_webhook, seen_state
from crm_core.web.ui.conflicts import Difference, differences, posted_version
from crm_core.web.ui.forms import field_errors
from crm_core.web.ui.paging import id_arg, split_page

#: Webhooks per page of the list.
PAGE_SIZE = 50
#: The event types offered as checkboxes, by group; others (plugins') are typed in.
EVENT_TYPE_GROUPS: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (_l("Everything"), ("*",)),
    (_l("Customers"), ("customer.*", "customer.created", "customer.updated",
                       "customer.archived", "customer.merged")),
    (_l("Contacts"), ("contact.*", "contact.created", "contact.updated", "contact.archived",
                      "contact.merged")),
    (_l("Interactions"), ("interaction.*", "interaction.created", "interaction.updated",
                          "interaction.archived")),
    (_l("Administration"), ("user.*", "api_token.*", "webhook.*", "delivery.replayed")),
)
#: Every event type offered as a checkbox; a webhook's other ones are typed in.
OFFERED_EVENT_TYPES = frozenset(name for _title, names in EVENT_TYPE_GROUPS for name in names)
#: The fields of the webhook form, as the service names them.
FORM_FIELDS = ("url", "description", "event_types")


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
        data, values = _posted()
        try:
            with crm.unit_of_work(actor=user, source="ui") as uow:
                hook, secret = webhooks.create(uow, data)
                shown = {"id": hook.id, "url": hook.url}
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        else:
            return _secret_page(shown, secret, created=True)
    return _form(None, values, errors)


@blueprint.route(
    "/admin/webhooks/<int:webhook_id>/edit", methods=["GET", "POST"],
    endpoint="admin_edit_webhook",
)
@page
def edit_webhook(webhook_id: int) -> ResponseReturnValue:
    """The subscription form filled in: change the URL, description or event types.

    The secret is not on it (rotating it has its own button); the webhook stays enabled
    or disabled as it is.
    """
    crm, user = current_crm(), actor()
    require(user, ADMIN_PERMISSION)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        hook = webhooks.get(uow, webhook_id)
        shown = {"id": hook.id, "url": hook.url, "version": hook.version}
        stored = _stored_values(hook)
    if request.method == "GET":
        return _form(shown, stored, {})
    data, values = _posted(kept_order=stored["all_event_types"])
    version = posted_version(request.form)
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            saved = webhooks.update(uow, webhook_id, data, expected_version=version)
            url = saved.url
    except ValidationError as exc:
        return _form(shown, {**values, "version": version}, field_errors(exc.messages))
    except ConflictError:
        conflict = _differences(stored, data)
        # Saving again keeps the user's version: it then overwrites what is stored now.
        values["version"] = shown["version"]
        return _form(shown, values, {}, conflict=conflict)
    flash(_("The webhook for %(url)s was saved.", url=url))
    return redirect(url_for("crm_ui.admin_webhook", webhook_id=webhook_id))


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
    flash(_("The webhook is disabled: nothing is delivered to it until it is enabled."))
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
    flash(_("The webhook is enabled. Dead letters of the meantime stay dead: replay them below."))
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
    flash(_("The webhook for %(url)s was deleted.", url=url))
    return redirect(url_for("crm_ui.admin_webhooks"))


def _secret_page(hook: dict[str, Any], secret: str, *, created: bool) -> ResponseReturnValue:
    """The page that shows a signing secret, once: never cached, never shown again."""
    html = render_template(
        "crm_core/ui/admin/webhook_secret.html", hook=hook, secret=secret, created=created
    )
    return html, 200, {"Cache-Control": "no-store"}


def _posted(kept_order: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The posted form: the data the service takes, and the values the form shows again.

    Event types are the ticked boxes, then the typed-in ones; with ``kept_order`` (a
    webhook's stored types) those still wanted keep their place, new ones follow, so that
    saving the form unchanged changes nothing.
    """
    chosen = request.form.getlist("event_types")
    other = request.form.get("other_event_types", "")
    wanted = chosen + [part for part in re.split(r"[\s,]+", other) if part]
    if kept_order is not None:
        wanted = [name for name in kept_order if name in wanted] + [
            name for name in wanted if name not in kept_order
        ]
    data = {
        "url": request.form.get("url", ""),
        "description": request.form.get("description", ""),
        "event_types": wanted,
    }
    return data, {**data, "event_types": chosen, "other_event_types": other}


def _stored_values(hook: Webhook) -> dict[str, Any]:
    """What the form shows for a stored webhook: offered types ticked, the others typed in."""
    return {
        "url": hook.url,
        "description": hook.description or "",
        "event_types": [name for name in hook.event_types if name in OFFERED_EVENT_TYPES],
        "other_event_types": ", ".join(
            name for name in hook.event_types if name not in OFFERED_EVENT_TYPES
        ),
        "all_event_types": list(hook.event_types),
        "version": hook.version,
    }


def _differences(stored: dict[str, Any], data: dict[str, Any]) -> list[Difference]:
    """Where what is stored now differs from what the user sent."""
    labels = {"url": _("URL"), "description": _("Description"), "event_types": _("Event types")}
    return differences(
        {**stored, "event_types": ", ".join(stored["all_event_types"])},
        {**data, "event_types": ", ".join(data["event_types"])},
        FORM_FIELDS,
        labels,
    )


def _form(
    hook: dict[str, Any] | None,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    *,
    conflict: list[Difference] | None = None,
) -> ResponseReturnValue:
    """The webhook form: empty for a new webhook, filled in for ``hook`` (id, url, version)."""
    status = 409 if conflict is not None else 422 if errors else 200
    return render_template(
        "crm_core/ui/admin/webhook_form.html",
        hook=hook,
        values=values,
        errors=errors,
        conflict=conflict,
        groups=[(title, [(name, _type_text(name)) for name in names])
                for title, names in EVENT_TYPE_GROUPS],
    ), status


def _type_text(name: str) -> str:
    if name == "*":
        return _("* (every event)")
    entity, action = name.split(".", 1)
    if action != "*":
        return name
    return _("%(pattern)s (every %(entity)s event)", pattern=name, entity=entity.replace("_", " "))
