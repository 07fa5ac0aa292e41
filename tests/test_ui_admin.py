"""The administration pages through the test client: the index, users, roles, plugins.

Users are made through the page's form and then sign in with the password it gave
them; refused forms show each field's message and save nothing; users without the
administration permissions get 403 and no *Admin* entry in the navigation.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select
from ui_support import count_rows, loyalty_plugin, statement_count

from crm_core.extensions import CustomAttribute
from crm_core.models import AuditEntry, Team, User
from crm_core.testing import UiBrowser, link_of, make_user, plugin_module, ui_user


@pytest.fixture
def crm_plugin_modules() -> list[Any]:
    """A plugin with a permission and a custom attribute, and one refused for its API range."""
    return [
        loyalty_plugin(
            crm_register_custom_attributes=lambda: [
                CustomAttribute("customer", "tier", "choice", label="Tier",
                                choices=("gold", "silver"))
            ],
        ),
        plugin_module("ancient", core_api=">=9.0"),
    ]


def _rows(page: str) -> int:
    return page.count('<th scope="row">')


# -- the index and the navigation -----------------------------------------------------------------


def test_the_index_links_every_section_an_admin_may_use(ui):
    page = ui.get("/admin")
    for path in ("/admin/users", "/admin/roles", "/admin/tokens", "/admin/webhooks",
                 "/admin/plugins", "/account/tokens"):
        assert f'href="{path}"' in page, path
    assert '<a href="/admin" aria-current="page">Admin</a>' in page
    assert '<a href="/account/tokens">API tokens</a>' in page  # the account area's link


def test_the_index_shows_only_the_sections_of_the_users_permissions(crm, client):
    ui_user(crm, "hooks@ui.example", ["webhook.admin"])
    page = UiBrowser(client, "hooks@ui.example").get("/admin")
    assert 'href="/admin/webhooks"' in page and 'href="/account/tokens"' in page
    for path in ("/admin/users", "/admin/roles", "/admin/tokens", "/admin/plugins"):
        assert f'href="{path}"' not in page, path
    assert ">Admin</a>" in page


def test_without_an_administration_permission_there_is_no_admin(crm, client):
    ui_user(crm, "seller@ui.example", ["customer.view", "customer.edit"])
    seller = UiBrowser(client, "seller@ui.example")
    assert ">Admin</a>" not in seller.get("/")
    page = seller.get("/admin", status=403)
    assert "user.admin" in page and "webhook.admin" in page and "plugin.admin" in page
    for path in ("/admin/users", "/admin/users/new", "/admin/roles", "/admin/plugins"):
        seller.get(path, status=403)


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for path in ("/admin", "/admin/users", "/admin/roles", "/admin/plugins", "/admin/tokens",
                 "/account/tokens", "/admin/webhooks"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith(
            "/login?next="
        ), path


# -- users ----------------------------------------------------------------------------------------


def test_the_user_list_shows_roles_team_state_and_last_sign_in(crm, ui):
    with crm.unit_of_work(source="test") as uow:
        team = Team(name="North")
        uow.session.add(team)
        uow.session.flush()
    make_user(crm, "ana@corp.example", ["customer.view"], team=team)
    gone = make_user(crm, "bo@corp.example", [])
    with crm.unit_of_work(source="test") as uow:
        uow.session.get(User, gone.id).active = False
    page = ui.get("/admin/users")
    ana = page[page.index("ana@corp.example"):page.index("bo@corp.example")]
    assert '<span class="tag">role-ana@corp.example</span>' in ana and "<td>North</td>" in ana
    assert "active" in ana and "never" in ana
    bo = page[page.index("bo@corp.example"):page.index("ui-admin@example.com")]
    assert "deactivated" in bo
    admin = page[page.index("ui-admin@example.com"):]
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT', admin)  # signed in just now


def test_the_user_list_pages_with_a_cursor_by_email(crm, ui):
    for number in range(55):
        make_user(crm, f"user-{number:02d}@corp.example", [])
    first = ui.get("/admin/users")
    assert _rows(first) == 50  # ui-admin@…, then user-00@… to user-48@…
    assert first.index("ui-admin@example.com") < first.index("user-00@corp.example")
    assert "user-48@corp.example" in first and "user-49@corp.example" not in first
    following = link_of(first)
    second = ui.get(following)
    assert _rows(second) == 6
    assert "user-49@corp.example" in second and "user-54@corp.example" in second
    assert "user-48@corp.example" not in second
    assert 'rel="next"' not in second and "First page" in second
    ui.get("/admin/users?cursor=not-a-cursor", status=400)


def test_a_new_user_is_created_through_the_form_and_can_sign_in(crm, client, ui, default_roles):
    form = ui.get("/admin/users/new")
    assert 'type="checkbox" id="roles-sales" name="roles" value="sales"' in form
    response = ui.post(
        "/admin/users/new",
        {"email": "New.Person@Corp.example", "name": "New Person", "password": "long enough pw",
         "roles": ["sales", "viewer"]},
    )
    assert response.headers["Location"] == "/admin/users"
    page = ui.get("/admin/users")
    assert "new.person@corp.example can now sign in." in page
    assert '<span class="tag">sales</span> <span class="tag">viewer</span>' in page
    with crm.session_factory() as session:
        created = session.scalar(select(User).where(User.email == "new.person@corp.example"))
        assert sorted(role.name for role in created.roles) == ["sales", "viewer"]
        assert created.name == "New Person" and created.password_hash != "long enough pw"
        source = session.scalar(
            select(AuditEntry.source).where(
                AuditEntry.entity == "user", AuditEntry.entity_id == str(created.id),
                AuditEntry.action == "created",
            )
        )
    assert source == "ui"
    client.post("/logout", data={"csrf_token": ui.csrf})
    newcomer = UiBrowser(client, "new.person@corp.example", password="long enough pw")
    assert ">Customers</a>" in newcomer.get("/")


def test_a_refused_new_user_shows_each_message_and_saves_nothing(crm, ui, default_roles):
    before = count_rows(crm, User)
    response = ui.post(
        "/admin/users/new",
        {"email": "not-an-email", "name": "x" * 201, "password": "short", "roles": ["sales"]},
        status=422,
    )
    page = response.get_data(as_text=True)
    for name in ("email", "name", "password"):
        assert f'id="{name}-errors"' in page, name
    assert "Not a valid email address." in page and "Use at least 8 characters." in page
    assert 'value="not-an-email"' in page and "short" not in page  # the password is not echoed
    assert 'value="sales" checked' in page and "nothing was saved" in page
    page = ui.post(
        "/admin/users/new",
        {"email": "ok@corp.example", "password": "long enough pw", "roles": ["ghost"]},
        status=422,
    ).get_data(as_text=True)
    assert 'id="roles-errors"' in page and "No such role: ghost." in page
    assert 'aria-describedby="roles-hint roles-errors"' in page
    page = ui.post(
        "/admin/users/new", {"email": "ui-admin@example.com", "password": "long enough pw"},
        status=422,
    ).get_data(as_text=True)
    assert "A user with this email exists already." in page
    assert count_rows(crm, User) == before


def test_users_need_user_admin(crm, client):
    ui_user(crm, "hooks@ui.example", ["webhook.admin", "plugin.admin"])
    browser = UiBrowser(client, "hooks@ui.example")
    before = count_rows(crm, User)
    assert "user.admin" in browser.get("/admin/users", status=403)
    browser.get("/admin/users/new", status=403)
    browser.post(
        "/admin/users/new", {"email": "sneaky@corp.example", "password": "long enough pw"},
        status=403,
    )
    assert count_rows(crm, User) == before


def test_the_user_list_takes_as_many_queries_for_many_users_as_for_few(crm, ui):
    with crm.unit_of_work(source="test") as uow:
        team = Team(name="South")
        uow.session.add(team)
    make_user(crm, "one@corp.example", ["customer.view"], team=team)
    few = statement_count(crm, lambda: ui.get("/admin/users"))
    for number in range(20):
        make_user(crm, f"more-{number:02d}@corp.example", ["customer.view"], team=team)
    many = statement_count(crm, lambda: ui.get("/admin/users"))
    assert many == few and few > 3, (few, many)


# -- roles ----------------------------------------------------------------------------------------


def test_roles_show_their_permissions_grouped_and_their_visibility(crm, ui, default_roles):
    make_user(crm, "clerk@corp.example", ["customer.view", "loyalty.card.view", "gone.thing"],
              visibility="own")
    page = ui.get("/admin/roles")
    clerk = page[page.index(">role-clerk@corp.example</h2>"):]
    clerk = clerk[:clerk.index("</section>")]
    assert '<span class="badge">own</span> their own records' in clerk
    assert "<dt>customer</dt>" in clerk and "<dt>loyalty</dt>" in clerk
    assert 'title="loyalty.card.view: See loyalty cards">loyalty.card.view</span>' in clerk
    assert "<dt>Not registered</dt>" in clerk and "gone.thing" in clerk
    viewer = page[page.index(">viewer</h2>"):]
    assert "Reads, never writes" in viewer[:viewer.index("</section>")]


# -- plugins --------------------------------------------------------------------------------------


def test_the_plugins_page_shows_states_reasons_and_custom_attributes(crm, app, ui):
    page = ui.get("/admin/plugins")
    loyalty = page[page.index('<th scope="row">loyalty'):]
    assert '<span class="badge state-enabled">enabled</span>' in loyalty[:loyalty.index("</tr>")]
    ancient = page[page.index('<th scope="row">ancient'):]
    ancient = ancient[:ancient.index("</tr>")]
    assert '<span class="badge state-refused">refused</span>' in ancient
    assert "supports crm_core API &gt;=9.0" in ancient
    attributes = page[page.index("Custom attributes"):]
    assert "<td>customer</td>" in attributes and "<code>tier</code>" in attributes
    assert '<span class="tag">gold</span> <span class="tag">silver</span>' in attributes
    ui_user(crm, "people@ui.example", ["user.admin"])
    assert "plugin.admin" in UiBrowser(app.test_client(), "people@ui.example").get(
        "/admin/plugins", status=403
    )
