"""Errors as RFC 9457 ``application/problem+json``: every failure of the API, one shape."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException, InternalServerError

from crm_core.errors import (
    ConflictError,
    HookError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)

log = logging.getLogger(__name__)

PROBLEM_TYPE = "urn:crm-core:problem:"
MEDIA_TYPE = "application/problem+json"
#: Characters a path keeps as they are; the rest is percent-encoded, so ``instance`` is a URI.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


class ApiProblem(Exception):
    """Raise to answer with a problem document; ``errors`` maps fields to their messages."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.errors = errors
        self.headers = headers or {}


def problem_response(problem: ApiProblem) -> Response:
    """The ``application/problem+json`` response for ``problem``."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (problem.kind or str(problem.status)),
        "title": problem.title,
        "status": problem.status,
        "instance": quote(request.path, safe=_PATH_SAFE),
    }
    if problem.detail:
        body["detail"] = problem.detail
    if problem.errors is not None:
        body["errors"] = _stringify_keys(problem.errors)
    response = Response(json.dumps(body), status=problem.status, mimetype=MEDIA_TYPE)
    response.headers.update(problem.headers)
    return response


def register_problem_handlers(app: Flask, *, path_prefix: str) -> None:
    """Answer every error under ``path_prefix`` with a problem document, never an HTML page."""

    def applies() -> bool:
        return request.path.startswith(path_prefix)

    def on_problem(exc: ApiProblem) -> Response:
        return problem_response(exc)

    def on_validation(exc: ValidationError) -> Response:
        return problem_response(
            ApiProblem(422, "Invalid input", "Some fields were refused; see errors.",
                       kind="validation", errors=exc.messages)
        )

    def on_not_found(exc: NotFoundError) -> Response:
        return problem_response(
            ApiProblem(404, "Not found", f"No {exc.entity} {exc.ident!r}.", kind="not-found")
        )

    def on_conflict(exc: ConflictError) -> Response:
        return problem_response(ApiProblem(409, "Conflict", str(exc), kind="conflict"))

    def on_forbidden(exc: PermissionDenied) -> Response:
        return problem_response(ApiProblem(403, "Forbidden", str(exc), kind="forbidden"))

    def on_http(exc: HTTPException) -> Response | HTTPException:
        if not applies():
            return exc
        headers = dict(exc.get_headers()) if exc.code == 405 else {}
        headers.pop("Content-Type", None)
        return problem_response(
            ApiProblem(exc.code or 500, exc.name, exc.description, headers=headers)
        )

    def on_hook(exc: HookError) -> Response:
        log.error("hook %s of plugin %s failed: %s", exc.hook, exc.plugin, exc.__cause__)
        return problem_response(
            ApiProblem(500, "A plugin failed", f"Plugin {exc.plugin!r} failed; nothing was saved.",
                       kind="plugin-failure")
        )

    def on_unexpected(exc: Exception) -> Response | HTTPException:
        if isinstance(exc, HTTPException):
            return on_http(exc)
        if not applies():
            log.exception("unexpected error on %s %s", request.method, request.path)
            return InternalServerError()
        log.exception("unexpected error on %s %s", request.method, request.path)
        return problem_response(
            ApiProblem(500, "Internal error", "The error was logged; nothing was saved.")
        )

    app.register_error_handler(ApiProblem, on_problem)
    app.register_error_handler(ValidationError, on_validation)
    app.register_error_handler(NotFoundError, on_not_found)
    app.register_error_handler(ConflictError, on_conflict)
    app.register_error_handler(PermissionDenied, on_forbidden)
    app.register_error_handler(HookError, on_hook)
    app.register_error_handler(HTTPException, on_http)
    app.register_error_handler(Exception, on_unexpected)


def _stringify_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _stringify_keys(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_stringify_keys(item) for item in value]
    return value
