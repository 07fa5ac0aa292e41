"""A plugin whose ``crm_on_customers_created`` raises: the write must be rolled back."""

from __future__ import annotations

from collections.abc import Sequence

from crm_core import PluginManifest, RecordChange, UnitOfWork, hookimpl

PLUGIN_NAME = "fake_raising"
manifest = PluginManifest(core_api=">=1.0,<2")


def _explode(count: int) -> None:
    raise RuntimeError(f"boom after {count} customers")


@hookimpl
def crm_on_customers_created(uow: UnitOfWork, changes: Sequence[RecordChange]) -> None:
    """Fail after the customers were inserted."""
    _explode(len(changes))
