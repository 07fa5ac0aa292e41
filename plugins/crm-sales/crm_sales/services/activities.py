"""Activities: plan, change, complete, reopen and delete calls, meetings and to-dos.

Every write validates through :class:`~crm_sales.schemas.ActivitySchema`, checks the
actor's permissions (``sales.activity.view``/``.edit``) and the references (the
assignee, an active user, defaults to the actor; the customer, contact and deal must
exist and be visible; a deal's or a contact's customer becomes the activity's), writes
the row and records an audit entry and an outbox event (``activity.created``,
``.updated``, ``.completed``, ``.reopened``, ``.deleted``) in the caller's transaction.

Completing an activity linked to a customer logs it on the customer's timeline: an
interaction (channel ``call``, ``meeting`` or ``note`` for a to-do) created through
:func:`crm_core.services.interactions.create` in the same transaction, so it needs
``interaction.edit`` as well. Which activities a user sees follows their role's
visibility on the activity's assignee. :func:`send_reminders` (a periodic job) emits
``activity.reminder_due`` once per activity whose reminder time has come.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from sqlalchemy import and_, func, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.sql.elements import ColumnElement

from crm_core import (
    ConflictError,
    NotFoundError,
    PermissionDenied,
    UnitOfWork,
    ValidationError,
    utcnow,
)
from crm_core.authz import owned_by_visible_users, require, visible
from crm_core.i18n import N_
from crm_core.ids import as_record_id
from crm_core.models import Contact, Customer, User
from crm_core.schemas import load_or_refuse
from crm_core.schemas.fieldtypes import Text
from crm_core.services import interactions
from crm_sales.models import Activity, ActivityKind, Opportunity
from crm_sales.schemas import ActivitySchema
from crm_sales.services import opportunities

if TYPE_CHECKING:
    from crm_core import CRM

#: The entity name of activities in the audit trail, outbox events and the API.
ENTITY = "activity"
VIEW, EDIT = "sales.activity.view", "sales.activity.edit"
#: The interaction channel a completed activity of each kind is logged as.
CHANNELS = {
    ActivityKind.CALL.value: "call",
    ActivityKind.MEETING.value: "meeting",
    ActivityKind.TODO.value: "note",
}
#: Loaded keys stored as columns as they are.
_COLUMNS = (
    "kind", "subject", "notes", "due_at", "reminder_at", "assignee_id", "customer_id",
    "contact_id", "opportunity_id",
)
#: Fields a change records in the audit trail.
_AUDITED = (*_COLUMNS, "done_at", "interaction_id")
_LINKS = frozenset({"customer_id", "contact_id", "opportunity_id"})
_TEXTS = ("subject", "notes")
#: Activities reminded of in one transaction of :func:`send_reminders`.
REMINDER_BATCH = 500


class CompleteSchema(Schema):
    """What completing an activity may say: how it went (logged on the timeline)."""

    outcome_note = Text(max_length=10000, load_default="")


def visible_activities(actor: Any) -> ColumnElement[bool]:
    """The activities ``actor`` may see: by the assignee, as their role's visibility says."""
    return owned_by_visible_users(actor, Activity.assignee_id)


def version(activity: Activity) -> int:
    """The version of ``activity`` a stale edit is told from (one more per saved change)."""
    return activity.version


# -- reading --------------------------------------------------------------------------------


def get(uow: UnitOfWork, activity_id: Any, *, for_update: bool = False) -> Activity:
    """Activity ``activity_id``; :class:`NotFoundError` if missing or not visible.

    ``for_update`` locks the row until the transaction ends (PostgreSQL), so that two
    writers cannot both complete it.
    """
    require(uow.actor, VIEW)
    ident = as_record_id(activity_id)
    found = None
    if ident is not None and ident > 0:
        statement = select(Activity).where(Activity.id == ident, visible_activities(uow.actor))
        if for_update:
            statement = statement.with_for_update()
        found = uow.session.scalar(statement)
    if found is None:
        raise NotFoundError(ENTITY, activity_id)
    return found


