#!/usr/bin/env bash
# Acme's CRM in one command: venv, install, migrate, first admin, serve.
#
#   ./start.sh               set up (idempotent), then serve on http://127.0.0.1:5000/
#   ./start.sh --setup-only  set up and stop (deploy hooks, CI)
#
# Environment (all optional):
#   PYTHON              the Python that makes the venv (default python3, needs >= 3.11)
#   CRM_REPO            the crm-core checkout the packages come from (default ../..)
#   HOST, PORT          where to serve (default 127.0.0.1 and 5000)
#   CRM_ADMIN_EMAIL     the first admin (default admin@acme.example)
#   CRM_ADMIN_PASSWORD  its password (default: random, written to instance/admin-password)
#   CRM_*               any crm-core setting, over crm.toml (e.g. CRM_DATABASE_URL)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

setup_only=false
case "${1:-}" in
  "") ;;
  --setup-only) setup_only=true ;;
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
  *) echo "start.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
esac

export CRM_REPO="${CRM_REPO:-$(cd "$here/../.." && pwd)}"
export TAILORED_HOME="$here"
export CRM_CONFIG="$here/crm.toml"
if [[ ! -f "$CRM_REPO/pyproject.toml" || ! -d "$CRM_REPO/plugins/crm-sales" ]]; then
  echo "start.sh: CRM_REPO=$CRM_REPO is not a crm-core checkout" >&2
  exit 1
fi

venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "==> creating the venv in $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi

# Install again only when requirements.txt or the repository's location changed.
stamp="$venv/.installed"
wanted="$(cat requirements.txt; echo "$CRM_REPO $here")"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$wanted" ]]; then
  echo "==> installing crm-core, crm-sales and acme-brand"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
  printf '%s' "$wanted" > "$stamp"
fi

echo "==> migrating the database"
"$venv/bin/crm" db upgrade

echo "==> making sure the first admin exists"
"$venv/bin/python" ensure_admin.py

if $setup_only; then
  echo "==> set up; serve with ./start.sh"
  exit 0
fi

echo "==> serving on http://${HOST:-127.0.0.1}:${PORT:-5000}/ (Ctrl-C stops)"
exec "$venv/bin/crm" serve --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}"
