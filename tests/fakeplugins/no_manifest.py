"""A plugin module that forgot its ``manifest``."""

from __future__ import annotations

PLUGIN_NAME = "fake_no_manifest"