def list_for_user(
    uow: UnitOfWork,
    user_id: int,
    *,
    done: bool = False,
    kind: str | None = None,
    after: tuple[dt.datetime, int] | None = None,
    due_before: dt.datetime | None = None,
    done_since: dt.datetime | None = None,
    limit: int = 50,
) -> list[Activity]:
    """At most ``limit`` activities of ``user_id`` (visible to the actor), by keyset.

    Open ones (``done`` false) come by due date, soonest first, ``after`` being the
    ``(due_at, id)`` of the previous page's last row; ``due_before`` keeps those due
    earlier. Done ones come most recently done first, ``after`` being ``(done_at, id)``;
    ``done_since`` keeps those done since then. Served by the index on
    ``(assignee_id, done_at, due_at)``. Ask for one row more than a page to know
    whether there is a next one.
    """
    require(uow.actor, VIEW)
    clauses: list[ColumnElement[bool]] = [
        Activity.assignee_id == user_id, visible_activities(uow.actor)
    ]
    if kind is not None:
        clauses.append(Activity.kind == kind)
    if done:
        clauses.append(Activity.done_at.is_not(None))
        if done_since is not None:
            clauses.append(Activity.done_at >= done_since)
        if after is not None:
            clauses.append(or_(Activity.done_at < after[0],
                               and_(Activity.done_at == after[0], Activity.id < after[1])))
        order = (Activity.done_at.desc(), Activity.id.desc())
    else:
        clauses.append(Activity.done_at.is_(None))
        if due_before is not None:
            clauses.append(Activity.due_at < due_before)
        if after is not None:
            clauses.append(or_(Activity.due_at > after[0],
                               and_(Activity.due_at == after[0], Activity.id > after[1])))
        order = (Activity.due_at, Activity.id)
    statement = select(Activity).where(*clauses).order_by(*order).limit(limit)
    return list(uow.session.scalars(statement))


def count_open(uow: UnitOfWork, user_id: int, *, due_before: dt.datetime) -> int:
    """How many open activities of ``user_id`` the actor sees are due before ``due_before``."""
    require(uow.actor, VIEW)
    statement = select(func.count()).select_from(Activity).where(
        Activity.assignee_id == user_id,
        Activity.done_at.is_(None),
        Activity.due_at < due_before,
        visible_activities(uow.actor),
    )
    return uow.session.scalar(statement) or 0


def next_for_customer(uow: UnitOfWork, customer_id: int, *, limit: int = 5) -> list[Activity]:
    """The customer's next open activities the actor sees, soonest due first."""
    require(uow.actor, VIEW)
    statement = (
        select(Activity)
        .where(
            Activity.customer_id == customer_id,
            Activity.done_at.is_(None),
            visible_activities(uow.actor),
        )
        .order_by(Activity.due_at, Activity.id)
        .limit(limit)
    )
    return list(uow.session.scalars(statement))


# -- writing --------------------------------------------------------------------------------


def create(uow: UnitOfWork, data: Mapping[str, Any]) -> Activity:
    """Validate ``data`` and plan an activity (assigned to the actor unless it says whom)."""
    require(uow.actor, EDIT)
    loaded, errors = _load(data, partial=False)
    if loaded.get("assignee_id") is None and "assignee_id" not in errors:
        if uow.actor_id is None:
            errors["assignee_id"] = [N_("Choose who does it.")]
        loaded["assignee_id"] = uow.actor_id
    _check(uow, loaded, None, errors)
    activity = Activity(**{key: loaded[key] for key in _COLUMNS if key in loaded})
    uow.session.add(activity)
    uow.session.flush()
    changes = {key: (None, value) for key, value in _audited(activity).items()
               if value not in (None, "")}
    uow.record(ENTITY, "created", [(activity.id, changes)], [payload(activity)])
    return activity


