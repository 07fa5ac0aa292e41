"""Every extension point of crm-core.

Hooks are grouped by lifecycle. Names follow verb families:

* ``crm_register_*`` return lists of things, checked for name collisions at startup;
* ``crm_validate`` may reject input, field by field;
* ``crm_on_*`` react to domain events, inside the transaction of the write;
* ``crm_menu_items`` / ``crm_customer_panels`` / ``crm_customer_tabs``... fill UI slots
  for a given user.

A hook implementation may accept any subset of a spec's arguments (pluggy passes
only those it names). Every hook here is documented in ``docs/hooks.md``; a test
fails when one is missing there.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

import pluggy

from crm_core import deprecations

if TYPE_CHECKING:
    import click
    import flask
    from marshmallow import fields
    from sqlalchemy.orm import Session

    from crm_core.extensions import (
        Channel,
        CustomAttribute,
        CustomerTab,
        EventConsumer,
        Exporter,
        Importer,
        Job,
        ListColumn,
        MenuItem,
        Panel,
        Permission,
        SearchProvider,
        TimelineEntry,
        TimelineRenderer,
    )
    from crm_core.models import Contact, Customer, User
    from crm_core.runtime import CRM
    from crm_core.services.unit_of_work import RecordChange, UnitOfWork
    from crm_core.timeline import TimelineCursor
    from crm_core.web.api import ApiResource

PROJECT_NAME = "crm_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------
# Startup and configuration
# ---------------------------------------------------------------------------


@hookspec
def crm_addhooks(pm: pluggy.PluginManager) -> None:
    """Add hook specifications of your own plugin for other plugins to implement.

    Called once per plugin, in load order, before any plugin is registered, so that
    every implementation of the new hooks is checked against its spec when its
    plugin registers. Call ``pm.add_hookspecs(my_hookspecs_module)``; a plugin whose
    ``crm_addhooks`` raises is refused.
    Implementations of another plugin's hooks should be marked
    ``@hookimpl(optionalhook=True)`` unless that plugin is a hard dependency.
    """


@hookspec
def crm_startup(crm: CRM) -> None:
    """Called once when a CRM instance is built, after every plugin is loaded.

    ``crm`` is the :class:`crm_core.runtime.CRM` (settings, engine, plugin manager,
    registry). Use it to check your plugin's configuration; raise
    :class:`crm_core.errors.ConfigError` naming the setting when it is wrong.
    """


# ---------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------


@hookspec
def crm_register_models() -> Sequence[type[Any]]:
    """Return the SQLAlchemy model classes your plugin declares on ``crm_core.Base``.

    Startup checks that no two plugins declare the same table and that each
    plugin's tables are created by its own migration branch.
    """


@hookspec
def crm_register_migrations() -> Sequence[str | PathLike[str]]:
    """Return the folders holding your plugin's Alembic revision files.

    The first revision of the branch must set ``branch_labels = ("<plugin name>",)``
    and ``down_revision = None``; a revision that needs another plugin's (or core's)
    table names it with ``depends_on``. ``crm db upgrade`` takes every branch to head.
    """


@hookspec
def crm_register_custom_attributes() -> Sequence[CustomAttribute]:
    """Return custom attributes your plugin adds to customers or contacts.

    Values are stored in the record's ``attributes`` JSON and validated by type,
    ``required`` and ``choices`` on every write, like deployment-declared ones.
    """


@hookspec
def crm_register_channels() -> Sequence[Channel]:
    """Return interaction channels your plugin adds (core has call, email, meeting...).

    A channel name must be unique across core and every plugin.
    """


@hookspec
def crm_schema_fields(entity: str) -> dict[str, fields.Field] | None:
    """Return extra marshmallow fields for the core schema of ``entity``.

    ``entity`` is ``"customer"``, ``"contact"`` or ``"interaction"``. Loaded values
    are validated with the rest of the record and handed to the ``crm_on_*``
    hooks in :attr:`RecordChange.data`, so your plugin can store them in its own
    tables. Return ``None`` for entities you do not extend.
    """


# ---------------------------------------------------------------------------
# Validation and permissions
# ---------------------------------------------------------------------------


@hookspec
def crm_validate(uow: UnitOfWork, entity: str, batch: Sequence[RecordChange]) -> None:
    """Check records of ``entity`` before they are written; reject bad ones field by field.

    Called once per write or per bulk batch, after the marshmallow schema accepted
    the input. ``batch`` holds one :class:`RecordChange` per record: ``data`` is
    the validated input, ``record`` the stored record (``None`` on create).
    Call ``change.reject(field, message)`` to refuse a record; rejected records are
    not written. Raising an exception instead aborts and rolls back the whole write.
    """


@hookspec
def crm_register_permissions() -> Sequence[Permission]:
    """Return the permissions your plugin checks, so admins can grant them to roles.

    Names are namespaced by plugin, e.g. ``sales.deal.edit``.
    """


# ---------------------------------------------------------------------------
# Domain events (called inside the write's transaction; raising rolls it back)
# ---------------------------------------------------------------------------


@hookspec
def crm_on_customers_created(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Customers were created (one, or a bulk batch); ``change.record`` is each new row."""


