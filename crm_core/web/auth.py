"""Authentication for the web app: session sign-in, CSRF protection and API bearer tokens.

:func:`init_auth` sets up Flask-Login (server-side checked sessions in Flask's
signed cookie) and Flask-WTF's CSRF protection on every form, and adds the views
``/login``, ``/logout`` and ``/account/password``. :func:`current_actor` is who a
request acts as, for the API, the UI and plugins alike:

- ``Authorization: Bearer <token>`` -> a :class:`~crm_core.security.ScopedActor`
  (the token's user, permissions narrowed to its scopes); a malformed, unknown,
  expired or revoked token, or one of a deactivated user, is ``None`` (no fallback
  to the session: the API answers 401);
- otherwise the signed-in user of the session, if still active;
- otherwise ``None``.

CSRF: every unsafe request (``POST``, ``PUT``, ``PATCH``, ``DELETE``) needs a CSRF
token, from the form field ``csrf_token`` or the ``X-CSRFToken`` header, except
under ``/api/`` when it carries a bearer token (no cookie is involved, so there is
nothing to forge) or comes from an anonymous client (the API answers 401). API
writes authenticated by the session cookie, e.g. from the UI's JavaScript, must
send ``X-CSRFToken``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    after_this_request,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import SQLAlchemyError
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from crm_core.db import utcnow
from crm_core.errors import ValidationError
from crm_core.i18n import N_
from crm_core.models import User
from crm_core.security import ScopedActor
from crm_core.services import tokens, users
from crm_core.web.i18n import translate

if TYPE_CHECKING:
    from crm_core.runtime import CRM

__all__ = [
    "API_PATH_PREFIX",
    "LOGIN_FAILED",
    "bearer_token",
    "blueprint",
    "current_actor",
    "init_auth",
]

API_PATH_PREFIX = "/api/"
"""Requests under this path are API requests: bearer tokens, no CSRF token needed."""

LOGIN_FAILED = _l(
    "Sign-in failed. Check your email address and password. After %(attempts)s failed "
    "attempts in a row, sign-in is paused for %(minutes)s minutes.",
    attempts=users.MAX_FAILED_LOGINS,
    minutes=int(users.LOCKOUT.total_seconds() // 60),
)
"""The one message for every refused sign-in: it never tells whether the email exists.

