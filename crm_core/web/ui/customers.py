"""Customer pages: the list, the 360° page, the create and edit forms, quick logging.

The list searches, filters and sorts on indexed columns and pages with a cursor (no
``OFFSET``, no ``COUNT``); the customer page shows details, contacts, the timeline
(interactions and plugins' entries, newest first) and plugins' panels, with a form that
logs a call, note, email or meeting in two clicks. Edits carry the version the user
saw: when someone else saved first, the form comes back with both versions side by side.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import selectinload

from crm_core.authz import has_permission, require, visible
from crm_core.errors import ConflictError, ValidationError
from crm_core.models import Contact, Customer, CustomerKind, Interaction, LifecycleStage, User
from crm_core.search import list_filter
from crm_core.services import customers, interactions, saved_views
from crm_core.timeline import TimelineCursor, TimelinePage, timeline
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import Difference, differences, form_version, posted_version
from crm_core.web.ui.forms import field_errors, form_data, refuse_unstorable
from crm_core.web.ui.merging import undo_offer
from crm_core.web.ui.names import (
    channel_label,
    kind_label,
    owner_options,
    stage_label,
    user_names,
)
from crm_core.web.ui.paging import Keyset, split_page
from crm_core.web.ui.printing import pdf_response

#: Customers per page of the list.
PAGE_SIZE = 50
#: Customers in a printout of the list, at most.
PRINT_ROWS = 1000
#: Timeline entries per page of the customer page.
TIMELINE_PAGE = 25
#: The fields of the customer form, in its order.
FORM_FIELDS = (
    "kind", "name", "email", "phone", "website", "street", "postal_code", "city", "region",
    "country", "industry", "lifecycle_stage", "owner_id", "tags",
)
#: Sort orders of the list, by their query value.
SORTS = {
    "name": Keyset("name", Customer.name, Customer.id),
    "-name": Keyset("name", Customer.name, Customer.id, descending=True),
    "newest": Keyset("id", Customer.id, Customer.id, descending=True, python_type=int),
}
#: The channels the quick form offers as buttons, when registered, with their buttons' texts.
QUICK_CHANNELS = {
    "call": _l("Log call"),
    "note": _l("Log note"),
    "email": _l("Log email"),
    "meeting": _l("Log meeting"),
}


# -- the list ---------------------------------------------------------------------------------


@blueprint.get("/customers", endpoint="customers")
@page
def customers_list() -> ResponseReturnValue:
    """The customers the user may see: search, stage and owner filters, sort, next page."""
    return _customer_list(PAGE_SIZE)


@blueprint.get("/customers.pdf")
@page
def customers_pdf() -> ResponseReturnValue:
    """The list as filtered and sorted, as a PDF (at most :data:`PRINT_ROWS` customers)."""
    return pdf_response(_customer_list(PRINT_ROWS, printout=True), "customers.pdf")


@blueprint.post("/customers/views")
@page
def save_customer_view() -> ResponseReturnValue:
    """Save the list's current filters under a name (the same name replaces its view)."""
    crm, user = current_crm(), actor()
    require(user, "customer.view")
    data = {"entity": "customer", "name": request.form.get("name", ""),
            "query": request.form.get("query", "")}
    query = saved_views.clean_query(data["query"])
    try:
        with crm.unit_of_work(actor=user, source="ui") as uow:
            saved_views.save(uow, data)
    except ValidationError as exc:
        # A one-field form above the list: its message comes back over the same list.
        texts = [text for texts in field_errors(exc.messages).values() for text in texts]
        flash(_("The view was not saved: %(reasons)s", reasons=" ".join(texts)))
    else:
        flash(_("View “%(name)s” saved.", name=data["name"].strip()))
    return redirect(url_for("crm_ui.customers") + (f"?{query}" if query else ""))


