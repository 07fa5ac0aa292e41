"""Create the first admin of the CRM unless a user with that email exists already.

Run by start.sh after ``crm db upgrade``, with the venv's Python. Reads the same
configuration as ``crm`` (``CRM_CONFIG``, ``CRM_*``). The email is ``CRM_ADMIN_EMAIL``
(default ``admin@acme.example``); the password ``CRM_ADMIN_PASSWORD``, else a random
one written to ``<instance>/admin-password`` (mode 0600) and never printed.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from crm_core import CRM
from crm_core.errors import NotFoundError, ValidationError
from crm_core.services import users

DEFAULT_EMAIL = "admin@acme.example"


def new_password(instance: Path) -> str:
    """A random password, kept in ``<instance>/admin-password`` readable by the owner only."""
    password = secrets.token_urlsafe(15)
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "admin-password"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(password + "\n")
    return password


def ensure_admin(crm: CRM, email: str, password: str | None) -> str:
    """``created``, or ``exists`` when a user with ``email`` is there already."""
    with crm.unit_of_work(source="cli", write=False) as uow:
        try:
            users.get_by_email(uow, email)
        except NotFoundError:
            pass
        else:
            return "exists"
    secret = password or new_password(crm.settings.instance_path)
    with crm.unit_of_work(source="cli") as uow:
        users.ensure_default_roles(uow)
        users.create(
            uow, {"email": email, "name": "Administrator", "password": secret, "roles": ["admin"]}
        )
    return "created"


def main() -> int:
    """Exit 0 when the admin exists afterwards, 1 with a message otherwise."""
    email = os.environ.get("CRM_ADMIN_EMAIL") or DEFAULT_EMAIL
    password = os.environ.get("CRM_ADMIN_PASSWORD") or None
    crm = CRM()
    try:
        outcome = ensure_admin(crm, email, password)
    except ValidationError as exc:
        print(f"Error: cannot create the admin {email}: {exc.messages}", file=sys.stderr)
        return 1
    if outcome == "exists":
        print(f"admin {email} exists")
    elif password:
        print(f"created admin {email} with the password in CRM_ADMIN_PASSWORD")
    else:
        where = crm.settings.instance_path / "admin-password"
        print(f"created admin {email}; its password is in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
