"""Teams: groups of users who see each other's records when a role's visibility is ``team``.

Every function needs ``user.admin``. A team is a unique name (unique whatever the case:
``North`` and ``north`` cannot both exist); its members are the users whose ``team_id``
names it, and a user belongs to one team at most. Changes are audited as ``team``
entries (``created``, ``updated``, ``deleted``); a member joining or leaving a team is,
as on the user's page, a ``user`` ``updated`` entry with the ``team_id`` change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema
from sqlalchemy import func, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from crm_core.authz import require
from crm_core.errors import NotFoundError, ValidationError
from crm_core.i18n import N_
from crm_core.ids import as_record_id
from crm_core.models import Team, User
from crm_core.schemas import load_or_refuse
from crm_core.schemas.fieldtypes import RequiredText
from crm_core.services.unit_of_work import UnitOfWork

ADMIN_PERMISSION = "user.admin"
#: The longest name a team may have (the column's length).
MAX_NAME_LENGTH = 120
#: The message of a name another team has (whatever the case).
NAME_TAKEN = N_("A team with this name exists already.")


class TeamSchema(Schema):
    """A team: its name, stripped, 1 to :data:`MAX_NAME_LENGTH` characters."""

    name = RequiredText(max_length=MAX_NAME_LENGTH)


@dataclass(frozen=True)
class TeamSummary:
    """A team and how many users belong to it (deactivated ones included)."""

    team: Team
    member_count: int


@dataclass(frozen=True)
class Member:
    """A member of a team, as lists show them: no roles or other relationships loaded."""

    id: int
    name: str
    email: str
    active: bool
    team_id: int

    @property
    def label(self) -> str:
        """The name, or the email when the user has no name."""
        return self.name or self.email


def list_teams(uow: UnitOfWork) -> list[TeamSummary]:
    """Every team by name (case-insensitive), each with its member count: one query."""
    require(uow.actor, ADMIN_PERMISSION)
    members = (
        select(func.count(User.id)).where(User.team_id == Team.id).scalar_subquery()
    )
    rows = uow.session.execute(
        select(Team, members).order_by(func.lower(Team.name), Team.id)
    ).all()
    return [TeamSummary(team, count or 0) for team, count in rows]


def members(uow: UnitOfWork, team_ids: Iterable[int]) -> dict[int, list[Member]]:
    """The members of each of ``team_ids`` by name (one query, none without ids).

    Teams without members are absent from the answer.
    """
    require(uow.actor, ADMIN_PERMISSION)
    wanted = sorted(set(team_ids))
    found: dict[int, list[Member]] = {}
    if not wanted:
        return found
    rows = uow.session.execute(
        select(User.id, User.name, User.email, User.active, User.team_id).where(
            User.team_id.in_(wanted)
        )
    )
    for row in rows:
        member = Member(row.id, row.name or "", row.email, row.active, row.team_id)
        found.setdefault(member.team_id, []).append(member)
    for listed in found.values():
        listed.sort(key=lambda m: (m.label.casefold(), m.id))
    return found


def get(uow: UnitOfWork, team_id: Any) -> Team:
    """Team ``team_id``; :class:`NotFoundError` if there is none."""
    require(uow.actor, ADMIN_PERMISSION)
    ident = as_record_id(team_id)
    team = uow.session.get(Team, ident) if ident is not None and ident > 0 else None
    if team is None:
        raise NotFoundError("team", team_id)
    return team


def create(uow: UnitOfWork, data: Mapping[str, Any]) -> Team:
    """A new team named ``data["name"]``; :class:`ValidationError` on ``name`` if refused."""
    require(uow.actor, ADMIN_PERMISSION)
    name = load_or_refuse(TeamSchema(), data)["name"]
    _check_name(uow, None, name)
    team = Team(name=name)
    with _name_guard(uow):
        uow.session.add(team)
    uow.record("team", "created", [(team.id, {"name": (None, name)})])
    return team


def update(uow: UnitOfWork, team_id: Any, data: Mapping[str, Any]) -> Team:
    """Rename team ``team_id`` to ``data["name"]`` (no name given: nothing changes)."""
    team = get(uow, team_id)
    loaded = load_or_refuse(TeamSchema(), data, partial=True)
    name = loaded.get("name")
    if name is None or name == team.name:
        return team
    _check_name(uow, team, name)
    before = team.name
    with _name_guard(uow):
        team.name = name
    uow.record("team", "updated", [(team.id, {"name": (before, name)})])
    return team


def delete(uow: UnitOfWork, team_id: Any) -> list[int]:
    """Delete team ``team_id``; its members keep their accounts and have no team.

    Returns the ids of the users who were its members.
    """
    team = get(uow, team_id)
    ident, name = team.id, team.name
    former = sorted(uow.session.scalars(select(User.id).where(User.team_id == ident)))
    if former:
        uow.session.execute(sql_update(User).where(User.team_id == ident).values(team_id=None))
    uow.session.delete(team)
    uow.session.flush()
    uow.record("user", "updated", [(user_id, {"team_id": (ident, None)}) for user_id in former])
    uow.record("team", "deleted", [(ident, {"name": (name, None), "members": (former, [])})])
    return former


def set_members(uow: UnitOfWork, team_id: Any, user_ids: Iterable[Any]) -> Team:
    """Make exactly ``user_ids`` the members of team ``team_id``.

    Users of another team move to this one; members not listed leave it (and have no
    team). :class:`ValidationError` on ``user_ids`` for ids of no user.
    """
    team = get(uow, team_id)
    given = list(user_ids)
    wanted = {as_record_id(value) for value in given}
    unknown = [str(value) for value in given if as_record_id(value) is None]
    rows = uow.session.execute(
        select(User.id, User.team_id).where(
            (User.team_id == team.id) | User.id.in_(sorted(i for i in wanted if i is not None))
        )
    ).all()
    held = {row.id: row.team_id for row in rows}
    unknown += [str(i) for i in sorted(i for i in wanted if i is not None and i not in held)]
    if unknown:
        raise ValidationError({"user_ids": [f"No such user: {', '.join(unknown)}."]})
    joining = sorted(i for i in wanted if i is not None and held[i] != team.id)
    leaving = sorted(i for i, current in held.items() if current == team.id and i not in wanted)
    if not joining and not leaving:
        return team
    before = sorted(i for i, current in held.items() if current == team.id)
    for ids, value in ((joining, team.id), (leaving, None)):
        if ids:
            uow.session.execute(sql_update(User).where(User.id.in_(ids)).values(team_id=value))
    uow.session.flush()
    uow.record(
        "user",
        "updated",
        [(i, {"team_id": (held[i], team.id)}) for i in joining]
        + [(i, {"team_id": (team.id, None)}) for i in leaving],
    )
    after = sorted(set(before) - set(leaving) | set(joining))
    uow.record("team", "updated", [(team.id, {"members": (before, after)})])
    return team


def _check_name(uow: UnitOfWork, team: Team | None, name: str) -> None:
    """Refuse ``name`` when another team has it, whatever the case (compared in Python, as
    SQLite's ``lower()`` only folds ASCII)."""
    folded = name.casefold()
    others = select(Team.name) if team is None else select(Team.name).where(Team.id != team.id)
    if any(other.casefold() == folded for other in uow.session.scalars(others)):
        raise ValidationError({"name": [NAME_TAKEN]})


@contextmanager
def _name_guard(uow: UnitOfWork) -> Iterator[None]:
    """Write a team's name in a savepoint: the same name committed meanwhile by another
    transaction is a :class:`ValidationError` on ``name``, not an IntegrityError."""
    try:
        with uow.session.begin_nested():
            yield
    except IntegrityError as exc:
        raise ValidationError({"name": [NAME_TAKEN]}) from exc
