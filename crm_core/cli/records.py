"""``crm search``, ``duplicates``, ``merge`` and ``unmerge``: finding and fixing records.

They run as the system (every record visible), with ``cli`` as the audit source.
"""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import with_appcontext

from crm_core.cli.common import get_crm, print_table, require_current_database
from crm_core.cli.user import format_messages
from crm_core.duplicates import contact_duplicates, customer_duplicates
from crm_core.errors import ValidationError
from crm_core.search import search as global_search
from crm_core.services import contacts, customers, merges

#: What ``crm merge`` and friends accept as ENTITY: plural name -> (entity, service).
MERGEABLE: dict[str, tuple[str, Any]] = {
    "customers": ("customer", customers),
    "contacts": ("contact", contacts),
}
_ENTITY = click.Choice(sorted(MERGEABLE))


@click.command("search")
@with_appcontext
@click.argument("text")
@click.option("--entity", "entities", multiple=True, help="Only this kind (repeat for several).")
@click.option("--limit", type=click.IntRange(1, 50), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
def search_command(text: str, entities: tuple[str, ...], limit: int, as_json: bool) -> None:
    """Search customers, contacts and plugins' records: names, emails, phone numbers."""
    crm = get_crm()
    require_current_database(crm)
    with crm.session_factory() as session:
        try:
            hits = global_search(crm, session, None, text, entities=entities or None, limit=limit)
        except ValidationError as exc:
            raise click.ClickException(format_messages(exc.messages)) from exc
    if as_json:
        for hit in hits:
            click.echo(json.dumps({"entity": hit.entity, "id": hit.id, "title": hit.title,
                                   "subtitle": hit.subtitle, "score": hit.score}))
        return
    if not hits:
        click.echo(f"nothing matches {text!r}")
        return
    print_table(
        ["entity", "id", "title", "details", "score"],
        [[hit.entity, str(hit.id), hit.title, hit.subtitle, f"{hit.score:.2f}"] for hit in hits],
    )


@click.command("duplicates")
@with_appcontext
@click.argument("entity", type=_ENTITY)
@click.argument("record_id", type=int)
@click.option("--limit", type=click.IntRange(1, 50), default=10, show_default=True)
def duplicates_command(entity: str, record_id: int, limit: int) -> None:
    """List the probable duplicates of a customer or contact, most likely first."""
    crm = get_crm()
    require_current_database(crm)
    suggest = customer_duplicates if entity == "customers" else contact_duplicates
    with crm.session_factory() as session:
        found = suggest(session, None, record_id, limit)
    if not found:
        click.echo(f"no probable duplicates of {MERGEABLE[entity][0]} {record_id}")
        return
    print_table(
        ["id", "title", "score", "reasons"],
        [[str(c.id), c.title, f"{c.score:.2f}", ", ".join(c.reasons)] for c in found],
    )


@click.command("merge")
@with_appcontext
@click.argument("entity", type=_ENTITY)
@click.argument("survivor_id", type=int)
@click.argument("duplicate_ids", type=int, nargs=-1, required=True)
@click.option(
    "--keep",
    "keep",
    multiple=True,
    metavar="FIELD=ID",
    help="Keep FIELD's value from record ID (repeat for several fields).",
)
def merge_command(
    entity: str, survivor_id: int, duplicate_ids: tuple[int, ...], keep: tuple[str, ...]
) -> None:
    """Merge duplicates into SURVIVOR_ID: their contacts, interactions and plugins' records move.

    The duplicates are archived; ``crm unmerge`` with the printed merge id undoes it.
    """
    crm = get_crm()
    require_current_database(crm)
    name, service = MERGEABLE[entity]
    field_sources = _field_sources(keep)
    try:
        with crm.unit_of_work(source="cli") as uow:
            survivor = service.merge(
                uow, survivor_id, duplicate_ids, field_sources=field_sources
            )
            merge_id = merges.merge_id(uow, name, survivor.id)
    except ValidationError as exc:
        raise click.ClickException(format_messages(exc.messages)) from exc
    merged = ", ".join(str(ident) for ident in dict.fromkeys(duplicate_ids))
    click.echo(f"merged {entity} {merged} into {survivor.id}: merge {merge_id}")
    click.echo(f"undo with: crm unmerge {entity} {merge_id}", err=True)


@click.command("unmerge")
@with_appcontext
@click.argument("entity", type=_ENTITY)
@click.argument("merge_id", type=int)
def unmerge_command(entity: str, merge_id: int) -> None:
    """Undo merge MERGE_ID (printed by ``crm merge``, or the ``merged`` entry of the history)."""
    crm = get_crm()
    require_current_database(crm)
    try:
        with crm.unit_of_work(source="cli") as uow:
            undone = merges.undo_merge(uow, MERGEABLE[entity][0], merge_id)
    except ValidationError as exc:
        raise click.ClickException(format_messages(exc.messages)) from exc
    restored = ", ".join(str(record.id) for record in undone.restored)
    click.echo(f"undid merge {merge_id}: {entity} {restored} restored beside {undone.survivor.id}")


def _field_sources(keep: tuple[str, ...]) -> dict[str, int]:
    sources: dict[str, int] = {}
    for item in keep:
        field, _, ident = item.partition("=")
        if not field or not ident.strip().isdigit():
            raise click.BadParameter(f"{item!r}: write FIELD=ID", param_hint="--keep")
        sources[field.strip()] = int(ident)
    return sources
