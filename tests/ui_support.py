"""Helpers the UI tests share: rows and SQL statements counted, stored rows read, a plugin.

Plain functions (the fixtures several files need are in ``conftest.py``); those plugin
authors want too (:func:`~crm_core.testing.link_of`, :func:`~crm_core.testing.sql_statements`)
are in :mod:`crm_core.testing`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from sqlalchemy import func, select

from crm_core.extensions import Permission
from crm_core.testing import plugin_module, sql_statements

#: The permission :func:`loyalty_plugin` registers.
LOYALTY_PERMISSION = Permission("loyalty.card.view", "See loyalty cards")


def count_rows(crm: Any, model: Any, *where: Any) -> int:
    """How many rows of ``model`` (matching ``where``) are stored."""
    with crm.session_factory() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def stored_row(crm: Any, model: Any, ident: int) -> Any:
    """The row of ``model`` with the primary key ``ident`` as it is stored now (it must be)."""
    with crm.session_factory() as session:
        found = session.get(model, ident)
        assert found is not None, f"no {model.__name__} {ident}"
        return found


def statement_count(crm: Any, action: Callable[[], Any]) -> int:
    """How many SQL statements ``action`` runs."""
    with sql_statements(crm) as statements:
        action()
    return len(statements)


def loyalty_plugin(**hooks: Any) -> ModuleType:
    """A plugin ``loyalty`` with a permission of its own (:data:`LOYALTY_PERMISSION`), ``hooks``."""
    return plugin_module(
        "loyalty",
        core_api=">=1.0",
        crm_register_permissions=lambda: [LOYALTY_PERMISSION],
        **hooks,
    )
