"""API token secrets and the actor a token authenticates.

A token looks like ``crm_1a2b3c4d_<43 random URL-safe characters>``: the constant
``crm_`` marks it as ours (secret scanners can match it), the 8 hex characters
after it are a public prefix that identifies the token in lists without revealing
it, and the rest is 256 bits from :mod:`secrets`. Only the SHA-256 digest of the
whole token is stored. A fast hash is right for tokens: they are long and random,
so nothing can be guessed from the digest; passwords, short and chosen by people,
keep the slow salted scrypt hash of :meth:`crm_core.models.User.set_password`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from typing import Any

from crm_core.models import User

TOKEN_MARKER = "crm_"
PREFIX_LENGTH = len(TOKEN_MARKER) + 8
"""Characters of a token kept in clear as its prefix, marker included (``crm_1a2b3c4d``)."""

_TOKEN_FORMAT = re.compile(r"^crm_[0-9a-f]{8}_[A-Za-z0-9_-]{43,}$")
_MAX_TOKEN_LENGTH = 200


def generate_token() -> str:
    """A new random API token: ``crm_`` + 8 hex characters + ``_`` + 43 URL-safe characters."""
    return f"{TOKEN_MARKER}{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"


def token_prefix(token: str) -> str:
    """The public part of ``token`` that names it in lists (``crm_1a2b3c4d``)."""
    return token[:PREFIX_LENGTH]


def looks_like_token(token: str) -> bool:
    """Whether ``token`` has the shape of a token :func:`generate_token` makes.

    Checked before hashing, so that junk never reaches the database.
    """
    return len(token) <= _MAX_TOKEN_LENGTH and _TOKEN_FORMAT.match(token) is not None


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of ``token``: what the database stores and looks up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ScopedActor:
    """A user acting through an API token: the user, with permissions narrowed to its scopes.

    Every attribute (``id``, ``email``, ``team_id``, ``visibility``, ``roles``,
    ``is_active``...) is the user's, except :attr:`permissions`: the user's
    permissions that are also among the token's scopes, or all of them when the
    token has no scopes. A scope the user has since lost grants nothing. It stands
    wherever a :class:`~crm_core.models.User` acts: ``UnitOfWork.actor``,
    :func:`crm_core.authz.require` and :func:`crm_core.authz.visible`, the audit
    trail (which records ``actor.id``, the user's id).
    """

    __slots__ = ("_permissions", "scopes", "token_id", "user")

    def __init__(
        self, user: User, scopes: Iterable[str] = (), *, token_id: int | None = None
    ) -> None:
        self.user = user
        self.scopes = frozenset(scopes)
        self.token_id = token_id
        held = user.permissions
        self._permissions = held & self.scopes if self.scopes else held

    @property
    def id(self) -> int:
        """The user's id (audit entries and owned records name the user, not the token)."""
        return self.user.id

    @property
    def permissions(self) -> frozenset[str]:
        """The user's permissions that the token's scopes allow."""
        return self._permissions

    def __getattr__(self, name: str) -> Any:
        # Only called for names not found on the proxy: everything else is the user's.
        if name in ScopedActor.__slots__:
            raise AttributeError(name)
        return getattr(self.user, name)

    def __repr__(self) -> str:
        scopes = ", ".join(sorted(self.scopes)) or "all"
        return f"<ScopedActor {self.user.email} token={self.token_id} scopes={scopes}>"
