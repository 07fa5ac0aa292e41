#!/usr/bin/env bash
# crm-nps, the example third-party plugin, alone beside crm-core in a fresh virtualenv:
# does it install as a third party would install it, migrate, pass its tests without any
# other plugin, and does core still work once it is uninstalled?
#
#   bash examples/third-party-plugin/ci/alone.sh
#
# 1. a new venv in a temporary folder; `pip install` of crm-core (the repository, with its
#    [test] extra) and of this folder only: no other plugin, not editable, so the wheel
#    must ship the templates and the migration;
# 2. `crm db upgrade` on a fresh SQLite file; `crm plugins` lists crm_nps enabled and
#    `crm db status` shows its branch up to date;
# 3. the plugin's tests: python -m pytest tests, run in this folder (its own pytest
#    settings, as its author runs them) on the backends of CRM_TEST_DATABASES (default
#    sqlite,postgresql), importing the installed packages;
# 4. `crm db downgrade crm_nps@base` on a second database: its table goes, core stays;
# 5. `pip uninstall -y crm-nps`: `crm plugins` no longer lists it, `crm db status` and
#    `crm db upgrade` work, core's app answers GET /status and the OpenAPI document with
#    200 and no /nps-surveys path, and /nps/<token> is a 404.
#
# Exits non-zero, saying which step failed, on any failure. PYTHON picks the interpreter
# (default python3, 3.11 or newer); ALONE_PYTEST_ARGS adds arguments to pytest (-x, a -k
# selection while debugging); KEEP=1 keeps the temporary folder.
set -euo pipefail

PLUGIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$PLUGIN_DIR/../.." && pwd)"
PLUGIN="crm_nps"
DISTRIBUTION="crm-nps"
TABLE_PREFIX="nps_"
PYTHON="${PYTHON:-python3}"
export CRM_TEST_DATABASES="${CRM_TEST_DATABASES:-sqlite,postgresql}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

STARTED=$SECONDS
WORK="$(mktemp -d "${TMPDIR:-/tmp}/$DISTRIBUTION-alone.XXXXXX")"
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
fail() { printf '\nalone.sh (%s): FAILED: %s\n' "$DISTRIBUTION" "$*" >&2; exit 1; }
# shellcheck source=../../../ci/lib.sh
source "$REPO/ci/lib.sh"

VENV="$WORK/venv"
PY="$VENV/bin/python"
CRM="$VENV/bin/crm"
# The installation under test: settings from these variables only, never the caller's
# crm.toml (the commands run in $WORK, where there is none).
unset CRM_PLUGINS CRM_DISABLED_PLUGINS CRM_CONFIG CRM_NPS_CHANNELS
export CRM_INSTANCE_PATH="$WORK/instance"
DB_KEPT="sqlite:///$WORK/kept.sqlite3"
DB_REMOVED="sqlite:///$WORK/removed.sqlite3"
export CRM_DATABASE_URL="$DB_KEPT"
mkdir -p "$CRM_INSTANCE_PATH"
cd "$WORK"

# -- 1. install ------------------------------------------------------------------------------

step "creating a virtualenv in $VENV with $("$PYTHON" -V 2>&1)"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || fail "crm-core needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)"
"$PYTHON" -m venv "$VENV" || fail "cannot create a virtualenv with $PYTHON"
pip install --quiet --upgrade pip || fail "cannot upgrade pip in the new virtualenv"

step "installing crm-core[test] ($REPO) and $DISTRIBUTION ($PLUGIN_DIR), nothing else"
# From copies of the two source trees: a build leaves build/ and *.egg-info behind, and
# others may be working in the checkout.
copy_tree() {  # copy_tree SOURCE TARGET: the sources, without venvs, caches, data or tests
    mkdir -p "$2"
    tar -C "$1" -cf - --exclude='./.venv*' --exclude=./.git --exclude=./instance \
        --exclude=./test-artifacts --exclude=./.hypothesis --exclude=./build --exclude=./dist \
        --exclude='*.egg-info' --exclude=__pycache__ --exclude=./plugins --exclude=./tests \
        --exclude=./bench --exclude=./examples --exclude=./docs/_site . | tar -C "$2" -xf -
    [ -f "$2/pyproject.toml" ] || fail "no pyproject.toml in $1"
}
copy_tree "$REPO" "$WORK/src/crm-core" || fail "cannot copy $REPO"
copy_tree "$PLUGIN_DIR" "$WORK/src/$DISTRIBUTION" || fail "cannot copy $PLUGIN_DIR"
pip install --quiet "$WORK/src/crm-core[test]" "$WORK/src/$DISTRIBUTION" \
    || fail "pip could not install crm-core[test] and $DISTRIBUTION"
others=$("$PY" - <<'PYEOF'
from importlib.metadata import entry_points
print(" ".join(sorted(ep.name for ep in entry_points(group="crm_core.plugins"))))
PYEOF
)
[ "$others" = "$PLUGIN" ] || fail "plugins installed: '$others' (expected only $PLUGIN)"
where=$(cd "$WORK" && "$PY" -P -c \
    'import crm_core, crm_nps; print(crm_core.__file__); print(crm_nps.__file__)')
