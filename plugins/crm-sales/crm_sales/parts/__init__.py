"""The parts of crm-sales: each adds its pages, API routes and UI slots (see crm_sales.web)."""