def update(
    uow: UnitOfWork,
    activity_id: Any,
    data: Mapping[str, Any],
    *,
    expected_version: int | None = None,
) -> Activity:
    """Change the fields given in ``data``; :class:`ConflictError` when ``expected_version``
    is not the stored :func:`version`."""
    require(uow.actor, EDIT)
    activity = get(uow, activity_id, for_update=True)
    _check_version(activity, expected_version)
    loaded, errors = _load(data, partial=True)
    if "assignee_id" in loaded and loaded["assignee_id"] is None:
        errors["assignee_id"] = [N_("Choose who does it.")]
    _check(uow, loaded, activity, errors)
    before = _audited(activity)
    if "reminder_at" in loaded and loaded["reminder_at"] != activity.reminder_at:
        activity.reminded_at = None  # a new reminder time reminds again
    for key in _COLUMNS:
        if key in loaded:
            setattr(activity, key, loaded[key])
    uow.session.flush()
    after = _audited(activity)
    changes = {key: (before[key], after[key]) for key in after if before[key] != after[key]}
    if changes:
        uow.record(ENTITY, "updated", [(activity.id, changes)], [payload(activity)])
    return activity


def complete(
    uow: UnitOfWork,
    activity_id: Any,
    outcome_note: str = "",
    *,
    expected_version: int | None = None,
) -> Activity:
    """Mark an activity done now; one linked to a customer is logged on its timeline.

    The interaction (channel by kind: call, meeting, or note for a to-do) is created
    through core's interaction service in this transaction, its id kept in
    ``interaction_id``. Completing a done activity is refused (:class:`ValidationError`).
    """
    require(uow.actor, EDIT)
    activity = get(uow, activity_id, for_update=True)
    _check_version(activity, expected_version)
    note = load_or_refuse(CompleteSchema(), {"outcome_note": outcome_note or ""})["outcome_note"]
    if "\x00" in note:
        raise ValidationError({"outcome_note": [N_("Must not contain NUL characters.")]})
    if activity.done_at is not None:
        raise ValidationError({"done_at": [N_("This activity is done already.")]})
    now = utcnow()
    before = _audited(activity)
    if activity.customer_id is not None:
        logged = interactions.create(uow, {
            "channel": CHANNELS.get(activity.kind, "note"),
            "subject": activity.subject,
            "body": note or activity.notes,
            "customer_id": activity.customer_id,
            "contact_id": activity.contact_id,
            "occurred_at": now,
            "user_id": activity.assignee_id or uow.actor_id,
        })
        activity.interaction_id = logged.id
    activity.done_at = now
    uow.session.flush()
    after = _audited(activity)
    changes = {key: (before[key], after[key]) for key in after if before[key] != after[key]}
    uow.record(ENTITY, "completed", [(activity.id, changes)],
               [{**payload(activity), "outcome_note": note}])
    return activity


def reopen(uow: UnitOfWork, activity_id: Any, *, expected_version: int | None = None,
           ) -> Activity:
    """Make a done activity open again (the interaction it logged stays on the timeline;
    completing it again logs another)."""
    require(uow.actor, EDIT)
    activity = get(uow, activity_id, for_update=True)
    _check_version(activity, expected_version)
    if activity.done_at is None:
        raise ValidationError({"done_at": [N_("This activity is not done.")]})
    before = _audited(activity)
    activity.done_at = None
    activity.interaction_id = None
    uow.session.flush()
    after = _audited(activity)
    changes = {key: (before[key], after[key]) for key in after if before[key] != after[key]}
    uow.record(ENTITY, "reopened", [(activity.id, changes)], [payload(activity)])
    return activity


