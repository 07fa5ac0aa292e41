"""Hooks crm-sales publishes for other plugins (added through ``crm_addhooks``).

Each is called inside the transaction of the write, after the deal's rows and its
audit entry are written: raising rolls the whole write back (the ERP connector turns a
won deal into a sales order this way, or refuses the win). Implement them with
``@hookimpl(optionalhook=True)`` unless your plugin requires crm-sales.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crm_core import hookspec

if TYPE_CHECKING:
    from crm_core import UnitOfWork
    from crm_sales.models import Opportunity, Stage


@hookspec
def crm_sales_on_opportunity_created(uow: UnitOfWork, opportunity: Opportunity) -> None:
    """A deal was created (in its first stage, which has a stay of its own)."""


@hookspec
def crm_sales_on_stage_changed(
    uow: UnitOfWork, opportunity: Opportunity, previous: Stage, stage: Stage
) -> None:
    """A deal moved from ``previous`` to ``stage`` (any direction, won and lost included)."""


@hookspec
def crm_sales_on_opportunity_won(uow: UnitOfWork, opportunity: Opportunity) -> None:
    """A deal reached a won stage (after ``crm_sales_on_stage_changed``)."""


@hookspec
def crm_sales_on_opportunity_lost(uow: UnitOfWork, opportunity: Opportunity) -> None:
    """A deal reached a lost stage (its ``lost_reason_id`` set if one was given)."""


#: Every hook above, by name (the docs test compares them with docs/hooks.md).
HOOKS: Sequence[str] = (
    "crm_sales_on_opportunity_created",
    "crm_sales_on_stage_changed",
    "crm_sales_on_opportunity_won",
    "crm_sales_on_opportunity_lost",
)
