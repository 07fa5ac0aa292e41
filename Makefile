# crm-core: the two commands of the README's quick start, and the helpers behind them.
#
#   make demo   install into .venv and start the demo (SQLite, http://127.0.0.1:5000)
#   make test   install into .venv-test, run ruff and the whole test suite
#               (then each plugin alone in a fresh venv: make test-plugins-alone)
#
# A venv is created when missing (or broken) and synchronised only when what it
# installs changed: a stamp file in the venv holds a fingerprint of its Python, of the
# pip arguments and of every pyproject.toml installed (core, plugins/*/, and for the
# tests tests/plugins/*/). A plugin folder that disappeared is uninstalled from the
# venv, so a stale plugin never stays loaded. `make FORCE=1 install-test` reinstalls.

PYTHON ?= python3
VENV ?= .venv
TEST_VENV ?= .venv-test
DEMO_DB := instance/crm.sqlite3
FORCE ?=
export FORCE

# Plugin distributions: every folder with a pyproject.toml (none at all is fine).
PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(sort $(wildcard plugins/*/pyproject.toml)))
TEST_PLUGIN_DIRS := $(patsubst %/pyproject.toml,%,$(sort $(wildcard tests/plugins/*/pyproject.toml)))

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

.DEFAULT_GOAL := help
.PHONY: help demo test install install-test lint clean translations test-plugins-alone test-scaffold test-examples docs

help:
	@echo "make demo   install crm-core and its plugins into $(VENV), start the demo on SQLite"
	@echo "make test   install into $(TEST_VENV), run ruff and every test (SQLite + PostgreSQL)"
	@echo "            then each plugin alone with core in a fresh venv (make test-plugins-alone)"
	@echo "make docs   build the docs site into site/ (mkdocs --strict; make test does it too)"

# -- the two user-facing targets ----------------------------------------------------

# The demo always uses the SQLite file in ./instance, whatever CRM_DATABASE_URL or a
# crm.toml say, so it can never fill (or reset) a real database. Run again, it serves
# the data it made the first time.
demo: install
	@export CRM_INSTANCE_PATH="$(CURDIR)/instance" CRM_DATABASE_URL="sqlite:///$(CURDIR)/$(DEMO_DB)"; \
	if [ -s "$(DEMO_DB)" ]; then \
		echo "Serving the demo data made earlier in $(DEMO_DB); sign in with the login printed then."; \
		echo "For fresh data and a new login: rm -r instance && make demo"; \
		$(VENV)/bin/crm db upgrade; \
		exec $(VENV)/bin/crm serve; \
	fi; \
	exec $(VENV)/bin/crm demo

test: install-test
	$(TEST_VENV)/bin/ruff check .
	$(TEST_VENV)/bin/mkdocs build --strict --quiet -d site
	$(TEST_VENV)/bin/python -m pytest
	@$(MAKE) --no-print-directory test-plugins-alone
	@$(MAKE) --no-print-directory test-scaffold
	@$(MAKE) --no-print-directory test-examples

# The docs site (mkdocs.yml, docs/) into site/; warnings are errors.
docs: install-test
	$(TEST_VENV)/bin/mkdocs build --strict -d site

# -- helpers ---------------------------------------------------------------------------

install:
	@$(call ensure_venv,$(VENV))
	@SYNC_ROOTS="plugins" $(VENV)/bin/python -c "$$VENV_SYNC" '.[postgres]' $(PLUGIN_DIRS)

install-test:
	@$(call ensure_venv,$(TEST_VENV))
	@SYNC_ROOTS="plugins tests/plugins" \
		$(TEST_VENV)/bin/python -c "$$VENV_SYNC" '.[test]' $(PLUGIN_DIRS) $(TEST_PLUGIN_DIRS)

# Each plugin alone beside core, in a fresh venv of its own: every plugin folder with a
# ci/alone.sh (it installs core and that plugin only, migrates, runs the plugin's tests,
# uninstalls it and checks core still works). CRM_TEST_DATABASES picks the backends.
ALONE_SCRIPTS := $(sort $(wildcard plugins/*/ci/alone.sh examples/*/ci/alone.sh))

# crm plugin new, then the generated plugin's own tests in a fresh venv (ci/scaffold_check.sh).
test-scaffold:
	PYTHON="$(PYTHON)" bash ci/scaffold_check.sh

# examples/tailored-crm: the integrator's one-command start, checked in a temp copy.
test-examples:
	PYTHON="$(PYTHON)" bash examples/tailored-crm/ci/check.sh

test-plugins-alone:
	@for script in $(ALONE_SCRIPTS); do \
		echo "== $$script"; \
		PYTHON="$(PYTHON)" bash "$$script"; \
	done

lint: install-test
	$(TEST_VENV)/bin/ruff check .

