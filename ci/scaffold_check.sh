#!/usr/bin/env bash
# `crm plugin new` makes a plugin whose tests pass straight away, installed as a user would:
#
#   bash ci/scaffold_check.sh
#
# 1. a new venv in a temporary folder; `pip install` of crm-core (a copy of this repository,
#    with its [test] extra, not editable: the wheel must ship the scaffold's templates);
# 2. `crm plugin new crm-scaffold-check` with that venv's crm; ruff passes on what it wrote;
# 3. `pip install` of the generated plugin (not editable): it must be the only plugin, and
#    import from the venv;
# 4. `crm db upgrade` on a fresh SQLite file, `crm plugins` lists it enabled and
#    `crm db status` shows its branch up to date;
# 5. the generated plugin's tests, from its folder with its own pytest settings, on the
#    backends of CRM_TEST_DATABASES (default sqlite,postgresql).
#
# Exits non-zero, saying which step failed, on any failure. PYTHON picks the interpreter
# (default python3, 3.11 or newer); SCAFFOLD_PYTEST_ARGS adds arguments to pytest; REPO the
# crm-core checkout to install (default: the one holding this script); KEEP=1 keeps the
# temporary folder.
set -euo pipefail

REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
DISTRIBUTION="crm-scaffold-check"
PLUGIN="crm_scaffold_check"
PYTHON="${PYTHON:-python3}"
export CRM_TEST_DATABASES="${CRM_TEST_DATABASES:-sqlite,postgresql}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

STARTED=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/scaffold-check.XXXXXX")"
cleanup() {
    if [ -n "${KEEP:-}" ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }
pip() {  # pip in the venv, without its warnings about this machine's absent local indexes
    local status=0
    "$PY" -m pip "$@" >"$WORK/pip.log" 2>&1 || status=$?
    grep -v "^WARNING: Location 'file:" "$WORK/pip.log" || true
    return "$status"
}
fail() { printf '\nscaffold_check.sh: FAILED: %s\n' "$*" >&2; exit 1; }
# shellcheck source=lib.sh
source "$REPO/ci/lib.sh"

VENV="$WORK/venv"
PY="$VENV/bin/python"
CRM="$VENV/bin/crm"
GENERATED="$WORK/src/$DISTRIBUTION"
# Settings from these variables only, never the caller's crm.toml (the commands run in
# $WORK, where there is none).
unset CRM_PLUGINS CRM_DISABLED_PLUGINS CRM_CONFIG
export CRM_INSTANCE_PATH="$WORK/instance"
export CRM_DATABASE_URL="sqlite:///$WORK/crm.sqlite3"
mkdir -p "$CRM_INSTANCE_PATH"
cd "$WORK"

# -- 1. crm-core ----------------------------------------------------------------------------------

step "creating a virtualenv in $VENV with $("$PYTHON" -V 2>&1)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || fail "crm-core needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)"
"$PYTHON" -m venv "$VENV" || fail "cannot create a virtualenv with $PYTHON"
pip install --quiet --upgrade pip || fail "cannot upgrade pip in the new virtualenv"

step "installing crm-core[test] from $REPO (not editable, no plugin)"
# From a copy: a build leaves build/ and *.egg-info behind, and others may be working in
# the checkout.
mkdir -p "$WORK/src/crm-core"
tar -C "$REPO" -cf - --exclude='./.venv*' --exclude=./.git --exclude=./instance \
    --exclude=./test-artifacts --exclude=./.hypothesis --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./plugins --exclude=./tests \
    --exclude=./bench . | tar -C "$WORK/src/crm-core" -xf - || fail "cannot copy $REPO"
pip install --quiet "$WORK/src/crm-core[test]" || fail "pip could not install crm-core[test]"

# -- 2. the scaffold ------------------------------------------------------------------------------

step "crm plugin new $DISTRIBUTION"
"$CRM" plugin new "$DISTRIBUTION" --directory "$GENERATED" --author "Scaffold Check" \
    --email "scaffold-check@example.com" || fail "crm plugin new failed"
for expected in pyproject.toml README.md LICENSE "$PLUGIN/plugin.py" \
        "$PLUGIN/migrations/versions/0001_items.py" "$PLUGIN/templates/$PLUGIN/panel.html" \
        tests/conftest.py tests/test_conformance.py; do
    [ -f "$GENERATED/$expected" ] || fail "crm plugin new did not write $expected"
done

step "ruff check on the generated plugin (its own settings)"
(cd "$GENERATED" && "$VENV/bin/ruff" check .) || fail "ruff finds problems in the generated plugin"

# -- 3. the generated plugin ----------------------------------------------------------------------

step "installing $DISTRIBUTION (not editable)"
pip install --quiet "$GENERATED" || fail "pip could not install the generated $DISTRIBUTION"
installed=$("$PY" - <<'PYTHON'
from importlib.metadata import entry_points
print(" ".join(sorted(ep.name for ep in entry_points(group="crm_core.plugins"))))
PYTHON
)
[ "$installed" = "$PLUGIN" ] || fail "plugins installed: '$installed' (expected only $PLUGIN)"
where=$("$PY" -P -c "import $PLUGIN; print($PLUGIN.__file__)")
case "$where" in
    "$VENV/lib/"*"/$PLUGIN/"*) ;;
    *) fail "$PLUGIN is not imported from the virtualenv: $where" ;;
esac

# -- 4. migrate and list ----------------------------------------------------------------------------

step "crm db upgrade on a fresh SQLite file"
"$CRM" db upgrade || fail "crm db upgrade failed with the generated plugin"

check_plugin_installed "$PLUGIN"

# -- 5. the generated plugin's tests ----------------------------------------------------------------

step "the generated plugin's tests (CRM_TEST_DATABASES=$CRM_TEST_DATABASES)"
# From its folder (its pytest settings), but -P: the installed package is imported, not
# the folder's copy.
# shellcheck disable=SC2086 # SCAFFOLD_PYTEST_ARGS is a list of arguments
(cd "$GENERATED" && "$PY" -P -m pytest -p no:cacheprovider -q ${SCAFFOLD_PYTEST_ARGS:-}) \
    || fail "the generated plugin's tests failed"

printf '\nscaffold_check.sh: OK in %d s\n' "$((SECONDS - STARTED))"
