"""``crm user``: staff accounts."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from crm_core.cli.common import get_crm, require_current_database
from crm_core.errors import ValidationError
from crm_core.services import users

user = AppGroup("user", help="Manage staff users.")


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


def _read_password(password: str | None, from_stdin: bool) -> str:
    if password is not None and from_stdin:
        raise click.UsageError("give either --password or --password-stdin, not both")
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif password is None:
        if not _stdin_is_tty():
            raise click.UsageError(
                "no password: pass --password-stdin (recommended) or --password, "
                "or run in a terminal to be asked"
            )
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("the password is empty")
    if len(password) < users.MIN_PASSWORD_LENGTH:
        raise click.ClickException(
            f"the password is too short: use at least {users.MIN_PASSWORD_LENGTH} characters"
        )
    return password


def format_messages(messages: dict[str, object]) -> str:
    """``field: message; field: message`` from validation messages."""
    parts = []
    for name, value in messages.items():
        texts = value if isinstance(value, list) else [value]
        parts.append(f"{name}: {' '.join(str(text) for text in texts)}")
    return "; ".join(parts)


@user.command("create")
@click.option("--email", required=True, help="Sign-in address, unique.")
@click.option("--name", default="", help="Full name.")
@click.option(
    "--role",
    "roles",
    multiple=True,
    default=("admin",),
    show_default=True,
    help="Role to grant (repeat for several): admin, sales, viewer or a plugin's.",
)
@click.option("--password", default=None, help="The password (visible in the process list!).")
@click.option(
    "--password-stdin", "password_stdin", is_flag=True, help="Read the password from stdin."
)
def create(
    email: str, name: str, roles: tuple[str, ...], password: str | None, password_stdin: bool
) -> None:
    """Create a user; asks for the password when none is given."""
    secret = _read_password(password, password_stdin)
    crm = get_crm()
    require_current_database(crm)
    try:
        with crm.unit_of_work(source="cli") as uow:
            users.ensure_default_roles(uow)
            created = users.create(
                uow, {"email": email, "name": name, "password": secret, "roles": list(roles)}
            )
    except ValidationError as exc:
        raise click.ClickException(format_messages(exc.messages)) from exc
    click.echo(f"created user {created.email} (id {created.id}) with roles {', '.join(roles)}")
