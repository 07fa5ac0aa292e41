"""crm-sales: sales force automation for crm-core.

Pipelines of ordered stages, opportunities (deals) moving through them with their full
stage history, activities and tasks, a product catalogue with price lists, quotes,
forecasts against quotas and the funnel. Installed beside crm-core it is found through
its entry point (``crm_core.plugins``: ``crm_sales = crm_sales.plugin``); it imports only
crm-core's public API.
"""

__all__: list[str] = []