Lazy: it is written in the language of the request that shows it."""

#: Flask-WTF's reasons for refusing a form (English there), marked for the catalogues: the
#: page that refuses a form shows them in the user's language.
CSRF_REASONS = (
    N_("The CSRF token is missing."),
    N_("The CSRF session token is missing."),
    N_("The CSRF token has expired."),
    N_("The CSRF token is invalid."),
    N_("The CSRF tokens do not match."),
    N_("The referrer header is missing."),
    N_("The referrer does not match the host."),
)

logger = logging.getLogger(__name__)

_ACTOR = "crm_actor"
_FINGERPRINT = "crm_pw"

blueprint = Blueprint("crm_auth", __name__, template_folder="templates")


# -- setup ------------------------------------------------------------------------------


def init_auth(app: Flask) -> None:
    """Set up sessions, CSRF protection and bearer tokens on ``app``; add the auth views.

    Session cookies are ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` with the
    ``secure_cookies`` setting (for a CRM served over HTTPS).
    """
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = app.extensions["crm"].settings.secure_cookies

    login_manager = LoginManager()
    login_manager.login_view = "crm_auth.login"
    login_manager.login_message = N_("Please sign in to see this page.")
    login_manager.localize_callback = _  # flashed in the language of the request
    login_manager.user_loader(_load_user)
    login_manager.init_app(app)

    # Flask-WTF's own check is replaced by _check_csrf, which knows about the API.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf = CSRFProtect(app)

    @app.before_request
    def _check_csrf() -> None:
        if not app.config["WTF_CSRF_ENABLED"]:
            return
        if request.method not in app.config["WTF_CSRF_METHODS"]:
            return
        if is_api_request():
            if bearer_token() is None and current_user.is_authenticated:
                csrf.protect()
            return
        csrf.protect(apply_exemptions=True)

    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_blueprint(blueprint)


def is_api_request() -> bool:
    """Whether the current request is for the JSON API (``/api/...``)."""
    return request.path.startswith(API_PATH_PREFIX)


def _csrf_failed(exc: CSRFError) -> ResponseReturnValue:
    if is_api_request():
        from crm_core.web.api.problems import ApiProblem, problem_response

        return problem_response(
            ApiProblem(
                400,
                "CSRF token missing or invalid",
                f"{exc.description} Requests signed in by the session cookie must send "
                "the X-CSRFToken header; scripts should use a bearer token instead.",
                kind="csrf",
            )
        )
    reason = translate(exc.description) if exc.description else exc.description
    return render_template("crm_core/auth/csrf_error.html", reason=reason), 400


# -- who is acting ----------------------------------------------------------------------


def current_actor() -> User | ScopedActor | None:
    """Who the current request acts as: bearer token, else the session's user, else ``None``.

    Resolved once per request (kept in :data:`flask.g`). Pass it as ``actor`` to
    :meth:`crm_core.runtime.CRM.unit_of_work`.
    """
    if _ACTOR in g:
        actor: User | ScopedActor | None = g.get(_ACTOR)
        return actor
    actor = _resolve_actor()
    setattr(g, _ACTOR, actor)
    return actor


def bearer_token() -> str | None:
    """The credentials of an ``Authorization: Bearer ...`` header, or ``None`` without one.

    Other schemes (e.g. ``Basic`` from a proxy in front of the CRM) are not ours and
    count as no header.
    """
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


def _resolve_actor() -> User | ScopedActor | None:
    credentials = bearer_token()
    if credentials is not None:
        return _token_actor(credentials)
    if current_user.is_authenticated:
        user: User = current_user._get_current_object()  # type: ignore[attr-defined]
        return user
    return None


def _token_actor(credentials: str) -> ScopedActor | None:
    """The token's actor, read without writing; its use is recorded after the response."""
    crm = current_app.extensions["crm"]
    now = utcnow()
    with crm.session_factory() as db:
        found = tokens.find_actor(db.connection(), credentials, now)
    if found is None:
        return None
    if tokens.is_stale(found.last_used_at, now):
        token_id = found.token_id

        @after_this_request
        def _record_use_when_sent(response: Response) -> Response:
            response.call_on_close(lambda: _record_token_use(crm, token_id, now))
            return response

    return found.actor


def _record_token_use(crm: CRM, token_id: int, now: dt.datetime) -> None:
    """Best effort: store when a token was last used (run once the response has been sent).

    A short write transaction of its own, at most once a minute per token; it can
    neither delay nor fail the request, and a failure only leaves the time older.
    """
    try:
        with crm.write_session() as db, db.begin():
            tokens.touch(db.connection(), token_id, now)
    except SQLAlchemyError:
        logger.warning("Could not record the use of API token %s.", token_id, exc_info=True)


def _load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: the session's user while active and its password unchanged."""
    try:
        ident = int(user_id)
    except ValueError:
        return None
    crm = current_app.extensions["crm"]
    with crm.session_factory() as db:
        user = db.get(User, ident)
    if user is None or not user.active:
        return None
    # Changing the password ends every other session of the user.
    if not hmac.compare_digest(str(session.get(_FINGERPRINT, "")), _fingerprint(user)):
        return None
    return user


def _fingerprint(user: User) -> str:
    """A keyed digest of the user's password hash, kept in the session (never the hash)."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    message = (user.password_hash or "").encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _start_session(user: User) -> None:
    # A new session for the signed-in user: nothing from before sign-in carries over.
    session.clear()
    login_user(user)
    session[_FINGERPRINT] = _fingerprint(user)
    setattr(g, _ACTOR, user)


# -- forms ------------------------------------------------------------------------------


class LoginForm(FlaskForm):
    """Email address and password."""

    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(), Length(max=254)],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired()],
        render_kw={"autocomplete": "current-password"},
    )


class PasswordForm(FlaskForm):
    """The current password, and the new one twice."""

    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired()],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[
            DataRequired(),
            Length(
                min=users.MIN_PASSWORD_LENGTH,
                message=_l("Use at least %(count)s characters.",
                           count=users.MIN_PASSWORD_LENGTH),
            ),
        ],
        render_kw={"autocomplete": "new-password", "minlength": users.MIN_PASSWORD_LENGTH},
    )
    confirm = PasswordField(
        _l("New password, again"),
        validators=[
            DataRequired(),
            EqualTo("new_password", message=_l("The two new passwords differ.")),
        ],
        render_kw={"autocomplete": "new-password"},
    )


# -- views ------------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the sign-in form; sign in, or refuse with one generic message."""
    target = _safe_next(request.args.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(target)
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        crm = current_app.extensions["crm"]
        with crm.unit_of_work(source="ui") as uow:
            user = users.login(uow, form.email.data or "", form.password.data or "")
        if user is not None:
            _start_session(user)
            return redirect(target)
        error = str(LOGIN_FAILED)
    return render_template(
        "crm_core/auth/login.html", form=form, error=error, next=request.args.get("next")
    )


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (a POST with a CSRF token, so no other site can sign you out)."""
    logout_user()
    session.clear()
    g.pop(_ACTOR, None)
    flash(_("You are signed out."))
    return redirect(url_for("crm_auth.login"))


@blueprint.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password() -> ResponseReturnValue:
    """Change the signed-in user's password: current password, new one twice."""
    form = PasswordForm()
    if form.validate_on_submit():
        crm = current_app.extensions["crm"]
        actor: User = current_user._get_current_object()  # type: ignore[attr-defined]
        try:
            with crm.unit_of_work(actor=actor, source="ui") as uow:
                user = users.change_password(
                    uow, actor.id, form.current_password.data or "", form.new_password.data or ""
                )
        except ValidationError as exc:
            _attach_errors(form, exc.messages)
        else:
            # Keep this session; every other one ends (their fingerprint is stale).
            session[_FINGERPRINT] = _fingerprint(user)
            flash(_("Your password was changed."))
            return redirect(url_for("crm_auth.change_password"))
    return render_template("crm_core/auth/password.html", form=form)


def _attach_errors(form: FlaskForm, messages: dict[str, Any]) -> None:
    for name, texts in messages.items():
        field = form._fields.get(name) or form._fields["current_password"]
        texts = texts if isinstance(texts, list) else [texts]
        # The service's messages, in the request's language.
        field.errors = [*field.errors, *(translate(str(text)) for text in texts)]


def _safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site, else the start page (no open redirects)."""
    home = (request.script_root or "") + "/"
    if not value or any(ch.isspace() or ord(ch) < 32 for ch in value):
        return home
    parts = urlsplit(value.replace("\\", "/"))
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return home
    return value
