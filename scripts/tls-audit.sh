#!/usr/bin/env bash
# TLS configuration audit of the demo gateway with testssl.sh: protocols, cipher categories and
# every cipher offered, server preferences and defaults, and known vulnerabilities. Exits non-zero
# on any finding.
#
#   scripts/tls-audit.sh [PORT]        (default 9443)
#
# Installs testssl.sh from Debian when missing (needs root and apt-get), builds the gateway in
# release mode, starts `gateway --demo-dir` in the background, runs testssl.sh, stops the gateway.
# The full report is kept in target/tls-audit/ (testssl.txt and testssl.json). Set GATEWAY to a
# gateway binary to skip the build.
# A finding is: SSLv2, SSLv3, TLS 1.0 or TLS 1.1 offered; TLS 1.2 not offered; a "VULNERABLE"
# line; or a JSON entry rated MEDIUM, HIGH, CRITICAL or WARN, except the demo certificate's own
# properties (`cert_*`), which are printed as notes.
set -euo pipefail

port="${1:-9443}"
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/tls-audit"
demo="$(mktemp -d /tmp/audit-demo.XXXXXX)"
mkdir -p "$out"

testssl="$(command -v testssl.sh || command -v testssl || true)"
if [[ -z "$testssl" ]]; then
    echo "installing testssl.sh from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq testssl.sh bsdmainutils dnsutils >/dev/null
    testssl="$(command -v testssl.sh || command -v testssl)"
fi

gateway="${GATEWAY:-}"
if [[ -z "$gateway" ]]; then
    cargo build --quiet --release -p certgate-gateway --manifest-path "$root/Cargo.toml"
    gateway="$root/target/release/gateway"
fi
"$gateway" --port "$port" --demo-dir "$demo" >"$out/gateway.log" 2>&1 &
gateway_pid=$!
cleanup() {
    kill "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
    rm -rf "$demo"
}
trap cleanup EXIT
for _ in $(seq 100); do
    grep -q "Press Ctrl-C" "$out/gateway.log" 2>/dev/null && break
    kill -0 "$gateway_pid" 2>/dev/null || { cat "$out/gateway.log" >&2; exit 2; }
    sleep 0.2
done
grep -q "Press Ctrl-C" "$out/gateway.log" || { echo "the demo gateway did not start" >&2; exit 2; }

rm -f "$out/testssl.json"
status=0
"$testssl" --quiet --color 0 --warnings off --add-ca "$demo/ca.pem" \
    --jsonfile "$out/testssl.json" \
    --protocols --std --each-cipher --server-preference --vulnerable --server-defaults \
    "localhost:$port" \
    >"$out/testssl.txt" 2>&1 || status=$?
cat "$out/testssl.txt"
echo "testssl exit status: $status"

findings=0
report() { echo "FINDING: $*" >&2; findings=$((findings + 1)); }
while read -r line; do report "offered: $line"; done < <(
    grep -E '^ *(SSLv2|SSLv3|TLS 1(\.0|\.1)?) ' "$out/testssl.txt" | grep -v 'not offered' || true)
while read -r line; do report "$line"; done < <(
    grep -E 'VULNERABLE' "$out/testssl.txt" | grep -v 'not vulnerable' || true)
if [[ -s "$out/testssl.json" ]]; then
    # Every rated entry as "SEVERITY id finding". The certificate's own properties (cert_*: the
    # demo's self-issued certificate has a long validity and no CRL/OCSP URI) are shown as notes;
    # everything else rated MEDIUM or worse, or WARN (a test that could not run), is a finding.
    rated="$(awk -F'"' '/"id"/ {id = $4} /"severity"/ {sev = $4}
        /"finding"/ {if (sev != "OK" && sev != "INFO") print sev, id, $4}' "$out/testssl.json")"
    while read -r severity id finding; do
        [[ -n "$severity" ]] || continue
        case "$severity:$id" in
            LOW:* | *:cert_*) echo "note: $severity $id $finding" ;;
            *) report "$severity $id $finding" ;;
        esac
    done <<<"$rated"
else
    report "testssl wrote no JSON report"
fi
grep -q -E '^ *TLS 1\.2 +offered' "$out/testssl.txt" || report "TLS 1.2 not offered"

if ((findings > 0)); then
    echo "tls-audit: $findings finding(s); report in $out" >&2
    exit 1
fi
echo "tls-audit: no finding (report in $out)"