def delete(uow: UnitOfWork, activity_id: Any, *, expected_version: int | None = None,
           ) -> Activity:
    """Delete an activity (the audit trail keeps what it was; a logged interaction stays).
    Returns the deleted row, detached."""
    require(uow.actor, EDIT)
    activity = get(uow, activity_id, for_update=True)
    _check_version(activity, expected_version)
    body = payload(activity)
    changes = {key: (value, None) for key, value in _audited(activity).items()
               if value not in (None, "")}
    uow.session.delete(activity)
    uow.session.flush()
    uow.record(ENTITY, "deleted", [(body["id"], changes)], [body])
    return activity


def payload(activity: Activity) -> dict[str, Any]:
    """An activity as events show it."""
    return ActivitySchema().dump(activity)  # type: ignore[no-any-return]


# -- reminders ------------------------------------------------------------------------------


def send_reminders(crm: CRM, *, now: dt.datetime | None = None) -> int:
    """Emit ``activity.reminder_due`` for every open activity whose reminder time has
    come and that was not reminded of yet, and mark it reminded; return how many.

    Works in batches of :data:`REMINDER_BATCH`, one transaction each, as the system: the
    ids of a batch are selected (locked, skipping rows another run holds, on
    PostgreSQL) and then updated together, so running it again (or twice at once)
    emits nothing twice.
    """
    moment = now or utcnow()
    total = 0
    while True:
        with crm.unit_of_work(source="crm_sales") as uow:
            due = list(uow.session.scalars(
                select(Activity)
                .where(
                    Activity.reminder_at <= moment,
                    Activity.reminded_at.is_(None),
                    Activity.done_at.is_(None),
                )
                .order_by(Activity.id)
                .limit(REMINDER_BATCH)
                .with_for_update(skip_locked=True)
            ))
            if not due:
                return total
            ids = [activity.id for activity in due]
            uow.session.execute(
                sql_update(Activity)
                .where(Activity.id.in_(ids), Activity.reminded_at.is_(None))
                .values(reminded_at=moment)
                .execution_options(synchronize_session=False)
            )
            uow.record(
                ENTITY,
                "reminder_due",
                [(activity.id, {"reminded_at": (None, moment)}) for activity in due],
                [payload(activity) for activity in due],
            )
            total += len(due)
        if len(due) < REMINDER_BATCH:
            return total


# -- helpers --------------------------------------------------------------------------------


