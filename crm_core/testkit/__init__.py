"""The parts :mod:`crm_core.testing` is made of; import them from ``crm_core.testing``."""
