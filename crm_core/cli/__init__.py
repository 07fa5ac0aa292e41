"""The ``crm`` command: database, server, demo data, plugins, users and a shell.

It is a :class:`flask.cli.FlaskGroup` around :func:`crm_core.web.app.create_app`,
so every command runs in an app context where ``current_app.extensions["crm"]``
is the CRM. Commands that plugins return from ``crm_register_commands`` join the
group once the app is loaded. Settings come from ``crm.toml`` and ``CRM_*``
variables; a wrong one ends the command with ``Error: <setting>: <problem>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from alembic.util import CommandError
from flask import Flask, current_app
from flask.cli import FlaskGroup, ScriptInfo, routes_command
from sqlalchemy.exc import OperationalError

from crm_core.cli import (
    db,
    demo,
    events,
    exports,
    imports,
    plugins,
    records,
    scaffold,
    serve,
    shell,
    token,
    user,
    worker,
)
from crm_core.cli.common import get_crm
from crm_core.errors import CRMError
from crm_core.runtime import CRM
from crm_core.version import __version__

__all__ = ["CRMGroup", "cli", "get_crm", "main"]

_PLUGIN_COMMANDS = "crm.plugin_commands"


def _create_app() -> Flask:
    """Build the app from the environment; report configuration errors without a traceback."""
    from crm_core.web.app import create_app

    try:
        app = create_app()
    except CRMError as exc:
        raise click.ClickException(str(exc)) from exc
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        # Close pooled database connections when the command is done.
        ctx.find_root().call_on_close(app.extensions["crm"].dispose)
    return app


class CRMGroup(FlaskGroup):
    """A :class:`FlaskGroup` that adds plugin commands and turns known errors into messages."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The app is always crm-core's: Flask's --app option would only mislead.
        self.params = [param for param in self.params if param.name != "app"]

    def plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """Commands of the loaded app's plugins by name; a name collision is an error."""
        app = ctx.ensure_object(ScriptInfo).load_app()
        cached: dict[str, click.Command] | None = app.extensions.get(_PLUGIN_COMMANDS)
        if cached is not None:
            return cached
        crm: CRM = app.extensions["crm"]
        commands: dict[str, click.Command] = {}
        owners: dict[str, str] = {}
        for plugin_name, registered in crm.call_each("crm_register_commands"):
            for command in registered:
                name = command.name or ""
                if name in self.commands:
                    raise click.ClickException(
                        f"plugin {plugin_name!r} registers the command {name!r}, which is "
                        f"a core command of crm: rename it in the plugin, or disable the plugin "
                        f"(CRM_DISABLED_PLUGINS={plugin_name})"
                    )
                if name in commands:
                    raise click.ClickException(
                        f"plugins {owners[name]!r} and {plugin_name!r} both register the "
                        f"command {name!r}: disable one of them (CRM_DISABLED_PLUGINS=...)"
                    )
                commands[name] = command
                owners[name] = plugin_name
        app.extensions[_PLUGIN_COMMANDS] = commands
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Core commands, plus plugin commands when the app can be loaded."""
        names = set(self.commands)
        try:
            names.update(self.plugin_commands(ctx))
        except click.ClickException as exc:
            click.secho(f"Error: {exc.format_message()}\n", err=True, fg="red")
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """A core command, or a plugin's; loading the app checks plugin command names."""
        core = self.commands.get(name)
        info = ctx.ensure_object(ScriptInfo)
        try:
            app = info.load_app()
        except click.ClickException:
            if core is not None:
                # The command reports the problem itself when it loads the app, and
                # ``--help`` stays usable meanwhile.
                return core
            raise
        found = self.plugin_commands(ctx)
        if core is not None:
            return core
        command = found.get(name)
        active = current_app._get_current_object() if current_app else None  # type: ignore[attr-defined]
        if command is not None and active is not app:
            ctx.with_resource(app.app_context())
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; errors the user can act on become ``Error: ...`` messages."""
        try:
            return super().invoke(ctx)
        except CRMError as exc:
            raise click.ClickException(str(exc)) from exc
        except CommandError as exc:
            raise click.ClickException(f"migration: {exc}") from exc
        except OperationalError as exc:
            raise click.ClickException(f"database: {exc.orig or exc}") from exc


cli = CRMGroup(
    name="crm",
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    help="Run and administer a crm-core installation (settings: crm.toml and CRM_* variables).",
)
click.version_option(__version__, "--version", prog_name="crm-core")(cli)
cli.add_command(db.db)
cli.add_command(serve.serve)
cli.add_command(demo.demo)
cli.add_command(plugins.plugins)
cli.add_command(scaffold.plugin)
cli.add_command(user.user)
cli.add_command(token.token)
cli.add_command(records.search_command)
cli.add_command(records.duplicates_command)
cli.add_command(records.merge_command)
cli.add_command(records.unmerge_command)
cli.add_command(shell.shell)
cli.add_command(imports.import_group)
cli.add_command(exports.export_command)
cli.add_command(exports.restore_command)
cli.add_command(worker.worker)
cli.add_command(events.webhooks)
cli.add_command(events.events)
cli.add_command(routes_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``crm`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="crm")
