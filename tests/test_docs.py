"""The docs follow the code: every hook and every setting is documented, and nothing stale is."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from crm_core import hookspecs
from crm_core.config import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
SPEC_MARKER = f"{hookspecs.PROJECT_NAME}_spec"


def hookspec_functions() -> dict[str, Callable[..., Any]]:
    """Every ``crm_*`` function of crm_core.hookspecs that carries pluggy's spec marker."""
    return {
        name: function
        for name, function in vars(hookspecs).items()
        if name.startswith("crm_") and callable(function) and hasattr(function, SPEC_MARKER)
    }


HOOKSPECS = hookspec_functions()


def sections(path: Path, level: str = "###") -> dict[str, str]:
    """``{heading: text up to the next heading of that level or above}`` of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", lambda m: m.group(0).replace("#", "\0"), text, flags=re.M | re.S)
    found: dict[str, str] = {}
    parts = re.split(rf"^{level} +(.+?) *$", text, flags=re.M)
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        body = re.split(rf"^#{{1,{len(level)}}} ", body, flags=re.M)[0]
        heading = heading.strip("`")
        assert heading not in found, f"{path.name}: {heading!r} is documented twice"
        found[heading] = body.replace("\0", "#")
    return found


HOOK_SECTIONS = sections(DOCS / "hooks.md")


def test_hookspecs_are_found() -> None:
    # Guards the discovery above: if pluggy renamed its marker, every test here would pass.
    assert {"crm_startup", "crm_validate", "crm_on_customers_created"} <= set(HOOKSPECS)


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hook_is_documented(name: str) -> None:
    assert name in HOOK_SECTIONS, f"docs/hooks.md has no '### {name}' section"


def test_docs_document_no_removed_hooks() -> None:
    stale = sorted(name for name in HOOK_SECTIONS if name not in HOOKSPECS)
    assert not stale, f"docs/hooks.md documents hooks that crm_core.hookspecs lacks: {stale}"


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hook_has_a_docstring(name: str) -> None:
    doc = inspect.getdoc(HOOKSPECS[name])
    assert doc and doc.strip(), f"hookspec {name} has no docstring"


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_documented_signature_matches_the_spec(name: str) -> None:
    """The first code block of a hook's section is its signature, exactly as in the code."""
    section = HOOK_SECTIONS.get(name)
    if section is None:
        pytest.fail(f"docs/hooks.md has no '### {name}' section")
    block = re.search(r"^```python\n(.*?)^```", section, flags=re.M | re.S)
    assert block, f"docs/hooks.md, {name}: no ```python block with the signature"
    documented = " ".join(block.group(1).split())
    actual = name + str(inspect.signature(HOOKSPECS[name])).replace("'", "")
    assert documented == actual
    # The signature also parses, so readers can copy it.
    ast.parse(f"def {documented}: pass")


@pytest.mark.parametrize("name", sorted(HOOKSPECS))
def test_hook_calling_convention_is_stated(name: str) -> None:
    options = getattr(HOOKSPECS[name], SPEC_MARKER)
    section = HOOK_SECTIONS.get(name, "")
    for option in ("historic", "firstresult"):
        if options.get(option):
            assert option in section.lower(), f"docs/hooks.md, {name}: say that it is {option}"


def test_hook_examples_implement_the_hook_they_document() -> None:
    for name, section in HOOK_SECTIONS.items():
        assert f"def {name}(" in section, f"docs/hooks.md, {name}: no example implementation"


# -- configuration -----------------------------------------------------------------------

SETTINGS_FIELDS = [f.name for f in dataclasses.fields(Settings)]
SETTING_SECTIONS = sections(DOCS / "configuration.md")


@pytest.mark.parametrize("name", SETTINGS_FIELDS)
def test_setting_is_documented(name: str) -> None:
    section = SETTING_SECTIONS.get(name)
    assert section is not None, f"docs/configuration.md has no '### {name}' section"
    assert f"CRM_{name.upper()}" in section, f"docs/configuration.md, {name}: name its variable"


def test_configuration_documents_no_removed_settings() -> None:
    stale = sorted(set(SETTING_SECTIONS) - set(SETTINGS_FIELDS))
    assert not stale, f"docs/configuration.md documents settings Settings lacks: {stale}"


# -- the API's helpers for plugins -----------------------------------------------------


def test_the_api_helpers_plugins_may_use_are_documented() -> None:
    from crm_core.web import api

    section = sections(DOCS / "api.md")["Request helpers for a plugin's own routes"]
    helpers = [name for name in api.__all__ if name != "init_api" and callable(getattr(api, name))]
    assert {"json_body", "json_response", "if_match_version"} <= set(helpers)
    missing = [name for name in helpers
               if name not in ("ApiProblem", "ApiResource") and f"`{name}" not in section]
    assert not missing, f"docs/api.md does not list the helpers {missing}"


# -- links between the docs ----------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted([*DOCS.glob("*.md"), DOCS.parent / "README.md"]), ids=lambda p: p.name
)
def test_relative_links_point_to_existing_files(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


# -- the public API and its changelog ---------------------------------------------------

CHANGELOG = DOCS.parent / "CHANGELOG.md"


def public_names() -> list[str]:
    """The names ``crm_core`` exports."""
    import crm_core

    return sorted(crm_core.__all__)


@functools.cache
def documented_text() -> str:
    """Every page of docs/, joined."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(DOCS.rglob("*.md")))


@pytest.mark.parametrize("name", public_names())
def test_public_name_is_documented(name: str) -> None:
    assert f"`{name}`" in documented_text(), f"docs/ never mentions crm_core.{name} as `{name}`"


@pytest.mark.parametrize("name", [*public_names(), *sorted(HOOKSPECS)])
def test_public_name_and_hook_are_in_the_changelog(name: str) -> None:
    """A name or hook added without a CHANGELOG.md entry fails here."""
    text = CHANGELOG.read_text(encoding="utf-8")
    found = f"`{name}`" in text or any(
        family.endswith("*`") and name.startswith(family[1:-2])
        for family in re.findall(r"`crm_[a-z_]+\*`", text)
    )
    assert found, f"CHANGELOG.md does not mention `{name}`: add it under its API version"


def test_changelog_has_a_section_for_the_current_api_version() -> None:
    from crm_core import API_VERSION

    headings = re.findall(r"^## \[([^\]]+)\]", CHANGELOG.read_text(encoding="utf-8"), flags=re.M)
    assert API_VERSION in headings, f"CHANGELOG.md has no '## [{API_VERSION}]' section"
    assert headings[0] == "Unreleased" or headings[0] == API_VERSION


def test_deprecations_are_in_the_changelog() -> None:
    from crm_core.deprecations import HOOKS, NAMES

    text = CHANGELOG.read_text(encoding="utf-8")
    deprecated = text.split("### Deprecated", 1)[-1] if "### Deprecated" in text else ""
    for name, deprecation in {**HOOKS, **NAMES}.items():
        assert f"`{name}`" in deprecated and deprecation.removed_in in deprecated, name
