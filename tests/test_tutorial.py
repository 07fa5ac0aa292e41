"""docs/tutorial.md works: its code blocks, assembled into a plugin, pass their own tests.

Every fenced block of the tutorial whose first line is ``# file: PATH`` (``{# file: PATH
#}`` in templates) is written to ``PATH`` in a temporary folder. Nothing is installed: a
``.dist-info`` folder made from the tutorial's ``pyproject.toml`` carries the entry point,
and the folder goes on ``PYTHONPATH``, so crm-core discovers the plugin as if pip had
installed it. Then the plugin's tests run in a pytest of their own, on the backends of
``CRM_TEST_DATABASES``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```[\w-]*\n(?P<body>.*?)^```$", re.M | re.S)
FILE = re.compile(r"^(?:#|\{#) file: (?P<path>[\w./-]+)(?: #\})?$")


def tutorial_files(text: str) -> dict[str, str]:
    """``{path: content}`` of every code block headed by a ``file:`` comment."""
    files: dict[str, str] = {}
    for block in BLOCK.finditer(text):
        body = block.group("body")
        found = FILE.match(body.split("\n", 1)[0])
        if found:
            path = found.group("path")
            assert path not in files, f"the tutorial writes {path} twice"
            files[path] = body
    return files


def write_distribution(files: dict[str, str], root: Path) -> str:
    """Write ``files`` under ``root`` with a ``.dist-info`` for their entry points."""
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    project = tomllib.loads(files["pyproject.toml"])["project"]
    name, version = project["name"], project["version"]
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    groups = [
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items())
        for group, entries in project["entry-points"].items()
    ]
    info.joinpath("entry_points.txt").write_text("\n".join(groups), encoding="utf-8")
    return name


def test_the_tutorial_blocks_are_found() -> None:
    files = tutorial_files(TUTORIAL.read_text(encoding="utf-8"))
    assert {"pyproject.toml", "tests/test_conformance.py"} <= set(files)
    assert any(path.startswith("crm_notes/migrations/versions/") for path in files)
    assert "class TestConformance(PluginConformance)" in files["tests/test_conformance.py"]


def test_the_tutorial_plugin_passes_its_tests(tmp_path: Path) -> None:
    files = tutorial_files(TUTORIAL.read_text(encoding="utf-8"))
    write_distribution(files, tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= 6, output
