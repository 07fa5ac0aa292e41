"""Record history pages: who changed a customer or a contact, when, from where, and how.

The entries come from :func:`crm_core.history.history` (as the API's ``GET
/<records>/<id>/history``): newest first, paged by the id of the last entry shown
(``?before=``), needing ``audit.view`` and a record the user may see. Each changed
field shows as old → new.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import abort, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm_core.authz import require
from crm_core.errors import ValidationError
from crm_core.history import HistoryEntry, history
from crm_core.services import contacts, customers
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page
from crm_core.web.ui.forms import field_label
from crm_core.web.ui.names import user_names
from crm_core.web.ui.paging import id_arg

#: Audit entries per page.
PAGE_SIZE = 50
#: Shown for a value that was empty.
NOTHING = "—"
#: What an entry did (its stored ``action``), as the page says it; others: ``_`` as spaces.
ACTIONS = {
    "created": _l("created"),
    "updated": _l("updated"),
    "archived": _l("archived"),
    "deleted": _l("deleted"),
    "merged": _l("merged"),
    "merged_into": _l("merged into"),
    "merge_undone": _l("merge undone"),
}
#: Where a change came from (its stored ``source``), as the page's badge says it.
SOURCES = {
    "ui": _l("ui"),
    "api": _l("api"),
    "cli": _l("cli"),
    "import": _l("import"),
    "worker": _l("worker"),
}


@dataclass(frozen=True)
class Change:
    """One field of an entry, as the page shows it."""

    field: str
    old: str
    new: str


@blueprint.get("/customers/<int:customer_id>/history")
@page
def customer_history(customer_id: int) -> ResponseReturnValue:
    """The customer's audit entries, newest first."""
    return _history_page("customer", customer_id)


@blueprint.get("/contacts/<int:contact_id>/history")
@page
def contact_history(contact_id: int) -> ResponseReturnValue:
    """The contact's audit entries, newest first."""
    return _history_page("contact", contact_id)


def _history_page(entity: str, record_id: int) -> ResponseReturnValue:
    crm, user = current_crm(), actor()
    require(user, f"{entity}.view")
    require(user, "audit.view")
    before_id = id_arg("before", lowest=1)
    with crm.unit_of_work(actor=user, source="ui", write=False) as uow:
        service = customers if entity == "customer" else contacts
        record = service.get(uow, record_id)  # not one the user may see: 404
        try:
            found = history(uow.session, user, entity, record.id, before_id=before_id,
                            limit=PAGE_SIZE)
        except ValidationError:
            abort(400)
        names = user_names(uow.session, {entry.actor_id for entry in found.entries})
        name = record.name if entity == "customer" else record.full_name
    endpoint = f"crm_ui.{entity}_history"
    if entity == "customer":
        crumbs = [(_("Customers"), url_for("crm_ui.customers")),
                  (name, url_for("crm_ui.customer_page", customer_id=record_id))]
    else:
        crumbs = [(_("Contacts"), url_for("crm_ui.contacts")),
                  (name, url_for("crm_ui.contact_page", contact_id=record_id))]
    older_url = None
    if found.next_before_id is not None:
        older_url = url_for(endpoint, before=found.next_before_id, **{f"{entity}_id": record_id})
    return render_template(
        "crm_core/ui/history.html",
        name=name,
        crumbs=crumbs,
        entries=[(entry, _who(entry, names), changes(entry)) for entry in found.entries],
        older_url=older_url,
        newest_url=url_for(endpoint, **{f"{entity}_id": record_id}) if before_id else None,
        actions=ACTIONS,
        sources=SOURCES,
    )


def changes(entry: HistoryEntry) -> list[Change]:
    """The entry's changed fields, in their stored order, each as old and new text."""
    shown = []
    for field, value in entry.changes.items():
        if isinstance(value, list | tuple) and len(value) == 2:
            old, new = value
        else:
            old, new = None, value
        shown.append(Change(field_label(str(field)), shown_value(old), shown_value(new)))
    return shown


def shown_value(value: Any) -> str:
    """A stored value as text: empty as a dash, yes/no, lists and labelled items joined."""
    if value is None or value == "" or value == [] or value == {}:
        return NOTHING
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list | tuple):
        return "; ".join(shown_value(item) for item in value)
    if isinstance(value, Mapping):
        if "label" in value and len(value) == 2:
            other = next(item for key, item in value.items() if key != "label")
            return f"{value['label']}: {shown_value(other)}"
        return ", ".join(f"{key}: {shown_value(item)}" for key, item in value.items())
    return str(value)


def _who(entry: HistoryEntry, names: Mapping[int, str]) -> str:
    if entry.actor_id is not None and entry.actor_id in names:
        return names[entry.actor_id]
    return entry.actor_email or _("System")
