"""The bundled web UI: server-rendered pages for people (the API serves programs).

Every page needs a signed-in user (else the sign-in page, coming back afterwards) and
goes through the same services as the API: the same validation messages, the same
permissions and record visibility, the same audit trail (source ``ui``). Plugins add
navigation entries (``crm_menu_items``), customer-page panels (``crm_customer_panels``)
and pages of their own (``crm_register_blueprints``, extending
``crm_core/ui/layout.html``).

Styling is one stylesheet written here (``static/crm_core/ui.css``); pages work without
JavaScript, and charts are SVG rendered on the server (:mod:`crm_core.web.ui.charts`).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from flask import Blueprint, Flask, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from crm_core.errors import HookError, NotFoundError, PermissionDenied
from crm_core.extensions import MenuItem, Panel
from crm_core.imports.mapping import import_permissions
from crm_core.web.ui.access import current_crm, signed_in_actor
from crm_core.web.ui.names import (
    channel_badge,
    channel_label,
    kind_label,
    stage_badge,
    stage_label,
)
from crm_core.web.ui.printing import PrintoutUnavailable

log = logging.getLogger(__name__)

blueprint = Blueprint(
    "crm_ui",
    __name__,
    static_folder="../static",
    static_url_path="/static/ui",
)

#: The administration permissions: holding any one of them shows the *Admin* entry (as does
#: a plugin's settings page the user may open, e.g. crm-sales's pipelines for sales.admin).
ADMIN_PERMISSIONS = ("user.admin", "webhook.admin", "plugin.admin")
#: Core's own navigation entries, before plugins' entries, each with the permissions of
#: which the user needs one (none: everyone signed in).
CORE_MENU: tuple[tuple[MenuItem, tuple[str, ...]], ...] = (
    (MenuItem(_l("Dashboard"), "crm_ui.dashboard", order=0), ()),
    (MenuItem(_l("Customers"), "crm_ui.customers", order=10), ("customer.view",)),
    (MenuItem(_l("Contacts"), "crm_ui.contacts", order=20), ("contact.view",)),
    (MenuItem(_l("Import"), "crm_ui.imports", order=60),
     ("customer.edit", "contact.edit", "interaction.edit")),
    (MenuItem(_l("Export"), "crm_ui.exports", order=70),
     ("customer.view", "contact.view", "interaction.view")),
    (MenuItem(_l("Admin"), "crm_ui.admin", order=90), ADMIN_PERMISSIONS),
)

#: What the 404 page says of the records people look up most, one sentence each (others:
#: "There is no <entity> <id> you may see.").
NOT_FOUND = {
    "customer": _l("There is no customer %(ident)s you may see."),
    "contact": _l("There is no contact %(ident)s you may see."),
    "interaction": _l("There is no interaction %(ident)s you may see."),
    "user": _l("There is no user %(ident)s you may see."),
    "role": _l("There is no role %(ident)s you may see."),
    "team": _l("There is no team %(ident)s you may see."),
}

#: The modules whose views make up the UI (each adds its views to :data:`blueprint`).
PAGES = (
    "crm_core.web.ui.dashboard",
    "crm_core.web.ui.customers",
    "crm_core.web.ui.contacts",
    "crm_core.web.ui.history",
    "crm_core.web.ui.merging",
    "crm_core.web.ui.imports",
    "crm_core.web.ui.exports",
    "crm_core.web.ui.admin",
    "crm_core.web.ui.admin_users",
    "crm_core.web.ui.admin_roles",
    "crm_core.web.ui.admin_teams",
    "crm_core.web.ui.tokens",
    "crm_core.web.ui.profile",
    "crm_core.web.ui.admin_webhooks",
    "crm_core.web.ui.admin_deliveries",
)


def init_ui(app: Flask) -> None:
    """Register the UI's pages, its navigation and its error pages on ``app``."""
    for module in PAGES:
        importlib.import_module(module)
    app.register_blueprint(blueprint)
    app.context_processor(_navigation)
    app.add_template_global(render_panel)
    for name in (stage_label, stage_badge, kind_label, channel_label, channel_badge):
        app.add_template_global(name)


def render_panel(panel: Panel) -> Markup:
    """A plugin's panel or widget: its template rendered with its context's keys."""
    return Markup(render_template(panel.template, **panel.context))  # autoescaped by Jinja


def _navigation() -> dict[str, Any]:
    """``navigation``: the entries the signed-in user may use, core's first."""

    def entries() -> list[MenuItem]:
        actor = signed_in_actor()
        if actor is None:
            return []
        granted = actor.permissions
        own = [
            item for item, needed in CORE_MENU
            if not needed or granted.intersection(needed)
            or (item.endpoint == "crm_ui.admin" and administers(actor))
            or (item.endpoint == "crm_ui.imports"
                and granted.intersection(import_permissions(current_crm())))
        ]
        return own + current_crm().menu_items(actor)

    return {"navigation": entries}


def administers(actor: Any) -> bool:
    """Whether ``actor`` may open ``/admin``: an administration permission, or the
    permission of one of the plugins' settings pages (crm-sales's pipelines need
    ``sales.admin``). A settings page without a permission counts for administrators only."""
    granted = actor.permissions
    if granted.intersection(ADMIN_PERMISSIONS):
        return True
    return any(
        item.permission in granted for item in current_crm().settings_pages(actor)
        if item.permission
    )


def use_error_pages(pages: Blueprint) -> None:
    """Answer the errors of ``pages``' views with the UI's error pages (a plugin's pages too).

    403 for :class:`PermissionDenied`, 404 for :class:`NotFoundError`, 500 naming the
    plugin for :class:`HookError` (nothing was saved), 503 when PDFs cannot be made.
    Without this, errors of a blueprint answer as the API does (problem documents).
    Call it once, where the blueprint is made (before any app registers it).
    """
    pages.register_error_handler(PermissionDenied, permission_denied)
    pages.register_error_handler(NotFoundError, not_found)
    pages.register_error_handler(HookError, plugin_failed)
    pages.register_error_handler(PrintoutUnavailable, printout_unavailable)


def permission_denied(error: PermissionDenied) -> ResponseReturnValue:
    """A page or an action the user may not use: 403, saying which permission is missing."""
    return _error_page(403, _("Not allowed"), _("You may not do this: %(reason)s.", reason=error))


def not_found(error: NotFoundError) -> ResponseReturnValue:
    """A record that does not exist or that the user may not see: 404."""
    sentence = NOT_FOUND.get(error.entity)
    if sentence is not None:
        message = str(sentence) % {"ident": error.ident}
    else:
        message = _("There is no %(entity)s %(ident)s you may see.",
                    entity=error.entity, ident=error.ident)
    return _error_page(404, _("Not found"), message)


def plugin_failed(error: HookError) -> ResponseReturnValue:
    """A plugin's hook failed during a write: nothing was saved; the log has the details."""
    log.error("hook %s of plugin %s failed: %s", error.hook, error.plugin, error.__cause__)
    return _error_page(
        500,
        _("A plugin failed"),
        _("The plugin %(plugin)s failed, so nothing was saved.", plugin=repr(error.plugin)),
    )


def printout_unavailable(error: PrintoutUnavailable) -> ResponseReturnValue:
    """A PDF was asked for on a server that cannot make them: 503, naming what is missing."""
    return _error_page(503, _("Printouts are not available"), str(error))


def _error_page(status: int, title: str, message: str) -> ResponseReturnValue:
    return render_template(
        "crm_core/ui/error.html", status=status, title=title, message=message
    ), status


use_error_pages(blueprint)
