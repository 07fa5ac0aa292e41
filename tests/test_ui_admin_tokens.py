"""API tokens in the UI: a user's own at ``/account/tokens``, everyone's at ``/admin/tokens``.

A token made through the form is shown once and then works against the API with the
scopes ticked; a revoked one stops working; another user's token is not found on
one's own page, and only ``user.admin`` sees and revokes everyone's.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

from sqlalchemy import select
from ui_support import count_rows, statement_count

from crm_core.models import ApiToken, AuditEntry
from crm_core.testing import UiBrowser, api_token, link_of, make_user, ui_user

CLERK_PERMISSIONS = ["customer.view", "contact.view"]


def _stored(crm: Any, name: str) -> ApiToken:
    with crm.session_factory() as session:
        token = session.scalar(select(ApiToken).where(ApiToken.name == name))
        assert token is not None
        return token


def _plain(page: str) -> str:
    return html.unescape(re.search(r'id="plain-token" type="text" readonly value="([^"]+)"', page)
                         .group(1))


def test_a_new_token_is_shown_once_and_works_with_its_scopes(crm, app, client):
    ui_user(crm, "clerk@ui.example", CLERK_PERMISSIONS)
    clerk = UiBrowser(client, "clerk@ui.example")
    form = clerk.get("/account/tokens")
    assert 'name="scopes" value="customer.view"' in form
    assert 'name="scopes" value="user.admin"' not in form  # only the user's own permissions
    assert "You have no API tokens." in form
    last_day = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    response = clerk.post(
        "/account/tokens",
        {"name": "ERP sync", "scopes": ["customer.view"], "expires_on": last_day},
        status=200,
    )
    assert response.headers["Cache-Control"] == "no-store"
    plain = _plain(response.get_data(as_text=True))
    assert plain.startswith("crm_")
    stored = _stored(crm, "ERP sync")
    assert stored.scopes == ["customer.view"] and plain.startswith(f"{stored.prefix}")
    assert stored.expires_at.date() == dt.date.fromisoformat(last_day) + dt.timedelta(days=1)
    api = app.test_client()
    bearer = {"Authorization": f"Bearer {plain}"}
    assert api.get("/api/v1/customers", headers=bearer).status_code == 200
    assert api.get("/api/v1/contacts", headers=bearer).status_code == 403  # not in its scopes
    page = clerk.get("/account/tokens")
    assert "ERP sync" in page and f"<code>{stored.prefix}…</code>" in page
    assert plain not in page  # never shown again
    assert '<span class="badge state-active">active</span>' in page
    with crm.session_factory() as session:
        source = session.scalar(
            select(AuditEntry.source).where(
                AuditEntry.entity == "api_token", AuditEntry.entity_id == str(stored.id)
            )
        )
    assert source == "ui"


def test_a_refused_token_shows_each_message_and_saves_nothing(crm, client):
    ui_user(crm, "clerk@ui.example", CLERK_PERMISSIONS)
    clerk = UiBrowser(client, "clerk@ui.example")
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    page = clerk.post(
        "/account/tokens",
        {"name": "x" * 121, "scopes": ["customer.view", "user.admin"], "expires_on": yesterday},
        status=422,
    ).get_data(as_text=True)
    for name in ("name", "scopes", "expires_on"):
        assert f'id="{name}-errors"' in page, name
    assert "Use at most 120 characters." in page
    assert "The user does not hold: user.admin." in page
    assert "Choose a time in the future." in page
    assert 'value="customer.view" checked' in page and f'value="{yesterday}"' in page
    page = clerk.post(
        "/account/tokens", {"name": "Later", "expires_on": "next tuesday"}, status=422
    ).get_data(as_text=True)
    assert 'id="expires_on-errors"' in page and "Give a date, e.g. 2027-01-31." in page
    assert 'value="Later"' in page
    assert count_rows(crm, ApiToken) == 0


def test_revoking_a_token_stops_it_at_once(crm, app, client):
    clerk_user = ui_user(crm, "clerk@ui.example", CLERK_PERMISSIONS)
    plain = api_token(crm, clerk_user)
    token = _stored(crm, "tests")
    clerk = UiBrowser(client, "clerk@ui.example")
    bearer = {"Authorization": f"Bearer {plain}"}
    assert app.test_client().get("/api/v1/customers", headers=bearer).status_code == 200
    response = clerk.post(f"/account/tokens/{token.id}/revoke", {})
    assert response.headers["Location"] == "/account/tokens"
    page = clerk.get("/account/tokens")
    assert f"The token “tests” ({token.prefix}…) was revoked" in page
    assert "revoked</span>" in page and "Revoke<span" not in page
    assert _stored(crm, "tests").revoked_at is not None
    assert app.test_client().get("/api/v1/customers", headers=bearer).status_code == 401


def test_another_users_token_is_not_found_on_ones_own_page(crm, client, ui):
    other = make_user(crm, "other@ui.example", CLERK_PERMISSIONS)
    api_token(crm, other)
    token = _stored(crm, "tests")
    assert "(no name)" not in ui.get("/account/tokens")  # the admin's own page: not theirs
    assert "There is no api_token" in ui.post(
        f"/account/tokens/{token.id}/revoke", {}, status=404
    ).get_data(as_text=True)
    ui.post("/account/tokens/999999/revoke", {}, status=404)
    ui.post(f"/account/tokens/{2**40}/revoke", {}, status=404)  # no id is that large
    assert _stored(crm, "tests").revoked_at is None


def test_an_admin_sees_and_revokes_everyones_tokens_a_page_at_a_time(crm, ui):
    people = [make_user(crm, f"user-{n}@ui.example", CLERK_PERMISSIONS) for n in range(3)]
    for number in range(52):
        api_token(crm, people[number % 3])
    first = ui.get("/admin/tokens")
    assert first.count('<th scope="row">') == 50
    assert "user-0@ui.example" in first and "user-2@ui.example" in first
    following = link_of(first)
    second = ui.get(following)
    assert second.count('<th scope="row">') == 2 and "Newest" in second
    ui.get("/admin/tokens?before=x", status=400)
    ui.get(f"/admin/tokens?before={2**40}", status=400)
    with crm.session_factory() as session:
        oldest = session.scalar(select(ApiToken).order_by(ApiToken.id).limit(1))
    response = ui.post(f"/admin/tokens/{oldest.id}/revoke", {})
    assert response.headers["Location"] == "/admin/tokens"
    assert f"of {oldest.user.email} was revoked" in ui.get("/admin/tokens")
    with crm.session_factory() as session:
        assert session.get(ApiToken, oldest.id).revoked_at is not None
    ui.post("/admin/tokens/999999/revoke", {}, status=404)
    ui.post(f"/admin/tokens/{2**40}/revoke", {}, status=404)


def test_everyones_tokens_take_as_many_queries_for_many_users_as_for_few(crm, ui):
    api_token(crm, make_user(crm, "first@ui.example", CLERK_PERMISSIONS))
    few = statement_count(crm, lambda: ui.get("/admin/tokens"))
    for number in range(10):
        api_token(crm, make_user(crm, f"more-{number}@ui.example", CLERK_PERMISSIONS))
    many = statement_count(crm, lambda: ui.get("/admin/tokens"))
    assert many == few and few > 3, (few, many)


def test_everyones_tokens_need_user_admin(crm, client):
    other = make_user(crm, "other@ui.example", CLERK_PERMISSIONS)
    api_token(crm, other)
    token = _stored(crm, "tests")
    ui_user(crm, "clerk@ui.example", CLERK_PERMISSIONS)
    clerk = UiBrowser(client, "clerk@ui.example")
    assert "user.admin" in clerk.get("/admin/tokens", status=403)
    clerk.post(f"/admin/tokens/{token.id}/revoke", {}, status=403)
    clerk.post(f"/account/tokens/{token.id}/revoke", {}, status=404)
    assert _stored(crm, "tests").revoked_at is None
