"""``crm plugin new NAME``: start a plugin distribution from crm-core's scaffold."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from crm_core import scaffold


def _git_config(key: str) -> str | None:
    """A value of the user's git configuration (``user.name``), or ``None``."""
    try:
        found = subprocess.run(
            ["git", "config", "--get", key], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return found.stdout.strip() or None


@click.group("plugin")
def plugin() -> None:
    """Write plugins for crm-core."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--directory", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Where to create the distribution (default: ./NAME); it must not exist.",
)
@click.option("--author", default=None, help="The author's name (default: git's user.name).")
@click.option("--email", default=None, help="The author's e-mail (default: git's user.email).")
def new(name: str, directory: Path | None, author: str | None, email: str | None) -> None:
    """Create the plugin distribution NAME (e.g. crm-nps): package, model and migration,
    permissions, API resource, customer-page panel, tests, README."""
    try:
        names = scaffold.plugin_names(name)
        target = directory if directory is not None else Path(name)
        written = scaffold.create(
            names, target,
            author=author or _git_config("user.name") or f"The {name} authors",
            email=email or _git_config("user.email"),
        )
    except scaffold.ScaffoldError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {names.dist} in {target} ({len(written)} files):")
    for path in written:
        click.echo(f"  {path.as_posix()}")
    click.echo(
        f"\nNext: cd {target} && pip install -e '.[test]' && crm db upgrade && python -m pytest\n"
        "Then rename the model Item and its fields after what the plugin keeps "
        f"(docs/plugins.md, 'Start a plugin')."
    )
