"""acme-brand: Acme Corp's branding of its crm-core deployment."""
