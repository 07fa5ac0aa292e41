"""Webhooks, outbox events and their deliveries under ``/api/v1`` (``webhook.admin``).

``/webhooks``: subscriptions (the secret is in the answers of create and
rotate-secret only); ``/events``: what the outbox holds, newest first;
``/deliveries``: each event's delivery to each consumer, with its attempts, and the
replay of dead letters.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from apispec import APISpec
from flask import Blueprint, Response, request, url_for
from marshmallow import Schema, fields, validate

from crm_core.authz import require
from crm_core.ids import MAX_ID, as_record_id
from crm_core.models import EventDelivery, OutboxEvent, Webhook
from crm_core.schemas import load_or_refuse
from crm_core.schemas.fieldtypes import Text
from crm_core.schemas.webhook import MAX_DESCRIPTION_LENGTH, WebhookPatchSchema, WebhookSchema
from crm_core.services import webhooks
from crm_core.services.webhooks import (
    ADMIN_PERMISSION,
    DELIVERY_STATUSES,
    EVENT_STATUSES,
    DeliveryNotDead,
    webhook_id_of,
)
from crm_core.web.api.openapi import (
    limit_parameter,
    page_of,
    problem_responses,
    schema_ref,
)
from crm_core.web.api.pagination import parse_limit
from crm_core.web.api.problems import ApiProblem
from crm_core.web.api.resource import (
    _check_query,
    _int_arg,
    api_context,
    check_precondition,
    if_match_version,
    json_body,
    json_response,
    next_page_url,
)
from crm_core.web.api.resource import etag as etag_of

#: The attempts ``GET /deliveries/{id}`` shows, newest first.
ATTEMPTS_SHOWN = 100
MAX_CONSUMER_LENGTH = 120


# -- what the API sends -------------------------------------------------------------------


def _ident(obj: Any) -> Any:
    """The ``id`` of a row or of a dict of its values (what the schemas below dump)."""
    return obj["id"] if isinstance(obj, dict) else obj.id


def _webhook_links(hook: Any) -> dict[str, str]:
    ident = _ident(hook)
    return {
        "self": url_for("crm_api.webhooks_get", webhook_id=ident),
        "deliveries": url_for("crm_api.webhooks_deliveries", webhook_id=ident),
    }


_LINKS = {
    "type": "object",
    "required": ["self"],
    "additionalProperties": {"type": "string", "format": "uri-reference"},
}


class WebhookOut(Schema):
    """A webhook: where events of which types go, and how delivering to it goes (no secret)."""

    id = fields.Integer(required=True)
    url = fields.String(required=True)
    description = fields.String(required=True)
    event_types = fields.List(fields.String(), required=True)
    active = fields.Boolean(
        required=True, metadata={"description": "Whether events are delivered to it."}
    )
    failure_streak = fields.Integer(
        required=True, metadata={"description": "Failed attempts since the last success."}
    )
    last_success_at = fields.AwareDateTime(required=True, allow_none=True)
    last_failure_at = fields.AwareDateTime(required=True, allow_none=True)
    disabled_at = fields.AwareDateTime(required=True, allow_none=True)
    disabled_reason = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Why it is disabled: an admin's reason, or the failures."},
    )
    created_by_id = fields.Integer(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)
    version = fields.Integer(required=True)
    links = fields.Function(
        _webhook_links,
        required=True,
        metadata={**_LINKS, "description": "`self` and `deliveries` (this webhook's)."},
    )


class WebhookWithSecretOut(WebhookOut):
    """A webhook with its signing secret: the answer of create and rotate-secret only."""

    secret = fields.String(
        required=True,
        metadata={
            "description": "Signs every delivery (`X-CRM-Signature`). Shown only now: "
            "store it with the receiver."
        },
    )


class AttemptOut(Schema):
    """One attempt of a delivery: when, how long, what the consumer answered."""

    id = fields.Integer(required=True)
    attempted_at = fields.AwareDateTime(required=True)
    duration_ms = fields.Float(required=True)
    ok = fields.Boolean(required=True)
    status_code = fields.Integer(
        required=True, allow_none=True, metadata={"description": "The receiver's HTTP status."}
    )
    error = fields.String(required=True, allow_none=True)


def _delivery_links(row: dict[str, Any]) -> dict[str, str]:
    links = {
        "self": url_for("crm_api.deliveries_get", delivery_id=row["id"]),
        "event": url_for("crm_api.events_get", event_id=row["event_id"]),
    }
    hook_id = webhook_id_of(row["consumer"])
    if hook_id is not None:
        links["webhook"] = url_for("crm_api.webhooks_get", webhook_id=hook_id)
    return links


class DeliveryOut(Schema):
    """The delivery of one event to one consumer: a webhook or a plugin's consumer."""

    id = fields.Integer(required=True)
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    consumer = fields.String(
        required=True,
        metadata={"description": "`webhook:<id>`, or the name of a plugin's consumer."},
    )
    webhook_id = fields.Function(
        lambda row: webhook_id_of(row["consumer"]),
        required=True,
        metadata={"type": ["integer", "null"], "description": "The webhook, if it is one."},
    )
    status = fields.String(
        required=True,
        metadata={
            "enum": list(DELIVERY_STATUSES),
            "description": "`pending` (waiting for its next attempt), `running`, "
            "`delivered`, or `dead` (given up: a dead letter, which can be replayed).",
        },
    )
    attempts = fields.Integer(required=True, metadata={"description": "Since the last replay."})
    next_attempt_at = fields.AwareDateTime(required=True)
    last_status_code = fields.Integer(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    delivered_at = fields.AwareDateTime(required=True, allow_none=True)
    links = fields.Function(
        _delivery_links,
        required=True,
        metadata={**_LINKS, "description": "`self`, `event`, and `webhook` for a webhook's."},
    )


class DeliveryDetailOut(DeliveryOut):
    """A delivery with its latest attempts, newest first."""

    attempt_log = fields.List(
        fields.Nested(AttemptOut),
        required=True,
        metadata={"description": f"The latest {ATTEMPTS_SHOWN} attempts, newest first."},
    )


class EventOut(Schema):
    """A domain event of the outbox (``contact.created``...), as consumers receive it."""

    id = fields.String(required=True)
    type = fields.String(required=True)
    entity = fields.String(required=True)
    entity_id = fields.String(required=True)
    actor_id = fields.Integer(required=True, allow_none=True)
    occurred_at = fields.AwareDateTime(required=True)
    status = fields.String(
        required=True,
        metadata={
            "enum": list(EVENT_STATUSES),
            "description": "`pending` until relayed to its consumers' deliveries, then "
            "`dispatched`.",
        },
    )
    payload = fields.Dict(required=True)
    links = fields.Function(
        lambda event: {"self": url_for("crm_api.events_get", event_id=_ident(event))},
        required=True,
        metadata=_LINKS,
    )


class EventDetailOut(EventOut):
    """An event with its deliveries, one per consumer it matched."""

    deliveries = fields.List(fields.Nested(DeliveryOut), required=True)


class ReplayedOut(Schema):
    """The dead letters that were replayed."""

    replayed = fields.List(fields.Integer(), required=True)


class DisableSchema(Schema):
    """Why the webhook is disabled (optional)."""

    reason = Text(max_length=MAX_DESCRIPTION_LENGTH, allow_none=True)


class ReplaySchema(Schema):
    """Which dead letters to replay: every one, or a consumer's."""

    consumer = fields.String(
        validate=validate.Length(min=1, max=MAX_CONSUMER_LENGTH),
        metadata={"description": "Only this consumer's (`webhook:3`, a plugin consumer)."},
    )


def _delivery_row(delivery: EventDelivery, event_type: str) -> dict[str, Any]:
    """What :class:`DeliveryOut` dumps: the delivery's columns and its event's type."""
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": event_type,
        "consumer": delivery.consumer,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


# -- routes -------------------------------------------------------------------------------


def register(blueprint: Blueprint) -> None:
    """Add the webhook, event and delivery routes to the API blueprint."""
    hook = "/webhooks/<webhook_id>"
    rules = [
        ("/webhooks", "webhooks_list", list_webhooks, "GET"),
        ("/webhooks", "webhooks_create", create_webhook, "POST"),
        (hook, "webhooks_get", get_webhook, "GET"),
        (hook, "webhooks_update", update_webhook, "PATCH"),
        (hook, "webhooks_delete", delete_webhook, "DELETE"),
        (f"{hook}/enable", "webhooks_enable", enable_webhook, "POST"),
        (f"{hook}/disable", "webhooks_disable", disable_webhook, "POST"),
        (f"{hook}/rotate-secret", "webhooks_rotate_secret", rotate_secret, "POST"),
        (f"{hook}/deliveries", "webhooks_deliveries", webhook_deliveries, "GET"),
        ("/events", "events_list", list_events, "GET"),
        ("/events/<event_id>", "events_get", get_event, "GET"),
        ("/deliveries", "deliveries_list", list_deliveries, "GET"),
        ("/deliveries/replay", "deliveries_replay_dead", replay_dead, "POST"),
        ("/deliveries/<delivery_id>", "deliveries_get", get_delivery, "GET"),
        ("/deliveries/<delivery_id>/replay", "deliveries_replay", replay_delivery, "POST"),
    ]
    for rule, endpoint, view, method in rules:
        blueprint.add_url_rule(rule, endpoint, view, methods=[method])


# -- webhooks


def list_webhooks() -> Response:
    """``GET /webhooks``: every webhook by id, keyset-paginated by ``after_id``."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    _check_query()
    limit = parse_limit(request.args.get("limit"))
    after_id = _int_arg("after_id")
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        found = webhooks.list_webhooks(uow, after_id=after_id, limit=limit + 1)
        page = found[:limit]
        body: dict[str, Any] = {"data": WebhookOut(many=True).dump(page), "next": None}
    if len(found) > limit:
        body["next"] = next_page_url(after_id=str(page[-1].id), limit=str(limit))
    return json_response(body)


def create_webhook() -> Response:
    """``POST /webhooks``: subscribe; ``201`` with the secret, shown this once."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    data = json_body(Webhook)
    with crm.unit_of_work(actor=actor, source="api") as uow:
        hook, secret = webhooks.create(uow, data)
        body = WebhookWithSecretOut().dump({**_columns(hook), "secret": secret})
        etag = etag_of(hook)
        location = url_for("crm_api.webhooks_get", webhook_id=hook.id)
    return json_response(body, status=201, headers={"Location": location, "ETag": etag})


def get_webhook(webhook_id: str) -> Response:
    """``GET /webhooks/<id>``: one webhook (never its secret), its version as ``ETag``."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    ident = _id(webhook_id, "webhook")
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        hook = webhooks.get(uow, ident)
        etag = etag_of(hook)
        if request.if_none_match.contains_weak(etag.strip('"')):
            return Response(status=304, headers={"ETag": etag})
        body = WebhookOut().dump(hook)
    return json_response(body, headers={"ETag": etag})


def update_webhook(webhook_id: str) -> Response:
    """``PATCH /webhooks/<id>``: change url, description, event_types; ``If-Match`` needed."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    ident = _id(webhook_id, "webhook")
    data = json_body(Webhook)
    expected = if_match_version()
    with crm.unit_of_work(actor=actor, source="api") as uow:
        hook = webhooks.get(uow, ident)
        check_precondition(hook, expected)
        hook = webhooks.update(uow, hook.id, data, expected_version=expected)
        body = WebhookOut().dump(hook)
        etag = etag_of(hook)
    return json_response(body, headers={"ETag": etag})


def delete_webhook(webhook_id: str) -> Response:
    """``DELETE /webhooks/<id>``: remove the subscription (``If-Match`` optional)."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    ident = _id(webhook_id, "webhook")
    expected = if_match_version(required=False)
    with crm.unit_of_work(actor=actor, source="api") as uow:
        hook = webhooks.get(uow, ident)
        if expected is not None:
            check_precondition(hook, expected)
        webhooks.delete(uow, hook.id, expected_version=expected)
    return Response(status=204)


def enable_webhook(webhook_id: str) -> Response:
    """``POST /webhooks/<id>/enable``: deliver again, failure streak reset."""
    return _state_change(webhook_id, webhooks.enable)


def disable_webhook(webhook_id: str) -> Response:
    """``POST /webhooks/<id>/disable``: stop delivering; body ``{"reason": ...}`` optional."""
    _crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    body = load_or_refuse(DisableSchema(), json_body(optional=True))
    reason = body.get("reason")
    return _state_change(
        webhook_id,
        lambda uow, ident, expected_version: webhooks.disable(
            uow, ident, reason, expected_version=expected_version
        ),
    )


def rotate_secret(webhook_id: str) -> Response:
    """``POST /webhooks/<id>/rotate-secret``: a new secret, in this answer only."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    ident = _id(webhook_id, "webhook")
    expected = if_match_version(required=False)
    with crm.unit_of_work(actor=actor, source="api") as uow:
        hook = webhooks.get(uow, ident)
        if expected is not None:
            check_precondition(hook, expected)
        secret = webhooks.rotate_secret(uow, hook.id, expected_version=expected)
        body = WebhookWithSecretOut().dump({**_columns(hook), "secret": secret})
        etag = etag_of(hook)
    return json_response(body, headers={"ETag": etag})


def _state_change(webhook_id: str, change: Any) -> Response:
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    ident = _id(webhook_id, "webhook")
    expected = if_match_version(required=False)
    with crm.unit_of_work(actor=actor, source="api") as uow:
        hook = webhooks.get(uow, ident)
        if expected is not None:
            check_precondition(hook, expected)
        hook = change(uow, hook.id, expected_version=expected)
        body = WebhookOut().dump(hook)
        etag = etag_of(hook)
    return json_response(body, headers={"ETag": etag})


def webhook_deliveries(webhook_id: str) -> Response:
    """``GET /webhooks/<id>/deliveries``: this webhook's deliveries, newest first."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    ident = _id(webhook_id, "webhook")
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        hook = webhooks.get(uow, ident)
        return _deliveries_page(uow, consumer=webhooks.consumer_name(hook.id))


# -- events


def list_events() -> Response:
    """``GET /events``: outbox events newest first; filters type, entity, entity_id, status."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    _check_query()
    limit = parse_limit(request.args.get("limit"))
    status = _choice("status", EVENT_STATUSES)
    cursor = request.args.get("cursor")
    before = _decode_event_cursor(cursor) if cursor else None
    filters = {name: request.args.get(name) for name in ("type", "entity", "entity_id")}
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        found = webhooks.list_events(uow, **filters, status=status, before=before, limit=limit + 1)
        page = found[:limit]
        body: dict[str, Any] = {"data": EventOut(many=True).dump(page), "next": None}
    if len(found) > limit:
        last = page[-1]
        body["next"] = next_page_url(cursor=_encode_event_cursor(last), limit=str(limit))
    return json_response(body)


def get_event(event_id: str) -> Response:
    """``GET /events/<id>``: one event with its deliveries."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        event = webhooks.get_event(uow, event_id)
        rows = [_delivery_row(d, event.type) for d in webhooks.event_deliveries(uow, event.id)]
        body = EventDetailOut().dump({**_columns(event), "deliveries": rows})
    return json_response(body)


def _encode_event_cursor(event: OutboxEvent) -> str:
    raw = json.dumps([event.occurred_at.isoformat(), event.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_event_cursor(token: str) -> tuple[dt.datetime, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        when, ident = json.loads(base64.urlsafe_b64decode(padded))
        occurred_at = dt.datetime.fromisoformat(when)
        if occurred_at.tzinfo is None:
            raise ValueError("naive datetime")
        occurred_at.astimezone(dt.UTC)  # OverflowError at the edges of time
        if not isinstance(ident, str) or not 0 < len(ident) <= 36 or "\x00" in ident:
            raise ValueError("not an event id")
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as exc:
        raise ApiProblem(
            400,
            "Bad cursor",
            "The cursor is not one this API made.",
            errors={"cursor": ["Not a valid cursor."]},
        ) from exc
    return occurred_at, ident


# -- deliveries


def list_deliveries() -> Response:
    """``GET /deliveries``: deliveries newest first; filters ``status`` and ``consumer``."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        return _deliveries_page(uow, consumer=request.args.get("consumer"))


def _deliveries_page(uow: Any, *, consumer: str | None) -> Response:
    _check_query()
    limit = parse_limit(request.args.get("limit"))
    status = _choice("status", DELIVERY_STATUSES)
    before_id = _int_arg("before_id")
    found = webhooks.list_deliveries(
        uow, status=status, consumer=consumer, before_id=before_id, limit=limit + 1
    )
    page = found[:limit]
    rows = [_delivery_row(delivery, event_type) for delivery, event_type in page]
    body: dict[str, Any] = {"data": DeliveryOut(many=True).dump(rows), "next": None}
    if len(found) > limit:
        body["next"] = next_page_url(before_id=str(page[-1][0].id), limit=str(limit))
    return json_response(body)


def get_delivery(delivery_id: str) -> Response:
    """``GET /deliveries/<id>``: one delivery with its latest attempts."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    ident = _id(delivery_id, "delivery")
    with crm.unit_of_work(actor=actor, source="api", write=False) as uow:
        delivery, event_type = webhooks.get_delivery(uow, ident)
        attempts = webhooks.delivery_attempts(uow, delivery.id, limit=ATTEMPTS_SHOWN)
        body = DeliveryDetailOut().dump(
            {**_delivery_row(delivery, event_type), "attempt_log": attempts}
        )
    return json_response(body)


def replay_delivery(delivery_id: str) -> Response:
    """``POST /deliveries/<id>/replay``: a dead letter gets a fresh set of attempts."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    ident = _id(delivery_id, "delivery")
    try:
        with crm.unit_of_work(actor=actor, source="api") as uow:
            delivery = webhooks.replay_delivery(uow, ident)
            _same, event_type = webhooks.get_delivery(uow, delivery.id)
            body = DeliveryOut().dump(_delivery_row(delivery, event_type))
    except DeliveryNotDead as exc:
        raise ApiProblem(409, "Not a dead letter", str(exc), kind="conflict") from exc
    return json_response(body)


def replay_dead() -> Response:
    """``POST /deliveries/replay``: replay every dead letter, or a ``consumer``'s."""
    crm, actor = api_context()
    require(actor, ADMIN_PERMISSION)
    consumer = load_or_refuse(ReplaySchema(), json_body(optional=True)).get("consumer")
    with crm.unit_of_work(actor=actor, source="api") as uow:
        replayed = webhooks.replay_dead(uow, consumer=consumer)
    return json_response({"replayed": replayed})


# -- helpers


def _id(raw: str, entity: str) -> int:
    """An id from the URL; one that cannot be a row's id is a 404, like a missing row."""
    ident = as_record_id(raw) if raw.isascii() and raw.isdigit() else None
    if ident is not None and ident >= 1:
        return ident
    raise ApiProblem(404, "Not found", f"No {entity} {raw!r}.", kind="not-found")


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    """Query parameter ``name``, one of ``allowed``; a 400 problem naming it otherwise."""
    value = request.args.get(name)
    if value is not None and value not in allowed:
        message = f"Use one of: {', '.join(allowed)}."
        raise ApiProblem(400, "Bad parameter", f"{name}: {message}", errors={name: [message]})
    return value


def _columns(row: Any) -> dict[str, Any]:
    """A row's mapped columns by attribute name (to dump with fields added)."""
    return {column.key: getattr(row, column.key) for column in row.__mapper__.column_attrs}


# -- the OpenAPI description -------------------------------------------------------------------


def describe(spec: APISpec) -> None:
    """Add the webhook, event and delivery operations to the OpenAPI document being built."""
    tag = "webhooks"
    spec.tag(
        {
            "name": tag,
            "description": "Webhooks, outbox events and their deliveries (`webhook.admin`).",
        }
    )
    webhook = schema_ref(spec, WebhookOut)
    with_secret = schema_ref(spec, WebhookWithSecretOut, "WebhookWithSecret")
    webhook_input = schema_ref(spec, WebhookSchema, "WebhookInput", output=False)
    webhook_patch = schema_ref(spec, WebhookPatchSchema, "WebhookPatch", output=False)
    delivery = schema_ref(spec, DeliveryOut)
    schema_ref(spec, AttemptOut)
    delivery_detail = schema_ref(spec, DeliveryDetailOut)
    event = schema_ref(spec, EventOut)
    event_detail = schema_ref(spec, EventDetailOut)
    replayed = schema_ref(spec, ReplayedOut, "Replayed")
    disable_input = schema_ref(spec, DisableSchema, "WebhookDisableInput", output=False)
    replay_input = schema_ref(spec, ReplaySchema, "ReplayInput", output=False)

    etag = {"ETag": {"$ref": "#/components/headers/ETag"}}

    def json_of(schema: dict[str, Any]) -> dict[str, Any]:
        return {"application/json": {"schema": schema}}

    def page(item: dict[str, Any], what: str) -> dict[str, Any]:
        return json_of(page_of(item, f"A page of {what}."))

    def path_id(name: str, what: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": f"The id of the {what}.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        }

    def query(name: str, description: str, **schema: Any) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "description": description,
            "schema": {"type": "string", **schema},
        }

    def operation(operation_id: str, summary: str, description: str, **rest: Any) -> dict[str, Any]:
        return {
            "operationId": operation_id,
            "tags": [tag],
            "summary": summary,
            "description": description + " Needs `webhook.admin`.",
            **rest,
        }

    optional_if_match = {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The `ETag` you read: refused (412) if the webhook has moved on since.",
        "schema": {"type": "string"},
    }
    before_id = {
        "name": "before_id",
        "in": "query",
        "description": "Deliveries older than this delivery id (from a page's `next`).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }
    delivery_status = query(
        "status",
        "Only deliveries in this state (`dead`: the dead letters).",
        enum=list(DELIVERY_STATUSES),
    )
    webhook_id = path_id("webhook_id", "webhook")
    delivery_id = path_id("delivery_id", "delivery")
    webhook_answer = {"description": "The webhook.", "headers": etag, "content": json_of(webhook)}
    secret_answer = {
        "description": "The webhook with its new secret (shown only now).",
        "headers": etag,
        "content": json_of(with_secret),
    }

    spec.path(
        path="/webhooks",
        operations={
            "get": operation(
                "webhooks_list",
                "List webhooks",
                "Every webhook by id (never a secret).",
                parameters=[
                    limit_parameter(),
                    {
                        "name": "after_id",
                        "in": "query",
                        "description": "Webhooks after this id (from a page's `next`).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                    },
                ],
                responses={
                    "200": {
                        "description": "One page of webhooks.",
                        "content": page(webhook, "webhooks"),
                    },
                    **problem_responses(400, 401, 403),
                },
            ),
            "post": operation(
                "webhooks_create",
                "Create a webhook",
                "Subscribe a URL to event types. The answer holds the signing secret: "
                "the only time it is shown.",
                requestBody={"required": True, "content": json_of(webhook_input)},
                responses={
                    "201": {
                        "description": "Created; the secret is in the body, this once.",
                        "headers": {
                            "Location": {
                                "description": "The new webhook's URL.",
                                "required": True,
                                "schema": {"type": "string", "format": "uri-reference"},
                            },
                            **etag,
                        },
                        "content": json_of(with_secret),
                    },
                    **problem_responses(400, 401, 403, 415, 422),
                },
            ),
        },
    )
    spec.path(
        path="/webhooks/{webhook_id}",
        parameters=[webhook_id],
        operations={
            "get": operation(
                "webhooks_get",
                "Get a webhook",
                "One webhook, its version as `ETag`.",
                parameters=[
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "required": False,
                        "description": "An `ETag` you have: 304 if the webhook is still at it.",
                        "schema": {"type": "string"},
                    }
                ],
                responses={
                    "200": webhook_answer,
                    "304": {"description": "Not modified since the `ETag` sent.", "headers": etag},
                    **problem_responses(401, 403, 404),
                },
            ),
            "patch": operation(
                "webhooks_update",
                "Change a webhook",
                "Change `url`, `description` or `event_types`; `If-Match` must name the "
                "version you read. The secret changes through rotate-secret.",
                parameters=["IfMatch"],
                requestBody={"required": True, "content": json_of(webhook_patch)},
                responses={
                    "200": {**webhook_answer, "description": "The changed webhook."},
                    **problem_responses(400, 401, 403, 404, 409, 412, 415, 422, 428),
                },
            ),
            "delete": operation(
                "webhooks_delete",
                "Delete a webhook",
                "Remove the subscription; deliveries still due to it become dead letters.",
                parameters=[optional_if_match],
                responses={
                    "204": {"description": "Deleted."},
                    **problem_responses(401, 403, 404, 409, 412),
                },
            ),
        },
    )
    spec.path(
        path="/webhooks/{webhook_id}/enable",
        parameters=[webhook_id],
        operations={
            "post": operation(
                "webhooks_enable",
                "Enable a webhook",
                "Deliver to it again, with its failure streak reset (no change if it is "
                "active). Replay the dead letters of the time it was off separately.",
                parameters=[optional_if_match],
                responses={
                    "200": webhook_answer,
                    **problem_responses(401, 403, 404, 409, 412),
                },
            )
        },
    )
    spec.path(
        path="/webhooks/{webhook_id}/disable",
        parameters=[webhook_id],
        operations={
            "post": operation(
                "webhooks_disable",
                "Disable a webhook",
                "Stop delivering to it; `reason` is kept as `disabled_reason` (no change "
                "if it is disabled already).",
                parameters=[optional_if_match],
                requestBody={"required": False, "content": json_of(disable_input)},
                responses={
                    "200": webhook_answer,
                    **problem_responses(400, 401, 403, 404, 409, 412, 415, 422),
                },
            )
        },
    )
    spec.path(
        path="/webhooks/{webhook_id}/rotate-secret",
        parameters=[webhook_id],
        operations={
            "post": operation(
                "webhooks_rotate_secret",
                "Rotate a webhook's secret",
                "A new signing secret, used from the next delivery on; the answer is the "
                "only time it is shown.",
                parameters=[optional_if_match],
                responses={
                    "200": secret_answer,
                    **problem_responses(401, 403, 404, 409, 412),
                },
            )
        },
    )
    spec.path(
        path="/webhooks/{webhook_id}/deliveries",
        parameters=[webhook_id],
        operations={
            "get": operation(
                "webhooks_deliveries",
                "A webhook's deliveries",
                "The webhook's deliveries, newest first.",
                parameters=[limit_parameter(), before_id, delivery_status],
                responses={
                    "200": {
                        "description": "One page of deliveries.",
                        "content": page(delivery, "deliveries"),
                    },
                    **problem_responses(400, 401, 403, 404),
                },
            )
        },
    )
    spec.path(
        path="/events",
        operations={
            "get": operation(
                "events_list",
                "List events",
                "The outbox's domain events, newest first (`occurred_at`, then id).",
                parameters=[
                    limit_parameter(),
                    query("cursor", "Where to continue: from a page's `next`."),
                    query("type", "Only events of this type (`contact.created`)."),
                    query("entity", "Only events about this entity (`contact`)."),
                    query("entity_id", "Only events about this record (with `entity`)."),
                    query("status", "Only events in this state.", enum=list(EVENT_STATUSES)),
                ],
                responses={
                    "200": {"description": "One page of events.", "content": page(event, "events")},
                    **problem_responses(400, 401, 403),
                },
            )
        },
    )
    spec.path(
        path="/events/{event_id}",
        parameters=[
            {
                "name": "event_id",
                "in": "path",
                "required": True,
                "description": "The id of the event (a UUID).",
                "schema": {"type": "string", "minLength": 1, "maxLength": 36},
            }
        ],
        operations={
            "get": operation(
                "events_get",
                "Get an event",
                "One event with its deliveries.",
                responses={
                    "200": {"description": "The event.", "content": json_of(event_detail)},
                    **problem_responses(401, 403, 404),
                },
            )
        },
    )
    spec.path(
        path="/deliveries",
        operations={
            "get": operation(
                "deliveries_list",
                "List deliveries",
                "Deliveries of events to consumers, newest first.",
                parameters=[
                    limit_parameter(),
                    before_id,
                    delivery_status,
                    query(
                        "consumer",
                        "Only this consumer's: `webhook:<id>` or a plugin consumer's name.",
                    ),
                ],
                responses={
                    "200": {
                        "description": "One page of deliveries.",
                        "content": page(delivery, "deliveries"),
                    },
                    **problem_responses(400, 401, 403),
                },
            )
        },
    )
    spec.path(
        path="/deliveries/replay",
        operations={
            "post": operation(
                "deliveries_replay_dead",
                "Replay dead letters",
                "Every dead letter (or a `consumer`'s) gets a fresh set of attempts and is "
                "queued again.",
                requestBody={"required": False, "content": json_of(replay_input)},
                responses={
                    "200": {
                        "description": "The ids replayed, ascending.",
                        "content": json_of(replayed),
                    },
                    **problem_responses(400, 401, 403, 415, 422),
                },
            )
        },
    )
    spec.path(
        path="/deliveries/{delivery_id}",
        parameters=[delivery_id],
        operations={
            "get": operation(
                "deliveries_get",
                "Get a delivery",
                f"One delivery with its latest {ATTEMPTS_SHOWN} attempts: time, duration, "
                "status code, error.",
                responses={
                    "200": {"description": "The delivery.", "content": json_of(delivery_detail)},
                    **problem_responses(401, 403, 404),
                },
            )
        },
    )
    spec.path(
        path="/deliveries/{delivery_id}/replay",
        parameters=[delivery_id],
        operations={
            "post": operation(
                "deliveries_replay",
                "Replay a dead letter",
                "A dead delivery gets a fresh set of attempts (`pending`, 0 attempts) and "
                "is queued again; any other state is a 409.",
                responses={
                    "200": {
                        "description": "The delivery, pending again.",
                        "content": json_of(delivery),
                    },
                    **problem_responses(401, 403, 404, 409),
                },
            )
        },
    )
