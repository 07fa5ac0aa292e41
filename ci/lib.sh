# Checks the fresh-virtualenv scripts share (plugins/*/ci/alone.sh, examples/*/ci/alone.sh,
# ci/scaffold_check.sh). Source it after defining step, fail, CRM and PY.

# check_plugin_installed PLUGIN: `crm plugins` lists PLUGIN as enabled, and `crm db status`
# shows its migration branch (and every other) up to date.
check_plugin_installed() {
    local plugin="$1" status
    step "crm plugins: $plugin is enabled"
    "$CRM" plugins
    "$CRM" plugins --json | "$PY" -c '
import json, sys
plugins = {p["name"]: p for p in json.load(sys.stdin)}
found = plugins.get(sys.argv[1])
if found is None or found["state"] != "enabled":
    sys.exit(f"{sys.argv[1]} is not enabled: {found}")
' "$plugin" || fail "crm plugins does not list $plugin as enabled"

    step "crm db status: the $plugin branch is up to date"
    status=$("$CRM" db status) || fail "crm db status failed"
    echo "$status"
    echo "$status" | grep -Eq "^$plugin +[^ ]+ +[^ ]+ +up to date\$" \
        || fail "crm db status does not show the $plugin branch up to date"
    if echo "$status" | grep -q behind; then fail "a branch is behind after crm db upgrade"; fi
}
