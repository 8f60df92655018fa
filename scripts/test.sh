#!/usr/bin/env bash
# Runs certgate's whole test suite on a fresh Debian or Ubuntu machine.
#
#   scripts/test.sh [extra cargo test arguments]
#
# First it makes sure the programs the tests start are installed: redis-server (single node,
# Cluster and Sentinel tests; Sentinel runs as `redis-server --sentinel`), openssl and curl (TLS
# clients the gateway tests drive), chromium and chromedriver (the certificate page's browser test,
# headless). What is missing is installed with apt-get when this script may
# (it runs as root, or sudo works without a password); otherwise it says exactly what is missing
# and how to install it, and stops. Then: `cargo test --workspace --all-features --locked` (TLS on
# aws-lc-rs, which the `aws-lc-rs` feature selects), and the TLS core and the gateway again with
# every feature but that one (TLS on *ring*).
#
# The tests start their own servers on private loopback ports; nothing needs to be running.
# `.ci/run` calls this script, so CI and a newcomer run the same thing.
set -euo pipefail

cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A package_of=(
    [redis-server]=redis-server
    [redis-cli]=redis-tools
    [openssl]=openssl
    [curl]=curl
    [pebble]=pebble
    [pebble-challtestsrv]=pebble
    [chromium]=chromium
    [chromedriver]=chromium-driver
)

missing=()
for command in "${!package_of[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("${package_of[$command]}")
done
# curl needs the CA bundle; harmless when already there.
((${#missing[@]} == 0)) || missing+=(ca-certificates)

if ((${#missing[@]} > 0)); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    as_root=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            echo "scripts/test.sh: the tests need these Debian packages, which are not installed:" >&2
            echo "    ${missing[*]}" >&2
            echo "Install them (as root) with:" >&2
            echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
            echo "then run scripts/test.sh again." >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "scripts/test.sh: missing ${missing[*]}, and this is not a Debian or Ubuntu machine" \
            "(no apt-get): install redis-server, redis-cli, openssl, curl, chromium and chromedriver with your package manager" >&2
        exit 1
    fi
    echo "==> installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -q </dev/null
    "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi

# Every feature on: TLS runs on aws-lc-rs (the `aws-lc-rs` feature wins when both backends are
# built). Then the TLS core and the gateway again on the default backend, *ring*.
echo "==> cargo test --workspace --all-features --locked $*"
cargo test --workspace --all-features --locked "$@"
# The gateway keeps its other features (Redis, ACME, internals), so the same tests run.
ring_features=certgate-gateway-runtime/redis,certgate-gateway-runtime/acme,certgate-gateway-runtime/internals
echo "==> cargo test -p certgate-tls-core -p certgate-gateway-runtime --features $ring_features --locked $* (TLS on ring)"
cargo test -p certgate-tls-core -p certgate-gateway-runtime --features "$ring_features" --locked "$@"
