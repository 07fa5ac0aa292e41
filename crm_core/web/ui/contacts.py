"""Contact pages: the list, the contact's page with its interactions, the create and edit forms.

The list searches (the API's ``q``), filters by customer and pages by keyset on
``(last_name, id)``; the customer names of a page come in one query. It prints as a
PDF (``/contacts.pdf``, the same search and filter) like the customer list. The form edits
emails and phone numbers as repeated rows (``emails-0-label``, ``emails-0-email``...):
the stored rows plus :data:`EMPTY_ROWS` empty ones; empty rows are dropped and the
order is kept, and the service's messages for a row show beside that row's field.
Edits carry the version the user saw, as on the customer form.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, selectinload
from werkzeug.datastructures import MultiDict

from crm_core.authz import has_permission, require, visible
from crm_core.errors import ConflictError, ValidationError
from crm_core.ids import as_record_id
from crm_core.models import Contact, Customer, Interaction, User
from crm_core.search import active, list_filter
from crm_core.services import contacts
from crm_core.web.api.pagination import Cursor, int_bounds
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import Difference, differences, form_version, posted_version
from crm_core.web.ui.forms import form_data, posted_rows, refuse_unstorable, row_errors
from crm_core.web.ui.names import channel_label, customer_names, owner_options
from crm_core.web.ui.paging import Keyset, split_page
from crm_core.web.ui.printing import pdf_response

#: Contacts per page of the list.
PAGE_SIZE = 50
#: Contacts in a printout of the list, at most.
PRINT_ROWS = 1000
#: Interactions per page of the contact page.
INTERACTIONS_PAGE = 25
#: The single-value fields of the form, in its order.
FORM_FIELDS = ("first_name", "last_name", "job_title", "customer_id", "owner_id")
#: The consent checkboxes.
CONSENTS = ("consent_email", "consent_phone")
#: The repeated rows of the form: list name -> the field holding each row's value.
ROWS = {"emails": "email", "phones": "number"}
#: Empty rows the form offers after the stored ones, per list.
EMPTY_ROWS = 2
#: How the conflict table names the fields.
FIELD_LABELS = {
    "first_name": _l("First name"), "last_name": _l("Last name"), "job_title": _l("Job title"),
    "customer_id": _l("Customer"), "owner_id": _l("Owner"), "emails": _l("Emails"),
    "phones": _l("Phones"), "consent_email": _l("Agrees to emails"),
    "consent_phone": _l("Agrees to calls"),
}
#: The order of the list.
BY_NAME = Keyset("last_name", Contact.last_name, Contact.id, id_bounds=int_bounds(Contact.id))
#: The order of the contact's interactions: newest first.
NEWEST_FIRST = Keyset(
    "occurred_at", Interaction.occurred_at, Interaction.id, descending=True,
    python_type=dt.datetime, id_bounds=int_bounds(Interaction.id),
)


# -- the list ---------------------------------------------------------------------------------


@blueprint.get("/contacts", endpoint="contacts")
@page
def contacts_list() -> ResponseReturnValue:
    """The contacts the user may see: search, customer filter, by last name, next page."""
    return _contact_list(PAGE_SIZE)


@blueprint.get("/contacts.pdf")
@page
def contacts_pdf() -> ResponseReturnValue:
    """The list as searched and filtered, as a PDF (at most :data:`PRINT_ROWS` contacts)."""
    return pdf_response(_contact_list(PRINT_ROWS, printout=True), "contacts.pdf")


def _contact_list(size: int, *, printout: bool = False) -> str:
    crm, user = current_crm(), actor()
    require(user, "contact.view")
    query = request.args.get("q", "").strip()
    raw_customer = request.args.get("customer_id", "").strip()
    customer_id = as_record_id(raw_customer) if raw_customer else None
    if raw_customer and customer_id is None:
        abort(400)
    with crm.session_factory() as session:
        clauses: list[ColumnElement[bool]] = [visible(user, "contact")]
        if query:
            clauses.append(
                list_filter(session, "contact", query, region=crm.settings.default_phone_region)
            )
        if customer_id is not None:
            # Served by (customer_id, last_name): keep the archived index out of the way.
            clauses += [Contact.customer_id == customer_id, active(Contact)]
        else:
            clauses.append(Contact.archived.is_(False))
        statement = select(Contact).where(*clauses).options(
            selectinload(Contact.emails), selectinload(Contact.phones)
        )
        cursor = BY_NAME.cursor()
        found = list(session.scalars(BY_NAME.page(statement, cursor, size)))
        rows, next_url = split_page(found, size, lambda last: url_for(
            "crm_ui.contacts", **{**request.args, "cursor": BY_NAME.token(last)}
        ))
        names = customer_names(session, user, {row.customer_id for row in rows} | {customer_id})
        columns = crm.list_columns("contact", user)
        cells = {column.name: column.values(rows) for column in columns}
    return render_template(
        "crm_core/ui/contacts/list.html",
        contacts=rows,
        columns=columns,
        cells=cells,
        customer_names=names,
        query=query,
        customer_id=customer_id,
        customer_name=names.get(customer_id) if customer_id else None,
        next_url=next_url,
        first_page=cursor is not None,
        can_edit=has_permission(user, "contact.edit"),
        printout=printout,
        pdf_url=url_for(  # the whole list as searched and filtered, not from this page on
            "crm_ui.contacts_pdf", **{k: v for k, v in request.args.items() if k != "cursor"}
        ),
    )


# -- the contact's page -----------------------------------------------------------------------


@blueprint.get("/contacts/<int:contact_id>")
@page
def contact_page(contact_id: int) -> ResponseReturnValue:
    """Details, consent, and the interactions with the contact, newest first."""
    crm, user = current_crm(), actor()
    before = NEWEST_FIRST.cursor("before")
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        contact = contacts.get(uow, contact_id)
        customer_name = None
        if contact.customer_id is not None:
            customer_name = uow.session.scalar(
                select(Customer.name).where(Customer.id == contact.customer_id)
            )
        owner = uow.session.get(User, contact.owner_id) if contact.owner_id else None
        items: list[Any] = []
        older_url = None
        if has_permission(user, "interaction.view"):
            found = _interactions(uow.session, user, contact.id, before)
            items, older_url = split_page(found, INTERACTIONS_PAGE, lambda last: url_for(
                "crm_ui.contact_page", contact_id=contact.id, before=NEWEST_FIRST.token(last)
            ))
        channels = crm.registry.channels
        return render_template(
            "crm_core/ui/contacts/detail.html",
            contact=contact,
            customer_name=customer_name,
            owner=owner,
            interactions=items,
            channel_labels={name: channel_label(name) for name in channels},
            older_url=older_url,
            newest_url=None if before is None else url_for(
                "crm_ui.contact_page", contact_id=contact.id
            ),
            show_interactions=has_permission(user, "interaction.view"),
            can_edit=has_permission(user, "contact.edit"),
            can_audit=has_permission(user, "audit.view"),
        )


def _interactions(
    session: Session, user: User, contact_id: int, before: Cursor | None
) -> list[Any]:
    """One page (plus one row, to know of the next) of the contact's interactions."""
    statement = select(
        Interaction.id, Interaction.channel, Interaction.subject, Interaction.body,
        Interaction.occurred_at, Interaction.direction,
    ).where(
        Interaction.contact_id == contact_id, active(Interaction), visible(user, "interaction")
    )
    return list(session.execute(NEWEST_FIRST.page(statement, before, INTERACTIONS_PAGE)))


