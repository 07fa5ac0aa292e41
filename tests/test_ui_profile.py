"""The signed-in user's profile: their name and the UI's language, on ``/account`` and through
``PATCH /api/v1/users/me``.

A chosen language wins over the browser's ``Accept-Language``; choosing none (the blank
option, or ``null`` in the API) gives the browser back the say. Refused changes show the
field's message and save nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from crm_core.languages import LANGUAGES
from crm_core.models import AuditEntry, User
from crm_core.testing import ApiClient, api_token, make_user

#: The user the ``ui`` fixture signs in as.
EMAIL = "ui-admin@example.com"


def _stored(crm: Any, email: str = EMAIL) -> User:
    with crm.session_factory() as session:
        found = session.scalar(select(User).where(User.email == email))
        assert found is not None
        return found


def _lang(page: str) -> str:
    """The language the page says it is in (``<html lang>``)."""
    head = page[:page.index(">", page.index("<html"))]
    return head.split('lang="', 1)[1].split('"', 1)[0]


# -- the page -------------------------------------------------------------------------------------


def test_the_profile_shows_the_name_and_the_language_choice(crm, ui):
    page = ui.get("/account")
    assert "<h1>Your profile</h1>" in page and EMAIL in page
    assert 'id="name" name="name" type="text" value="ui-admin"' in page
    assert '<select id="language" name="language"' in page
    assert "<option value=\"\">The browser's language</option>" in page
    for code, name in LANGUAGES.items():
        assert f'<option value="{code}">{name}</option>' in page, code
    assert " selected" not in page  # nothing chosen yet
    assert 'href="/account/password"' in page and 'href="/account/tokens"' in page
    assert 'href="/account" title="Your profile" aria-current="page"' in page


def test_saving_the_name_and_language(crm, ui):
    response = ui.post("/account", {"name": "  Ada Admin ", "language": "sv"})
    assert response.headers["Location"] == "/account"
    stored = _stored(crm)
    assert stored.name == "Ada Admin" and stored.language == "sv"
    page = ui.get("/account")
    assert "Your profile was saved." in page
    assert '<option value="sv" selected>Svenska</option>' in page
    assert 'value="Ada Admin"' in page
    with crm.session_factory() as session:
        changes = session.scalar(select(AuditEntry.changes).where(
            AuditEntry.entity == "user", AuditEntry.action == "updated",
            AuditEntry.entity_id == str(stored.id)))
    assert changes["language"] == [None, "sv"]


def test_an_unknown_language_is_refused_and_nothing_is_saved(crm, ui):
    response = ui.post("/account", {"name": "Someone Else", "language": "xx"}, status=422)
    page = response.get_data(as_text=True)
    assert 'id="language-errors"' in page and "Use one of: en, de, sv, ru, pl" in page
    assert 'aria-invalid="true"' in page and "nothing was saved" in page
    assert 'value="Someone Else"' in page  # the form keeps what was typed
    stored = _stored(crm)
    assert stored.name == "ui-admin" and stored.language is None


def test_a_too_long_name_is_refused(crm, ui):
    page = ui.post("/account", {"name": "n" * 201, "language": "de"}, status=422).get_data(
        as_text=True
    )
    assert 'id="name-errors"' in page
    stored = _stored(crm)
    assert stored.name == "ui-admin" and stored.language is None


def test_the_chosen_language_renders_the_next_pages(crm, ui):
    assert _lang(ui.get("/account")) == "en"
    response = ui.post("/account", {"name": "ui-admin", "language": "de"})
    assert _lang(ui.get(response.headers["Location"])) == "de"
    assert _lang(ui.get("/")) == "de"
    # the user's choice wins over the browser's
    page = ui.client.get("/account", headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert _lang(page) == "de"


def test_the_blank_choice_lets_the_browser_decide_again(crm, ui):
    ui.post("/account", {"name": "ui-admin", "language": "de"})
    assert _stored(crm).language == "de"
    ui.post("/account", {"name": "ui-admin", "language": ""})
    assert _stored(crm).language is None
    page = ui.client.get("/account", headers={"Accept-Language": "sv"}).get_data(as_text=True)
    assert _lang(page) == "sv"
    assert "<option value=\"\">Webbläsarens språk</option>" in page  # nothing chosen, in Swedish
    page = ui.client.get("/account", headers={"Accept-Language": "ja, fr;q=0.8"})
    assert _lang(page.get_data(as_text=True)) == "en"  # none of ours: English


def test_a_signed_out_visitor_has_no_profile(client):
    response = client.get("/account")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


# -- the API --------------------------------------------------------------------------------------


def _api_as(crm: Any, client: Any, email: str) -> ApiClient:
    """The API as a new user ``email`` without any permission (a profile needs none)."""
    return ApiClient(client, api_token(crm, make_user(crm, email, [])))


def test_the_api_changes_your_own_language(crm, client):
    api = _api_as(crm, client, "me@example.com")
    response = api.patch("/users/me", json={"language": "pl"})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["email"] == "me@example.com" and body["language"] == "pl"
    assert _stored(crm, "me@example.com").language == "pl"
    assert api.get("/users/me").get_json()["language"] == "pl"
    response = api.patch("/users/me", json={"language": None, "name": "Me Myself"})
    assert response.status_code == 200 and response.get_json()["language"] is None
    stored = _stored(crm, "me@example.com")
    assert stored.language is None and stored.name == "Me Myself"


def test_the_api_refuses_an_unknown_language_naming_the_field(crm, client):
    api = _api_as(crm, client, "me@example.com")
    response = api.patch("/users/me", json={"language": "xx", "name": "Renamed"})
    assert response.status_code == 422, response.get_data(as_text=True)
    body = response.get_json(force=True)
    assert body["type"].endswith(":validation") and body["status"] == 422
    assert set(body["errors"]) == {"language"}
    assert "Use one of: en, de, sv, ru, pl" in body["errors"]["language"][0]
    stored = _stored(crm, "me@example.com")
    assert stored.language is None and stored.name == "me"  # nothing saved, not even the name
    response = api.patch("/users/me", json={"email": "other@example.com"})
    assert response.status_code == 422 and set(response.get_json(force=True)["errors"]) == {
        "email"
    }


def test_the_api_profile_needs_a_token(client):
    response = ApiClient(client, None).patch("/users/me", json={"language": "de"})
    assert response.status_code == 401
