#!/usr/bin/env bash
# Property-based run of schemathesis against docs/control-api.openapi.json.
#
#   scripts/schemathesis.sh                # against the `gateway` binary with a memory store
#   CHECKS=all scripts/schemathesis.sh     # every check, not only "no 5xx"
#
# Extra arguments go to `st run`. Installs schemathesis from PyPI into a venv
# ($VENV, default /tmp/schemathesis-venv) when `st` is not on PATH. Stops the server on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

PORT=${PORT:-18080}
CHECKS=${CHECKS:-not_a_server_error}
VENV=${VENV:-/tmp/schemathesis-venv}

if command -v st >/dev/null 2>&1; then
    ST=st
else
    if [[ ! -x $VENV/bin/st ]]; then
        echo "==> installing schemathesis into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet schemathesis
    fi
    ST=$VENV/bin/st
fi

tmp=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        # The server runs in its own process group (setsid): stop it and its children.
        kill -- "-$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

SECRET=${SECRET:-schemathesis-secret-1234}
cat >"$tmp/gateway.json" <<JSON
{"listen_address": "127.0.0.1", "listen_port": $PORT, "secret": "$SECRET",
 "storage": {"type": "memory"}}
JSON
cargo build --quiet -p certgate-gateway --bin gateway
setsid cargo run --quiet -p certgate-gateway --bin gateway -- --config "$tmp/gateway.json" \
    >"$tmp/server.log" 2>&1 &
server_pid=$!

echo "==> waiting for http://127.0.0.1:$PORT/hello"
for _ in $(seq 1 120); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/hello', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server stopped:" >&2
        cat "$tmp/server.log" >&2
        exit 1
    fi
    sleep 0.5
done

echo "==> st run ($CHECKS)"
"$ST" run docs/control-api.openapi.json --url "http://127.0.0.1:$PORT" \
    -H "X-Tyk-Authorization: $SECRET" --checks "$CHECKS" "$@"
