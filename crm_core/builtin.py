"""Core's own hook implementations: the channels, permissions and search every CRM has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm_core import search
from crm_core.extensions import Channel, Job, Permission, SearchProvider
from crm_core.hookspecs import hookimpl
from crm_core.i18n import N_
from crm_core.models import CORE_CHANNELS

if TYPE_CHECKING:
    from crm_core.runtime import CRM

_UNDIRECTED = {"note", "web", "purchase"}

CORE_PERMISSIONS = (
    Permission("customer.view", N_("See customers")),
    Permission("customer.edit", N_("Create and change customers")),
    Permission("customer.archive", N_("Archive customers")),
    Permission("customer.merge", N_("Merge duplicate customers")),
    Permission("contact.view", N_("See contacts")),
    Permission("contact.edit", N_("Create and change contacts")),
    Permission("contact.archive", N_("Archive contacts")),
    Permission("contact.merge", N_("Merge duplicate contacts")),
    Permission("interaction.view", N_("See interactions")),
    Permission("interaction.edit", N_("Log and change interactions")),
    Permission("interaction.archive", N_("Archive interactions")),
    Permission("audit.view", N_("Read the audit history")),
    Permission("user.admin", N_("Manage users and roles")),
    Permission("plugin.admin", N_("See and configure plugins")),
    Permission("webhook.admin", N_("Manage webhooks, see and replay event deliveries")),
)


@hookimpl
def crm_register_channels() -> list[Channel]:
    """The ten channels of core: call, email, meeting, note, letter, chat, sms, web..."""
    return [
        Channel(name, label=name.capitalize(), directional=name not in _UNDIRECTED)
        for name in CORE_CHANNELS
    ]


@hookimpl
def crm_register_permissions() -> list[Permission]:
    """Core's permissions on customers, contacts, interactions, audit and administration."""
    return list(CORE_PERMISSIONS)


@hookimpl
def crm_register_search_providers() -> list[SearchProvider]:
    """Customers and contacts in the global search."""
    return [
        SearchProvider("customer", search.customer_results, "customer.view"),
        SearchProvider("contact", search.contact_results, "contact.view"),
    ]


def _run_import(crm: CRM, job_id: int) -> None:
    """The ``crm_core.import`` job: run an uploaded import (the importers load on first use)."""
    from crm_core.imports.jobs import run_import_job

    run_import_job(crm, job_id)


def _prune_import_files(crm: CRM) -> None:
    """The ``crm_core.prune_import_files`` job: delete the expired files of dry runs."""
    from crm_core.imports.jobs import prune_kept_files

    prune_kept_files(crm)


def _prune_events(crm: CRM) -> None:
    """The ``crm_core.prune_events`` job."""
    from crm_core.jobs.deliveries import prune_job

    prune_job(crm)


@hookimpl
def crm_register_jobs() -> list[Job]:
    """Core's background jobs: running uploaded imports, deleting the expired files of dry
    runs hourly, pruning delivered events daily."""
    return [
        # Not retried: a failed import is marked failed with its error; run it again
        # by uploading the file again (a dry run shows what it would do).
        Job("crm_core.import", _run_import, retries=0),
        Job("crm_core.prune_import_files", _prune_import_files, schedule="40 * * * *"),
        Job("crm_core.prune_events", _prune_events, schedule="15 3 * * *"),
    ]
