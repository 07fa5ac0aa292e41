"""Who is using the UI, and the CRM they use: the signed-in user, or a trip to sign in."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import current_app
from flask_login import current_user, login_required

if TYPE_CHECKING:
    from crm_core.models import User
    from crm_core.runtime import CRM

F = TypeVar("F", bound=Callable[..., Any])


def current_crm() -> CRM:
    """The CRM runtime of the running app."""
    return current_app.extensions["crm"]  # type: ignore[no-any-return]


def signed_in_actor() -> User | None:
    """The signed-in user of this request, or ``None``."""
    if not current_user.is_authenticated:
        return None
    return current_user._get_current_object()  # type: ignore[attr-defined,no-any-return]


def actor() -> User:
    """The signed-in user (only in views behind :func:`page`)."""
    user = signed_in_actor()
    if user is None:  # pragma: no cover - page() sends anonymous users to sign in
        raise RuntimeError("no signed-in user")
    return user


def page(view: F) -> F:
    """A UI view: anonymous visitors go to the sign-in page and come back afterwards."""
    return functools.wraps(view)(login_required(view))  # type: ignore[return-value]
