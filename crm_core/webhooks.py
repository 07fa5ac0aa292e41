"""Webhooks: signed HTTP deliveries of domain events, and how a receiver verifies them.

A delivery is a ``POST`` of a JSON body to the webhook's URL with these headers:

- ``X-CRM-Event``: the event type (``contact.created``);
- ``X-CRM-Event-Id``: the event's id, the same on every retry: receivers use it to
  process each event once;
- ``X-CRM-Timestamp``: Unix seconds when this attempt was signed;
- ``X-CRM-Signature``: ``v1=`` and the hex HMAC-SHA256, keyed with the webhook's
  secret, of ``<timestamp>.<body>`` (the raw bytes of the body).

A receiver recomputes the signature over the bytes it received, compares in constant
time and refuses timestamps older than a few minutes (replays):
:func:`verify_signature` does exactly that, and docs/webhooks.md shows it without
crm-core. Any 2xx answer counts as delivered; anything else, or no answer within
``webhook_timeout`` seconds, is a failed attempt, retried with backoff; ``410 Gone``
disables the webhook at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING
from urllib.request import getproxies

import urllib3

from crm_core.extensions import Event
from crm_core.jobs.deliveries import DeliveryFailed
from crm_core.models import Webhook
from crm_core.version import __version__

if TYPE_CHECKING:
    from crm_core.runtime import CRM

SIGNATURE_HEADER = "X-CRM-Signature"
TIMESTAMP_HEADER = "X-CRM-Timestamp"
EVENT_ID_HEADER = "X-CRM-Event-Id"
EVENT_TYPE_HEADER = "X-CRM-Event"
#: How old a signed timestamp :func:`verify_signature` accepts by default (seconds).
DEFAULT_TOLERANCE = 300

_local = threading.local()


def new_secret() -> str:
    """A fresh signing secret (``whsec_`` and 32 random bytes, URL-safe base64)."""
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-CRM-Signature`` value for ``body`` sent at ``timestamp``: ``v1=<hex>``."""
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature_header: str | None,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether a delivery is genuine: signed with ``secret`` at most ``tolerance`` s ago.

    ``signature_header`` may hold several comma-separated ``v1=`` values (during a
    secret rotation a receiver may also try its previous secret).
    """
    if not timestamp or not signature_header:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(
        hmac.compare_digest(expected, candidate.strip())
        for candidate in signature_header.split(",")
    )


def event_body(event: Event) -> bytes:
    """The JSON body of a delivery of ``event`` (compact, keys sorted)."""
    document = {
        "id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat(),
        "entity": event.entity,
        "entity_id": event.entity_id,
        "actor_id": event.actor_id,
        "data": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(secret: str, event: Event, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt of ``event`` with ``body``."""
    timestamp = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "User-Agent": f"crm-core-webhooks/{__version__}",
        EVENT_TYPE_HEADER: event.type,
        EVENT_ID_HEADER: event.id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


class WebhookSender:
    """Sends events to one webhook; a consumer handler (``sender(crm, event)``)."""

    def __init__(self, hook: Webhook, *, timeout: float) -> None:
        self.url = hook.url
        self.secret = hook.secret
        self.timeout = timeout
        self.status_code: int | None = None

    def __call__(self, crm: CRM, event: Event) -> None:
        """POST ``event``; raise :class:`DeliveryFailed` unless the receiver answers 2xx."""
        body = event_body(event)
        try:
            response = _http().request(
                "POST",
                self.url,
                body=body,
                headers=signed_headers(self.secret, event, body),
                timeout=urllib3.Timeout(total=self.timeout),
                redirect=False,
                retries=False,
                preload_content=True,
            )
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
        self.status_code = response.status
        if not 200 <= response.status < 300:
            text = response.data[:200].decode("utf-8", "replace")
            raise DeliveryFailed(
                f"HTTP {response.status}: {text}",
                status_code=response.status,
                give_up=response.status == 410,
            )


def _http() -> urllib3.PoolManager:
    """One connection pool per worker thread, so connections to receivers are reused.

    An ``https_proxy``/``http_proxy`` in the environment (read once) is used for
    every receiver, as other HTTP clients do.
    """
    pool = getattr(_local, "pool", None)
    if pool is None:
        proxies = getproxies()
        proxy = proxies.get("https") or proxies.get("http")
        pool = urllib3.ProxyManager(proxy) if proxy else urllib3.PoolManager()
        _local.pool = pool
    return pool
