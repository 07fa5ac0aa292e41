"""``crm plugin new``: the files it writes, the names it refuses, and code that compiles and
passes ruff. (ci/scaffold_check.sh installs a generated plugin and runs its tests.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from crm_core import API_VERSION, scaffold
from crm_core.cli import cli

EXPECTED = {
    ".gitignore", "LICENSE", "README.md", "pyproject.toml",
    "crm_nps/__init__.py", "crm_nps/api.py", "crm_nps/models.py", "crm_nps/panels.py",
    "crm_nps/permissions.py", "crm_nps/plugin.py", "crm_nps/schemas.py", "crm_nps/services.py",
    "crm_nps/migrations/versions/0001_items.py", "crm_nps/templates/crm_nps/panel.html",
    "tests/conftest.py", "tests/test_api.py", "tests/test_conformance.py",
    "tests/test_items.py", "tests/test_panel.py",
}

CONFORMANCE = '''from crm_core.conformance import PluginConformance


class TestConformance(PluginConformance):
    plugin = "crm_nps"
'''


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder, with no settings of the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in ("CRM_CONFIG", "CRM_DATABASE_URL", "CRM_PLUGINS", "CRM_INSTANCE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CRM_INSTANCE_PATH", str(tmp_path / "instance"))


def new(*args: str) -> Result:
    """Run ``crm plugin new ARGS``."""
    return CliRunner().invoke(cli, ["plugin", "new", *args])


def files_under(root: Path) -> set[str]:
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def test_new_writes_a_plugin_distribution(tmp_path):
    result = new("crm-nps", "--author", 'Ada "A" Lovelace', "--email", "ada@example.com")
    assert result.exit_code == 0, result.output
    root = tmp_path / "crm-nps"
    assert files_under(root) == EXPECTED
    assert "Created crm-nps in crm-nps (19 files)" in result.output

    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "crm-nps"' in pyproject
    assert '[project.entry-points."crm_core.plugins"]\ncrm_nps = "crm_nps.plugin"' in pyproject
    assert 'authors = [{ name = "Ada \\"A\\" Lovelace", email = "ada@example.com" }]' in pyproject
    major, minor = API_VERSION.split(".")[:2]
    plugin = (root / "crm_nps/plugin.py").read_text()
    assert f'core_api=">={major}.{minor},<{int(major) + 1}"' in plugin
    migration = (root / "crm_nps/migrations/versions/0001_items.py").read_text()
    assert 'revision: str = "nps_0001"' in migration
    assert 'branch_labels: str | Sequence[str] | None = ("crm_nps",)' in migration
    assert 'depends_on: str | Sequence[str] | None = "0001_core"' in migration
    assert '"nps_item"' in migration and '"nps_item"' in (root / "crm_nps/models.py").read_text()
    assert '"nps.item"' in (root / "crm_nps/permissions.py").read_text()
    assert 'name="nps-items"' in (root / "crm_nps/api.py").read_text()
    assert (root / "tests/test_conformance.py").read_text().endswith("\n\n" + CONFORMANCE)
    panel = (root / "crm_nps/templates/crm_nps/panel.html").read_text()
    assert "{{ item.title }}" in panel and "{% for item in items %}" in panel


def test_directory_option_and_names_of_several_words(tmp_path):
    result = new("crm-loyalty-cards", "--directory", "work/cards", "--author", "A")
    assert result.exit_code == 0, result.output
    root = tmp_path / "work" / "cards"
    assert "crm_loyalty_cards/plugin.py" in files_under(root)
    assert '"loyalty_cards.item"' in (root / "crm_loyalty_cards/permissions.py").read_text()
    assert 'name="loyalty-cards-items"' in (root / "crm_loyalty_cards/api.py").read_text()


@pytest.mark.parametrize("name", ["crm-nps", "crm-a1-loyalty-cards-abcdefgh"])
def test_generated_python_compiles_and_passes_ruff(tmp_path, name):
    assert new(name, "--directory", "out", "--author", "A").exit_code == 0
    root = tmp_path / "out"
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    # With the generated pyproject.toml's settings (ruff finds it in the tree).
    checked = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=root,
        capture_output=True, text=True, check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nps", "is not a plugin name"),
        ("crm_nps", "is not a plugin name"),
        ("crm-", "is not a plugin name"),
        ("crm-Nps", "is not a plugin name"),
        ("crm--nps", "is not a plugin name"),
        ("crm-nps-", "is not a plugin name"),
        ("crm-1nps", "is not a plugin name"),
        ("crm-n ps", "is not a plugin name"),
        ("crm-" + "a" * 27, "is longer than 30 characters"),
        ("crm-core", "crm-core's own name"),
    ],
)
def test_bad_names_are_refused(tmp_path, name, message):
    result = new(name)
    assert result.exit_code == 1
    assert message in result.output
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "instance"])


def test_the_name_of_an_installed_plugin_is_refused(monkeypatch):
    class EntryPoint:
        name = "crm_nps"

    monkeypatch.setattr(scaffold, "entry_points", lambda group: [EntryPoint()])
    result = new("crm-nps")
    assert result.exit_code == 1
    assert "a plugin named 'crm_nps' is installed already" in result.output


def test_an_existing_directory_is_refused_and_left_alone(tmp_path):
    (tmp_path / "crm-nps").mkdir()
    (tmp_path / "crm-nps" / "notes.txt").write_text("mine")
    result = new("crm-nps")
    assert result.exit_code == 1
    assert "exists already" in result.output
    assert files_under(tmp_path / "crm-nps") == {"notes.txt"}


def test_missing_templates_are_an_error_not_an_empty_plugin(tmp_path, monkeypatch):
    monkeypatch.setattr(scaffold, "TEMPLATES", tmp_path / "nowhere")
    result = new("crm-nps")
    assert result.exit_code == 1
    assert "no scaffold templates" in result.output
    assert not (tmp_path / "crm-nps").exists()
