#!/bin/sh
# stepca's container entrypoint. On the first start (no $STEPPATH/config/ca.json yet) it runs
# `step ca init` from the DOCKER_STEPCA_INIT_* variables, as smallstep's image does; every start
# then execs the command given, by default step-ca with the password in secrets/password.
# Variables are documented in deploy/README.md.
set -eu

STEPPATH=${STEPPATH:-/home/step}
export STEPPATH
CONFIG="$STEPPATH/config/ca.json"
PASSWORD_FILE="$STEPPATH/secrets/password"

fail() {
    echo "stepca-entrypoint: $*" >&2
    exit 1
}

init_ca() {
    [ -n "${DOCKER_STEPCA_INIT_NAME:-}" ] && [ -n "${DOCKER_STEPCA_INIT_DNS_NAMES:-}" ] ||
        fail "there is no $CONFIG; run step ca init, or set DOCKER_STEPCA_INIT_NAME and" \
            "DOCKER_STEPCA_INIT_DNS_NAMES to initialise one"
    # smallstep's image knows these too; refuse them rather than start something else
    for feature in SSH ACME REMOTE_MANAGEMENT ADMIN_SUBJECT; do
        eval "value=\${DOCKER_STEPCA_INIT_$feature:-}"
        [ -z "$value" ] || fail "DOCKER_STEPCA_INIT_$feature is not supported by stepca"
    done
    umask 077
    mkdir -p "$STEPPATH/secrets"
    if [ -n "${DOCKER_STEPCA_INIT_PASSWORD_FILE:-}" ]; then
        cat "$DOCKER_STEPCA_INIT_PASSWORD_FILE" >"$PASSWORD_FILE"
    elif [ -n "${DOCKER_STEPCA_INIT_PASSWORD:-}" ]; then
        printf '%s\n' "$DOCKER_STEPCA_INIT_PASSWORD" >"$PASSWORD_FILE"
    else
        # never printed: read it from the volume when you need it
        python3 -c 'import secrets; print(secrets.token_urlsafe(30))' >"$PASSWORD_FILE"
        echo "stepca-entrypoint: generated the CA password into $PASSWORD_FILE" >&2
    fi
    step ca init --name "$DOCKER_STEPCA_INIT_NAME" --dns "$DOCKER_STEPCA_INIT_DNS_NAMES" \
        --address "${DOCKER_STEPCA_INIT_ADDRESS:-:9000}" \
        --provisioner "${DOCKER_STEPCA_INIT_PROVISIONER_NAME:-admin}" \
        --password-file "$PASSWORD_FILE"
    if [ -n "${DOCKER_STEPCA_INIT_DB_TYPE:-}" ]; then
        write_db_block
    fi
}

# Replaces ca.json's "db" block (step ca init writes SQLite's) with DOCKER_STEPCA_INIT_DB_TYPE,
# the data source (DOCKER_STEPCA_INIT_DB_DATASOURCE, or _DATASOURCE_FILE to keep a password in
# a secret) and DOCKER_STEPCA_INIT_DB_DATABASE; ca.json becomes 0600 as it may hold a password.
write_db_block() {
    if [ -n "${DOCKER_STEPCA_INIT_DB_DATASOURCE_FILE:-}" ]; then
        DOCKER_STEPCA_INIT_DB_DATASOURCE=$(cat "$DOCKER_STEPCA_INIT_DB_DATASOURCE_FILE")
        export DOCKER_STEPCA_INIT_DB_DATASOURCE
    fi
    python3 - "$CONFIG" <<'PYTHON'
import json, os, sys
from stepca.x509util import write_private

path = sys.argv[1]
with open(path) as handle:
    config = json.load(handle)
db = {"type": os.environ["DOCKER_STEPCA_INIT_DB_TYPE"]}
for key, variable in (("dataSource", "DATASOURCE"), ("database", "DATABASE")):
    value = os.environ.get(f"DOCKER_STEPCA_INIT_DB_{variable}", "").strip()
    if value:
        db[key] = value
config["db"] = db
write_private(path, (json.dumps(config, indent="\t") + "\n").encode(), mode=0o600)
PYTHON
}

if [ ! -f "$CONFIG" ]; then
    init_ca
fi
if [ $# -eq 0 ]; then
    set -- step-ca "$CONFIG" --password-file "$PASSWORD_FILE"
fi
exec "$@"
