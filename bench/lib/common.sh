# Shared by bench/run and bench/profile (sourced, not executed): paths, logging, the work folder, process
# bookkeeping with clean-up on every exit, Debian installs and the test OpenID provider.
# shellcheck shell=bash
# Variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH="$ROOT/bench"
HELPER=(python3 "$BENCH/lib/bench.py")
export PYTHONDONTWRITEBYTECODE=1
# Where cargo puts the binaries: CARGO_TARGET_DIR when set (cargo runs from ROOT, so a relative one is below it).
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
SERVER="$TARGET_DIR/release/rust-api-axum"
LIMIT="$TARGET_DIR/release/bench-limit"
READS="$TARGET_DIR/release/bench-reads"
IDP="$ROOT/tools/idp"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Our own configuration only: nothing from the caller's APP_CONFIG_* or RUST_LOG may change what is measured.
while read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(APP_CONFIG|RUST_LOG)' || true)

# Every process we start goes into PIDS and is stopped by its pid; the work folder and the PostgreSQL database
# (PG_ADMIN, PG_DB, when set) are removed on success, failure and Ctrl-C alike.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rust-api-axum-bench.XXXXXX")
PIDS=()
PG_ADMIN=""
PG_DB=""

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    PIDS=()
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_all
    if [[ -n $PG_DB ]]; then
        psql "$PG_ADMIN" -qX -v ON_ERROR_STOP=1 -c "drop database if exists $PG_DB with (force)" >/dev/null 2>&1 ||
            log "warning: could not drop the PostgreSQL database $PG_DB"
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

apt_install() {
    # Debian's packages only; `apt-get update` once per run, and only when something is missing.
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        return 1
    fi
    if [[ -z ${APT_UPDATED:-} ]]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

free_port() { "${HELPER[@]}" free-port; }

# start_idp: starts the test OpenID provider and sets ISSUER, TOKEN (client credentials, read and write scopes)
# and writes $WORK/client_secrets.json for the server. The provider's one stdout line names the issuer; stdout
# goes to a file, so it is always drained.
start_idp() {
    local i
    if [[ ! -d $IDP/node_modules ]]; then
        log "installing the test OpenID provider's packages (npm ci)"
        npm ci --prefix "$IDP" --no-audit --no-fund >/dev/null
    fi
    node "$IDP/server.js" >"$WORK/idp.out" 2>"$WORK/idp.log" &
    IDP_PID=$!
    PIDS+=("$IDP_PID")
    for ((i = 0; i < 300; i++)); do
        [[ -s $WORK/idp.out ]] && break
        kill -0 "$IDP_PID" 2>/dev/null || die "the test OpenID provider exited: $(tail -n 5 "$WORK/idp.log")"
        sleep 0.1
    done
    ISSUER=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["issuer"])' <"$WORK/idp.out") ||
        die "the test OpenID provider did not print its issuer"
    log "OpenID provider at $ISSUER"
    TOKEN=$(curl -fsS -u rust-api-axum-test:rust-api-axum-test-secret \
        --data-urlencode grant_type=client_credentials \
        --data-urlencode "scope=rust-api-axum-resource-read rust-api-axum-resource-write" "$ISSUER/token" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') || die "cannot get a token"
    cat >"$WORK/client_secrets.json" <<EOF
{"web": {"client_id": "rust-api-axum", "client_secret": "rust-api-axum-secret", "issuer": "$ISSUER",
 "token_uri": "$ISSUER/token", "auth_uri": "$ISSUER/auth"}}
EOF
}

# server_command NAME DB: sets SERVER_CMD, the server's command line with "{port}" left for the caller.
server_command() {
    mkdir -p "$WORK/$1"
    SERVER_CMD=("$SERVER" --host 127.0.0.1 --port "{port}" --instance-path "$WORK/$1" --db "$2"
        --oidc-secrets "$WORK/client_secrets.json")
}
