"""The export page: what the signed-in user may export, downloaded in each of its formats.

``/exports`` lists :func:`~crm_core.exports.available_exports` for the user, each with
its formats (CSV, JSON Lines, vCard for contacts) and the options *Include archived*
and *Excel (BOM)*. A download is ``/exports/<name>.<format>``, made by the same code as
the API's (:func:`~crm_core.exports.prepare_export` and
:func:`crm_core.web.api.exports.export_response`) with the signed-in user as the
actor: their permissions, only the records they may see, streamed while it is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from crm_core.errors import NotFoundError, PermissionDenied
from crm_core.exports import ExportError, Source, available_exports, prepare_export
from crm_core.web.api.exports import export_response, query_flag
from crm_core.web.api.problems import ApiProblem
from crm_core.web.ui import blueprint
from crm_core.web.ui.access import actor, current_crm, page

#: How the page names the formats.
FORMAT_LABELS = {"csv": _l("CSV"), "jsonl": _l("JSON Lines"), "vcf": _l("vCard")}
#: Core's exports as the page names them: title, description, the label of its buttons.
CORE_EXPORTS = {
    "customers": (
        _l("Customers"),
        _l("Every customer the user may see, with the API's fields."),
        _l("Download customers as"),
    ),
    "contacts": (
        _l("Contacts"),
        _l("Every contact the user may see, with the API's fields."),
        _l("Download contacts as"),
    ),
    "interactions": (
        _l("Interactions"),
        _l("Every interaction the user may see, with the API's fields."),
        _l("Download interactions as"),
    ),
}


@dataclass(frozen=True)
class ExportCard:
    """One export as the page shows it."""

    name: str
    formats: tuple[str, ...]
    title: str
    description: str
    group_label: str
    """What the group of download buttons is called (``aria-label``)."""


@blueprint.get("/exports", endpoint="exports")
@page
def exports_page() -> ResponseReturnValue:
    """The exports the user may make, each with a download button per format and options."""
    crm, user = current_crm(), actor()
    sources = available_exports(crm, user)
    if not sources:
        raise PermissionDenied(
            _(
                "you need the permission to view customers, contacts, interactions or a "
                "plugin's records to export them"
            )
        )
    return render_template(
        "crm_core/ui/exports.html", exports=[_card(source) for source in sources],
        labels=FORMAT_LABELS,
    )


def _card(source: Source) -> ExportCard:
    """How the page shows ``source``: core's exports in the user's language; a plugin's
    with its name as a title and the description it registered."""
    known = CORE_EXPORTS.get(source.name) if source.plugin == "crm_core" else None
    if known is not None:
        title, description, group_label = known
        return ExportCard(source.name, tuple(source.formats), str(title), str(description),
                          str(group_label))
    title = source.name.replace("_", " ").capitalize()
    return ExportCard(
        source.name, tuple(source.formats), title, source.description,
        _("Download %(what)s as", what=title.lower()),
    )


@blueprint.get("/exports/<name>.<format_name>")
@page
def export_download(name: str, format_name: str) -> ResponseReturnValue:
    """The export ``name`` as a ``format_name`` file, streamed (as the API's download).

    ``include_archived=true`` adds archived records; ``excel=true`` starts a CSV file
    with a byte order mark (other formats ignore it, as the page offers it for all).
    """
    crm, user = current_crm(), actor()
    try:
        include_archived = query_flag("include_archived")
        excel = query_flag("excel") and format_name == "csv"
    except ApiProblem:
        abort(400)
    try:
        export = prepare_export(
            crm, name, format_name, actor=user, include_archived=include_archived, excel=excel
        )
    except ExportError as exc:
        raise NotFoundError("export", f"{name}.{format_name}") from exc
    return export_response(export)