@blueprint.post("/customers/views/<int:view_id>/delete")
@page
def delete_customer_view(view_id: int) -> ResponseReturnValue:
    """Delete one of the user's saved views of the list."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui") as uow:
        saved_views.delete(uow, view_id)
    flash(_("View deleted."))
    return redirect(url_for("crm_ui.customers"))


def _customer_list(size: int, *, printout: bool = False) -> str:
    crm, user = current_crm(), actor()
    require(user, "customer.view")
    query = request.args.get("q", "").strip()
    stage = request.args.get("stage", "")
    owner = request.args.get("owner", "")
    sort_name = request.args.get("sort", "name")
    if sort_name not in SORTS or (stage and stage not in _values(LifecycleStage)):
        abort(400)
    keyset = SORTS[sort_name]
    with crm.session_factory() as session:
        clauses: list[ColumnElement[bool]] = [visible(user, "customer")]
        if query:
            clauses.append(
                list_filter(session, "customer", query, region=crm.settings.default_phone_region)
            )
        if stage:
            clauses.append(Customer.lifecycle_stage == stage)
        if owner == "me":
            clauses.append(Customer.owner_id == user.id)
        clauses.append(Customer.archived.is_(False))
        cursor = keyset.cursor()
        found = list(session.scalars(keyset.page(select(Customer).where(*clauses), cursor, size)))
        rows, next_url = split_page(found, size, lambda last: url_for(
            "crm_ui.customers", **{**request.args, "cursor": keyset.token(last)}
        ))
        owners = user_names(session, {row.owner_id for row in rows})
        columns = crm.list_columns("customer", user)
        cells = {column.name: column.values(rows) for column in columns}
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        views = [(view.id, view.name, view.query) for view in saved_views.of(uow, "customer")]
    return render_template(
        "crm_core/ui/customers/list.html",
        customers=rows,
        owners=owners,
        query=query,
        stage=stage,
        owner=owner,
        sort=sort_name,
        stages=[(code, stage_label(code)) for code in _values(LifecycleStage)],
        next_url=next_url,
        first_page=cursor is not None,
        printout=printout,
        pdf_url=url_for(  # the whole list as searched and filtered, not from this page on
            "crm_ui.customers_pdf", **{k: v for k, v in request.args.items() if k != "cursor"}
        ),
        columns=columns,
        cells=cells,
        views=views,
        view_query=saved_views.clean_query(request.query_string.decode("utf-8", "replace")),

    )


# -- the 360° page ----------------------------------------------------------------------------


@blueprint.get("/customers/<int:customer_id>")
@page
def customer_page(customer_id: int) -> ResponseReturnValue:
    """Details, contacts, timeline, plugins' panels and the quick logging form."""
    token = request.args.get("before")
    try:
        before = TimelineCursor.decode(token) if token else None
    except ValidationError:
        abort(400)
    return _customer_page(customer_id, before, tab=request.args.get("tab"))


@blueprint.get("/customers/<int:customer_id>.pdf")
@page
def customer_pdf(customer_id: int) -> ResponseReturnValue:
    """The customer page as a PDF: details, contacts, panels and the newest timeline entries."""
    html, _status = _customer_page(customer_id, None)
    return pdf_response(html, f"customer-{customer_id}.pdf")


@blueprint.post("/customers/<int:customer_id>/interactions")
@page
def log_interaction(customer_id: int) -> ResponseReturnValue:
    """Log a call, note, email or meeting from the customer page (now, unless a time is given)."""
    crm, user = current_crm(), actor()
    data = form_data(request.form, ("channel", "subject", "body", "contact_id", "direction"))
    data.update(
        customer_id=customer_id,
        subject=data.get("subject") or "",
        body=data.get("body") or "",
        user_id=user.id,
    )
    errors: dict[str, list[str]] = {}
    try:
        data["occurred_at"] = _moment(request.form.get("occurred_at", ""), crm.settings)
    except ValueError:
        errors["occurred_at"] = [_("Give a date and time, e.g. %(example)s.",
                                   example="2026-12-02 14:30")]
    if not errors:
        try:
            refuse_unstorable(request.form, Interaction)
            with crm.unit_of_work(actor=user, source="ui") as uow:
                customers.get(uow, customer_id)  # a customer the user may not see: 404
                interactions.create(uow, data)
        except ValidationError as exc:
            errors = field_errors(exc.messages)
    if errors:
        return _customer_page(customer_id, None, errors, request.form.to_dict(), status=422)
    channel = data.get("channel") or ""
    if channel in crm.registry.channels:
        flash(_("%(channel)s logged.", channel=channel_label(channel)))
    else:
        flash(_("Interaction logged."))
    return redirect(url_for("crm_ui.customer_page", customer_id=customer_id))


def _customer_page(
    customer_id: int,
    before: TimelineCursor | None,
    log_errors: dict[str, list[str]] | None = None,
    log_values: dict[str, str] | None = None,
    *,
    tab: str | None = None,
    status: int = 200,
) -> tuple[str, int]:
    """The customer's page; ``tab`` opens a plugin's tab in place of the timeline."""
    crm, user = current_crm(), actor()
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        customer = customers.get(uow, customer_id)
        people: list[Contact] = []
        if has_permission(user, "contact.view"):
            people = list(
                uow.session.scalars(
                    select(Contact)
                    .where(
                        Contact.customer_id == customer.id,
                        Contact.archived.is_(False),
                        visible(user, "contact"),
                    )
                    .order_by(Contact.last_name, Contact.first_name, Contact.id)
                    .options(selectinload(Contact.emails), selectinload(Contact.phones))
                )
            )
        tabs = crm.customer_tabs(customer, user)
        opened = next((t for t in tabs if t.name == tab), None) if tab else None
        if tab and opened is None:
            abort(404)
        tab_html = None
        if opened is not None:  # the tab instead of the timeline: only its own queries run
            tab_html = Markup(render_template(opened.template, **opened.load()))
            entries = TimelinePage([], None)
        else:
            entries = timeline(
                crm, uow.session, user, customer.id, before=before, limit=TIMELINE_PAGE
            )
        owner = uow.session.get(User, customer.owner_id) if customer.owner_id else None
        panels = crm.customer_panels(customer, user)
        older_url = None
        if entries.next_cursor is not None:
            older_url = url_for("crm_ui.customer_page", customer_id=customer.id,
                                before=entries.next_cursor.encode())
        html = render_template(
            "crm_core/ui/customers/detail.html",
            customer=customer,
            contacts=people,
            contact_options=[(c.id, f"{c.first_name} {c.last_name}".strip()) for c in people],
            owner=owner,
            entries=entries.entries,
            older_url=older_url,
            newest_url=url_for("crm_ui.customer_page", customer_id=customer.id)
            if before is not None else None,
            panels=panels,
            tabs=tabs,
            opened_tab=opened,
            tab_html=tab_html,
            renderers={
                kind: renderer.template
                for kind, renderer in crm.registry.timeline_renderers.items()
            },
            channels=_quick_channels(),
            can_log=has_permission(user, "interaction.edit"),
            can_edit=has_permission(user, "customer.edit"),
            undo=undo_offer(uow, "customer", customer),
            log_errors=log_errors or {},
            log_values=log_values or {},
        )
    return html, status


