"""The deal's create and edit forms (``/sales/deals/new``, ``/sales/deals/<id>/edit``).

They edit the deal's fields and its contacts and lines as repeated rows (read and written
by :mod:`crm_sales.parts.deals.form_data`); saving an edit checks that nobody else saved
in between, else shows what differs (409).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.authz import require, visible
from crm_core.errors import ConflictError, ValidationError
from crm_core.ids import as_record_id
from crm_core.models import Contact, User
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.conflicts import Difference, form_version, posted_version
from crm_core.web.ui.forms import refuse_unstorable
from crm_core.web.ui.names import customer_names, owner_options
from crm_sales import web
from crm_sales.models import Opportunity
from crm_sales.parts.deals.common import ROLE_LABELS, all_pipelines, contact_names, role_label
from crm_sales.parts.deals.form_data import (
    deal_rows,
    deal_values,
    form_differences,
    form_errors,
    is_form_field,
    posted,
    put_rows,
)
from crm_sales.services import opportunities
from crm_sales.services.opportunities import EDIT

#: Contacts the form offers in its selects: the customer's first ones by name.
CONTACT_OPTIONS = 200


@web.ui.route("/deals/new", methods=["GET", "POST"], endpoint="new_deal")
@page
def new_deal() -> ResponseReturnValue:
    """The empty deal form (``?customer_id=`` preselects the customer); saving creates it."""
    crm, user = current_crm(), actor()
    require(user, EDIT)
    if request.method == "GET":
        values: dict[str, Any] = {
            "customer_id": request.args.get("customer_id", "").strip(),
            "owner_id": str(user.id), "currency": "EUR",
        }
        with crm.session_factory() as session:
            default = next((p for p in all_pipelines(session) if p.is_default), None)
        if default is not None:
            values["pipeline_id"] = str(default.id)
        return _form(None, values, put_rows(values, {}), {})
    data, values, counts = posted(request.form)
    try:
        refuse_unstorable(request.form, Opportunity)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            created = opportunities.create(uow, data)
            created_id, created_name = created.id, created.name
    except ValidationError as exc:
        return _form(None, values, counts, form_errors(exc.messages, values), status=422)
    flash(_("%(name)s was created.", name=created_name))
    return redirect(url_for("crm_sales.deal", deal_id=created_id))


@web.ui.route("/deals/<int:deal_id>/edit", methods=["GET", "POST"], endpoint="edit_deal")
@page
def edit_deal(deal_id: int) -> ResponseReturnValue:
    """The deal form filled in; saving checks that nobody else saved in between."""
    crm, user = current_crm(), actor()
    require(user, EDIT)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        deal = opportunities.get(uow, deal_id)
        stored = deal_values(deal)
        stored_rows = deal_rows(deal)
        heading = {"id": deal.id, "name": deal.name, "version": deal.version}
    if request.method == "GET":
        values = dict(stored)
        return _form(heading, values, put_rows(values, stored_rows), {})
    version = posted_version(request.form)
    data, values, counts = posted(request.form)
    try:
        refuse_unstorable(request.form, Opportunity)
        with crm.unit_of_work(actor=user, source="ui") as uow:
            saved = opportunities.update(uow, deal_id, data, expected_version=version)
            name = saved.name
    except ValidationError as exc:
        return _form(heading, values, counts, form_errors(exc.messages, values), status=422)
    except ConflictError:
        values["version"] = str(heading["version"])  # "save mine anyway" overwrites deliberately
        conflict = form_differences(stored, stored_rows, data, values)
        return _form(heading, values, counts, {}, conflict=conflict, status=409)
    flash(_("%(name)s was saved.", name=name))
    return redirect(url_for("crm_sales.deal", deal_id=deal_id))


def _form(
    deal: Mapping[str, Any] | None,
    values: dict[str, Any],
    counts: dict[str, int],
    errors: dict[str, list[str]],
    *,
    conflict: list[Difference] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    customer_id = as_record_id(values.get("customer_id") or "")
    owner_id = as_record_id(values.get("owner_id") or "")
    with crm.session_factory() as session:
        pipelines = all_pipelines(session)
        owners = owner_options(session, owner_id)
        customer_name = (customer_names(session, user, {customer_id}).get(customer_id)
                         if customer_id is not None else None)
        chosen = [as_record_id(values.get(f"contacts-{i}-contact_id") or "")
                  for i in range(counts["contacts"])]
        contact_options = _contact_options(
            session, user, customer_id if customer_name else None,
            [ident for ident in chosen if ident is not None],
        )
        if customer_name:
            customer_hint = _("Now: %(name)s (customer %(number)s).",
                              name=customer_name, number=customer_id)
        else:
            customer_hint = _("The number in the address of the customer's page.")
        other = [text for name, texts in errors.items() if not is_form_field(name)
                 for text in texts]
        return render_template(
            "crm_sales/deals/form.html",
            deal=deal,
            values=values,
            counts=counts,
            version=form_version(values, None),
            errors=errors,
            other_errors=other,
            conflict=conflict,
            pipelines=pipelines,
            pipeline_options=[(p.id, p.name) for p in pipelines],
            owner_options=owners,
            customer_hint=customer_hint,
            contact_options=contact_options,
            role_options=[(role, role_label(role)) for role in ROLE_LABELS],
            cancel_url=_cancel_url(deal, customer_id if customer_name else None),
        ), status


def _contact_options(
    session: Session, user: User, customer_id: int | None, chosen: list[int]
) -> list[tuple[int, str]] | None:
    """The contacts the form's selects offer: the customer's (the first
    :data:`CONTACT_OPTIONS` by name) and those already chosen; ``None`` without a customer
    (the form then asks for contacts' numbers)."""
    if customer_id is None:
        return None
    rows = session.execute(
        select(Contact.id, Contact.first_name, Contact.last_name)
        .where(Contact.customer_id == customer_id, Contact.archived.is_(False),
               visible(user, "contact"))
        .order_by(Contact.last_name, Contact.first_name, Contact.id)
        .limit(CONTACT_OPTIONS)
    )
    options = {row.id: " ".join(p for p in (row.first_name, row.last_name) if p) or str(row.id)
               for row in rows}
    missing = [ident for ident in chosen if ident not in options]
    if missing:
        names = contact_names(session, user, missing)
        for ident in missing:
            options[ident] = names.get(ident) or _("Contact %(number)s", number=ident)
    return list(options.items())


def _cancel_url(deal: Mapping[str, Any] | None, customer_id: int | None) -> str:
    if deal is not None:
        return url_for("crm_sales.deal", deal_id=deal["id"])
    if customer_id is not None:
        return url_for("crm_ui.customer_page", customer_id=customer_id)
    return url_for("crm_sales.board")
