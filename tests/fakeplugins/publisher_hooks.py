"""The hookspecs ``fake_publisher`` adds for other plugins (the ``crm_addhooks`` way)."""

from __future__ import annotations

from crm_core import hookspec


@hookspec
def crm_fake_ping(value: int) -> int:
    """Answer a ping from the publisher plugin with a number."""
