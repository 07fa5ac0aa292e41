"""A deployment's brand: its name in the top bar and titles (``brand_name``), and its own
templates (``templates_path``) overriding core's ``_brand.html``, ``_head.html`` or any
page — searched before core's and the plugins' templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_core import ConfigError
from crm_core.config import load_settings
from crm_core.testing import UiBrowser


@pytest.fixture
def brand_folder(tmp_path: Path) -> Path:
    """A deployment's templates: a logo in the brand, a stylesheet in every head."""
    folder = tmp_path / "brand-templates" / "crm_core" / "ui"
    folder.mkdir(parents=True)
    (folder / "_brand.html").write_text('<img src="/acme-logo.svg" alt=""> {{ brand_name }}')
    (folder / "_head.html").write_text("<style>.topbar { background: #7a0019; }</style>")
    return tmp_path / "brand-templates"


@pytest.fixture
def crm_settings_overrides(brand_folder: Path) -> dict[str, Any]:
    return {"brand_name": "Acme CRM", "templates_path": str(brand_folder)}


def test_the_brand_name_and_the_overriding_templates_show_on_every_page(
    ui: UiBrowser,
) -> None:
    for path in ("/", "/customers", "/account"):
        page = ui.get(path)
        assert '<img src="/acme-logo.svg" alt=""> Acme CRM</a>' in page, path
        assert "<style>.topbar { background: #7a0019; }</style>" in page
        assert "· Acme CRM</title>" in page and "crm-core</title>" not in page


def test_without_a_brand_core_names_itself(tmp_path: Path) -> None:
    settings = load_settings({"instance_path": str(tmp_path / "instance")}, environ={})
    assert settings.brand_name == "crm-core"
    assert settings.templates_path == tmp_path / "instance" / "templates"


def test_templates_path_in_crm_toml_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "deploy" / "templates").mkdir(parents=True)
    config = tmp_path / "deploy" / "crm.toml"
    config.write_text('[crm]\nbrand_name = "  Acme   CRM "\ntemplates_path = "templates"\n')
    settings = load_settings(config_file=config, environ={})
    assert settings.templates_path == tmp_path / "deploy" / "templates"
    assert settings.brand_name == "Acme CRM"


@pytest.mark.parametrize(("overrides", "setting"), [
    ({"templates_path": "/no/such/folder"}, "CRM_TEMPLATES_PATH"),
    ({"brand_name": " "}, "CRM_BRAND_NAME"),
    ({"brand_name": "x" * 61}, "CRM_BRAND_NAME"),
])
def test_bad_brand_settings_are_refused(
    tmp_path: Path, overrides: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"instance_path": str(tmp_path), **overrides}, environ={})
    assert setting in str(refused.value)
