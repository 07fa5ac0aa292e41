"""What crm-sales does when core changes customers: updates, merges, undone merges.

- A customer's industry or country changed: the funnel counts its deals under the new
  segment or region (:func:`funnel_store.customers_changed`).
- Duplicates merged into a survivor: their deals and activities move to the survivor
  (their ``version`` goes up, as core's contacts' does), and what moved is handed back
  to core for the merge's audit entry; undoing the merge moves exactly those back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, update

from crm_core import UnitOfWork
from crm_sales.models import Activity, Opportunity
from crm_sales.services import funnel_store

#: The keys of what a merge moved, in core's merge audit entry.
MOVED_DEALS, MOVED_ACTIVITIES = "crm_sales.opportunity", "crm_sales.activity"
#: The customer fields the funnel breaks deals down by.
FUNNEL_FIELDS = frozenset({"industry", "country"})


def customers_updated(uow: UnitOfWork, changes: Iterable[Any]) -> None:
    """Count the deals of customers whose industry or country changed under the new one."""
    changed = [change.record.id for change in changes
               if change.record is not None and FUNNEL_FIELDS & change.changes.keys()]
    funnel_store.customers_changed(uow.session, changed)


def customers_merged(uow: UnitOfWork, survivor: Any, merged: Sequence[Any]) -> dict[str, Any]:
    """Move the merged customers' deals and activities to ``survivor``; what moved, by
    kind and merged customer (``{"crm_sales.opportunity": {"12": [3, 4]}}``)."""
    moved: dict[str, Any] = {}
    for key, model in ((MOVED_DEALS, Opportunity), (MOVED_ACTIVITIES, Activity)):
        found: dict[str, list[int]] = {}
        rows = uow.session.execute(
            select(model.customer_id, model.id)
            .where(model.customer_id.in_([record.id for record in merged]))
            .order_by(model.id)
        )
        for customer_id, ident in rows:
            found.setdefault(str(customer_id), []).append(ident)
        if found:
            moved[key] = found
    _move(uow, {survivor.id: [ident for ids in moved.get(MOVED_DEALS, {}).values()
                              for ident in ids]},
          {survivor.id: [ident for ids in moved.get(MOVED_ACTIVITIES, {}).values()
                         for ident in ids]})
    funnel_store.customers_changed(uow.session, [survivor.id])
    return moved


def customers_merge_undone(
    uow: UnitOfWork, survivor: Any, restored: Sequence[Any], moved: Mapping[str, Any]
) -> None:
    """Move the deals and activities a merge moved back to the customers they came from."""
    deals = {int(customer): list(ids)
             for customer, ids in (moved.get(MOVED_DEALS) or {}).items()}
    activities = {int(customer): list(ids)
                  for customer, ids in (moved.get(MOVED_ACTIVITIES) or {}).items()}
    _move(uow, deals, activities)
    funnel_store.customers_changed(
        uow.session, [survivor.id, *(record.id for record in restored)])


def _move(uow: UnitOfWork, deals: Mapping[int, list[int]],
          activities: Mapping[int, list[int]]) -> None:
    """Point ``deals`` and ``activities`` (customer id -> their ids) at those customers,
    keeping the funnel's sums."""
    deal_ids = [ident for ids in deals.values() for ident in ids]
    change = funnel_store.changing(uow.session, deal_ids) if deal_ids else None
    for model, targets in ((Opportunity, deals), (Activity, activities)):
        for customer_id, ids in targets.items():
            if ids:
                uow.session.execute(
                    update(model)
                    .where(model.id.in_(ids))
                    .values(customer_id=customer_id, version=model.version + 1)
                    .execution_options(synchronize_session="fetch")
                )
    if change is not None:
        change.apply()
