"""``crm plugins``: what was discovered, and what became of it."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import with_appcontext

from crm_core.cli.common import get_crm, print_table
from crm_core.plugins import PluginInfo


def describe(info: PluginInfo) -> dict[str, Any]:
    """One plugin as a JSON-friendly dict."""
    manifest = info.manifest
    return {
        "name": info.name,
        "version": info.version,
        "distribution": info.distribution,
        "state": info.state.value,
        "hooks": list(info.hooks),
        "reason": info.reason,
        "core_api": manifest.core_api if manifest else None,
        "requires": list(manifest.requires) if manifest else [],
        "optional": list(manifest.optional) if manifest else [],
    }


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_appcontext
def plugins(as_json: bool) -> None:
    """List every discovered plugin: version, state, hooks it implements, and why."""
    infos = sorted(get_crm().plugins.infos.values(), key=lambda info: info.name)
    if as_json:
        click.echo(json.dumps([describe(info) for info in infos], indent=2))
        return
    if not infos:
        click.echo("No plugins installed.")
        return
    print_table(
        ["name", "version", "state", "hooks", "reason"],
        [
            [info.name, info.version, info.state.value, ", ".join(info.hooks) or "-", info.reason]
            for info in infos
        ],
    )