# -- create and edit --------------------------------------------------------------------------


@blueprint.route("/contacts/new", methods=["GET", "POST"])
@page
def new_contact() -> ResponseReturnValue:
    """The empty contact form (``?customer_id=`` preselects the customer); saving creates it."""
    crm, user = current_crm(), actor()
    require(user, "contact.edit")
    if request.method == "GET":
        values = {"owner_id": str(user.id), "customer_id": request.args.get("customer_id", "")}
        counts = _put_rows(values, {name: [] for name in ROWS})
        return _form(None, values, counts, {})
    data, values, counts = _posted(request.form)
    try:
        refuse_unstorable(request.form, Contact)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            created = contacts.create(uow, data)
            created_id, created_name = created.id, created.full_name
    except ValidationError as exc:
        return _form(None, values, counts, row_errors(exc.messages, ROWS), status=422)
    flash(_("%(name)s was created.", name=created_name))
    return redirect(url_for("crm_ui.contact_page", contact_id=created_id))


@blueprint.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@page
def edit_contact(contact_id: int) -> ResponseReturnValue:
    """The contact form filled in; saving checks that nobody else saved in between."""
    crm, user = current_crm(), actor()
    require(user, "contact.edit")
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        contact = contacts.get(uow, contact_id)
        stored = _stored_values(contact)
        stored_rows = _stored_rows(contact)
    if request.method == "GET":
        values = dict(stored)
        return _form(contact, values, _put_rows(values, stored_rows), {})
    version = posted_version(request.form)
    data, values, counts = _posted(request.form)
    try:
        refuse_unstorable(request.form, Contact)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            contacts.update(uow, contact_id, data, expected_version=version)
    except ValidationError as exc:
        return _form(contact, values, counts, row_errors(exc.messages, ROWS), status=422)
    except ConflictError:
        values["version"] = str(contact.version)  # "save mine anyway" overwrites deliberately
        conflict = _differences(stored, stored_rows, data, values)
        return _form(contact, values, counts, {}, conflict=conflict, status=409)
    flash(_("%(name)s was saved.", name=_name(data, contact)))
    return redirect(url_for("crm_ui.contact_page", contact_id=contact_id))


