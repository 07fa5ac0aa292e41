"""The permissions crm-sales declares. Which deals a user sees (own, team, all) comes from
their role's visibility, as for core's records."""

from __future__ import annotations

from crm_core.extensions import Permission

PERMISSIONS = (
    Permission("sales.deal.view", "See deals, their stage history and quotes"),
    Permission("sales.deal.edit", "Create deals, move them between stages, make quotes"),
    Permission("sales.deal.archive", "Archive deals"),
    Permission("sales.activity.view", "See activities and tasks"),
    Permission("sales.activity.edit", "Plan, change and complete activities"),
    Permission("sales.report.view", "See forecasts and the funnel"),
    Permission("sales.admin", "Manage pipelines, stages, lost reasons, products, price lists "
               "and quotas"),
)
