"""crm-nps's hook implementations: the module its entry point names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm_core import PluginManifest, RecordChange, UnitOfWork, hookimpl
from crm_core.extensions import Panel, Permission
from crm_core.web.api import ApiResource
from flask import Blueprint

from crm_nps import api, panels, public, services
from crm_nps.models import MODELS
from crm_nps.permissions import PERMISSIONS

manifest = PluginManifest(
    # The versions of crm-core's public API this plugin works with: this minor
    # version (what it was written against) up to the next major version.
    core_api=">=1.2,<2",
    description="NPS surveys after interactions: a public answer page, the customer's NPS.",
)

#: The plugin's migration branch ``crm_nps``.
MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


@hookimpl
def crm_register_models() -> Sequence[type[Any]]:
    """The ``nps_survey`` table."""
    return list(MODELS)


@hookimpl
def crm_register_migrations() -> Sequence[str]:
    """The migration branch ``crm_nps``."""
    return [str(MIGRATIONS)]


@hookimpl
def crm_register_permissions() -> Sequence[Permission]:
    """Who may see surveys and who may send, withdraw and record them."""
    return list(PERMISSIONS)


@hookimpl
def crm_register_api_resources() -> Sequence[ApiResource]:
    """``/api/v1/nps-surveys``."""
    return [api.SURVEYS]


@hookimpl
def crm_register_blueprints() -> Sequence[Blueprint]:
    """The public answer page ``/nps/<token>`` (and the panel's template)."""
    return [public.blueprint]


@hookimpl
def crm_on_interactions_created(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """A survey for each new interaction of the survey channels (``CRM_NPS_CHANNELS``),
    in the same transaction: if the interaction is rolled back, so is its survey."""
    services.create_for_interactions(uow, [change.record for change in changes])


@hookimpl
def crm_customer_panels(customer: Any, actor: Any) -> Sequence[Panel]:
    """The customer's NPS, its counts and the answers per score."""
    return panels.customer_panels(customer, actor)