def _form(
    contact: Contact | None,
    values: dict[str, Any],
    counts: dict[str, int],
    errors: dict[str, list[str]],
    *,
    conflict: list[Difference] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    owner_id = as_record_id(values.get("owner_id") or "")
    customer_id = as_record_id(values.get("customer_id") or "")
    with crm.session_factory() as session:
        owners = owner_options(session, owner_id)
        customer_name = customer_names(session, user, {customer_id}).get(customer_id)
    if customer_name:
        customer_hint = _("Now: %(name)s (customer %(number)s). Empty: no customer.",
                          name=customer_name, number=customer_id)
    else:
        customer_hint = _("The number in the address of the customer's page; empty: no customer.")
    version = form_version(values, contact)
    other = [text for name, texts in errors.items() if not _is_form_field(name) for text in texts]
    return render_template(
        "crm_core/ui/contacts/form.html",
        contact=contact,
        values=values,
        counts=counts,
        version=version,
        errors=errors,
        other_errors=other,
        conflict=conflict,
        owner_options=owners,
        customer_hint=customer_hint,
        cancel_url=_cancel_url(contact, customer_id if customer_name else None),
    ), status


def _cancel_url(contact: Contact | None, customer_id: int | None) -> str:
    if contact is not None:
        return url_for("crm_ui.contact_page", contact_id=contact.id)
    if customer_id is not None:
        return url_for("crm_ui.customer_page", customer_id=customer_id)
    return url_for("crm_ui.contacts")


# -- the form's data --------------------------------------------------------------------------


def _posted(form: MultiDict[str, str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, int]]:
    """The posted form as service data, as the values to show again, and the rows per list."""
    data = form_data(form, FORM_FIELDS)
    for name in ("first_name", "last_name"):
        if name in data:
            data[name] = data[name] or ""
    for flag in CONSENTS:
        data[flag] = bool(form.get(flag))
    values: dict[str, Any] = {name: form.get(name, "") for name in FORM_FIELDS}
    values.update({flag: "1" if data[flag] else "" for flag in CONSENTS})
    if "version" in form:
        values["version"] = form.get("version", "")
    rows: dict[str, list[dict[str, str]]] = {}
    for name, value_field in ROWS.items():
        posted = posted_rows(form, name, value_field)
        if posted is not None:
            data[name] = posted
        rows[name] = posted or []
    return data, values, _put_rows(values, rows)


def _put_rows(values: dict[str, Any], rows: Mapping[str, list[dict[str, str]]]) -> dict[str, int]:
    """Write ``rows`` into ``values`` as the form's fields; return each list's row count."""
    counts = {}
    for name, value_field in ROWS.items():
        items = rows.get(name, [])
        for index, item in enumerate(items):
            values[f"{name}-{index}-label"] = item.get("label", "")
            values[f"{name}-{index}-{value_field}"] = item.get(value_field, "")
        counts[name] = len(items) + EMPTY_ROWS
    return counts


def _stored_values(contact: Contact) -> dict[str, Any]:
    """What the form shows for a stored contact (text, as the inputs hold it)."""
    values: dict[str, Any] = {
        name: "" if getattr(contact, name) is None else str(getattr(contact, name))
        for name in FORM_FIELDS
    }
    values.update({flag: "1" if getattr(contact, flag) else "" for flag in CONSENTS})
    values["version"] = str(contact.version)
    return values


def _stored_rows(contact: Contact) -> dict[str, list[dict[str, str]]]:
    return {
        name: [
            {"label": item.label, value_field: getattr(item, value_field)}
            for item in getattr(contact, name)
        ]
        for name, value_field in ROWS.items()
    }


def _differences(
    stored: Mapping[str, Any],
    stored_rows: Mapping[str, list[dict[str, str]]],
    data: Mapping[str, Any],
    values: Mapping[str, Any],
) -> list[Difference]:
    """The fields where the stored contact and the user's form differ, as text."""
    found = differences(stored, values, FORM_FIELDS, FIELD_LABELS)
    found += differences(_consents(stored), _consents(values), CONSENTS, FIELD_LABELS)
    for name, value_field in ROWS.items():
        if name not in data:
            continue
        theirs = _row_text(stored_rows.get(name, []), value_field)
        yours = _row_text(data[name], value_field)
        if theirs != yours:
            found.append(Difference(str(FIELD_LABELS[name]), theirs, yours))
    return found


# -- helpers ----------------------------------------------------------------------------------


def _is_form_field(name: str) -> bool:
    return name in FORM_FIELDS or name in CONSENTS or name.split("-", 1)[0] in ROWS


def _name(data: Mapping[str, Any], contact: Contact) -> str:
    parts = (data.get("first_name", contact.first_name), data.get("last_name", contact.last_name))
    return " ".join(part for part in parts if part) or contact.full_name


def _row_text(rows: Iterable[Mapping[str, str]], value_field: str) -> str:
    return "; ".join(
        f"{row.get('label') or 'work'}: {row.get(value_field, '')}" for row in rows
    )


def _consents(values: Mapping[str, Any]) -> dict[str, str]:
    """The consent checkboxes of ``values`` as the conflict table shows them: yes or no."""
    return {flag: _("yes") if values.get(flag) else _("no") for flag in CONSENTS}
