"""Pytest fixtures for crm-core and plugin authors (registered as the ``crm_core`` pytest plugin).

Every test that uses a database runs once on SQLite and once on PostgreSQL
(``CRM_TEST_DATABASES=sqlite,postgresql``, the default; the PostgreSQL server is
``CRM_TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
A database is created per test session and backend, migrated to every head, and each
test runs in a transaction that is rolled back afterwards.

Fixtures: ``crm`` (the runtime), ``uow`` (a unit of work), ``app``, ``client``,
``api`` (an :class:`ApiClient` of a user with every permission), ``runner``,
``ui`` (a :class:`UiBrowser` signed in to the web UI as a user with every permission),
``crm_database_url`` (the shared, migrated database) and ``fresh_database_url`` (an
empty database of the same backend, for migration tests). :func:`make_user` and
:func:`api_token` make other callers of the API; :func:`plugin_module` makes a plugin
in the test (return it from an overridden ``crm_plugin_modules`` fixture).
:func:`link_of` reads a page's links (the next page of a list) and :func:`sql_statements`
records the SQL a block runs (to check that a page's queries do not grow with its rows).
Mark a test ``@pytest.mark.plugins("crm_sales")`` to load only those installed plugins;
``@pytest.mark.plugins()`` loads none.

Factories: :func:`make_customer`, :func:`make_contact` and :func:`make_interaction` write
records through the services (fixtures ``customer`` and ``contact`` are one of each).
In a real browser: ``served_app`` (the app served over HTTP on a fresh database, as
``(base_url, crm)``), ``browser`` (headless Chromium, through Playwright) and
:func:`browser_sign_in`. The whole set is described in ``docs/testing.md``.
"""

from __future__ import annotations

import html
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from crm_core.config import Settings, load_settings
from crm_core.db import create_db_engine
from crm_core.runtime import CRM
from crm_core.services.unit_of_work import UnitOfWork
from crm_core.testkit.browser import CHROMIUM, browser, browser_sign_in, served_app
from crm_core.testkit.factories import make_contact, make_customer, make_interaction