# -- create and edit --------------------------------------------------------------------------


@blueprint.route("/customers/new", methods=["GET", "POST"])
@page
def new_customer() -> ResponseReturnValue:
    """The empty customer form; saving creates the customer and opens its page."""
    crm, user = current_crm(), actor()
    require(user, "customer.edit")
    values: dict[str, Any] = {"kind": "company", "lifecycle_stage": "lead", "owner_id": user.id}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        data = form_data(request.form, FORM_FIELDS, lists=("tags",))
        values = {**request.form.to_dict()}
        try:
            refuse_unstorable(request.form, Customer)
            with crm.unit_of_work(actor=user, source="ui") as uow:
                created = customers.create(uow, data)
        except ValidationError as exc:
            errors = field_errors(exc.messages)
        else:
            flash(_("%(name)s was created.", name=created.name))
            return redirect(url_for("crm_ui.customer_page", customer_id=created.id))
    return _form(None, values, errors, status=422 if errors else 200)


@blueprint.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
@page
def edit_customer(customer_id: int) -> ResponseReturnValue:
    """The customer form filled in; saving checks that nobody else saved in between."""
    crm, user = current_crm(), actor()
    require(user, "customer.edit")
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        customer = customers.get(uow, customer_id)
        stored = _form_values(customer)
    if request.method == "GET":
        return _form(customer, stored, {})
    data = form_data(request.form, FORM_FIELDS, lists=("tags",))
    values = request.form.to_dict()
    version = posted_version(request.form)
    try:
        refuse_unstorable(request.form, Customer)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            customers.update(uow, customer_id, data, expected_version=version)
    except ValidationError as exc:
        return _form(customer, values, field_errors(exc.messages), status=422)
    except ConflictError:
        conflict = differences(stored, values, FORM_FIELDS)
        values["version"] = str(customer.version)  # "save mine anyway" overwrites deliberately
        return _form(customer, values, {}, conflict=conflict, status=409)
    flash(_("%(name)s was saved.", name=data.get("name") or customer.name))
    return redirect(url_for("crm_ui.customer_page", customer_id=customer_id))


def _form(
    customer: Customer | None,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    *,
    conflict: list[Difference] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    with current_crm().session_factory() as session:
        owners = owner_options(session)
    version = form_version(values, customer)
    return render_template(
        "crm_core/ui/customers/form.html",
        customer=customer,
        values=values,
        version=version,
        errors=errors,
        conflict=conflict,
        kind_options=[(kind, kind_label(kind)) for kind in _values(CustomerKind)],
        stage_options=[(stage, stage_label(stage)) for stage in _values(LifecycleStage)],
        owner_options=owners,
    ), status


def _form_values(customer: Customer) -> dict[str, Any]:
    """What the form shows for a stored customer (text, as the inputs hold it)."""
    values: dict[str, Any] = {name: getattr(customer, name, None) for name in FORM_FIELDS}
    values["tags"] = ", ".join(customer.tags)
    values["version"] = customer.version
    return {name: "" if value is None else value for name, value in values.items()}


# -- helpers ----------------------------------------------------------------------------------


def _values(enum: Any) -> list[str]:
    return [member.value for member in enum]


def _quick_channels() -> list[tuple[str, str]]:
    """The quick form's buttons: (channel, button text) of the registered quick channels."""
    registered = current_crm().registry.channels
    return [(name, str(text)) for name, text in QUICK_CHANNELS.items() if name in registered]


def _moment(text: str, settings: Any) -> dt.datetime:
    """A ``datetime-local`` input in the installation's time zone; empty: now."""
    text = text.strip()
    if not text:
        return dt.datetime.now(dt.UTC)
    moment = dt.datetime.fromisoformat(text.replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(settings))
    return moment


def _zone(settings: Any) -> dt.tzinfo:
    name = getattr(settings, "timezone", None) or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC
