"""A hook the plugin publishes for others, named without the plugin's name."""

from __future__ import annotations

from typing import Any

from crm_core import hookspec


@hookspec
def on_points_given(points: Any) -> None:
    """Points were given."""