@hookspec
def crm_on_customers_updated(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Customers were updated; ``change.changes`` maps each changed field to ``(old, new)``."""


@hookspec
def crm_on_customers_archived(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Customers were archived (hidden from lists, kept with their history)."""


@hookspec
def crm_on_customers_merged(
    uow: UnitOfWork, survivor: Customer, merged: Sequence[Customer]
) -> Mapping[str, Any] | None:
    """Duplicates were merged into ``survivor``; move your plugin's references to it.

    Core has already moved contacts and interactions; the ``merged`` customers are
    archived and point to the survivor through ``merged_into_id``. Return what you
    moved, JSON-serialisable, under a key of your own (``{"crm_loyalty.card":
    {"<merged id>": [card ids]}}``): it is kept in the merge's audit entry and handed
    back to :func:`crm_on_customers_merge_undone` if the merge is undone.
    """


@hookspec
def crm_on_customers_merge_undone(
    uow: UnitOfWork, survivor: Customer, restored: Sequence[Customer], moved: Mapping[str, Any]
) -> None:
    """A merge into ``survivor`` was undone; move your references back to ``restored``.

    Core has moved the contacts and interactions back, restored the survivor's fields
    and brought the ``restored`` customers back (not archived, ``merged_into_id``
    cleared). ``moved`` is what the merge moved, by kind, as recorded in its audit
    entry: core's ``contact`` and ``interaction``, and what each plugin returned from
    :func:`crm_on_customers_merged` under its key.
    """


@hookspec
def crm_on_contacts_created(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Contacts were created (one, or a bulk batch)."""


@hookspec
def crm_on_contacts_updated(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Contacts were updated; ``change.changes`` maps each changed field to ``(old, new)``."""


@hookspec
def crm_on_contacts_archived(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Contacts were archived."""


@hookspec
def crm_on_contacts_merged(
    uow: UnitOfWork, survivor: Any, merged: Sequence[Any]
) -> Mapping[str, Any] | None:
    """Duplicate contacts were merged into ``survivor``; move your references to it.

    Return what you moved under a key of your own, as for
    :func:`crm_on_customers_merged`; it comes back to
    :func:`crm_on_contacts_merge_undone`.
    """


@hookspec
def crm_on_contacts_merge_undone(
    uow: UnitOfWork, survivor: Contact, restored: Sequence[Contact], moved: Mapping[str, Any]
) -> None:
    """A merge of contacts into ``survivor`` was undone; move your references back.

    Core has moved the interactions back and restored the survivor's fields, emails
    and phone numbers; ``moved`` is as for :func:`crm_on_customers_merge_undone`.
    """


@hookspec
def crm_on_interactions_created(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Interactions were logged (one, or a bulk batch)."""


@hookspec
def crm_on_interactions_updated(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Interactions were updated; ``change.changes`` maps each changed field to ``(old, new)``."""


@hookspec
def crm_on_interactions_archived(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Interactions were archived."""


@hookspec
def crm_on_interactions_merged(uow: UnitOfWork, survivor: Any, merged: Sequence[Any]) -> None:
    """Duplicate interactions (e.g. the same mail logged twice) were merged into ``survivor``."""


# ---------------------------------------------------------------------------
# Web: blueprints and UI slots
# ---------------------------------------------------------------------------


@hookspec
def crm_register_blueprints() -> Sequence[flask.Blueprint]:
    """Return Flask blueprints to mount; name each after your plugin.

    Templates go under ``templates/<plugin>/`` and API routes under ``/api/v1/``.
    """


@hookspec
def crm_register_api_resources() -> Sequence[ApiResource]:
    """Return REST resources to serve under ``/api/v1`` with core's conventions.

    Build each with :class:`crm_core.web.api.ApiResource` (or a subclass): the
    resource gets authentication, permission checks, keyset pagination, filters,
    sparse fields, ``ETag``/``If-Match``, ``application/problem+json`` errors and its
    place in the OpenAPI document for free. A resource's name must be unique.
    """


@hookspec
def crm_menu_items(actor: User | None) -> Sequence[MenuItem] | None:
    """Return navigation entries for ``actor`` (leave out what they may not see)."""


@hookspec
def crm_customer_panels(customer: Customer, actor: User | None) -> Sequence[Panel] | None:
    """Return panels to show on ``customer``'s page for ``actor``."""


@hookspec
def crm_customer_tabs(customer: Customer, actor: User) -> Sequence[CustomerTab] | None:
    """Return tabs to offer on ``customer``'s page for ``actor``, beside the timeline.

    A :class:`~crm_core.extensions.CustomerTab` is loaded only when opened
    (``/customers/<id>?tab=<name>``): its ``load()`` gives the context its
    ``template`` is rendered with. Leave out tabs the actor may not see.
    """


@hookspec
def crm_dashboard_widgets(actor: User) -> Sequence[Panel] | None:
    """Return widgets for ``actor``'s dashboard (their open tasks, follow-ups, forecasts...).

    A widget is a :class:`~crm_core.extensions.Panel`: its ``template`` (from the
    plugin's blueprint's template folder) is included with ``context``, under ``title``,
    in ``order`` with the other widgets. Leave out what ``actor`` may not see.
    """



@hookspec
def crm_list_columns(entity: str, actor: User) -> Sequence[ListColumn] | None:
    """Return columns to add to the UI's list of ``entity`` (``customer``, ``contact``) for
    ``actor``.

    Each :class:`~crm_core.extensions.ListColumn` computes the cells of a whole page at
    once (``values(records) -> {record id: cell}``): one query per page, never one per
    row. Columns follow core's, in ``order``. Leave out what ``actor`` may not see.
    """


@hookspec
def crm_timeline_renderers() -> Sequence[TimelineRenderer] | None:
    """Return templates that render this plugin's timeline entries on the customer page.

    A :class:`~crm_core.extensions.TimelineRenderer` names an entry ``type`` the plugin
    contributes through ``crm_timeline_entries`` and a template rendered with ``entry``.
    Types without a renderer show their title and summary. A type may have one renderer.
    """


@hookspec
def crm_settings_pages(actor: User) -> Sequence[MenuItem] | None:
    """Return links to this plugin's settings pages for ``actor``: the UI lists them on
    its administration page (``/admin``). The pages themselves come from the plugin's
    blueprint; ``permission`` hides an entry from users without it.
    """


@hookspec
def crm_translation_directories() -> Sequence[str] | None:
    """Return directories holding this plugin's UI catalogues.

    Each directory is laid out as ``<language>/LC_MESSAGES/messages.mo`` (what
    ``pybabel compile`` writes); its messages are merged over core's for the
    languages in :data:`crm_core.languages.LANGUAGES`. Mark strings in your templates
    with ``_()`` and in Python with :func:`flask_babel.gettext` /
    :func:`flask_babel.lazy_gettext`.
    """


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


@hookspec
def crm_register_commands() -> Sequence[click.Command]:
    """Return click commands (or groups) to add to the ``crm`` command.

    They run inside the Flask app context; ``flask.current_app.extensions["crm"]``
    is the CRM. A name must not collide with core's commands or another plugin's.
    """


# ---------------------------------------------------------------------------
# Background jobs
# ---------------------------------------------------------------------------


@hookspec
def crm_register_jobs() -> Sequence[Job]:
    """Return background jobs that ``crm worker`` runs; a ``schedule`` makes one periodic.

    ``Job(name, func, schedule=None, retries=5, retry_delay=30.0)``: ``func(crm,
    **kwargs)`` runs in a worker with the worker's :class:`~crm_core.runtime.CRM`;
    start one with ``crm_core.jobs.enqueue(crm, name, **kwargs)`` (keyword
    arguments must be JSON-like values). ``schedule`` is a five-field crontab string
    (minute hour day month weekday, e.g. ``"0 7 * * 1-5"``) evaluated in UTC; a
    scheduled job runs in one worker per tick, whichever takes it. Job functions must
    be idempotent: the queue retries them after failures, and a worker that dies
    mid-run leaves the run to be started again. Names must be unique across plugins.
    """


@hookspec
def crm_register_event_consumers() -> Sequence[EventConsumer]:
    """Return consumers of domain events, delivered from the transactional outbox.

    ``EventConsumer(name, handle, event_types=("*",), max_attempts=None)``: every
    event committed to the outbox whose type matches ``event_types`` is handed to
    ``handle(crm, event)`` (an :class:`~crm_core.extensions.Event`) by a worker,
    after the writing transaction committed, at least once. A raising ``handle`` is
    retried with exponential backoff (``event_retry_seconds``, doubled per attempt)
    and ends as a dead letter after ``max_attempts`` (default ``event_max_attempts``),
    which an admin can replay (``crm events replay``, ``POST
    /api/v1/deliveries/{id}/replay``). Use ``event.id`` to stay idempotent. Names
    must be unique; ``webhook:`` names are reserved for webhooks.
    """


# ---------------------------------------------------------------------------
# Import, export and search
# ---------------------------------------------------------------------------


@hookspec
def crm_register_importers() -> Sequence[Importer]:
    """Return importers: each reads one or more file formats into records of an entity.

    Core runs those with ``run`` as it runs its own imports (``crm import <name>``,
    ``POST /api/v1/imports``, the ``/imports`` page), passing ``run`` an
    :class:`crm_core.imports.ImportContext`; see docs/hooks.md.
    """


@hookspec
def crm_register_exporters() -> Sequence[Exporter]:
    """Return export sources: rows of your plugin that core streams as CSV or JSON Lines.

    ``Exporter(name, permission, model=None, columns=(), visibility=None, query=None,
    description="")``: ``crm export <name>`` and ``GET /api/v1/exports/<name>.<format>``
    export it for users holding ``permission``. With ``model``, core reads its table's
    ``columns`` (default all) ordered by primary key, filtered by ``visibility(actor)``
    (a clause, e.g. :func:`crm_core.authz.owned_by_visible_users`; ``actor`` is ``None``
    for the system) and without ``archived`` rows unless asked; with ``query(actor,
    include_archived)`` you return the ``Select`` yourself. Core streams the rows in
    batches (constant memory) and turns values into CSV cells or JSON. A name must be
    unique; ``customers``, ``contacts`` and ``interactions`` are core's.
    """


@hookspec
def crm_register_search_providers() -> Sequence[SearchProvider]:
    """Return search providers that make your plugin's entities findable in global search.

    ``SearchProvider(entity, search, permission)``: ``search(session, actor, query,
    limit)`` returns at most ``limit`` :class:`~crm_core.extensions.SearchResult` that
    ``actor`` may see, scored like core's. One provider per entity; core provides
    ``customer`` and ``contact``.
    """


# ---------------------------------------------------------------------------
# Customer timeline
# ---------------------------------------------------------------------------


@hookspec
def crm_timeline_entries(
    session: Session,
    actor: User | None,
    customer_id: int,
    before: TimelineCursor | None,
    limit: int,
    types: frozenset[str] | None,
    channels: frozenset[str] | None,
) -> Sequence[TimelineEntry] | None:
    """Return your plugin's entries on the timeline of customer ``customer_id``.

    Called for each page of ``crm_core.timeline.timeline``, after core checked that
    ``actor`` may see the customer. Return at most ``limit`` entries
    (:class:`~crm_core.extensions.TimelineEntry`), the newest first, that come after
    ``before`` in newest-first ``(occurred_at, type, id)`` order (every entry when
    ``before`` is ``None``; it is a :class:`crm_core.timeline.TimelineCursor`, a named
    tuple with those three fields), of one of ``types`` and on one of ``channels`` when
    those are given. Leave out what ``actor`` may not see. Core merges every
    source's entries and cuts the page, so returning more is harmless, only slower.
    """


# Deprecated hooks warn their implementers (pluggy's ``warn_on_impl``) with the
# removal version; the list is crm_core.deprecations.HOOKS.
deprecations.deprecate_hookspecs(sys.modules[__name__], hookspec, deprecations.HOOKS.values())
