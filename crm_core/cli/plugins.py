"""``crm plugins``: what was discovered, and what became of it; ``crm plugins check``."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import with_appcontext

from crm_core.cli.common import get_crm, print_table
from crm_core.compatibility import DeprecatedUse, PluginCheck, check_plugins
from crm_core.plugins import PluginInfo
from crm_core.version import API_VERSION


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


@click.group("plugins", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_appcontext
def plugins(as_json: bool) -> None:
    """List every discovered plugin: version, state, hooks it implements, and why.

    ``crm plugins check`` checks them against this core.
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
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


def describe_use(use: DeprecatedUse, key: str) -> dict[str, str]:
    """A deprecated hook or name a plugin uses, as a JSON-friendly dict."""
    deprecation = use.deprecation
    return {
        key: deprecation.name,
        "since": deprecation.since,
        "removed_in": deprecation.removed_in,
        "use_instead": deprecation.use_instead,
        "where": use.where,
    }


def describe_check(check: PluginCheck) -> dict[str, Any]:
    """One plugin's verdict as a JSON-friendly dict."""
    return {
        "name": check.name,
        "version": check.version,
        "distribution": check.distribution,
        "state": check.state,
        "core_api": check.core_api,
        "compatible": check.compatible,
        "refused": check.refused,
        "deprecated_hooks": [describe_use(use, "hook") for use in check.hooks],
        "deprecated_names": [describe_use(use, "name") for use in check.names],
        "ok": check.ok,
    }


def findings(check: PluginCheck) -> list[str]:
    """What a reader should know about one plugin, one sentence each."""
    lines = []
    if check.compatible is False:
        lines.append(f"incompatible: supports crm_core API {check.core_api}, this core is "
                     f"{check.api_version}")
    if check.refused and check.compatible is not False:
        lines.append(f"refused: {check.refused}")
    for kind, uses in (("implements hook", check.hooks), ("uses", check.names)):
        for use in uses:
            d = use.deprecation
            removal = " (the next major version)" if d.removed_by(check.api_version) else ""
            lines.append(f"{kind} {d.name}, deprecated since API {d.since} and removed in "
                         f"{d.removed_in}{removal}: use {d.use_instead}"
                         + (f" [{use.where}]" if use.where else ""))
    return lines


@plugins.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a report.")
@with_appcontext
def check(as_json: bool) -> None:
    """Check every installed plugin against this core: API range, deprecated hooks and names.

    Exits with status 1 when a plugin is incompatible or refused, or implements a hook
    that the next major API version removes.
    """
    checks = check_plugins(get_crm().plugins)
    if as_json:
        click.echo(json.dumps([describe_check(c) for c in checks], indent=2))
    elif not checks:
        click.echo("No plugins installed.")
    else:
        print_table(
            ["name", "version", "state", "core_api", "compatible", "deprecated"],
            [
                [c.name, c.version, c.state, c.core_api or "-",
                 {True: "yes", False: "no", None: "unknown"}[c.compatible],
                 str(len(c.hooks) + len(c.names))]
                for c in checks
            ],
        )
        notes = [(c.name, line) for c in checks for line in findings(c)]
        if notes:
            click.echo("")
        for name, line in notes:
            click.echo(f"{name}: {line}")
        failing = [c.name for c in checks if not c.ok]
        click.echo("")
        click.echo(
            f"Not ready for crm_core API {API_VERSION} and its next major version: "
            + ", ".join(failing)
            if failing
            else f"Every plugin works with crm_core API {API_VERSION}."
        )
    if any(not c.ok for c in checks):
        click.get_current_context().exit(1)
