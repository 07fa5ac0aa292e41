"""What pages call users and customers by id: the names of a whole page in one query.

Also the users a record's *Owner* field offers (:func:`owner_options`), and how pages
name the lifecycle stages, kinds of customer and channels in the reader's language:
as labels (:func:`stage_label`, :func:`kind_label`, :func:`channel_label`: "Lead",
"Call") and as the lowercase words of badges (:func:`stage_badge`, :func:`channel_badge`:
"lead", "call"). The stored codes stay as they are in the database, in forms' values,
in CSS classes and in URLs.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from crm_core.authz import visible
from crm_core.models import Customer, User
from crm_core.web.ui.access import current_crm

#: How pages name the lifecycle stages (:class:`~crm_core.models.LifecycleStage`).
STAGE_LABELS = {
    "lead": _l("Lead"),
    "prospect": _l("Prospect"),
    "customer": _l("Customer"),
    "former": _l("Former"),
}
#: How pages name the kinds of customer (:class:`~crm_core.models.CustomerKind`).
KIND_LABELS = {
    "company": _l("Company"),
    "person": _l("Person"),
}
#: How pages name core's channels (:data:`~crm_core.models.CORE_CHANNELS`); plugins'
#: channels are named by the label they register.
CHANNEL_LABELS = {
    "call": _l("Call"),
    "email": _l("Email"),
    "meeting": _l("Meeting"),
    "note": _l("Note"),
    "letter": _l("Letter"),
    "chat": _l("Chat"),
    "sms": _l("Sms"),
    "web": _l("Web"),
    "purchase": _l("Purchase"),
    "ticket": _l("Ticket"),
}

#: The badges' words for the lifecycle stages (lowercase, as badges show words).
STAGE_BADGES = {
    "lead": _l("lead"),
    "prospect": _l("prospect"),
    "customer": _l("customer"),
    "former": _l("former"),
}
#: The badges' words for core's channels; plugins' channels show their code.
CHANNEL_BADGES = {
    "call": _l("call"),
    "email": _l("email"),
    "meeting": _l("meeting"),
    "note": _l("note"),
    "letter": _l("letter"),
    "chat": _l("chat"),
    "sms": _l("sms"),
    "web": _l("web"),
    "purchase": _l("purchase"),
    "ticket": _l("ticket"),
}


def stage_label(code: str | None) -> str:
    """The name of the lifecycle stage ``code`` in this request's language (else the code)."""
    return str(STAGE_LABELS.get(code or "", code or ""))


def stage_badge(code: str | None) -> str:
    """The badge's word for the lifecycle stage ``code`` ("lead"), else the code."""
    return str(STAGE_BADGES.get(code or "", code or ""))


def channel_badge(code: str | None) -> str:
    """The badge's word for the channel ``code`` ("call"); a plugin's channel: its code."""
    return str(CHANNEL_BADGES.get(code or "", code or ""))


def kind_label(code: str | None) -> str:
    """The name of the kind of customer ``code`` in this request's language (else the code)."""
    return str(KIND_LABELS.get(code or "", code or ""))


def channel_label(code: str | None) -> str:
    """The name of the channel ``code``: core's in this request's language, a plugin's as
    it registered it, else the code itself."""
    if not code:
        return ""
    if code in CHANNEL_LABELS:
        return str(CHANNEL_LABELS[code])
    channel = current_crm().registry.channels.get(code)
    return (channel.label if channel is not None else "") or code


def user_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    """The names (else emails) of the users ``ids``; no query when there are none."""
    wanted = sorted({ident for ident in ids if ident is not None})
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.name, User.email).where(User.id.in_(wanted)))
    return {row.id: row.name or row.email for row in rows}


def customer_names(session: Session, user: User, ids: Iterable[int | None]) -> dict[int, str]:
    """The names of the customers among ``ids`` that ``user`` may see."""
    wanted = sorted({ident for ident in ids if ident is not None})
    if not wanted:
        return {}
    rows = session.execute(
        select(Customer.id, Customer.name).where(
            Customer.id.in_(wanted), visible(user, "customer")
        )
    )
    return {row.id: row.name for row in rows}


def owner_options(session: Session, current: int | None = None) -> list[tuple[int, str]]:
    """Active users as (id, name), and the ``current`` owner even when inactive (so saving
    keeps them), by name."""
    active_or_current = User.active.is_(True)
    if current is not None:
        active_or_current = or_(active_or_current, User.id == current)
    rows = session.execute(
        select(User.id, User.name, User.email).where(active_or_current)
        .order_by(User.name, User.id)
    )
    return [(row.id, row.name or row.email) for row in rows]
