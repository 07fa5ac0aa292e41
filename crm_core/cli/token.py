"""``crm token``: API tokens for scripts, CI and integrations."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup

from crm_core.cli.common import get_crm, print_table, require_current_database
from crm_core.cli.user import format_messages
from crm_core.db import utcnow
from crm_core.errors import ValidationError
from crm_core.models import ApiToken
from crm_core.services import tokens, users

token = AppGroup("token", help="Manage API tokens (Authorization: Bearer ...).")


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _scopes(item: ApiToken) -> str:
    return ",".join(item.scopes) if item.scopes else "all"


@token.command("create")
@click.option("--user", "email", required=True, help="Email of the user the token acts as.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="PERMISSION",
    help="Limit the token to this permission (repeat for several; default: all the user's).",
)
@click.option("--name", default="", help="What the token is for, e.g. 'CI deploy'.")
@click.option(
    "--expires-days",
    type=click.IntRange(min=1),
    default=None,
    help="Expire after this many days (default: never).",
)
def create(email: str, scopes: tuple[str, ...], name: str, expires_days: int | None) -> None:
    """Create a token and print it once: only its hash is stored.

    The token alone goes to standard output (``TOKEN=$(crm token create ...)``);
    what it is and the warning go to standard error.
    """
    crm = get_crm()
    require_current_database(crm)
    expires_at = utcnow() + dt.timedelta(days=expires_days) if expires_days else None
    try:
        with crm.unit_of_work(source="cli") as uow:
            user = users.get_by_email(uow, email)
            created, plain = tokens.create(
                uow, user, name=name, scopes=scopes, expires_at=expires_at
            )
    except ValidationError as exc:
        raise click.ClickException(format_messages(exc.messages)) from exc
    click.echo(plain)
    click.echo(
        f"created token {created.id} ({created.prefix}) for {user.email}; "
        f"scopes: {_scopes(created)}; expires: {_when(created.expires_at)}",
        err=True,
    )
    click.echo("Copy the token now: it is not stored and will not be shown again.", err=True)


@token.command("list")
@click.option("--user", "email", required=True, help="Email of the user whose tokens to list.")
def list_tokens(email: str) -> None:
    """List a user's tokens (prefix only, never the token), newest first."""
    crm = get_crm()
    require_current_database(crm)
    with crm.unit_of_work(source="cli") as uow:
        user = users.get_by_email(uow, email)
        found = tokens.list_for(uow, user)
    if not found:
        click.echo(f"{user.email} has no API tokens")
        return
    print_table(
        ["id", "prefix", "name", "scopes", "created", "expires", "last used", "revoked"],
        [
            [
                str(item.id),
                item.prefix,
                item.name or "-",
                _scopes(item),
                _when(item.created_at),
                _when(item.expires_at),
                _when(item.last_used_at),
                _when(item.revoked_at),
            ]
            for item in found
        ],
    )


@token.command("revoke")
@click.argument("token_id", type=int)
def revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID (see `crm token list`); requests using it get 401 at once."""
    crm = get_crm()
    require_current_database(crm)
    with crm.unit_of_work(source="cli") as uow:
        was_revoked = tokens.get(uow, token_id).revoked_at
        revoked = tokens.revoke(uow, token_id)
    if was_revoked is not None:
        click.echo(
            f"token {revoked.id} ({revoked.prefix}) was already revoked on {_when(was_revoked)}"
        )
    else:
        click.echo(f"revoked token {revoked.id} ({revoked.prefix})")