__all__ = [
    "CHROMIUM",
    "UI_PASSWORD",
    "ApiClient",
    "CRMCliRunner",
    "UiBrowser",
    "WebhookReceiver",
    "api_token",
    "browser",
    "browser_sign_in",
    "crm_test_settings",
    "csrf_token_of",
    "link_of",
    "make_contact",
    "make_customer",
    "make_interaction",
    "make_user",
    "plugin_module",
    "plugin_overrides",
    "served_app",
    "sql_statements",
    "ui_user",
]

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _backends() -> list[str]:
    value = os.environ.get("CRM_TEST_DATABASES", "sqlite,postgresql")
    backends = [part.strip() for part in value.split(",") if part.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        raise pytest.UsageError(f"CRM_TEST_DATABASES: unknown backends {sorted(unknown)}")
    return backends


class DatabaseFactory:
    """Creates and drops throw-away databases of one backend."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self._created: list[str] = []
        self._admin: Engine | None = None

    def create(self) -> str:
        """A URL of a new, empty database."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_path / f'crm-{uuid.uuid4().hex[:8]}.sqlite3'}"
        base = make_url(os.environ.get("CRM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
        name = f"crm_test_{uuid.uuid4().hex[:12]}"
        with self._admin_engine(base).connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self._created.append(name)
        return base.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Drop every database this factory created."""
        if self._admin is None:
            return
        with self._admin.connect() as connection:
            for name in self._created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()

    def _admin_engine(self, base: Any) -> Engine:
        if self._admin is None:
            self._admin = create_engine(base, isolation_level="AUTOCOMMIT")
        return self._admin


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``plugins`` mark."""
    config.addinivalue_line(
        "markers", "plugins(*names): load only these installed plugins into the CRM under test"
    )


@pytest.fixture(scope="session", params=_backends())
def crm_database_factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseFactory]:
    """Makes throw-away databases of the backend under test (sqlite or postgresql)."""
    factory = DatabaseFactory(request.param, tmp_path_factory.mktemp(request.param))
    yield factory
    factory.drop_all()


def crm_test_settings(database_url: str, instance_path: Path, **overrides: Any) -> Settings:
    """Settings for tests: the given database, a fixed secret, jobs run at once, ``overrides``."""
    return load_settings(
        {
            "database_url": database_url,
            "instance_path": str(instance_path),
            "secret_key": "test-secret-key-not-for-production",
            # Jobs run at once, in the test's process and transaction; tests of the
            # queue itself pass a sqlite:// or redis:// queue_url.
            "queue_url": "memory://",
            **overrides,
        },
        environ={},
    )


@pytest.fixture(scope="session")
def crm_database_url(
    crm_database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A database of the backend under test, migrated to every head (core + installed plugins)."""
    from crm_core import migrate

    url = crm_database_factory.create()
    crm = CRM(crm_test_settings(url, tmp_path_factory.mktemp("instance")))
    try:
        migrate.upgrade(crm)
    finally:
        crm.dispose()
    return url


@pytest.fixture(scope="session")
def crm_engine(crm_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One engine per backend for the whole session."""
    engine = create_db_engine(crm_test_settings(crm_database_url, tmp_path_factory.mktemp("i")))
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_database_url(crm_database_factory: DatabaseFactory) -> str:
    """An empty database of the backend under test (no tables, not even core's)."""
    return crm_database_factory.create()


@pytest.fixture
def crm_settings_overrides() -> dict[str, Any]:
    """Override to change settings of the CRM under test (e.g. ``custom_attributes``)."""
    return {}


@pytest.fixture
def crm_plugin_modules() -> list[Any]:
    """Override to add plugin modules that are not installed (registered in code)."""
    return []


def plugin_overrides(request: pytest.FixtureRequest, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` plus the ``plugins`` setting the test's ``plugins`` mark asks for, if any."""
    result = dict(overrides)
    marker = request.node.get_closest_marker("plugins")
    if marker is not None:
        result["plugins"] = list(marker.args)
    return result


@pytest.fixture
def crm(
    request: pytest.FixtureRequest,
    crm_engine: Engine,
    crm_database_url: str,
    tmp_path: Path,
    crm_settings_overrides: dict[str, Any],
    crm_plugin_modules: list[Any],
) -> Iterator[CRM]:
    """A CRM runtime whose every write is rolled back after the test."""
    overrides = plugin_overrides(request, crm_settings_overrides)
    settings = crm_test_settings(crm_database_url, tmp_path / "instance", **overrides)
    connection = crm_engine.connect()
    outer = connection.begin()
    runtime = CRM(settings, plugins=crm_plugin_modules, engine=crm_engine)
    runtime.session_factory.configure(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield runtime
    finally:
        outer.rollback()
        connection.close()


@pytest.fixture
def uow(crm: CRM) -> Iterator[UnitOfWork]:
    """A unit of work on ``crm`` for service calls in a test (source ``test``)."""
    with crm.unit_of_work(source="test") as unit:
        yield unit


@pytest.fixture
def customer(crm: CRM) -> Any:
    """A customer on ``crm`` (see :func:`make_customer`)."""
    return make_customer(crm)


@pytest.fixture
def contact(crm: CRM, customer: Any) -> Any:
    """A contact at ``customer`` (see :func:`make_contact`)."""
    return make_contact(crm, customer_id=customer.id)


@pytest.fixture
def app(crm: CRM) -> Any:
    """The Flask app around ``crm``, in testing mode."""
    from crm_core.web.app import create_app

    application = create_app(crm=crm)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Any) -> Any:
    """A Flask test client."""
    return app.test_client()


class CRMCliRunner(FlaskCliRunner):
    """A CLI runner whose ``invoke(args=[...])`` runs the ``crm`` command against the test app."""

    def invoke(self, cli: Any = None, args: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run ``crm <args>`` (or another click command given as ``cli``)."""
        from crm_core.cli import cli as crm_command

        return super().invoke(cli or crm_command, args, **kwargs)


@pytest.fixture
def runner(app: Any) -> CRMCliRunner:
    """A CLI runner: ``runner.invoke(args=["plugins", "--json"])`` runs ``crm plugins --json``."""
    return CRMCliRunner(app)


# -- plugins made in a test ---------------------------------------------------------------


def plugin_module(name: str, *, core_api: str = ">=1.0,<2", **hooks: Any) -> ModuleType:
    """A plugin made in the test: a module with a manifest and ``hooks`` as hookimpls.

    Return it from an overridden ``crm_plugin_modules`` fixture:
    ``plugin_module("loyalty", crm_on_customers_merged=on_merged)``.
    """
    from crm_core import PluginManifest, hookimpl

    module = ModuleType(name)
    module.PLUGIN_NAME = name  # type: ignore[attr-defined]
    module.manifest = PluginManifest(core_api=core_api)  # type: ignore[attr-defined]
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


# -- the REST API -----------------------------------------------------------------------------


def make_user(
    crm: CRM,
    email: str,
    permissions: list[str] | None = None,
    *,
    visibility: str = "all",
    team: Any = None,
    password: str | None = None,
) -> Any:
    """A staff user with a role of their own: ``permissions`` (default: every one).

    With ``password`` the user can sign in to the UI (see :class:`UiBrowser`).
    """
    from crm_core.models import Role, User

    granted = sorted(crm.registry.permissions) if permissions is None else permissions
    with crm.unit_of_work(source="test") as unit:
        role = Role(name=f"role-{email}", permissions=granted, visibility=visibility)
        user = User(email=email, name=email.split("@")[0], roles=[role], team=team)
        if password is not None:
            user.set_password(password)
        unit.session.add(user)
        unit.session.flush()
    return user


def api_token(crm: CRM, user: Any, scopes: tuple[str, ...] = ()) -> str:
    """A new API token of ``user`` (the plain text, as ``crm token create`` prints it)."""
    from crm_core.services import tokens

    with crm.unit_of_work(source="test") as unit:
        _token, plain = tokens.create(unit, user, name="tests", scopes=scopes)
    return plain


class ApiClient:
    """The Flask test client speaking to ``/api/v1`` with a bearer token (``None``: anonymous).

    ``api.get("/customers")`` requests ``/api/v1/customers``; full URLs (a page's
    ``next`` link) are requested as they are.
    """

    prefix = "/api/v1"

    def __init__(self, client: Any, token: str | None) -> None:
        self.client = client
        self.token = token

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send ``method`` to ``path`` (``json=``, ``query_string=``, ``headers=``...)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        url = path if path.startswith(("http", self.prefix)) else self.prefix + path
        return self.client.open(url, method=method, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        """``GET``."""
        return self("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        """``POST``."""
        return self("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        """``PATCH``."""
        return self("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        """``DELETE``."""
        return self("DELETE", path, **kwargs)

    def collect(self, path: str, *, max_pages: int = 1000, **kwargs: Any) -> list[Any]:
        """Every item of a list, following ``next`` to the last page."""
        items: list[Any] = []
        url: str | None = path
        for _ in range(max_pages):
            if url is None:
                return items
            response = self.get(url, **kwargs)
            assert response.status_code == 200, response.get_data(as_text=True)
            body = response.get_json()
            items.extend(body["data"])
            url = body["next"]
            kwargs.pop("query_string", None)  # ``next`` carries the query
        raise AssertionError(f"{path}: more than {max_pages} pages")


@pytest.fixture
def api(client: Any, crm: CRM) -> ApiClient:
    """The API as a user holding every permission and seeing every record (a real token)."""
    return ApiClient(client, api_token(crm, make_user(crm, "api-admin@example.com")))


@pytest.fixture
def ui(client: Any, crm: CRM) -> UiBrowser:
    """The web UI, signed in as a user holding every permission and seeing every record."""
    ui_user(crm, "ui-admin@example.com")
    return UiBrowser(client, "ui-admin@example.com")


# -- the web UI -------------------------------------------------------------------------------

#: The password :func:`ui_user` gives its users.
UI_PASSWORD = "correct horse battery staple"


def ui_user(crm: CRM, email: str, permissions: list[str] | None = None, **kwargs: Any) -> Any:
    """A user who can sign in to the UI with :data:`UI_PASSWORD` (see :func:`make_user`)."""
    return make_user(crm, email, permissions, password=UI_PASSWORD, **kwargs)


def csrf_token_of(page: str) -> str:
    """The CSRF token of the (first) form in the HTML ``page``."""
    found = re.search(r'<input[^>]*name="csrf_token"[^>]*value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return html.unescape(found.group(1))


def link_of(page: str, rel: str = "next") -> str:
    """The address of the (first) link ``rel`` in the HTML ``page``: a list's next page."""
    found = re.search(rf'rel="{re.escape(rel)}" href="([^"]+)"', page)
    assert found, f"the page has no {rel} link"
    return html.unescape(found.group(1))


@contextmanager
def sql_statements(crm: CRM) -> Iterator[list[str]]:
    """The SQL statements ``crm`` runs inside the ``with`` block, as a list that fills up."""
    seen: list[str] = []

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(crm.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(crm.engine, "before_cursor_execute", record)


class UiBrowser:
    """The Flask test client signed in as ``email``, posting forms as a browser does.

    It signs in through ``/login`` with :data:`UI_PASSWORD` (make the user with
    :func:`ui_user`) and sends the session's CSRF token with every form. ``get`` and
    ``post`` check the status code and return the page's text (``post``: the response).
    """

    def __init__(self, client: Any, email: str, password: str = UI_PASSWORD) -> None:
        self.client = client
        page = client.get("/login").get_data(as_text=True)
        response = client.post(
            "/login", data={"email": email, "password": password, "csrf_token": csrf_token_of(page)}
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        self.csrf = csrf_token_of(client.get("/").get_data(as_text=True))

    def get(self, path: str, status: int = 200) -> str:
        """The text of the page at ``path``, which must answer ``status``."""
        response = self.client.get(path)
        assert response.status_code == status, (path, response.status_code)
        return response.get_data(as_text=True)  # type: ignore[no-any-return]

    def post(self, path: str, data: dict[str, Any], status: int = 302, **kwargs: Any) -> Any:
        """Post the form ``data`` (plus the CSRF token) to ``path``; it must answer ``status``."""
        response = self.client.post(path, data={**data, "csrf_token": self.csrf}, **kwargs)
        assert response.status_code == status, response.get_data(as_text=True)
        return response


# -- webhooks ---------------------------------------------------------------------------------


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that receives webhook deliveries, for tests.

    It checks each delivery's signature with ``secret``, answers ``status`` (200 by
    default; set :attr:`status` to make deliveries fail) after ``delay`` seconds, and
    keeps what it got: :attr:`receipts` (every delivery, repeats included, in order)
    and :attr:`store` (event id -> body, each event once: an idempotent consumer).
    Use it as a context manager; :attr:`url` is where to subscribe.
    """

    def __init__(self, secret: str = "", *, status: int = 200, delay: float = 0.0) -> None:
        import http.server
        import threading

        self.secret = secret
        self.status = status
        self.delay = delay
        self.receipts: list[str] = []
        self.store: dict[str, Any] = {}
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._receive(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read :attr:`receipts` instead."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The URL to subscribe a webhook to."""
        return f"http://127.0.0.1:{self._server.server_port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, request: Any) -> None:
        import json
        import time

        from crm_core.webhooks import verify_signature

        length = int(request.headers.get("Content-Length", 0))
        body = request.rfile.read(length)
        if len(body) < length:
            return  # the sender went away mid-request (e.g. a killed worker): nothing came
        if self.delay:
            time.sleep(self.delay)
        status = self.status
        genuine = verify_signature(
            self.secret,
            body,
            request.headers.get("X-CRM-Timestamp"),
            request.headers.get("X-CRM-Signature"),
        )
        with self._lock:
            if not genuine:
                self.bad_signatures += 1
                status = 401
            elif 200 <= status < 300:
                event = json.loads(body)
                self.receipts.append(event["id"])
                self.store.setdefault(event["id"], event)
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()
