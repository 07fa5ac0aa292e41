#!/usr/bin/env bash
# CI check of examples/tailored-crm: runs ./start.sh in a temporary copy of the folder,
# non-interactively, against a fresh SQLite database, then checks the running CRM over
# HTTP and stops it. Any failed step ends the script with "FAIL: ..." and status 1.
#
#   examples/tailored-crm/ci/check.sh        (from anywhere; needs python3 >= 3.11, curl)
#
# KEEP_TMP=1 keeps the temporary copy (its server log is start.log) for a post-mortem.
set -euo pipefail

example="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(cd "$example/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/tailored-crm-check.XXXXXX")"
server_pid=""

fail() {
  echo "FAIL: $*" >&2
  if [[ -f "$work/copy/start.log" ]]; then
    echo "---- last lines of start.log ----" >&2
    tail -n 40 "$work/copy/start.log" >&2
  fi
  exit 1
}

cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "${KEEP_TMP:-}" == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

command -v curl >/dev/null || fail "curl is needed"

# A copy without what a local run left behind (venv, instance, build metadata).
mkdir "$work/copy"
tar -C "$example" --exclude=./.venv --exclude=./instance --exclude='*.egg-info' \
  --exclude=__pycache__ -cf - . | tar -C "$work/copy" -xf -
cd "$work/copy"

# Only this check's settings: no CRM_* of the calling shell (a CI's CRM_DATABASE_URL...).
while read -r name; do unset "$name"; done < <(compgen -e | grep '^CRM_' || true)
export CRM_REPO="$repo"
export CRM_ADMIN_EMAIL="admin@acme.example"
export CRM_ADMIN_PASSWORD="check-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
export HOST=127.0.0.1
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export PORT
base="http://$HOST:$PORT"

echo "==> ./start.sh in $work/copy (port $PORT)"
./start.sh >start.log 2>&1 </dev/null &
server_pid=$!

# Setup (venv, install, migrate, admin) then the server: wait for /status.
for _ in $(seq 1 600); do
  kill -0 "$server_pid" 2>/dev/null || fail "./start.sh ended before serving"
  curl -fsS -o /dev/null "$base/status" 2>/dev/null && break
  sleep 1
done
curl -fsS -o status.html "$base/status" || fail "/status never answered"
grep -q "created admin $CRM_ADMIN_EMAIL" start.log || fail "start.sh did not create the admin"

expect() {  # expect FILE TEXT WHAT: FILE contains TEXT, else fail naming WHAT
  grep -qF -- "$2" "$1" || fail "$3: '$2' not found in $1"
}

echo "==> /status lists the enabled plugins"
for plugin in crm_sales acme_brand; do
  grep -A2 -F "<td>$plugin</td>" status.html | grep -q '<td>enabled</td>' \
    || fail "/status does not show $plugin enabled"
done

echo "==> signing in as $CRM_ADMIN_EMAIL"
jar="$work/cookies"
curl -fsS -c "$jar" -b "$jar" -o login.html "$base/login" || fail "GET /login"
csrf="$(sed -n 's/.*name="csrf_token"[^>]*value="\([^"]*\)".*/\1/p' login.html | head -n 1)"
[[ -n "$csrf" ]] || fail "no csrf_token in the sign-in form"
code="$(curl -sS -c "$jar" -b "$jar" -o /dev/null -w '%{http_code}' \
  --data-urlencode "csrf_token=$csrf" --data-urlencode "email=$CRM_ADMIN_EMAIL" \
  --data-urlencode "password=$CRM_ADMIN_PASSWORD" "$base/login")"
[[ "$code" == 302 || "$code" == 303 ]] || fail "POST /login answered $code, not a redirect"

echo "==> the dashboard shows Acme's branded widget"
curl -fsS -b "$jar" -o dashboard.html "$base/" || fail "GET / (the dashboard)"
expect dashboard.html 'class="card widget-acme-welcome"' "the dashboard"
expect dashboard.html "Customers first, since 1949." "the dashboard"
expect dashboard.html "/acme-brand/static/acme_brand/brand.css" "the dashboard"
curl -fsS -o /dev/null "$base/acme-brand/static/acme_brand/brand.css" || fail "brand.css not served"
curl -fsS -o /dev/null "$base/acme-brand/static/acme_brand/logo.svg" || fail "logo.svg not served"

echo "==> every page carries the brand: name and logo in the top bar, title, stylesheet"
curl -fsS -b "$jar" -o customers.html "$base/customers" || fail "GET /customers"
for page in dashboard.html customers.html; do
  expect "$page" 'class="acme-topbar-logo"' "the top bar of $page"
  expect "$page" '> Acme CRM</a>' "the top bar of $page"
  expect "$page" '· Acme CRM</title>' "the title of $page"
  expect "$page" '<link rel="stylesheet" href="/acme-brand/static/acme_brand/brand.css">' "the head of $page"
done

echo "==> /admin/plugins lists the custom attributes of crm.toml"
curl -fsS -b "$jar" -o plugins.html "$base/admin/plugins" || fail "GET /admin/plugins"
for text in "<code>vat_id</code>" "VAT ID" "<code>tier</code>" "Support tier" \
  '<span class="tag">gold</span>' "<code>seats</code>" "Licensed seats" \
  "<code>renewal</code>" "Contract renewal"; do
  expect plugins.html "$text" "/admin/plugins"
done

echo "==> the API keeps a declared attribute and refuses others"
token="$(CRM_CONFIG="$PWD/crm.toml" .venv/bin/crm token create --user "$CRM_ADMIN_EMAIL" \
  --name "tailored-crm check" 2>/dev/null)" || fail "crm token create"
post() {  # post JSON: prints the HTTP status, the answer goes to answer.json
  curl -sS -o answer.json -w '%{http_code}' -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' --data "$1" "$base/api/v1/customers"
}
code="$(post '{"name": "Wile E. Coyote Ltd", "attributes": {"vat_id": "DE123456789", "tier": "gold", "seats": 40, "renewal": "2027-03-31"}}')"
[[ "$code" == 201 ]] || fail "creating a customer with custom attributes answered $code: $(cat answer.json)"
expect answer.json '"vat_id": "DE123456789"' "the created customer"
expect answer.json '"seats": 40' "the created customer"
expect answer.json '"renewal": "2027-03-31"' "the created customer"
code="$(post '{"name": "Road Runner Inc", "attributes": {"renewal": "next spring"}}')"
[[ "$code" == 422 ]] || fail "a renewal that is no date answered $code, not 422"
code="$(post '{"name": "Road Runner Inc", "attributes": {"tier": "platinum"}}')"
[[ "$code" == 422 ]] || fail "a tier outside the choices answered $code, not 422"
code="$(post '{"name": "Road Runner Inc", "attributes": {"seats": "many"}}')"
[[ "$code" == 422 ]] || fail "a seat count that is no number answered $code, not 422"
code="$(post '{"name": "Road Runner Inc", "attributes": {"shoe_size": 42}}')"
[[ "$code" == 422 ]] || fail "an undeclared attribute answered $code, not 422"

echo "==> stopping the server; setting up again keeps the admin"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
./start.sh --setup-only >setup-again.log 2>&1 </dev/null || { cat setup-again.log >&2; fail "second ./start.sh --setup-only"; }
expect setup-again.log "admin $CRM_ADMIN_EMAIL exists" "the second setup"
if grep -q "installing crm-core" setup-again.log; then fail "the second setup installed again"; fi

echo "OK: examples/tailored-crm starts, is branded, and has its custom attributes"