case "$where" in
    *"$VENV/lib/"*"/crm_core/"*"$VENV/lib/"*"/crm_nps/"*) ;;
    *) fail "not imported from the virtualenv: $where" ;;
esac
for shipped in migrations/versions/0001_surveys.py templates/crm_nps/answer.html \
        templates/crm_nps/panel.html; do
    "$PY" -P -c 'import pathlib, sys, crm_nps
sys.exit(not (pathlib.Path(crm_nps.__file__).parent / sys.argv[1]).is_file())' "$shipped" \
        || fail "the installed $DISTRIBUTION lacks $shipped (package-data in pyproject.toml)"
done
echo "plugins installed: $others"

# -- 2. migrate and check ----------------------------------------------------------------------

step "crm db upgrade on a fresh SQLite file"
"$CRM" db upgrade || fail "crm db upgrade failed on a fresh SQLite database"

check_plugin_installed "$PLUGIN"

# -- 3. the plugin's tests -----------------------------------------------------------------------

step "the plugin's tests (CRM_TEST_DATABASES=$CRM_TEST_DATABASES)"
# In the plugin's folder (its pytest settings), but -P: the installed crm_nps is imported,
# not the folder's.
# shellcheck disable=SC2086 # ALONE_PYTEST_ARGS is a list of arguments
(cd "$PLUGIN_DIR" && "$PY" -P -m pytest tests -p no:cacheprovider -q ${ALONE_PYTEST_ARGS:-}) \
    || fail "the tests of $DISTRIBUTION failed with only $DISTRIBUTION installed"

# -- 4. removing the plugin's tables -------------------------------------------------------------

step "crm db downgrade $PLUGIN@base on a second database"
CRM_DATABASE_URL="$DB_REMOVED" "$CRM" db upgrade || fail "crm db upgrade failed (second database)"
CRM_DATABASE_URL="$DB_REMOVED" "$CRM" db downgrade "$PLUGIN@base" \
    || fail "crm db downgrade $PLUGIN@base failed"
tables=$("$PY" - "$WORK/removed.sqlite3" "$TABLE_PREFIX" <<'PYEOF'
import sqlite3, sys
names = sqlite3.connect(sys.argv[1]).execute(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?",
    (sys.argv[2] + "%",)).fetchall()
print(" ".join(name for (name,) in names))
PYEOF
)
[ -z "$tables" ] || fail "tables left after crm db downgrade $PLUGIN@base: $tables"

# -- 5. uninstalled: core alone ------------------------------------------------------------------

step "pip uninstall -y $DISTRIBUTION"
pip uninstall --quiet -y "$DISTRIBUTION" || fail "pip uninstall $DISTRIBUTION failed"

step "crm plugins no longer lists $PLUGIN"
listed=$("$CRM" plugins --json) || fail "crm plugins failed without $DISTRIBUTION"
echo "$listed" | "$PY" -c '
import json, sys
names = [p["name"] for p in json.load(sys.stdin)]
print("plugins:", ", ".join(names) or "none")
sys.exit(f"{sys.argv[1]} is still listed" if sys.argv[1] in names else 0)
' "$PLUGIN" || fail "crm plugins still lists $PLUGIN after pip uninstall"

step "crm db status without the plugin (database that still holds its table)"
"$CRM" db status || fail "crm db status failed once $DISTRIBUTION was uninstalled"
step "crm db status and crm db upgrade without the plugin (database it was removed from)"
CRM_DATABASE_URL="$DB_REMOVED" "$CRM" db status 2>"$WORK/status.err" \
    || fail "crm db status failed on the database the plugin was removed from"
if grep -q "unknown revision" "$WORK/status.err"; then
    fail "the plugin's revision is left after crm db downgrade $PLUGIN@base"
fi
CRM_DATABASE_URL="$DB_REMOVED" "$CRM" db upgrade \
    || fail "crm db upgrade failed on the database the plugin was removed from"

step "core's app answers without the plugin"
"$PY" - <<'PYEOF' || fail "core's app does not answer once the plugin is uninstalled"
import sys

from crm_core import create_app

client = create_app().test_client()
for path in ("/status", "/api/v1/openapi.json"):
    response = client.get(path)
    print(f"GET {path} -> {response.status_code}")
    if response.status_code != 200:
        sys.exit(f"GET {path} answered {response.status_code}")
spec = client.get("/api/v1/openapi.json").get_json()
leftovers = [path for path in spec.get("paths", {}) if "/nps" in path]
if leftovers:
    sys.exit(f"the API still has the plugin's paths: {leftovers[:5]}")
page = client.get("/nps/some-token")
print(f"GET /nps/some-token -> {page.status_code}")
if page.status_code != 404:
    sys.exit(f"the answer page is still served: {page.status_code}")
PYEOF

printf '\nalone.sh (%s): OK in %d s\n' "$DISTRIBUTION" "$((SECONDS - STARTED))"
