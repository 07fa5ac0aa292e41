"""The CRM runtime: settings, database, plugins and their registrations, in one object.

``create_app`` builds one and stores it in ``app.extensions["crm"]``; scripts and
tests can build one without Flask. There is no global instance.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from marshmallow import Schema
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from crm_core.config import Settings, load_settings
from crm_core.db import Base, create_db_engine
from crm_core.errors import ConfigError, PluginError
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
    TimelineRenderer,
)
from crm_core.models import Customer, User
from crm_core.plugins import PluginRegistry
from crm_core.schemas import schema_for
from crm_core.services.unit_of_work import UnitOfWork, transaction
from crm_core.sqlite import writer_engine

if TYPE_CHECKING:
    from crm_core.jobs import JobQueue

#: Core's tables: those on ``Base.metadata`` once core's models are imported. A plugin
#: imports crm_core before it declares a model, so no plugin's table is among them.
CORE_TABLES = frozenset(Base.metadata.tables)


@dataclass
class Registry:
    """What plugins registered through the ``crm_register_*`` hooks, keyed by name."""

    channels: dict[str, Channel] = field(default_factory=dict)
    timeline_renderers: dict[str, TimelineRenderer] = field(default_factory=dict)
    """Timeline entry type -> how the customer page shows it (``crm_timeline_renderers``)."""
    permissions: dict[str, Permission] = field(default_factory=dict)
    custom_attributes: dict[str, CustomAttribute] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    event_consumers: dict[str, EventConsumer] = field(default_factory=dict)
    importers: dict[str, Importer] = field(default_factory=dict)
    exporters: dict[str, Exporter] = field(default_factory=dict)
    search_providers: dict[str, SearchProvider] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    """Table name -> name of the plugin that declares it (``crm_core`` for core)."""
    migration_folders: dict[str, list[str]] = field(default_factory=dict)
    """Plugin name -> folders of its Alembic revisions."""


class CRM:
    """One CRM instance: settings, engine, session factory, plugin manager and registry."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        plugins: Sequence[ModuleType] = (),
        discover_plugins: bool = True,
        engine: Engine | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.engine = engine or create_db_engine(self.settings)
        self.session_factory: sessionmaker[Session] = sessionmaker(
            self.engine, expire_on_commit=False
        )
        #: The engine of units of work: the same pool, ``BEGIN IMMEDIATE`` on SQLite.
        self.write_engine = writer_engine(self.engine)
        self.plugins = PluginRegistry(self.settings, plugins)
        self.plugins.load(discover=discover_plugins)
        self.pm = self.plugins.pm
        self.registry = Registry()
        self._schemas: dict[str, type[Schema]] = {}
        self._loaders: dict[str, Schema] = {}
        self._collect()
        self.pm.hook.crm_startup(crm=self)

    @contextmanager
    def unit_of_work(
        self, actor: User | None = None, source: str = "crm", *, write: bool = True
    ) -> Iterator[UnitOfWork]:
        """A transaction for service calls; commits at the end, rolls back on any error.

        ``source`` says where the write comes from (``api``, ``ui``, ``cli``,
        ``import``, a plugin's name) and is kept in the audit trail. On SQLite the
        transaction takes the write lock at its first statement, so that units of work
        that read and then write queue instead of failing; pass ``write=False`` for one
        that only reads (e.g. ``service.get`` for an API ``GET``): it then takes no lock,
        and a write in it may fail with "database is locked" while others write.
        """
        with transaction(self, actor, source, write=write) as uow:
            yield uow

    @functools.cached_property
    def queue(self) -> JobQueue:
        """The task queue (``queue_url``) with every registered job: see :mod:`crm_core.jobs`."""
        from crm_core.jobs import JobQueue

        return JobQueue(self)

    def write_session(self) -> Session:
        """A new session for a transaction that writes (its units of work use one).

        On SQLite its transactions begin with ``BEGIN IMMEDIATE`` (at the first
        statement, not when the session is made), so that concurrent writers queue
        instead of failing with "database is locked". Reads keep
        :attr:`session_factory`, whose deferred ``BEGIN`` takes no lock.
        """
        session = self.session_factory()
        if session.bind is self.engine:
            # Only the CRM's own engine: tests bind the factory to one connection.
            session.bind = self.write_engine
        return session

    def menu_items(self, actor: User | None) -> list[MenuItem]:
        """Navigation entries from every plugin that ``actor`` may see, in display order."""
        return _permitted(_ordered(self.pm.hook.crm_menu_items(actor=actor), "label"), actor)

    def customer_panels(self, customer: Customer, actor: User | None) -> list[Panel]:
        """Panels plugins show on ``customer``'s page for ``actor``, in display order."""
        return _ordered(self.pm.hook.crm_customer_panels(customer=customer, actor=actor))

    def customer_tabs(self, customer: Customer, actor: User) -> list[CustomerTab]:
        """Tabs plugins offer on ``customer``'s page for ``actor``, in display order."""
        return _ordered(self.pm.hook.crm_customer_tabs(customer=customer, actor=actor))

    def dashboard_widgets(self, actor: User) -> list[Panel]:
        """Widgets plugins show on ``actor``'s dashboard, in display order."""
        return _ordered(self.pm.hook.crm_dashboard_widgets(actor=actor))

    def list_columns(self, entity: str, actor: User) -> list[ListColumn]:
        """Columns plugins add to the UI's list of ``entity`` for ``actor``, in order."""
        return _ordered(self.pm.hook.crm_list_columns(entity=entity, actor=actor), "header")

    def settings_pages(self, actor: User) -> list[MenuItem]:
        """Links to plugins' settings pages that ``actor`` may open, in display order."""
        return _permitted(_ordered(self.pm.hook.crm_settings_pages(actor=actor), "label"), actor)

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    # -- registrations ----------------------------------------------------------

    def _collect(self) -> None:
        reg = self.registry
        self._gather("crm_register_channels", reg.channels, lambda c: c.name)
        self._gather("crm_timeline_renderers", reg.timeline_renderers, lambda r: r.type)
        self._gather("crm_register_permissions", reg.permissions, lambda p: p.name)
        self._gather("crm_register_custom_attributes", reg.custom_attributes, lambda a: a.key)
        for key, spec in self.settings.custom_attributes.items():
            self._add(reg.custom_attributes, key, _attribute_from_config(key, spec), "crm.toml")
        self._gather("crm_register_jobs", reg.jobs, lambda j: j.name)
        self._gather("crm_register_event_consumers", reg.event_consumers, lambda c: c.name)
        self._gather("crm_register_importers", reg.importers, lambda i: i.name)
        self._gather("crm_register_exporters", reg.exporters, lambda e: e.name)
        self._gather("crm_register_search_providers", reg.search_providers, lambda s: s.entity)
        self._collect_models()
        for plugin_name, folders in self.call_each("crm_register_migrations"):
            reg.migration_folders[plugin_name] = [str(folder) for folder in folders]

    def call_each(self, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call ``hook_name`` on each plugin in turn, yielding ``(plugin name, result)``.

        Unlike a plain hook call this tells who returned what, so collisions can
        name the plugin. Empty results (``None``, ``[]``) are left out.
        """
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            result = impl.function(*(kwargs[name] for name in impl.argnames))
            if result:
                yield impl.plugin_name, result

    def schema(self, entity: str) -> type[Schema]:
        """The marshmallow schema class of ``entity``, with custom attributes and plugin fields."""
        if entity not in self._schemas:
            self._schemas[entity] = schema_for(self, entity)
        return self._schemas[entity]

    def loader(self, entity: str) -> Schema:
        """One instance of :meth:`schema` for loading input, shared by every write.

        Making an instance deep-copies every field (a noticeable part of an API write);
        ``load`` keeps no state on the instance (``partial`` is passed per call).
        """
        if entity not in self._loaders:
            self._loaders[entity] = self.schema(entity)()
        return self._loaders[entity]

    def _gather(self, hook_name: str, target: dict[str, Any], key: Any) -> None:
        for plugin_name, items in self.call_each(hook_name):
            for item in items or ():
                self._add(target, key(item), item, plugin_name)

    def _add(self, target: dict[str, Any], key: str, item: Any, plugin_name: str) -> None:
        if key in target:
            raise PluginError(plugin_name, f"registers {key!r}, which is already registered")
        target[key] = item

    def _collect_models(self) -> None:
        # Only core's and the enabled plugins' tables: a disabled plugin's models may
        # still be on Base.metadata (imported earlier in the process), but are not ours.
        plugin_tables: dict[str, str] = {}
        for plugin_name, models in self.call_each("crm_register_models"):
            for model in models:
                table = model.__table__.name
                if table in plugin_tables:
                    raise PluginError(
                        plugin_name,
                        f"declares table {table!r}, already declared by {plugin_tables[table]!r}",
                    )
                plugin_tables[table] = plugin_name
        self.registry.models.update(dict.fromkeys(sorted(CORE_TABLES), "crm_core"))
        self.registry.models.update(plugin_tables)


def _attribute_from_config(key: str, spec: Mapping[str, Any]) -> CustomAttribute:
    entity, _, name = key.partition(".")
    if entity not in ("customer", "contact") or not name:
        raise ConfigError(
            f"custom_attributes.{key}", "name it <entity>.<attribute>, entity customer or contact"
        )
    unknown = set(spec) - {"type", "label", "required", "choices"}
    if unknown:
        raise ConfigError(f"custom_attributes.{key}", f"unknown keys {sorted(unknown)}")
    attribute_type = spec.get("type", "string")
    if attribute_type not in ("string", "text", "integer", "decimal", "boolean", "date", "choice"):
        raise ConfigError(f"custom_attributes.{key}.type", f"unknown type {attribute_type!r}")
    return CustomAttribute(
        entity=entity,  # type: ignore[arg-type]
        name=name,
        type=attribute_type,
        label=str(spec.get("label", "")),
        required=bool(spec.get("required", False)),
        choices=tuple(spec.get("choices", ())),
    )


def _ordered(results: list[Any], label: str = "title") -> list[Any]:
    """Every item of the plugins' ``results`` (lists or ``None``) by ``order``, then ``label``."""
    items = [item for result in results for item in result or ()]
    return sorted(items, key=lambda item: (item.order, getattr(item, label)))


def _permitted(items: list[MenuItem], actor: User | None) -> list[MenuItem]:
    """The ``items`` without a permission or with one ``actor`` holds."""
    granted = actor.permissions if actor is not None else frozenset()
    return [item for item in items if item.permission is None or item.permission in granted]
