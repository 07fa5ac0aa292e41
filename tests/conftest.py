"""Fixtures shared by crm-core's own tests (plugin authors get theirs from crm_core.testing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

#: Where the real-world corpus lies beside a checkout (as in CI): ../shared/data/real-world.
DEFAULT_REAL_WORLD_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-world"


@pytest.fixture(scope="session")
def real_world_data() -> Path:
    """The corpus of real CRM exports and vCards (never copied into the repo).

    ``$CRM_REALWORLD_DATA`` (``.ci/run`` sets it), else ``../shared/data/real-world``
    beside the repository. Missing, it fails the tests that need it: they never skip.
    """
    root = Path(os.environ.get("CRM_REALWORLD_DATA") or DEFAULT_REAL_WORLD_DATA)
    if not (root / "INDEX.md").is_file():
        pytest.fail(
            f"the real-world data is not at {root}: set CRM_REALWORLD_DATA to the folder "
            "shared/data/real-world"
        )
    return root


@pytest.fixture
def default_roles(crm: Any) -> None:
    """The default roles (admin, sales, viewer), as ``crm user create`` makes them."""
    from crm_core.services import users

    with crm.unit_of_work(source="test") as uow:
        users.ensure_default_roles(uow)
