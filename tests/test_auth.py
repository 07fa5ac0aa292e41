"""Web authentication: sign-in with CSRF and throttling, sessions, bearer tokens, passwords."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re

import pytest
from flask import jsonify
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from crm_core.db import utcnow
from crm_core.models import ApiToken, AuditEntry, User
from crm_core.security import ScopedActor
from crm_core.services import tokens, users
from crm_core.web.auth import LOGIN_FAILED, current_actor

pytestmark = pytest.mark.plugins()

PASSWORD = "correct horse battery"
NEW_PASSWORD = "tr0ub4dor & 3"


@pytest.fixture
def app(app):
    """The test app plus two probes that report who :func:`current_actor` says is acting."""

    def whoami():
        actor = current_actor()
        return jsonify(
            kind=type(actor).__name__ if actor is not None else None,
            email=actor.email if actor is not None else None,
            permissions=sorted(actor.permissions) if actor is not None else [],
            same=actor is current_actor(),
        )

    app.add_url_rule("/test/whoami", "test_whoami", whoami, methods=["GET", "POST"])
    app.add_url_rule("/api/test/whoami", "test_api_whoami", whoami, methods=["GET", "POST"])
    return app


@pytest.fixture
def people(crm) -> dict[str, User]:
    """A sales user and a deactivated one, both with the password :data:`PASSWORD`."""
    with crm.unit_of_work(source="test") as uow:
        users.ensure_default_roles(uow)
        return {
            name: users.create(
                uow,
                {"email": f"{name}@example.com", "password": PASSWORD, "roles": ["sales"],
                 "active": name != "gone"},
            )
            for name in ("sam", "gone")
        }


def csrf_token(page: str) -> str:
    """The CSRF token of the (first) form in ``page``."""
    found = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return html.unescape(found.group(1))


def alert(page: str) -> str | None:
    found = re.search(r'role="alert">(.*?)</p>', page, flags=re.S)
    return html.unescape(found.group(1)) if found else None


def sign_in(client, email: str, password: str, next_url: str | None = None):
    url = f"/login?next={next_url}" if next_url else "/login"
    token = csrf_token(client.get(url).get_data(as_text=True))
    return client.post(url, data={"email": email, "password": password, "csrf_token": token})


def whoami(client, **kwargs):
    return client.get("/test/whoami", **kwargs).get_json()


def stored(crm, email: str) -> User:
    with crm.session_factory() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        return user


def audit_actions(crm, user_id: int) -> list[str]:
    with crm.session_factory() as session:
        return list(session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity == "user", AuditEntry.entity_id == str(user_id))
            .order_by(AuditEntry.id)
        ))


# -- the sign-in form --------------------------------------------------------------------


def test_login_page_is_an_accessible_form_with_a_csrf_token(client):
    response = client.get("/login")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert csrf_token(page)
    assert '<label for="email">Email address</label>' in page
    assert '<label for="password">Password</label>' in page
    assert 'autocomplete="current-password"' in page
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_posting_without_a_csrf_token_is_refused(client, crm, people):
    client.get("/login")
    response = client.post("/login", data={"email": "sam@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    wrong = client.post(
        "/login", data={"email": "sam@example.com", "password": PASSWORD, "csrf_token": "x"}
    )
    assert wrong.status_code == 400
    assert whoami(client)["email"] is None
    assert stored(crm, "sam@example.com").last_login_at is None


def test_signing_in_starts_a_session_current_actor_resolves(client, crm, people):
    response = sign_in(client, "Sam@Example.com ", PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert whoami(client) == {
        "kind": "User",
        "email": "sam@example.com",
        "permissions": sorted(people["sam"].permissions),
        "same": True,
    }
    user = stored(crm, "sam@example.com")
    assert user.last_login_at is not None
    assert utcnow() - user.last_login_at < dt.timedelta(minutes=1)
    assert audit_actions(crm, user.id)[-1] == "logged_in"
    # Signed in, the login page sends you on.
    assert client.get("/login").status_code == 302


def test_the_session_cookie_is_httponly_lax_and_secure_only_when_asked(crm, people):
    from crm_core.web.app import create_app

    for secure in (False, True):
        crm.settings = dataclasses.replace(crm.settings, secure_cookies=secure)
        client = create_app(crm=crm).test_client()
        cookie = sign_in(client, "sam@example.com", PASSWORD).headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_sign_in_goes_back_only_to_pages_of_this_site(client, people):
    assert sign_in(client, "sam@example.com", PASSWORD, "/account/password").headers[
        "Location"
    ] == "/account/password"
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"):
        client.post("/logout", data={"csrf_token": csrf_token(
            client.get("/account/password").get_data(as_text=True))})
        response = sign_in(client, "sam@example.com", PASSWORD, target)
        assert response.headers["Location"] == "/", target


def test_pages_that_need_a_session_send_you_to_sign_in(client):
    response = client.get("/account/password")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    assert whoami(client)["email"] is None


# -- throttling --------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(client, crm, people):
    for attempt in range(1, users.MAX_FAILED_LOGINS):
        response = sign_in(client, "sam@example.com", f"wrong {attempt}")
        assert response.status_code == 200
        assert alert(response.get_data(as_text=True)) == LOGIN_FAILED
        user = stored(crm, "sam@example.com")
        assert (user.failed_logins, user.locked_until) == (attempt, None)
    before = utcnow()
    sign_in(client, "sam@example.com", "wrong again")
    user = stored(crm, "sam@example.com")
    assert user.failed_logins == users.MAX_FAILED_LOGINS
    assert user.locked_until is not None
    assert before + dt.timedelta(minutes=15) <= user.locked_until
    assert user.locked_until <= utcnow() + dt.timedelta(minutes=15)
    assert audit_actions(crm, user.id).count("login_failed") == users.MAX_FAILED_LOGINS

    # Locked: even the right password is refused, with the very same message.
    response = sign_in(client, "sam@example.com", PASSWORD)
    assert response.status_code == 200
    assert alert(response.get_data(as_text=True)) == LOGIN_FAILED
    assert whoami(client)["email"] is None
    assert stored(crm, "sam@example.com").last_login_at is None
    # ...which is also what an unknown address gets: nothing tells them apart.
    unknown = sign_in(client, "nobody@example.com", PASSWORD)
    assert alert(unknown.get_data(as_text=True)) == LOGIN_FAILED

    # Fifteen minutes later the right password works, and the count starts again.
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(User, user.id).locked_until = utcnow() - dt.timedelta(seconds=1)
    assert sign_in(client, "sam@example.com", PASSWORD).status_code == 302
    user = stored(crm, "sam@example.com")
    assert (user.failed_logins, user.locked_until) == (0, None)
    assert whoami(client)["email"] == "sam@example.com"


def test_a_success_resets_the_count_of_failures(client, crm, people):
    for _ in range(users.MAX_FAILED_LOGINS - 1):
        sign_in(client, "sam@example.com", "wrong")
    assert sign_in(client, "sam@example.com", PASSWORD).status_code == 302
    assert stored(crm, "sam@example.com").failed_logins == 0
    client.post("/logout", data={"csrf_token": csrf_token(
        client.get("/account/password").get_data(as_text=True))})
    sign_in(client, "sam@example.com", "wrong")
    assert stored(crm, "sam@example.com").locked_until is None


def test_the_service_throttles_whoever_calls_it(crm, people):
    now = utcnow()
    for _ in range(users.MAX_FAILED_LOGINS):
        with crm.unit_of_work(source="api") as uow:
            assert users.login(uow, "sam@example.com", "wrong", now=now) is None
    for offset in (0, 14 * 60 + 59):
        with crm.unit_of_work(source="api") as uow:
            later = now + dt.timedelta(seconds=offset)
            assert users.login(uow, "sam@example.com", PASSWORD, now=later) is None
    with crm.unit_of_work(source="api") as uow:
        later = now + users.LOCKOUT
        signed_in = users.login(uow, "sam@example.com", PASSWORD, now=later)
    assert signed_in is not None
    assert signed_in.last_login_at == later


# -- sessions end ------------------------------------------------------------------------


def test_logout_needs_a_post_with_a_csrf_token(client, people):
    sign_in(client, "sam@example.com", PASSWORD)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert whoami(client)["email"] == "sam@example.com"
    token = csrf_token(client.get("/account/password").get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert whoami(client)["email"] is None


def test_deactivated_users_cannot_sign_in_and_their_sessions_end(client, crm, people, app):
    response = sign_in(client, "gone@example.com", PASSWORD)
    assert alert(response.get_data(as_text=True)) == LOGIN_FAILED
    assert whoami(client)["email"] is None

    sign_in(client, "sam@example.com", PASSWORD)
    assert whoami(client)["email"] == "sam@example.com"
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(User, people["sam"].id).active = False
    assert whoami(client)["email"] is None


def test_deactivated_users_tokens_stop_working(client, crm, people):
    with crm.unit_of_work(source="test") as uow:
        _, plain = tokens.create(uow, people["sam"])
    bearer = {"Authorization": f"Bearer {plain}"}
    assert whoami(client, headers=bearer)["email"] == "sam@example.com"
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(User, people["sam"].id).active = False
    assert whoami(client, headers=bearer)["email"] is None


# -- changing the password ---------------------------------------------------------------


def change(client, current: str, new: str, confirm: str | None = None):
    token = csrf_token(client.get("/account/password").get_data(as_text=True))
    return client.post(
        "/account/password",
        data={"csrf_token": token, "current_password": current, "new_password": new,
              "confirm": new if confirm is None else confirm},
    )


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong password", NEW_PASSWORD, None, "The current password is wrong."),
        (PASSWORD, "short", None, "Use at least 8 characters."),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "The two new passwords differ."),
        (PASSWORD, PASSWORD, None, "Choose a password different from the current one."),
    ],
)
def test_password_change_is_validated(client, crm, people, current, new, confirm, message):
    sign_in(client, "sam@example.com", PASSWORD)
    response = change(client, current, new, confirm)
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    assert message in page
    assert 'aria-invalid="true"' in page
    assert stored(crm, "sam@example.com").check_password(PASSWORD)
    assert "password_changed" not in audit_actions(crm, people["sam"].id)


def test_password_change_keeps_this_session_and_ends_the_others(app, client, crm, people):
    other = app.test_client()
    sign_in(other, "sam@example.com", PASSWORD)
    sign_in(client, "sam@example.com", PASSWORD)
    page = client.get("/account/password").get_data(as_text=True)
    assert '<label for="current_password">Current password</label>' in page

    response = change(client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert "Your password was changed." in client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    user = stored(crm, "sam@example.com")
    assert user.check_password(NEW_PASSWORD)
    assert not user.check_password(PASSWORD)
    assert audit_actions(crm, user.id)[-1] == "password_changed"
    with crm.session_factory() as session:
        changes = session.scalars(
            select(AuditEntry.changes).where(AuditEntry.action == "password_changed")
        ).one()
    assert changes == {}
    assert whoami(client)["email"] == "sam@example.com"
    assert whoami(other)["email"] is None

    client.post("/logout", data={"csrf_token": csrf_token(
        client.get("/account/password").get_data(as_text=True))})
    assert alert(sign_in(client, "sam@example.com", PASSWORD).get_data(as_text=True))
    assert sign_in(client, "sam@example.com", NEW_PASSWORD).status_code == 302


# -- bearer tokens and the API -----------------------------------------------------------


def test_bearer_tokens_act_with_their_scopes(client, crm, people):
    with crm.unit_of_work(source="test") as uow:
        _, plain = tokens.create(uow, people["sam"], scopes=["customer.view"])
    me = whoami(client, headers={"Authorization": f"Bearer {plain}"})
    assert me == {"kind": "ScopedActor", "email": "sam@example.com",
                  "permissions": ["customer.view"], "same": True}
    # The scheme is case-insensitive; other schemes are not ours.
    assert whoami(client, headers={"Authorization": f"bearer {plain}"})["email"]
    assert whoami(client, headers={"Authorization": "Basic c2FtOng="})["email"] is None


@pytest.mark.parametrize("credentials", ["", "nonsense", "crm_00000000_" + "A" * 43])
def test_a_bad_token_is_nobody_even_with_a_session(client, people, credentials):
    sign_in(client, "sam@example.com", PASSWORD)
    assert whoami(client)["email"] == "sam@example.com"
    bad = whoami(client, headers={"Authorization": f"Bearer {credentials}"})
    assert bad["email"] is None


def last_used(crm, token_id: int) -> dt.datetime | None:
    with crm.session_factory() as session:
        return session.get(ApiToken, token_id).last_used_at


def test_a_token_s_use_is_recorded_once_the_response_is_sent(client, crm, people):
    with crm.unit_of_work(source="test") as uow:
        token, plain = tokens.create(uow, people["sam"])
    bearer = {"Authorization": f"Bearer {plain}"}
    response = client.get("/api/test/whoami", headers=bearer)
    assert response.get_json()["email"] == "sam@example.com"
    assert last_used(crm, token.id) is None  # the request itself only reads
    response.close()  # what the server does once the response is sent
    first = last_used(crm, token.id)
    assert first is not None and utcnow() - first < dt.timedelta(seconds=10)
    client.get("/api/test/whoami", headers=bearer).close()
    assert last_used(crm, token.id) == first  # at most once a minute


def test_recording_a_token_s_use_never_fails_the_request(client, crm, people, monkeypatch,
                                                          caplog):
    with crm.unit_of_work(source="test") as uow:
        token, plain = tokens.create(uow, people["sam"])

    def locked(*_args):
        raise OperationalError("UPDATE api_token ...", {}, Exception("database is locked"))

    monkeypatch.setattr(tokens, "touch", locked)
    response = client.get("/api/test/whoami", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 200
    response.close()
    assert last_used(crm, token.id) is None
    assert "Could not record the use of API token" in caplog.text


def test_api_answers_bearer_tokens_and_401_without_them(client, crm, people):
    with crm.unit_of_work(source="test") as uow:
        token, plain = tokens.create(uow, people["sam"], scopes=["customer.view"])
    bearer = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/v1/customers", headers=bearer).status_code == 200
    refused = client.post("/api/v1/customers", json={"name": "ACME"}, headers=bearer)
    assert refused.status_code == 403  # outside the token's scopes, no CSRF token needed
    anonymous = client.get("/api/v1/customers")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    with crm.unit_of_work(source="test") as uow:
        tokens.revoke(uow, token.id)
    assert client.get("/api/v1/customers", headers=bearer).status_code == 401


def test_api_writes_with_the_session_cookie_need_the_csrf_header(client, crm, people):
    # Anonymous and bearer requests need no CSRF token (the API answers them itself).
    assert client.post("/api/test/whoami").get_json()["email"] is None
    with crm.unit_of_work(source="test") as uow:
        _, plain = tokens.create(uow, people["sam"])
    bearer = client.post("/api/test/whoami", headers={"Authorization": f"Bearer {plain}"})
    assert bearer.status_code == 200
    assert bearer.get_json()["kind"] == "ScopedActor"

    sign_in(client, "sam@example.com", PASSWORD)
    refused = client.post("/api/test/whoami")
    assert refused.status_code == 400
    assert refused.mimetype == "application/problem+json"
    assert "X-CSRFToken" in refused.get_json()["detail"]
    token = csrf_token(client.get("/account/password").get_data(as_text=True))
    allowed = client.post("/api/test/whoami", headers={"X-CSRFToken": token})
    assert allowed.status_code == 200
    assert allowed.get_json()["email"] == "sam@example.com"
    assert client.get("/api/test/whoami").get_json()["kind"] == "User"  # reads need none


def test_forms_outside_the_api_need_csrf_even_with_a_bearer_token(client, crm, people):
    with crm.unit_of_work(source="test") as uow:
        _, plain = tokens.create(uow, people["sam"])
    response = client.post("/test/whoami", headers={"Authorization": f"Bearer {plain}"})
    assert response.status_code == 400


def test_current_actor_is_a_scoped_actor_for_tokens(app, crm, people):
    with crm.unit_of_work(source="test") as uow:
        token, plain = tokens.create(uow, people["sam"])
    with app.test_request_context("/", headers={"Authorization": f"Bearer {plain}"}):
        actor = current_actor()
        assert isinstance(actor, ScopedActor)
        assert actor.token_id == token.id
        assert actor.id == people["sam"].id
    with app.test_request_context("/"):
        assert current_actor() is None