def _load(data: Mapping[str, Any], *, partial: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields of ``data`` the schema accepts, and the messages of those it refuses
    (plus what it cannot check: NUL characters, times beyond UTC's range).

    The accepted ones are still checked (:func:`_check`), so that a refused form shows
    every message at once, not the schema's first and the references' after a resubmit.
    """
    if not isinstance(data, Mapping):
        raise ValidationError({"_schema": [N_("Expected an object.")]})
    try:
        loaded: dict[str, Any] = ActivitySchema().load(data, partial=partial)
        errors: dict[str, Any] = {}
    except SchemaError as exc:
        loaded = dict(exc.valid_data or {}) if isinstance(exc.valid_data, dict) else {}
        errors = dict(exc.messages) if isinstance(exc.messages, dict) else {
            "_schema": list(exc.messages)}
    for name in _TEXTS:
        if isinstance(loaded.get(name), str) and "\x00" in loaded[name]:
            errors[name] = [N_("Must not contain NUL characters.")]
            del loaded[name]
    for name in ("due_at", "reminder_at"):
        if loaded.get(name) is not None:
            try:
                loaded[name] = loaded[name].astimezone(dt.UTC)
            except OverflowError:
                errors[name] = [N_("Not a valid datetime.")]
                del loaded[name]
    return loaded, errors


def _check_version(activity: Activity, expected: int | None) -> None:
    if expected is not None and version(activity) != expected:
        raise ConflictError(ENTITY, activity.id, expected, version(activity))


def _check(uow: UnitOfWork, loaded: dict[str, Any], current: Activity | None,
           errors: dict[str, Any]) -> None:
    """Refuse bad references and times (beside the schema's ``errors``); fill
    ``customer_id`` from the deal or the contact. Raises when anything was refused."""

    def value(name: str) -> Any:
        return loaded[name] if name in loaded else getattr(current, name, None)

    if "due_at" in loaded or "reminder_at" in loaded:
        reminder, due = value("reminder_at"), value("due_at")
        if reminder is not None and due is not None and reminder > due:
            errors["reminder_at"] = [N_("Remind at the due time or before it.")]
    if loaded.get("assignee_id") is not None:
        assignee = _user(uow, loaded["assignee_id"])
        if assignee is None or not assignee.active:
            errors["assignee_id"] = [N_("No such active user.")]
    if _LINKS & loaded.keys() and not _LINKS & errors.keys():
        _check_links(uow, loaded, current, errors)
    if errors:
        raise ValidationError(errors)


def _check_links(uow: UnitOfWork, loaded: dict[str, Any], current: Activity | None,
                 errors: dict[str, list[str]]) -> None:
    """Check the customer, contact and deal given; the activity's customer is the one
    given, else the deal's, else the contact's, else the one it had."""

    def value(name: str) -> Any:
        return loaded[name] if name in loaded else getattr(current, name, None)

    session = uow.session
    deal_customer: int | None = None
    deal_id = value("opportunity_id")
    if deal_id is not None:
        if "opportunity_id" in loaded:
            deal = _visible_deal(uow, deal_id)
            if deal is None:
                errors["opportunity_id"] = [N_("No such deal.")]
            else:
                deal_customer = deal.customer_id
        else:
            deal_customer = session.scalar(
                select(Opportunity.customer_id).where(Opportunity.id == deal_id)
            )
    contact_customer: int | None = None
    contact_id = value("contact_id")
    if contact_id is not None:
        statement = select(Contact.id, Contact.customer_id).where(
            Contact.id == as_record_id(contact_id)
        )
        if "contact_id" in loaded:
            statement = statement.where(visible(uow.actor, "contact"))
        row = session.execute(statement).first()
        if row is None:
            errors["contact_id"] = [N_("No such contact.")]
        else:
            contact_customer = row.customer_id
    if loaded.get("customer_id") is not None:
        customer_id = loaded["customer_id"]
        found = session.scalar(select(Customer.id).where(
            Customer.id == as_record_id(customer_id), visible(uow.actor, "customer")
        ))
        if found is None:
            errors["customer_id"] = [N_("No such customer.")]
            return
    elif deal_customer is not None:
        customer_id = deal_customer
    elif contact_customer is not None:
        customer_id = contact_customer
    elif "customer_id" in loaded:
        customer_id = None
    else:
        customer_id = getattr(current, "customer_id", None)
    if deal_customer is not None and deal_customer != customer_id:
        errors["opportunity_id"] = [N_("This deal is another customer's.")]
    if contact_customer is not None and contact_customer != customer_id:
        errors["contact_id"] = [N_("This contact works for another customer.")]
    loaded["customer_id"] = customer_id


def _visible_deal(uow: UnitOfWork, deal_id: Any) -> Opportunity | None:
    """The deal if the actor may see it (``sales.deal.view`` and visibility), else ``None``."""
    try:
        return opportunities.get(uow, deal_id)
    except (NotFoundError, PermissionDenied):
        return None


def _user(uow: UnitOfWork, user_id: Any) -> User | None:
    ident = as_record_id(user_id)
    return uow.session.get(User, ident) if ident is not None and ident > 0 else None


def _audited(activity: Activity) -> dict[str, Any]:
    return {key: getattr(activity, key) for key in _AUDITED}


__all__ = [
    "CHANNELS",
    "EDIT",
    "ENTITY",
    "VIEW",
    "CompleteSchema",
    "complete",
    "count_open",
    "create",
    "delete",
    "get",
    "list_for_user",
    "next_for_customer",
    "payload",
    "reopen",
    "send_reminders",
    "update",
    "version",
    "visible_activities",
]

