"""crm-incompatible: a plugin for crm_core API 2, which crm-core 1.x must refuse to load."""
