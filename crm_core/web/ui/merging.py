"""Duplicates in the UI: suggestions, the merge screen, and undoing a merge.

Built on what the API and the CLI use: :mod:`crm_core.duplicates` suggests (same
email, same phone number, similar name, with a score), the services merge
(``field_sources`` names whose value each field keeps; empty fields are filled from
the duplicate) and :func:`crm_core.services.merges.undo_merge` undoes a merge from the
``merged`` audit entry it left on the survivor.

- ``/<customers|contacts>/<id>/duplicates``: the likely duplicates of a record, why
  they match, and a link to compare each one;
- ``/<customers|contacts>/<id>/merge/<other_id>``: both records side by side, a radio
  choice for each field where they differ, what moves; posting it (with the versions
  the user saw) merges ``other_id`` into ``id``;
- ``POST /<customers|contacts>/<id>/merges/<merge_id>/undo``: undo that merge.

The survivor's page offers the undo while :func:`undo_offer` finds the merge still in
place; the service itself refuses (every reason listed) an undo that would lose work
done since. A page of duplicate pairs across all records is not offered:
:mod:`crm_core.duplicates` looks up one record's duplicates, not all pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_percent, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.authz import has_permission, require, visible
from crm_core.duplicates import DuplicateCandidate, contact_duplicates, customer_duplicates
from crm_core.errors import ConflictError, NotFoundError, ValidationError
from crm_core.models import AuditEntry, User
from crm_core.services import merges
from crm_core.services.records import RecordService
from crm_core.services.unit_of_work import UnitOfWork
from crm_core.web.i18n import number
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.forms import field_errors, field_label
from crm_core.web.ui.names import customer_names, user_names

#: Suggestions listed on a duplicates page, most likely first.
SUGGESTIONS = 20
#: Why a record is suggested, as the page says it (the reasons of crm_core.duplicates).
REASONS = {
    "email": _l("same email"),
    "phone": _l("same phone number"),
    "name": _l("similar name"),
    "customer": _l("same customer"),
}
#: Field labels on the merge screen (other fields get their name, capitalised).
LABELS = {
    "name": _l("Name"),
    "kind": _l("Kind"),
    "email": _l("Email"),
    "phone": _l("Phone"),
    "website": _l("Website"),
    "street": _l("Street"),
    "city": _l("City"),
    "region": _l("Region"),
    "country": _l("Country"),
    "industry": _l("Industry"),
    "owner_id": _l("Owner"),
    "customer_id": _l("Customer"),
    "lifecycle_stage": _l("Lifecycle stage"),
    "postal_code": _l("Postal code"),
    "first_name": _l("First name"),
    "last_name": _l("Last name"),
    "job_title": _l("Job title"),
}
#: Stored values of choice fields, as the merge screen shows them (others: capitalised).
CHOICES = {
    "kind": {"company": _l("Company"), "person": _l("Person")},
    "lifecycle_stage": {
        "lead": _l("Lead"),
        "prospect": _l("Prospect"),
        "customer": _l("Customer"),
        "former": _l("Former"),
    },
}


@dataclass(frozen=True)
class Mergeable:
    """What the duplicate and merge pages need to know about customers or contacts."""

    entity: str
    plural: str
    label: str
    """What the duplicates page calls one record (a column's header)."""
    service: RecordService[Any]
    suggest: Callable[..., list[DuplicateCandidate]]
    title: Callable[[Any], str]
    home_endpoint: str
    """Where a merge and its undo lead: the survivor's page."""
    home_arg: str

    def home(self, record_id: int) -> str:
        """The URL of the page that shows ``record_id`` and offers to undo its merge."""
        return url_for(self.home_endpoint, **{self.home_arg: record_id})


CUSTOMERS = Mergeable(
    "customer", "customers", _l("Customer"), merges.SERVICES["customer"], customer_duplicates,
    lambda record: record.name, "crm_ui.customer_page", "customer_id",
)
CONTACTS = Mergeable(
    "contact", "contacts", _l("Contact"), merges.SERVICES["contact"], contact_duplicates,
    lambda record: record.full_name or _("Contact %(id)s", id=record.id),
    "crm_ui.contact_duplicates", "record_id",
)
_KINDS = {kind.entity: kind for kind in (CUSTOMERS, CONTACTS)}


@dataclass(frozen=True)
class Suggestion:
    """One likely duplicate as the duplicates page lists it."""

    candidate: DuplicateCandidate
    details: list[str]
    reasons: list[str]
    likelihood: str
    """The candidate's score as a percentage."""


@dataclass(frozen=True)
class FieldRow:
    """One field of the merge screen: both values and, where they differ, the choice."""

    name: str
    label: str
    ours: str
    theirs: str
    differs: bool
    keep: str
    """The id (as posted) of the record whose value is chosen."""


@dataclass(frozen=True)
class UndoOffer:
    """A merge into a record that can still be undone from its page."""

    merge_id: int
    url: str
    merged: list[str]
    """The titles of the records the merge brought in."""


# -- the pages ----------------------------------------------------------------------------------


@blueprint.get("/customers/<int:record_id>/duplicates", endpoint="customer_duplicates")
@page
def customer_duplicates_page(record_id: int) -> ResponseReturnValue:
    """The customer's likely duplicates, why they match, a link to compare each."""
    return _duplicates(CUSTOMERS, record_id)


@blueprint.route(
    "/customers/<int:record_id>/merge/<int:other_id>", methods=["GET", "POST"],
    endpoint="merge_customers",
)
@page
def merge_customers(record_id: int, other_id: int) -> ResponseReturnValue:
    """Compare two customers; posting merges ``other_id`` into ``record_id``."""
    return _merge(CUSTOMERS, record_id, other_id)


@blueprint.post(
    "/customers/<int:record_id>/merges/<int:merge_id>/undo", endpoint="undo_customer_merge"
)
@page
def undo_customer_merge(record_id: int, merge_id: int) -> ResponseReturnValue:
    """Undo a merge into the customer: both customers are back as they were."""
    return _undo(CUSTOMERS, record_id, merge_id)


@blueprint.get("/contacts/<int:record_id>/duplicates", endpoint="contact_duplicates")
@page
def contact_duplicates_page(record_id: int) -> ResponseReturnValue:
    """The contact's likely duplicates (and the undo of its latest merge)."""
    return _duplicates(CONTACTS, record_id)


@blueprint.route(
    "/contacts/<int:record_id>/merge/<int:other_id>", methods=["GET", "POST"],
    endpoint="merge_contacts",
)
@page
def merge_contacts(record_id: int, other_id: int) -> ResponseReturnValue:
    """Compare two contacts; posting merges ``other_id`` into ``record_id``."""
    return _merge(CONTACTS, record_id, other_id)


@blueprint.post(
    "/contacts/<int:record_id>/merges/<int:merge_id>/undo", endpoint="undo_contact_merge"
)
@page
def undo_contact_merge(record_id: int, merge_id: int) -> ResponseReturnValue:
    """Undo a merge into the contact: both contacts are back as they were."""
    return _undo(CONTACTS, record_id, merge_id)


# -- the undo offer (also used by the customer page) --------------------------------------------


def undo_offer(uow: UnitOfWork, entity: str, record: Any) -> UndoOffer | None:
    """The latest merge into ``record`` if the acting user may still undo it, else ``None``.

    It is offered while the records it brought in are still archived and merged into
    ``record`` (not undone, restored or merged elsewhere) and ``uow.actor`` has
    ``<entity>.merge`` and sees them; :func:`~crm_core.services.merges.undo_merge`
    checks the rest (fields changed since, references moved again) when it is used.
    """
    kind = _KINDS[entity]
    if record.archived or not has_permission(uow.actor, f"{entity}.merge"):
        return None
    merge_id = merges.merge_id(uow, entity, record.id)
    entry = uow.session.get(AuditEntry, merge_id) if merge_id is not None else None
    if entry is None:
        return None
    merged_ids = [int(ident) for ident in (entry.changes.get("merged_ids") or [None, []])[1]]
    model = kind.service.model
    still = list(
        uow.session.scalars(
            select(model).where(
                model.id.in_(merged_ids),
                model.merged_into_id == record.id,
                model.archived.is_(True),
                visible(uow.actor, entity),
            ).order_by(model.id)
        )
    )
    if not merged_ids or len(still) != len(merged_ids):
        return None
    url = url_for(f"crm_ui.undo_{entity}_merge", record_id=record.id, merge_id=entry.id)
    return UndoOffer(entry.id, url, [kind.title(merged) for merged in still])


# -- duplicates ---------------------------------------------------------------------------------


def _duplicates(kind: Mergeable, record_id: int) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        record = kind.service.get(uow, record_id)
        found = kind.suggest(uow.session, user, record.id, SUGGESTIONS)
        names: dict[int, str] = {}
        if kind is CONTACTS:
            firms = {record.customer_id, *(c.record.customer_id for c in found)}
            names = customer_names(uow.session, user, firms)
        suggestions = [
            Suggestion(
                candidate, _details(kind, candidate.record, names), _reasons(candidate),
                _percent(candidate.score),
            )
            for candidate in found
        ]
        return render_template(
            "crm_core/ui/merging/duplicates.html",
            kind=kind,
            record=record,
            title=kind.title(record),
            customer_name=names.get(getattr(record, "customer_id", None)),
            suggestions=suggestions,
            undo=undo_offer(uow, kind.entity, record),
            can_merge=has_permission(user, f"{kind.entity}.merge"),
        )


def _reasons(candidate: DuplicateCandidate) -> list[str]:
    texts = []
    for reason in candidate.reasons:
        if reason == "name":
            percent = _percent(candidate.name_similarity)
            texts.append(_("similar name (%(percent)s alike)", percent=percent))
        else:
            texts.append(str(REASONS.get(reason, reason)))
    return texts


def _percent(share: float) -> str:
    """``share`` (0 to 1) as a whole percentage in the user's language (``87%``)."""
    return format_percent(share)


def _details(kind: Mergeable, record: Any, customer_names: Mapping[Any, str]) -> list[str]:
    if kind is CUSTOMERS:
        values = [record.email, record.phone, record.city]
    else:
        values = [customer_names.get(record.customer_id), record.job_title, record.primary_email]
    return [value for value in values if value]


# -- merging ------------------------------------------------------------------------------------


def _merge(kind: Mergeable, record_id: int, other_id: int) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    require(user, f"{kind.entity}.merge")
    if record_id == other_id:
        abort(400)
    if request.method == "GET":
        return _screen(kind, record_id, other_id, {}, {})
    try:
        seen = (int(request.form.get("version", "")), int(request.form.get("other_version", "")))
    except ValueError:
        abort(400)
    choices = {
        name: request.form.get(f"keep_{name}", "").strip()
        for name in kind.service.mergeable_fields
    }
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            survivor = kind.service.get(uow, record_id)
            other = kind.service.get(uow, other_id)
            for record, version in zip((survivor, other), seen, strict=True):
                if record.version != version:
                    raise ConflictError(kind.entity, record.id, version, record.version)
            sources = _field_sources(kind, survivor, other, choices)
            merged_title = kind.title(other)
            kind.service.merge(uow, survivor.id, [other.id], field_sources=sources)
            survivor_title = kind.title(survivor)
    except ValidationError as exc:
        return _screen(kind, record_id, other_id, choices, field_errors(exc.messages), status=422)
    except ConflictError as exc:
        return _screen(kind, record_id, other_id, choices, {}, conflict=exc, status=409)
    flash(_("%(merged)s was merged into %(survivor)s.", merged=merged_title,
            survivor=survivor_title))
    return redirect(kind.home(record_id))


def _field_sources(
    kind: Mergeable, survivor: Any, other: Any, choices: Mapping[str, str]
) -> dict[str, int]:
    """The posted choice of each field where the two differ: the id of the record to keep."""
    ids = {str(survivor.id): survivor.id, str(other.id): other.id}
    sources: dict[str, int] = {}
    errors: dict[str, list[str]] = {}
    for name in kind.service.mergeable_fields:
        if not _differs(getattr(survivor, name), getattr(other, name)):
            continue
        if choices.get(name) not in ids:
            errors[f"keep_{name}"] = [_("Choose which of the two values to keep.")]
        else:
            sources[name] = ids[choices[name]]
    if errors:
        raise ValidationError(errors)
    return sources


def _screen(
    kind: Mergeable,
    record_id: int,
    other_id: int,
    choices: Mapping[str, str],
    errors: dict[str, list[str]],
    *,
    conflict: ConflictError | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    """The merge screen: both records as stored now, the choices made, what moves."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        survivor = kind.service.get(uow, record_id)
        other = kind.service.get(uow, other_id)
        defaults = kind.service.merged_values(survivor, [other], {})
        shown = _shown(kind, uow.session, user, (survivor, other))
        rows = [
            FieldRow(
                name,
                str(LABELS[name]) if name in LABELS else field_label(name),
                shown(name, getattr(survivor, name)),
                shown(name, getattr(other, name)),
                _differs(getattr(survivor, name), getattr(other, name)),
                choices.get(name) or str(other.id if name in defaults else survivor.id),
            )
            for name in kind.service.mergeable_fields
        ]
        html = render_template(
            "crm_core/ui/merging/merge.html",
            kind=kind,
            survivor=survivor,
            other=other,
            survivor_title=kind.title(survivor),
            other_title=kind.title(other),
            rows=rows,
            combined=_combined(kind, survivor, other, defaults),
            moves=_moves(kind, uow.session, other),
            blocked=[
                _("%(name)s is archived: restore it (or undo its merge) first.",
                  name=kind.title(record))
                for record in (survivor, other)
                if record.archived
            ],
            errors=errors,
            general_errors=[
                text for name, texts in errors.items() if not name.startswith("keep_")
                for text in texts
            ],
            conflict=conflict,
            changed=None if conflict is None else kind.title(
                survivor if conflict.ident == survivor.id else other
            ),
        )
    return html, status


def _differs(ours: Any, theirs: Any) -> bool:
    empty = (None, "")
    return not (ours in empty and theirs in empty) and ours != theirs


def _shown(
    kind: Mergeable, session: Session, user: User, records: Sequence[Any]
) -> Callable[[str, Any], str]:
    """A function: (field, stored value) -> the text the merge screen shows for it."""
    users = user_names(session, (record.owner_id for record in records))
    customer_ids = {getattr(record, "customer_id", None) for record in records}
    firms = customer_names(session, user, customer_ids) if kind is CONTACTS else {}

    def text(name: str, value: Any) -> str:
        if value in (None, ""):
            return ""
        if name == "owner_id":
            return users.get(value, _("User %(id)s", id=value))
        if name == "customer_id":
            return firms.get(value, _("Customer %(id)s", id=value))
        if name in CHOICES:
            return str(CHOICES[name].get(value) or str(value).capitalize())
        return str(value)

    return text


def _combined(
    kind: Mergeable, survivor: Any, other: Any, defaults: Mapping[str, Any]
) -> list[tuple[str, str, str, str]]:
    """Values both records keep together: (label, survivor's, other's, after the merge)."""
    if kind is CUSTOMERS:
        return [
            (
                _("Tags"),
                ", ".join(survivor.tags),
                ", ".join(other.tags),
                ", ".join(defaults.get("tags", survivor.tags)),
            )
        ]
    rows = []
    for name, label, key in (
        ("emails", _("Emails"), "email"), ("phones", _("Phone numbers"), "number")
    ):
        current = kind.service.current
        rows.append(
            (
                label,
                ", ".join(item[key] for item in current(survivor, name)),
                ", ".join(item[key] for item in current(other, name)),
                ", ".join(item[key] for item in defaults.get(name, current(survivor, name))),
            )
        )
    return rows


def _moves(kind: Mergeable, session: Session, other: Any) -> list[str]:
    """What moves from ``other`` to the survivor: "2 contacts", "5 interactions"..."""
    references = merges.REFERENCES[kind.entity]
    counts = session.execute(
        select(
            *(
                select(func.count()).select_from(model).where(column == other.id)
                .scalar_subquery().label(name)
                for name, (model, column) in references.items()
            )
        )
    ).one()
    return [_move(name, count) for name, count in zip(references, counts, strict=True)]


def _move(name: str, count: int) -> str:
    """``count`` records of reference kind ``name`` as the merge screen says it."""
    shown = number(count)
    if name == "contact":
        return ngettext("%(count)s contact", "%(count)s contacts", count, count=shown)
    if name == "interaction":
        return ngettext("%(count)s interaction", "%(count)s interactions", count, count=shown)
    return f"{shown} {name if count == 1 else f'{name}s'}"


# -- undoing ------------------------------------------------------------------------------------


def _undo(kind: Mergeable, record_id: int, merge_id: int) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    require(user, f"{kind.entity}.merge")
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            survivor = kind.service.get(uow, record_id)
            entry = uow.session.get(AuditEntry, merge_id)
            if (
                entry is None
                or entry.entity != kind.entity
                or entry.entity_id != str(survivor.id)
                or entry.action != "merged"
            ):
                raise NotFoundError("merge", merge_id)
            undone = merges.undo_merge(uow, kind.entity, entry.id)
            restored = ", ".join(kind.title(record) for record in undone.restored)
            survivor_title = kind.title(undone.survivor)
    except ValidationError as exc:
        reasons = [text for texts in field_errors(exc.messages).values() for text in texts]
        return _refused(kind, record_id, reasons, 422)
    except ConflictError:
        reasons = [_("Someone changed these records at the same moment: try again.")]
        return _refused(kind, record_id, reasons, 409)
    flash(_("The merge was undone: %(restored)s is back beside %(survivor)s.",
            restored=restored, survivor=survivor_title))
    return redirect(kind.home(record_id))


def _refused(
    kind: Mergeable, record_id: int, reasons: list[str], status: int
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        record = kind.service.get(uow, record_id)
        html = render_template(
            "crm_core/ui/merging/undo_refused.html",
            kind=kind,
            record=record,
            title=kind.title(record),
            reasons=reasons,
        )
    return html, status

