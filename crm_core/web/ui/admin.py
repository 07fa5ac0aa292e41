"""The administration index and the plugins page, and what the administration pages share.

``/admin`` links the sections the signed-in user may use: users and roles
(``user.admin``), everyone's API tokens (``user.admin``), webhooks and their deliveries
(``webhook.admin``), plugins (``plugin.admin``). The sections live in their own modules
(:mod:`~crm_core.web.ui.admin_users`, :mod:`~crm_core.web.ui.tokens`,
:mod:`~crm_core.web.ui.admin_webhooks`, :mod:`~crm_core.web.ui.admin_deliveries`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from flask import render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from crm_core.authz import has_permission, require
from crm_core.errors import PermissionDenied
from crm_core.models import User
from crm_core.plugins import PluginState
from crm_core.web.i18n import translate
from crm_core.web.ui import ADMIN_PERMISSIONS, administers, blueprint
from crm_core.web.ui.access import actor, current_crm, page


@dataclass(frozen=True)
class Section:
    """One section of the administration: where it is, what it does, who may use it."""

    title: str | LazyString
    endpoint: str
    description: str | LazyString
    permission: str | None = None


#: The sections of ``/admin``, in their order (titles and descriptions translated when shown).
SECTIONS = (
    Section(_l("Users"), "crm_ui.admin_users",
            _l("Staff accounts: create them, see their roles, team and last sign-in."),
            "user.admin"),
    Section(_l("Roles and permissions"), "crm_ui.admin_roles",
            _l("The roles, the permissions each grants and which records its users see."),
            "user.admin"),
    Section(_l("Teams"), "crm_ui.admin_teams",
            _l("Groups of users who see each other's records when a role's visibility is "
               "team."), "user.admin"),
    Section(_l("API tokens"), "crm_ui.admin_tokens",
            _l("Every user's API tokens: when they were used, revoking them."), "user.admin"),
    Section(_l("Webhooks"), "crm_ui.admin_webhooks",
            _l("Signed HTTP deliveries of events: subscriptions, delivery logs, dead letters."),
            "webhook.admin"),
    Section(_l("Plugins"), "crm_ui.admin_plugins",
            _l("Installed plugins and why any was refused; the custom attributes."),
            "plugin.admin"),
    Section(_l("Your API tokens"), "crm_ui.account_tokens",
            _l("Tokens that let your scripts use the API as you.")),
)

#: A plugin's state as the plugins page shows it (the code stays in the badge's class).
PLUGIN_STATES = {
    PluginState.ENABLED.value: _l("enabled"),
    PluginState.DISABLED.value: _l("disabled"),
    PluginState.REFUSED.value: _l("refused"),
}


@blueprint.get("/admin", endpoint="admin")
@page
def admin_index() -> ResponseReturnValue:
    """The sections of the administration the user may use."""
    user = actor()
    require_any_admin(user)
    sections = [s for s in SECTIONS if s.permission is None or has_permission(user, s.permission)]
    return render_template(
        "crm_core/ui/admin/index.html",
        sections=sections,
        plugin_pages=current_crm().settings_pages(user),
    )


@blueprint.get("/admin/plugins", endpoint="admin_plugins")
@page
def admin_plugins() -> ResponseReturnValue:
    """Installed plugins (version, state, why refused or disabled) and the custom attributes."""
    crm, user = current_crm(), actor()
    require(user, "plugin.admin")
    attributes = sorted(crm.registry.custom_attributes.values(), key=lambda a: a.key)
    return render_template(
        "crm_core/ui/admin/plugins.html",
        plugins=list(crm.plugins.infos.values()),
        attributes=attributes,
        plugin_states=PLUGIN_STATES,
    )


def require_any_admin(user: User) -> None:
    """:class:`PermissionDenied` unless ``user`` may open the administration
    (:func:`crm_core.web.ui.administers`)."""
    if not administers(user):
        wanted = ", ".join(repr(name) for name in ADMIN_PERMISSIONS)
        raise PermissionDenied(f"you need one of the permissions {wanted}")


def permission_groups(names: Iterable[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Registered permissions among ``names`` grouped by prefix (``customer``, a plugin's name).

    Each group is ``(prefix, [(name, "name: description"), ...])``, both sorted by name:
    the options of a group of checkboxes (descriptions in the request's language).
    """
    registered = current_crm().registry.permissions
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(set(names)):
        permission = registered.get(name)
        if permission is None:
            continue
        text = (
            _("%(permission)s: %(description)s", permission=name,
              description=translate(permission.description))
            if permission.description
            else name
        )
        groups.setdefault(name.split(".", 1)[0], []).append((name, text))
    return sorted(groups.items())


def now() -> dt.datetime:
    """The current time, timezone-aware (UTC), to tell expired tokens and due deliveries."""
    return dt.datetime.now(dt.UTC)
