"""API tokens: format and hashing, scopes, expiry, revocation, management rights, `crm token`."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select

from crm_core import NotFoundError, PermissionDenied, ValidationError
from crm_core.authz import require, visible
from crm_core.db import utcnow
from crm_core.models import ApiToken, AuditEntry, Customer, OutboxEvent, Team, User
from crm_core.security import (
    ScopedActor,
    generate_token,
    hash_token,
    looks_like_token,
    token_prefix,
)
from crm_core.services import customers, tokens, users

pytestmark = pytest.mark.plugins()

PASSWORD = "correct horse battery"


@pytest.fixture
def people(crm) -> dict[str, User]:
    """An admin, a sales user (in a team), a viewer and a deactivated sales user."""
    with crm.unit_of_work(source="test") as uow:
        users.ensure_default_roles(uow)
        made = {
            name: users.create(
                uow,
                {"email": f"{name}@example.com", "password": PASSWORD, "roles": [role],
                 "active": name != "gone"},
            )
            for name, role in (("ada", "admin"), ("sam", "sales"), ("vic", "viewer"),
                               ("gone", "sales"))
        }
        team = Team(name="North")
        uow.session.add(team)
        made["sam"].team = team
        uow.session.flush()
    return made


def make_token(crm, user: User, **options) -> tuple[ApiToken, str]:
    with crm.unit_of_work(source="test") as uow:
        return tokens.create(uow, user, **options)


def authenticate(crm, plain: str, now: dt.datetime | None = None) -> ApiToken | None:
    with crm.session_factory() as session, session.begin():
        return tokens.authenticate(session, plain, now or utcnow())


def actor_for(crm, plain: str, now: dt.datetime | None = None) -> ScopedActor | None:
    with crm.session_factory() as session, session.begin():
        return tokens.authenticate_actor(session, plain, now or utcnow())


def accepted(crm, plain: str, now: dt.datetime | None = None) -> bool:
    """Whether both ways of authenticating accept ``plain``; they must agree."""
    row, actor = authenticate(crm, plain, now), actor_for(crm, plain, now)
    assert (row is None) == (actor is None), (row, actor)
    if row is not None and actor is not None:
        assert (actor.token_id, actor.id, actor.scopes) == (row.id, row.user_id, set(row.scopes))
    return row is not None


def stored(crm, token_id: int) -> ApiToken:
    with crm.session_factory() as session:
        found = session.get(ApiToken, token_id)
        assert found is not None
        return found


# -- the secret --------------------------------------------------------------------------


def test_generated_tokens_are_long_random_and_recognisable():
    made = {generate_token() for _ in range(50)}
    assert len(made) == 50
    for token in made:
        assert re.fullmatch(r"crm_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", token), token
        assert looks_like_token(token)
        assert token_prefix(token) == token[:12]
    assert not looks_like_token("crm_nothex!!_" + "a" * 43)
    assert not looks_like_token("Bearer")
    assert not looks_like_token(generate_token() + "x" * 200)


def test_hash_is_sha256_hex():
    # The FIPS 180-2 test vector for "abc".
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(hash_token(generate_token())) == 64


# -- create ------------------------------------------------------------------------------


def test_create_stores_only_the_hash_and_audits_without_the_secret(crm, people):
    token, plain = make_token(crm, people["sam"], name="CI", scopes=["customer.view"])
    row = stored(crm, token.id)
    assert row.token_hash == hash_token(plain)
    assert row.prefix == plain[:12]
    assert row.scopes == ["customer.view"]
    assert row.name == "CI"
    assert plain not in {row.token_hash, row.prefix, row.name}
    with crm.session_factory() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "api_token")
        ).all()
        events = session.scalars(
            select(OutboxEvent).where(OutboxEvent.entity == "api_token")
        ).all()
    assert [(a.action, a.entity_id) for a in audit] == [("created", str(token.id))]
    assert audit[0].changes["user_id"] == [None, people["sam"].id]
    assert audit[0].changes["scopes"] == [None, ["customer.view"]]
    recorded = json.dumps([a.changes for a in audit] + [e.payload for e in events])
    assert plain not in recorded
    assert plain[12:] not in recorded
    assert row.token_hash not in recorded


def test_scopes_must_be_registered_permissions_the_user_holds(crm, people):
    with pytest.raises(ValidationError) as caught:
        make_token(crm, people["sam"], scopes=["customer.view", "wizardry"])
    assert list(caught.value.messages) == ["scopes"]
    assert "wizardry" in caught.value.messages["scopes"][0]
    with pytest.raises(ValidationError) as caught:
        make_token(crm, people["vic"], scopes=["customer.view", "customer.edit"])
    assert caught.value.messages["scopes"] == ["The user does not hold: customer.edit."]
    with crm.session_factory() as session:
        assert session.scalar(select(ApiToken.id)) is None


def test_expiry_must_be_aware_and_in_the_future(crm, people):
    for when in (utcnow() - dt.timedelta(seconds=1), dt.datetime(2999, 1, 1)):
        with pytest.raises(ValidationError) as caught:
            make_token(crm, people["sam"], expires_at=when)
        assert list(caught.value.messages) == ["expires_at"]


def test_deactivated_users_get_no_tokens(crm, people):
    with pytest.raises(ValidationError) as caught:
        make_token(crm, people["gone"])
    assert list(caught.value.messages) == ["user"]


# -- authenticate ------------------------------------------------------------------------


def test_authenticate_finds_the_token_and_its_user(crm, people):
    token, plain = make_token(crm, people["sam"])
    found = authenticate(crm, plain)
    assert found is not None
    assert found.id == token.id
    assert found.user.email == "sam@example.com"
    assert accepted(crm, plain)
    assert not accepted(crm, plain[:-1] + ("A" if plain[-1] != "A" else "B"))
    assert not accepted(crm, generate_token())
    assert not accepted(crm, "")
    assert not accepted(crm, "not a token")
    assert not accepted(crm, hash_token(plain))  # the stored digest is no key


def test_expired_tokens_are_refused(crm, people):
    soon = utcnow() + dt.timedelta(hours=1)
    _, plain = make_token(crm, people["sam"], expires_at=soon)
    assert accepted(crm, plain, now=soon - dt.timedelta(seconds=1))
    assert not accepted(crm, plain, now=soon)
    assert not accepted(crm, plain, now=soon + dt.timedelta(days=1))


def test_revoked_tokens_are_refused_and_revoking_twice_changes_nothing(crm, people):
    token, plain = make_token(crm, people["sam"])
    with crm.unit_of_work(actor=people["sam"], source="test") as uow:
        revoked = tokens.revoke(uow, token.id)
    assert revoked.revoked_at is not None
    assert not accepted(crm, plain)
    with crm.unit_of_work(actor=people["sam"], source="test") as uow:
        again = tokens.revoke(uow, token.id)
    assert again.revoked_at == revoked.revoked_at
    with crm.session_factory() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity == "api_token")
            .order_by(AuditEntry.id)
        ).all()
        actor_ids = set(session.scalars(
            select(AuditEntry.actor_id).where(AuditEntry.action == "revoked")
        ))
    assert actions == ["created", "revoked"]
    assert actor_ids == {people["sam"].id}


def test_tokens_of_deactivated_users_are_refused(crm, people):
    _, plain = make_token(crm, people["sam"])
    assert accepted(crm, plain)
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(User, people["sam"].id).active = False
    assert not accepted(crm, plain)


@pytest.mark.parametrize("way", [authenticate, actor_for], ids=["row", "actor"])
def test_last_used_at_is_written_at_most_once_a_minute(crm, people, way):
    token, plain = make_token(crm, people["sam"])
    assert stored(crm, token.id).last_used_at is None
    start = utcnow()
    way(crm, plain, now=start)
    assert stored(crm, token.id).last_used_at == start
    way(crm, plain, now=start + dt.timedelta(seconds=59))
    assert stored(crm, token.id).last_used_at == start
    later = start + dt.timedelta(seconds=61)
    way(crm, plain, now=later)
    assert stored(crm, token.id).last_used_at == later


def test_the_actor_s_user_is_the_user_as_the_orm_loads_it(crm, people):
    sam = people["sam"]
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(User, sam.id).last_login_at = utcnow()
    _, plain = make_token(crm, sam, scopes=["customer.view"])
    actor = actor_for(crm, plain)
    assert actor is not None
    with crm.session_factory() as session:
        loaded = session.get(User, sam.id)
        assert loaded is not None
    columns = ("id", "email", "name", "password_hash", "active", "team_id", "last_login_at",
               "failed_logins", "locked_until", "created_at", "updated_at")
    for name in columns:
        assert getattr(actor.user, name) == getattr(loaded, name), name
        assert getattr(actor, name) == getattr(loaded, name), name
    assert actor.user.permissions == loaded.permissions
    assert actor.visibility is loaded.visibility
    assert [(r.id, r.name, r.permissions) for r in actor.roles] == [
        (r.id, r.name, r.permissions) for r in loaded.roles
    ]
    assert actor.team is not None and actor.team.name == "North"
    assert actor.permissions == {"customer.view"}
    # A detached user like any other: it joins a session clean, without writes.
    with crm.unit_of_work(source="test") as uow:
        uow.session.add(actor.user)
        assert uow.session.get(User, sam.id) is actor.user
        assert not uow.session.dirty and not uow.session.new
        customers.create(uow, {"name": "Owned Ltd", "owner_id": actor.user.id})
    vic = actor_for(crm, make_token(crm, people["vic"])[1])
    assert vic is not None and vic.team is None
    assert vic.permissions == people["vic"].permissions
    assert "customer.view" in vic.permissions and "customer.edit" not in vic.permissions


def test_a_user_without_roles_acts_with_no_permissions(crm, people):
    with crm.unit_of_work(source="test") as uow:
        nobody = users.create(uow, {"email": "nobody@example.com", "password": PASSWORD,
                                    "roles": []})
    actor = actor_for(crm, make_token(crm, nobody)[1])
    assert actor is not None
    assert actor.roles == [] and actor.permissions == frozenset()
    assert actor.visibility.value == "own"


# -- scopes: the actor a token authenticates ----------------------------------------------


def test_scoped_actor_is_the_user_with_narrowed_permissions(crm, people):
    sam = people["sam"]
    actor = ScopedActor(sam, ["customer.view", "contact.view"], token_id=7)
    assert actor.permissions == {"customer.view", "contact.view"}
    assert (actor.id, actor.email, actor.team_id) == (sam.id, sam.email, sam.team_id)
    assert actor.visibility is sam.visibility
    assert actor.roles == sam.roles
    assert actor.is_active and actor.token_id == 7
    require(actor, "customer.view")
    with pytest.raises(PermissionDenied):
        require(actor, "customer.edit")  # the user may, the token may not
    unscoped = ScopedActor(sam)
    assert unscoped.permissions == sam.permissions
    # A scope the user does not hold (any more) grants nothing.
    assert ScopedActor(people["vic"], ["customer.edit"]).permissions == frozenset()
    assert str(visible(actor, "customer")) == str(visible(sam, "customer"))


def test_services_refuse_what_the_scopes_leave_out(crm, people):
    sam = people["sam"]
    _, reader = make_token(crm, sam, scopes=["customer.view"])
    _, writer = make_token(crm, sam, scopes=["customer.view", "customer.edit"])
    for plain in (reader, writer):
        token = authenticate(crm, plain)
        assert token is not None
        actor = ScopedActor(token.user, token.scopes, token_id=token.id)
        if plain == reader:
            with pytest.raises(PermissionDenied), crm.unit_of_work(actor=actor) as uow:
                customers.create(uow, {"name": "Refused Ltd"})
            continue
        with crm.unit_of_work(actor=actor, source="api") as uow:
            made = customers.create(uow, {"name": "Scoped Ltd"})
    with crm.session_factory() as session:
        record = session.get(Customer, made.id)
        audit = session.scalars(
            select(AuditEntry).where(
                AuditEntry.entity == "customer", AuditEntry.entity_id == str(made.id)
            )
        ).one()
        names = set(session.scalars(select(Customer.name)))
    assert record is not None and record.owner_id == sam.id
    assert audit.actor_id == sam.id
    assert "Refused Ltd" not in names


# -- who may manage which tokens ----------------------------------------------------------


def test_users_manage_their_own_tokens_admins_everyone_s(crm, people):
    sam, vic, ada = people["sam"], people["vic"], people["ada"]
    with crm.unit_of_work(actor=sam, source="test") as uow:
        mine, _ = tokens.create(uow, sam, name="mine")
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=sam) as uow:
        tokens.create(uow, vic)
    with pytest.raises(PermissionDenied), crm.unit_of_work(actor=vic) as uow:
        tokens.list_for(uow, sam)
    with pytest.raises(NotFoundError), crm.unit_of_work(actor=vic) as uow:
        tokens.revoke(uow, mine.id)
    assert stored(crm, mine.id).revoked_at is None
    with crm.unit_of_work(actor=ada, source="test") as uow:
        theirs, _ = tokens.create(uow, vic, name="for vic", scopes=["customer.view"])
        assert [t.id for t in tokens.list_for(uow, sam)] == [mine.id]
        tokens.revoke(uow, mine.id)
    with crm.unit_of_work(actor=sam, source="test") as uow:
        assert [(t.id, t.revoked_at is not None) for t in tokens.list_for(uow, sam)] == [
            (mine.id, True)
        ]
    assert stored(crm, theirs.id).user_id == vic.id


def test_a_scoped_token_cannot_mint_a_wider_one(crm, people):
    sam = people["sam"]
    actor = ScopedActor(sam, ["customer.view"])
    for wider in ([], ["customer.view", "customer.edit"]):
        with pytest.raises(ValidationError) as caught, crm.unit_of_work(actor=actor) as uow:
            tokens.create(uow, sam, scopes=wider)
        assert list(caught.value.messages) == ["scopes"]
    with crm.unit_of_work(actor=actor, source="test") as uow:
        narrow, _ = tokens.create(uow, sam, scopes=["customer.view"])
    assert narrow.scopes == ["customer.view"]


def test_list_is_newest_first(crm, people):
    first, _ = make_token(crm, people["sam"], name="first")
    second, _ = make_token(crm, people["sam"], name="second")
    with crm.unit_of_work(source="test") as uow:
        listed = tokens.list_for(uow, people["sam"])
        assert [t.name for t in listed] == ["second", "first"]
        assert tokens.list_for(uow, people["vic"]) == []
    assert {first.id, second.id} == {t.id for t in listed}


# -- crm token ---------------------------------------------------------------------------


def test_cli_create_prints_the_token_once(runner, crm, people):
    result = runner.invoke(
        args=["token", "create", "--user", "SAM@example.com", "--name", "CI deploy",
              "--scope", "customer.view", "--scope", "contact.view", "--expires-days", "30"]
    )
    assert result.exit_code == 0, result.output
    plain = result.stdout.strip()
    assert looks_like_token(plain)
    assert "not be shown again" in result.stderr
    assert plain not in result.stderr
    found = authenticate(crm, plain)
    assert found is not None
    assert found.user.email == "sam@example.com"
    assert found.name == "CI deploy"
    assert found.scopes == ["contact.view", "customer.view"]
    assert found.expires_at is not None
    remaining = found.expires_at - utcnow()
    assert dt.timedelta(days=29, hours=23) < remaining <= dt.timedelta(days=30)
    with crm.session_factory() as session:
        sources = set(session.scalars(
            select(AuditEntry.source).where(AuditEntry.entity == "api_token")
        ))
    assert sources == {"cli"}


def test_cli_create_reports_bad_input(runner, people):
    bad_scope = runner.invoke(args=["token", "create", "--user", "vic@example.com",
                                    "--scope", "customer.edit"])
    assert bad_scope.exit_code == 1
    assert "Error: scopes: The user does not hold: customer.edit." in bad_scope.output
    nobody = runner.invoke(args=["token", "create", "--user", "nobody@example.com"])
    assert nobody.exit_code == 1
    assert "not found" in nobody.output
    zero = runner.invoke(args=["token", "create", "--user", "sam@example.com",
                               "--expires-days", "0"])
    assert zero.exit_code == 2


def test_cli_list_and_revoke(runner, crm, people):
    created = runner.invoke(args=["token", "create", "--user", "sam@example.com",
                                  "--name", "laptop"])
    plain = created.stdout.strip()
    token = authenticate(crm, plain)
    assert token is not None
    listed = runner.invoke(args=["token", "list", "--user", "sam@example.com"])
    assert listed.exit_code == 0, listed.output
    header, row = listed.output.splitlines()
    assert header.split() == ["id", "prefix", "name", "scopes", "created", "expires", "last",
                              "used", "revoked"]
    cells = row.split()
    assert cells[:4] == [str(token.id), plain[:12], "laptop", "all"]
    assert cells[-1] == "-"  # not revoked
    assert plain not in listed.output

    revoked = runner.invoke(args=["token", "revoke", str(token.id)])
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked token {token.id} ({plain[:12]})" in revoked.output
    assert authenticate(crm, plain) is None
    again = runner.invoke(args=["token", "revoke", str(token.id)])
    assert "already revoked" in again.output
    after = runner.invoke(args=["token", "list", "--user", "sam@example.com"])
    assert after.output.splitlines()[1].split()[-1] != "-"

    empty = runner.invoke(args=["token", "list", "--user", "vic@example.com"])
    assert empty.output.strip() == "vic@example.com has no API tokens"
    missing = runner.invoke(args=["token", "revoke", "999999"])
    assert missing.exit_code == 1
    assert "Error: api_token 999999 not found" in missing.output