# After changing the UI's texts: extract them into the template catalogue, merge it into
# each language's messages.po (new texts come untranslated, changed ones marked fuzzy:
# translate them), and compile every .po to the .mo the app reads. The same for every
# plugin folder with a babel.cfg (its catalogues in <package>/translations). The tests
# fail while a catalogue is incomplete or a .mo is older than its .po.
CATALOGUE_ROOTS := . $(patsubst %/babel.cfg,%,$(sort $(wildcard plugins/*/babel.cfg)))

translations: install-test
	@for root in $(CATALOGUE_ROOTS); do \
		folder=$$(cd "$$root" && ls -d */translations | head -n 1); \
		echo "== $$root/$$folder"; \
		(cd "$$root" && \
		 $(CURDIR)/$(TEST_VENV)/bin/pybabel -q extract -F babel.cfg -k _l -k lazy_gettext \
			--no-location --sort-output --project crm-core \
			--copyright-holder "crm-core developers" -o "$$folder/messages.pot" . && \
		 for language in $$($(CURDIR)/$(TEST_VENV)/bin/python -c \
				"from crm_core.catalogues import TRANSLATED; print(*TRANSLATED)"); do \
			if [ -f "$$folder/$$language/LC_MESSAGES/messages.po" ]; then \
				$(CURDIR)/$(TEST_VENV)/bin/pybabel -q update --ignore-obsolete \
					--ignore-pot-creation-date -l "$$language" \
					-i "$$folder/messages.pot" -d "$$folder" || exit 1; \
			else \
				$(CURDIR)/$(TEST_VENV)/bin/pybabel -q init -l "$$language" \
					-i "$$folder/messages.pot" -d "$$folder" || exit 1; \
			fi; \
		 done && \
		 $(CURDIR)/$(TEST_VENV)/bin/pybabel -q compile -d "$$folder") || exit 1; \
	done

clean:
	rm -rf $(TEST_VENV) build dist site .pytest_cache .ruff_cache
	@echo "kept $(VENV) and instance/ (the demo's data): remove them by hand if you mean to"

# $(call ensure_venv,VENV): create VENV with $(PYTHON) when it is missing or its
# interpreter no longer runs (the Python it was made from is gone).
define ensure_venv
if ! "$(1)/bin/python" -c "" 2>/dev/null; then \
	"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "crm-core needs Python 3.11 or newer; $(PYTHON) is $$("$(PYTHON)" -V 2>&1)." >&2; \
		echo "Run e.g.: make PYTHON=python3.11 $(MAKECMDGOALS)" >&2; exit 1; }; \
	echo "creating $(1) with $$("$(PYTHON)" -V)"; \
	rm -rf "$(1)"; \
	"$(PYTHON)" -m venv "$(1)"; \
fi
endef

# Run by a venv's python: CORE_SPEC PLUGIN_DIR... (environment: SYNC_ROOTS, FORCE).
# Installs the core spec and each plugin folder in editable mode (after upgrading pip),
# uninstalls plugins installed from a folder under SYNC_ROOTS that is no longer among
# them, and keeps a stamp so that a rerun with unchanged pyproject.toml files installs
# nothing. Editable installs from elsewhere (e.g. test plugins in .venv) are left alone.
define VENV_SYNC
import hashlib, json, os, subprocess, sys
from pathlib import Path
core, *plugins = sys.argv[1:]
force = bool(os.environ.get("FORCE"))
stamp = Path(sys.prefix) / ".crm-installed"
digest = hashlib.sha256(f"{sys.version}|{core}|{plugins}".encode())
for folder in [".", *plugins]:
    digest.update(Path(folder, "pyproject.toml").read_bytes())
fingerprint = digest.hexdigest()
if not force and stamp.is_file() and stamp.read_text().strip() == fingerprint:
    print(f"{sys.prefix} is up to date")
    sys.exit(0)
stamp.unlink(missing_ok=True)
pip = [sys.executable, "-m", "pip"]
print(f"installing into {sys.prefix}: {core} {' '.join(plugins)}", flush=True)
subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
editable = [arg for folder in [core, *plugins] for arg in ("-e", folder)]
subprocess.run([*pip, "install", "--quiet", *editable], check=True)
listed = subprocess.run(
    [*pip, "list", "--editable", "--format", "json"], check=True, capture_output=True, text=True
).stdout
wanted = {os.path.realpath(folder) for folder in plugins}
roots = tuple(os.path.realpath(root) + os.sep for root in os.environ["SYNC_ROOTS"].split())
stale = [
    dist["name"]
    for dist in json.loads(listed)
    if os.path.realpath(dist.get("editable_project_location") or "/").startswith(roots)
    and os.path.realpath(dist["editable_project_location"]) not in wanted
]
if stale:
    print(f"uninstalling plugins whose folder is gone: {' '.join(stale)}", flush=True)
    subprocess.run([*pip, "uninstall", "--quiet", "--yes", *stale], check=True)
stamp.write_text(fingerprint + "\n")
endef
export VENV_SYNC
