"""A deliberately broken plugin for tests/test_conformance.py (see ../README.md)."""
