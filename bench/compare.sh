#!/usr/bin/env bash
# Side-by-side benchmark: certgate's gateway against nginx, HAProxy and a proxy on Cloudflare's
# pingora framework (bench/pingora-peer, rustls), and against a bare tokio-rustls server (the
# limit), on the same certificates, TLS 1.3 only, TLS_AES_128_GCM_SHA256, X25519.
#
# Primary metric: operations per server CPU-second (utime+stime from /proc/<pid>/stat, summed
# over nginx's master and worker). Each server is one process pinned to CPU 1 (`taskset -c 1`;
# one nginx worker, one HAProxy thread, one pingora worker thread, one Tokio worker since Tokio
# sizes its pool from the affinity mask); the load
# generators and the shared upstream run on CPU 0. Each run also reports the server's and the
# load generators' CPU as % of one core (the clients' from bash `times`): near 100 % marks the
# bound side, where peak rates stop being comparable (CPU per operation still is).
#
# Scenarios:
#   hs-ecdsa, hs-rsa  full handshakes (`openssl s_time -new`: never offers a session), ECDSA
#                     P-256 and RSA-2048 leaves; gateway, nginx and bare_tls
#   keepalive         `wrk -t1 -c8` keep-alive GETs; gateway and nginx proxy to one upstream (an
#                     nginx `return 200` on CPU 0, pooled keep-alive connections on both sides);
#                     bare_tls answers itself (shown for reference, not a fair ratio)
#   hs-mtls           mutual-TLS full handshakes, each with one `GET /` (Connection: close), from
#                     `hs_load` (examples/src/bin/hs_load.rs: tokio-rustls, resumption off); ECDSA
#                     P-256 server leaf and client certificate, both issued by the bench CA.
#                     nginx (`ssl_verify_client on`) and bare_tls (`--client-ca`) verify the
#                     client's chain to the CA; the gateway allow-lists the client certificate
#                     (an API's `client_certificates`), and `gateway-ca` lists the CA instead
#                     (chain verified as the others do). nginx, HAProxy and the gateways proxy
#                     the GET.
#   h2                `h2load -c4 -m16`: HTTP/2 streams over 4 connections, proxied to the upstream
#                     (HTTP/1.1 keep-alive there); nginx, HAProxy and the gateway
#   idle-mem          resident memory per idle TLS connection, each server started afresh
#                     first (nginx: a new worker): `hs_load --hold N` opens N
#                     connections (BENCH_IDLE_CONNECTIONS, default 9900: HAProxy keeps two descriptors per connection and the hard descriptor limit here is 20000), handshakes done, no
#                     request; (VmRSS with them - VmRSS before) / N, in KiB. Not with --icount.
#   idle-mem-ka       the same, but each connection first has one keep-alive `GET /` answered
#                     (proxied, except by bare_tls): idle between requests; shown as `server+request`
#   latency-ka, latency-new
#                     latency at a fixed rate below saturation, measured from each request's
#                     scheduled start (no coordinated omission): `hs_load --rate R`, keep-alive
#                     on 16 connections (BENCH_RATE_KA, default 5000/s) or a new connection per
#                     request (BENCH_RATE_NEW, default 500/s); p50/p99/p99.9 in microseconds.
#                     Not with --icount.
# Servers are alternated run by run; each ratio is printed as median [min-max] over the runs.
#
# Usage: bench/compare.sh [--smoke] [--runs N] [--duration SECONDS] [--only SCENARIO[,...]] [--no-build]
#   --smoke     one run of every step for ~2 s (keeps the script from rotting)
#   --only      run only these scenarios (hs-ecdsa, hs-rsa, keepalive, hs-mtls, h2, idle-mem, idle-mem-ka,
#               latency-ka, latency-new)
#   --no-build  use the existing target/release/{gateway,bare_tls,hs_load} and
#               bench/pingora-peer/target/release/pingora_peer
#   --no-pingora leave the pingora peer out (building it the first time takes minutes)
#   --icount    run every server under valgrind's callgrind and count instructions per operation
#               instead of CPU time: repeatable whatever else the machine does; uses (and builds)
#               the `profiling` profile; user-space only (the kernel's share is not counted)
#   --debug     use (and build) the debug binaries instead: for CI, which has them from its test
#               step; checks that every step works, the figures mean nothing
#   --aws-lc-rs build the gateway, bare_tls and hs_load with TLS on aws-lc-rs instead of *ring*
#               (feature aws-lc-rs), kept apart in target/<profile>/aws-lc-rs/
# Environment: BENCH_HS_CLIENTS (parallel s_time clients and hs_load tasks, default 4), BENCH_DIR (work folder; default a fresh temp folder), BENCH_PORT_BASE (default 18400)
set -euo pipefail

runs=3
duration=10
smoke=0
build=1
profile=release
icount=0
scenarios=(hs-ecdsa hs-rsa keepalive hs-mtls h2 idle-mem idle-mem-ka latency-ka latency-new)
pingora=1
crypto=ring
while [[ $# -gt 0 ]]; do
    case "$1" in
        --smoke) smoke=1; runs=1; duration=2 ;;
        --runs) runs="$2"; shift ;;
        --duration) duration="$2"; shift ;;
        --only) IFS=, read -r -a scenarios <<<"$2"; shift ;;
        --no-build) build=0 ;;
        --no-pingora) pingora=0 ;;
        --debug) profile=debug ;;
        --icount) icount=1; profile=profiling ;;
        --aws-lc-rs) crypto=aws-lc-rs ;;
        -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
for scenario in "${scenarios[@]}"; do
    case "$scenario" in
        hs-ecdsa|hs-rsa|keepalive|hs-mtls|h2|idle-mem|idle-mem-ka|latency-ka|latency-new) ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${BENCH_DIR:-$(mktemp -d /tmp/certgate-bench.XXXXXX)}"
mkdir -p "$work"
base="${BENCH_PORT_BASE:-18400}"
port_up=$((base + 80))
declare -A port=(
    [nginx-ecdsa]=$((base + 43)) [nginx-rsa]=$((base + 44))
    [gateway-ecdsa]=$((base + 53)) [gateway-rsa]=$((base + 54))
    [bare-ecdsa]=$((base + 63)) [bare-rsa]=$((base + 64))
    [nginx-mtls]=$((base + 45)) [gateway-mtls]=$((base + 55)) [gateway-ca-mtls]=$((base + 56))
    [bare-mtls]=$((base + 65))
    [haproxy-ecdsa]=$((base + 73)) [haproxy-rsa]=$((base + 74)) [haproxy-mtls]=$((base + 75))
    [pingora-ecdsa]=$((base + 93)) [pingora-rsa]=$((base + 94)) [pingora-mtls]=$((base + 95))
)
# The peers besides the gateway, in every scenario that they can do.
peers=(nginx haproxy)
((pingora)) && peers+=(pingora)
log() { printf '[compare %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- tools -------------------------------------------------------------------------------------
nginx_bin="$(command -v nginx || true)"
[[ -z "$nginx_bin" && -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx
missing=()
[[ -z "$nginx_bin" ]] && missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v openssl >/dev/null || missing+=(openssl)
command -v taskset >/dev/null || missing+=(util-linux)
((icount)) && ! command -v valgrind >/dev/null && missing+=(valgrind)
# pingora's zlib-ng is built with cmake.
((pingora && build)) && ! command -v cmake >/dev/null && missing+=(cmake)
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    as_root=(); [[ $(id -u) -ne 0 ]] && as_root=(sudo)
    "${as_root[@]}" apt-get update -q </dev/null
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null
    nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
fi
[[ $(nproc) -ge 2 ]] || { echo "needs 2 CPUs (server on CPU 1, clients on CPU 0)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

bins="$repo/target/$profile"
crypto_args=()
if [[ $crypto == aws-lc-rs ]]; then
    bins="$repo/target/$profile/aws-lc-rs"
    crypto_args=(--features certgate-gateway/aws-lc-rs,certgate-examples/aws-lc-rs)
fi
if ((build)); then
    log "building the gateway, bare_tls and hs_load ($profile, TLS on $crypto)"
    profile_args=(--profile "$profile")
    [[ $profile == debug ]] && profile_args=()
    (cd "$repo" && cargo build "${profile_args[@]}" "${crypto_args[@]}" --locked -q \
        -p certgate-gateway --bin gateway -p certgate-examples --bin bare_tls --bin hs_load)
    if [[ $crypto == aws-lc-rs ]]; then # the next plain build overwrites target/<profile>
        mkdir -p "$bins"
        cp "$repo/target/$profile/"{gateway,bare_tls,hs_load} "$bins/"
    fi
    if ((pingora)); then
        log "building the pingora peer ($profile; the first build takes minutes)"
        (cd "$repo/bench/pingora-peer" && cargo build "${profile_args[@]}" --locked -q)
    fi
fi
pingora_bin="$repo/bench/pingora-peer/target/$profile/pingora_peer"
gateway_bin="$bins/gateway"
bare_bin="$bins/bare_tls"
hs_load_bin="$bins/hs_load"

# --- certificates (openssl CLI): a CA and a leaf for bench.example, per key type --------------
make_pki() { # kind keyargs...
    local kind="$1"; shift
    local d="$work/pki-$kind"
    mkdir -p "$d"
    openssl req -x509 -new -nodes "$@" -keyout "$d/ca.key" -out "$d/ca.pem" -days 365 \
        -subj "/CN=Bench $kind CA" 2>/dev/null
    openssl req -new -nodes "$@" -keyout "$d/leaf.key" -out "$d/leaf.csr" \
        -subj "/CN=bench.example" 2>/dev/null
    printf 'subjectAltName=DNS:bench.example,DNS:*.bench.example\nextendedKeyUsage=serverAuth\n' \
        >"$d/ext.cnf"
    openssl x509 -req -in "$d/leaf.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 365 -extfile "$d/ext.cnf" -out "$d/leaf.pem" 2>/dev/null
    cat "$d/leaf.pem" "$d/leaf.key" >"$d/bundle.pem"
}
make_pki ecdsa -newkey ec -pkeyopt ec_paramgen_curve:P-256
make_pki rsa -newkey rsa:2048
# The mTLS client: an ECDSA P-256 certificate for client authentication from the ECDSA CA.
pki="$work/pki-ecdsa"
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$pki/client.key" \
    -out "$pki/client.csr" -subj "/CN=bench client" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >"$pki/client-ext.cnf"
openssl x509 -req -in "$pki/client.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 365 -extfile "$pki/client-ext.cnf" -out "$pki/client.pem" 2>/dev/null

# Clients pin TLS 1.3, TLS_AES_128_GCM_SHA256 and X25519 through OpenSSL's config.
cat >"$work/client-openssl.cnf" <<CNF
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
Groups = X25519
CNF
export OPENSSL_CONF="$work/client-openssl.cnf"

# --- servers -----------------------------------------------------------------------------------
# Each server under test runs on CPU 1; with --icount, under callgrind (which follows nginx's
# fork of its worker); a step zeroes the counters, then dumps them.
sut=(taskset -c 1)
((icount)) && sut+=(valgrind -q --tool=callgrind "--callgrind-out-file=$work/cg-%p")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # A server still draining after 2 s is killed: the script never hangs on one.
    for _ in $(seq 20); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

wait_port() { # port
    for _ in $(seq $((icount ? 3000 : 100))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

nginx_common="
daemon off;
master_process %s;
worker_processes 1;
user root root;
error_log $work/%s-error.log warn;
pid $work/%s.pid;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
"
nginx_temp="
    access_log off;
    client_body_temp_path $work/tmp-%s/body;
    proxy_temp_path $work/tmp-%s/proxy;
    fastcgi_temp_path $work/tmp-%s/fastcgi;
    uwsgi_temp_path $work/tmp-%s/uwsgi;
    scgi_temp_path $work/tmp-%s/scgi;
"
mkdir -p "$work/tmp-upstream" "$work/tmp-sut"

# The upstream both proxies use: a fixed 200 with a 2-byte body, on CPU 0.
{
    printf "$nginx_common" on upstream upstream
    printf 'http {\n'
    printf "$nginx_temp" upstream upstream upstream upstream upstream
    cat <<CONF
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$port_up;
        location / { return 200 "ok"; }
    }
}
CONF
} >"$work/upstream.conf"
taskset -c 0 "$nginx_bin" -c "$work/upstream.conf" -p "$work" &
pids+=($!)

# nginx under test: one worker on CPU 1, tickets on (as the gateway), no session cache.
{
    # Under callgrind, one process (no master) so that one PID has every instruction.
    printf "$nginx_common" "$( ((icount)) && echo off || echo on)" sut sut
    printf 'http {\n'
    printf "$nginx_temp" sut sut sut sut sut
    cat <<CONF
    keepalive_requests 100000000;
    upstream up { server 127.0.0.1:$port_up; keepalive 64; }
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
    ssl_ecdh_curve X25519;
    ssl_session_cache off;
    ssl_session_tickets on;
    client_header_timeout 120s;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:${port[nginx-ecdsa]} ssl http2;
        ssl_certificate $work/pki-ecdsa/leaf.pem;
        ssl_certificate_key $work/pki-ecdsa/leaf.key;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:${port[nginx-rsa]} ssl http2;
        ssl_certificate $work/pki-rsa/leaf.pem;
        ssl_certificate_key $work/pki-rsa/leaf.key;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:${port[nginx-mtls]} ssl;
        ssl_certificate $work/pki-ecdsa/leaf.pem;
        ssl_certificate_key $work/pki-ecdsa/leaf.key;
        ssl_verify_client on;
        ssl_client_certificate $work/pki-ecdsa/ca.pem;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
} >"$work/nginx.conf"
"${sut[@]}" "$nginx_bin" -c "$work/nginx.conf" -p "$work" &
nginx_master=$!
pids+=("$nginx_master")

# HAProxy under test: one process (no master), one thread, on CPU 1; the same TLS parameters,
# tickets on (its default), keep-alive connections to the upstream reused (`http-reuse always`).
haproxy_bind="ssl alpn h2,http/1.1 ssl-min-ver TLSv1.3 ciphersuites TLS_AES_128_GCM_SHA256 curves X25519"
# Under valgrind (--icount) the process keeps a few descriptors below the limit for itself, and
# HAProxy refuses to start when it cannot raise the limit to its ulimit-n.
haproxy_fds=20000 haproxy_maxconn=9990
((icount)) && haproxy_fds=19900 haproxy_maxconn=9000
cat >"$work/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn $haproxy_maxconn
    ulimit-n $haproxy_fds
    log stderr format short local0 warning
defaults
    mode http
    log global
    timeout connect 5s
    timeout client 120s
    timeout server 30s
    timeout http-request 120s
    timeout http-keep-alive 120s
    http-reuse always
backend up
    server upstream 127.0.0.1:$port_up maxconn 64
frontend ecdsa
    bind 127.0.0.1:${port[haproxy-ecdsa]} $haproxy_bind crt $work/pki-ecdsa/bundle.pem
    default_backend up
frontend rsa
    bind 127.0.0.1:${port[haproxy-rsa]} $haproxy_bind crt $work/pki-rsa/bundle.pem
    default_backend up
frontend mtls
    bind 127.0.0.1:${port[haproxy-mtls]} $haproxy_bind crt $work/pki-ecdsa/bundle.pem verify required ca-file $work/pki-ecdsa/ca.pem
    default_backend up
CONF
"${sut[@]}" haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
pids+=($!)
haproxy_pid=$!

# The gateways: one per key type and per mTLS variant, the certificates inline in the
# configuration and in the API definitions; each gateway reads its own app folder.
json_string() { # file: its content as a JSON string
    awk 'BEGIN { printf "\"" } { gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); printf "%s\\n", $0 } END { printf "\"" }' "$1"
}
write_api() { # folder [client certificate file]: one API proxying / to the upstream
    local mtls=""
    [[ $# -gt 1 ]] && mtls="\"use_mutual_tls_auth\": true, \"client_certificates\": [$(json_string "$2")],"
    mkdir -p "$1"
    cat >"$1/bench.json" <<JSON
{"api_id": "bench", "name": "bench", "active": true, $mtls
 "proxy": {"listen_path": "/", "target_url": "http://127.0.0.1:$port_up"}}
JSON
}
write_api "$work/apps"
write_api "$work/apps-mtls" "$work/pki-ecdsa/client.pem"
write_api "$work/apps-mtls-ca" "$work/pki-ecdsa/ca.pem"
declare -A sut_pid
start_gateway() { # name kind app-folder
    cat >"$work/$1.conf" <<JSON
{
  "listen_address": "127.0.0.1",
  "listen_port": ${port[$1]},
  "secret": "bench-secret",
  "app_path": "$3",
  "http_server_options": {
    "use_ssl": true,
    "min_version": 772,
    "ssl_certificates": [$(json_string "$work/pki-$2/bundle.pem")],
    "enable_http2": true,
    "idle_timeout": 120,
    "max_connections": 18000
  }
}
JSON
    RUST_LOG=warn "${sut[@]}" "$gateway_bin" --config "$work/$1.conf" 2>"$work/$1.log" &
    sut_pid[$1]=$!
    pids+=($!)
}
start_bare() { # name kind [bare_tls options...]
    local name="$1" kind="$2"
    shift 2
    "${sut[@]}" "$bare_bin" "$work/pki-$kind/leaf.pem" "$work/pki-$kind/leaf.key" \
        "127.0.0.1:${port[$name]}" "$@" 2>"$work/$name.log" &
    sut_pid[$name]=$!
    pids+=($!)
}
start_pingora() { # name kind [--client-ca file]
    local name="$1" kind="$2"
    shift 2
    "${sut[@]}" "$pingora_bin" --upstream "127.0.0.1:$port_up" --listen "127.0.0.1:${port[$name]}" \
        --cert "$work/pki-$kind/leaf.pem" --key "$work/pki-$kind/leaf.key" "$@" 2>"$work/$name.log" &
    sut_pid[$name]=$!
    pids+=($!)
}
for kind in ecdsa rsa; do
    start_gateway "gateway-$kind" "$kind" "$work/apps"
    start_bare "bare-$kind" "$kind"
    ((pingora)) && start_pingora "pingora-$kind" "$kind"
done
((pingora)) && start_pingora pingora-mtls ecdsa --client-ca "$work/pki-ecdsa/ca.pem"
start_gateway gateway-mtls ecdsa "$work/apps-mtls"
start_gateway gateway-ca-mtls ecdsa "$work/apps-mtls-ca"
start_bare bare-mtls ecdsa --client-ca "$work/pki-ecdsa/ca.pem"
for name in "${!port[@]}"; do
    [[ $name == pingora-* ]] && ((!pingora)) && unset "port[$name]"
done
for p in "$port_up" "${port[@]}"; do wait_port "$p"; done
for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || {
        echo "a server exited at start-up (port in use?); see $work/*.log" >&2
        exit 1
    }
done
nginx_pids() { echo "$nginx_master $(pgrep -P "$nginx_master" | tr '\n' ' ')"; }
sut_pid[nginx-ecdsa]="$(nginx_pids)"
sut_pid[nginx-rsa]="${sut_pid[nginx-ecdsa]}"
sut_pid[nginx-mtls]="${sut_pid[nginx-ecdsa]}"
for kind in ecdsa rsa mtls; do sut_pid[haproxy-$kind]="$haproxy_pid"; done

# --- measurement -------------------------------------------------------------------------------
ticks="$(getconf CLK_TCK)"
# With --icount, instructions instead of CPU: reported in units of 1e6 / CLK_TCK instructions,
# so that the "cpu" columns read as millions of instructions (MIr).
icount_start() { # pids...
    local pid
    for pid in "$@"; do callgrind_control -z "$pid" >/dev/null; done
}
icount_stop() { # pids...: instructions since icount_start, summed
    local total=0 pid dump
    for pid in "$@"; do
        callgrind_control -d "$pid" >/dev/null
        dump="$(ls -t "$work/cg-$pid".* | head -1)"
        total=$((total + $(awk '/^summary:/ { print $2 }' "$dump")))
    done
    echo $((total * ticks / 1000000))
}
cpu_ticks() { # pids...: utime+stime summed
    local total=0 pid fields
    for pid in "$@"; do
        fields="$(sed 's/^.*) //' "/proc/$pid/stat")"
        # After the command name: field 3 is state, so utime/stime are the 12th/13th here.
        total=$((total + $(echo "$fields" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}

mtls_servers=(nginx-mtls haproxy-mtls gateway-mtls gateway-ca-mtls bare-mtls)
((pingora)) && mtls_servers+=(pingora-mtls)
client_cert=(-cert "$work/pki-ecdsa/client.pem" -key "$work/pki-ecdsa/client.key")
log "negotiated parameters (checked once per server):"
for name in "${peers[@]/%/-ecdsa}" gateway-ecdsa bare-ecdsa "${peers[@]/%/-rsa}" gateway-rsa \
    bare-rsa "${mtls_servers[@]}"; do
    cert=(); [[ "$name" == *-mtls ]] && cert=("${client_cert[@]}")
    summary="$(openssl s_client -connect "127.0.0.1:${port[$name]}" "${cert[@]}" </dev/null 2>&1 |
        grep -a -E '^New, |Server Temp Key|Peer signature type' | tr '\n' ';' || true)"
    log "  $name: $summary"
done
log "HTTP/2: every h2 server must choose h2 by ALPN:"
for name in "${peers[@]/%/-ecdsa}" gateway-ecdsa; do
    alpn="$(openssl s_client -connect "127.0.0.1:${port[$name]}" -alpn h2,http/1.1 </dev/null 2>&1 |
        grep -a -m1 '^ALPN protocol' || true)"
    [[ "$alpn" == "ALPN protocol: h2" ]] || {
        echo "$name did not choose h2 (${alpn:-no ALPN})" >&2
        exit 1
    }
    log "  $name: $alpn"
done

# hs_load verifies the server's chain to the bench CA for bench.example; with `--cert/--key`
# it presents the client certificate.
hs_load_args=(--sni bench.example --ca "$work/pki-ecdsa/ca.pem")
log "mutual TLS: every mTLS server must refuse a client without a certificate:"
for name in "${mtls_servers[@]}"; do
    out="$(taskset -c 0 "$hs_load_bin" "${hs_load_args[@]}" --connect "127.0.0.1:${port[$name]}" \
        --tasks 1 --duration 0.2 2>&1 || true)"
    if ! echo "$out" | grep -q '^successes 0 '; then
        echo "$out" >&2
        echo "$name served a client without a certificate (or hs_load failed)" >&2
        exit 1
    fi
    log "  $name: $(echo "$out" | grep -m1 '^hs_load: error:' | sed 's/^hs_load: error: //')"
done

hs_clients="${BENCH_HS_CLIENTS:-4}"
# Waits for the background load generators (the servers are background jobs too, so not `wait`).
wait_clients() {
    local pid
    for pid in $(jobs -pr); do
        case " ${pids[*]} " in *" $pid "*) ;; *) wait "$pid" || true ;; esac
    done
}

# CPU seconds (user+sys) of the shell's waited-for children, from `times` saved in a file
# (`times` must run in this shell, not in a subshell): the load generators' CPU.
children_cpu() {
    awk 'NR == 2 { split($0, f, /[ms ]+/); print f[1] * 60 + f[2] + f[3] * 60 + f[4] }' "$1"
}

results="$work/results.tsv"
: >"$results"
# One measurement: scenario server -> appends "scenario server run ops cpu_s eff ops/s cpu%
# client-cpu%" to results.
measure() {
    local scenario="$1" server="$2" run="$3" kind out ops before after started
    kind="${scenario##*-}"; [[ "$scenario" == keepalive || "$scenario" == h2 ]] && kind=ecdsa
    local name="$server-$kind"
    times >"$work/times.before"
    started="$EPOCHREALTIME"
    # shellcheck disable=SC2086
    if ((icount)); then before=0; icount_start ${sut_pid[$name]}; else before="$(cpu_ticks ${sut_pid[$name]})"; fi
    case "$scenario" in
        hs-mtls)
            out="$(taskset -c 0 "$hs_load_bin" "${hs_load_args[@]}" \
                --cert "$work/pki-ecdsa/client.pem" --key "$work/pki-ecdsa/client.key" \
                --connect "127.0.0.1:${port[$name]}" --tasks "$hs_clients" \
                --duration "$duration" 2>&1)" || {
                echo "$out" >&2
                echo "invalid run: $name: hs_load reported errors" >&2
                exit 1
            }
            ops="$(echo "$out" | awk '/^successes / { print $2 }')"
            ;;
        hs-*)
            # Several sequential clients side by side: one s_time leaves the server idle
            # while it waits on the network.
            for c in $(seq "$hs_clients"); do
                taskset -c 0 openssl s_time -connect "127.0.0.1:${port[$name]}" -new \
                    -time "$duration" >"$work/s_time.$c" 2>&1 &
            done
            wait_clients
            out="$(cat "$work"/s_time.*)"
            ops="$(awk '/connections in .*s;/ { n += $1 } END { print n + 0 }' "$work"/s_time.*)"
            rm -f "$work"/s_time.*
            ;;
        keepalive)
            out="$(taskset -c 0 wrk -t1 -c8 -d"${duration}s" "https://127.0.0.1:${port[$name]}/" 2>&1)"
            if echo "$out" | grep -qE 'Non-2xx|Socket errors'; then
                echo "$out" >&2
                echo "invalid run: $name returned errors" >&2
                exit 1
            fi
            ops="$(echo "$out" | awk '/requests in/ { print $1; exit }')"
            ;;
        h2)
            out="$(taskset -c 0 h2load -t1 -c4 -m16 -D "$duration" "https://127.0.0.1:${port[$name]}/" 2>&1)"
            if ! echo "$out" | grep -qE '^requests: .* 0 failed, 0 errored, 0 timeout'; then
                echo "$out" >&2
                echo "invalid run: $name: h2load reported failures" >&2
                exit 1
            fi
            ops="$(echo "$out" | awk '/^status codes:/ { print $3; exit }')"
            ;;
    esac
    # shellcheck disable=SC2086
    if ((icount)); then after="$(icount_stop ${sut_pid[$name]})"; else after="$(cpu_ticks ${sut_pid[$name]})"; fi
    times >"$work/times.after"
    # Rates and CPU shares are over the wall time the step took (`s_time -time N` runs up to
    # N + 1 s).
    if [[ -z "$ops" || "$ops" -eq 0 ]]; then
        echo "$out" >&2
        echo "no operations completed against $name" >&2
        exit 1
    fi
    awk -v s="$scenario" -v v="$server" -v r="$run" -v o="$ops" -v t="$((after - before))" \
        -v hz="$ticks" -v d="$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" \
        -v c0="$(children_cpu "$work/times.before")" -v c1="$(children_cpu "$work/times.after")" '
        BEGIN {
            cpu = t / hz; if (cpu <= 0) cpu = 1 / hz
            printf "%s\t%s\t%s\t%d\t%.2f\t%.6g\t%.0f\t%.0f\t%.0f\n", s, v, r, o, cpu, o / cpu, o / d,
                100 * cpu / d, 100 * (c1 - c0) / d
        }' | tee -a "$results" >&2
}

rss_kib() { # pids...: VmRSS summed, KiB
    local total=0 pid
    for pid in "$@"; do
        total=$((total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")))
    done
    echo "$total"
}

memory="$work/memory.tsv"
: >"$memory"
idle_connections="${BENCH_IDLE_CONNECTIONS:-9900}"
((smoke)) && idle_connections=200
# Resident memory per idle connection: appends "server run connections rss-before-KiB
# rss-with-KiB KiB-per-connection" to memory.
# A fresh process for `server`: memory that an earlier step's connections left in the allocator
# would otherwise be reused and hide the growth. nginx gets a new worker (SIGHUP), the others
# are started again with the same arguments.
fresh_server() { # server
    local name="$1-ecdsa" old
    case "$1" in
        nginx)
            old="$(pgrep -P "$nginx_master" | tr '\n' ' ')"
            kill -HUP "$nginx_master"
            for _ in $(seq 100); do
                local alive=0
                for pid in $old; do kill -0 "$pid" 2>/dev/null && alive=1; done
                ((alive)) || break
                sleep 0.1
            done
            for kind in ecdsa rsa mtls; do sut_pid[nginx-$kind]="$(nginx_pids)"; done
            ;;
        haproxy)
            kill "$haproxy_pid"; wait "$haproxy_pid" 2>/dev/null || true
            "${sut[@]}" haproxy -db -f "$work/haproxy.cfg" 2>>"$work/haproxy.log" &
            haproxy_pid=$!; pids+=($!)
            for kind in ecdsa rsa mtls; do sut_pid[haproxy-$kind]="$haproxy_pid"; done
            ;;
        *)
            kill "${sut_pid[$name]}"; wait "${sut_pid[$name]}" 2>/dev/null || true
            case "$1" in
                gateway) start_gateway "$name" ecdsa "$work/apps" ;;
                bare) start_bare "$name" ecdsa ;;
                pingora) start_pingora "$name" ecdsa ;;
            esac
            ;;
    esac
    wait_port "${port[$name]}"
    sleep 1
}
measure_memory() { # server run scenario
    local name="$1-ecdsa" run="$2" label="$1" before with out held one_request=()
    [[ $3 == idle-mem-ka ]] && one_request=(--keep-alive) && label="$1+request"
    fresh_server "$1"
    before="$(rss_kib ${sut_pid[$name]})"
    taskset -c 0 "$hs_load_bin" "${hs_load_args[@]}" --connect "127.0.0.1:${port[$name]}" \
        --hold "$idle_connections" "${one_request[@]}" --tasks 8 --duration 600 >"$work/hold.out" 2>&1 &
    local hold_pid=$!
    for _ in $(seq 3000); do
        grep -q '^held ' "$work/hold.out" && break
        kill -0 "$hold_pid" 2>/dev/null || break
        sleep 0.1
    done
    held="$(awk '/^held / { print $2 }' "$work/hold.out")"
    if [[ "$held" != "$idle_connections" ]]; then
        kill "$hold_pid" 2>/dev/null || true
        cat "$work/hold.out" >&2
        tail -5 "$work/$name.log" >&2 2>/dev/null || true
        echo "invalid run: $name: held ${held:-no} connections of $idle_connections" >&2
        exit 1
    fi
    sleep 1 # the server finishes the last handshakes (it reads the client's Finished)
    with="$(rss_kib ${sut_pid[$name]})"
    kill "$hold_pid" 2>/dev/null || true
    wait "$hold_pid" 2>/dev/null || true
    sleep 2 # the connections close before the next server is measured
    printf '%s\t%s\t%s\t%s\t%s\t%.1f\n' "$label" "$run" "$held" "$before" "$with" \
        "$(awk -v a="$before" -v b="$with" -v n="$held" 'BEGIN { print (b - a) / n }')" |
        tee -a "$memory" >&2
}

latency="$work/latency.tsv"
: >"$latency"
rate_ka="${BENCH_RATE_KA:-5000}"
rate_new="${BENCH_RATE_NEW:-500}"
((smoke)) && rate_ka=200 rate_new=50
# Latency at a fixed rate: appends "scenario server run rate p50 p99 p99.9 max (microseconds)".
measure_latency() { # scenario server run
    local scenario="$1" name="$2-ecdsa" run="$3" rate out
    local args=(--rate "$rate_new" --tasks 64)
    rate="$rate_new"
    [[ "$scenario" == latency-ka ]] && args=(--rate "$rate_ka" --keep-alive --tasks 16) && rate="$rate_ka"
    out="$(taskset -c 0 "$hs_load_bin" "${hs_load_args[@]}" --connect "127.0.0.1:${port[$name]}" \
        "${args[@]}" --duration "$duration" 2>&1)" || {
        echo "$out" >&2
        echo "invalid run: $name: hs_load reported errors at $rate/s" >&2
        exit 1
    }
    echo "$out" | awk -v s="$scenario" -v v="$2" -v r="$run" -v rate="$rate" '
        /^latency_us / { printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s, v, r, rate, $3, $5, $7, $9 }' |
        tee -a "$latency" >&2
}

log "runs: $runs x ${duration}s per step; columns: scenario server run ops server-cpu-s ops/cpu-s ops/s server-cpu% client-cpu%"
log "  (idle-mem: server run connections rss-before-KiB rss-with-KiB KiB/connection;"
log "   latency-*: scenario server run rate p50 p99 p99.9 max, microseconds)"
for run in $(seq "$runs"); do
    for scenario in "${scenarios[@]}"; do
        case "$scenario" in
            hs-mtls) servers=("${peers[@]}" gateway gateway-ca bare) ;;
            h2 | latency-*) servers=("${peers[@]}" gateway) ;;
            *) servers=("${peers[@]}" gateway bare) ;;
        esac
        ((run % 2)) || mapfile -t servers < <(printf '%s\n' "${servers[@]}" | tac)
        for server in "${servers[@]}"; do
            case "$scenario" in
                idle-mem*) ((icount)) || measure_memory "$server" "$run" "$scenario" ;;
                latency-*) ((icount)) || measure_latency "$scenario" "$server" "$run" ;;
                *) measure "$scenario" "$server" "$run" ;;
            esac
        done
    done
done

# --- report ------------------------------------------------------------------------------------
ratio() { # scenario numerator denominator label
    awk -F'\t' -v s="$1" -v a="$2" -v b="$3" -v label="$4" '
        $1 == s && $2 == a { num[$3] = $6 }
        $1 == s && $2 == b { den[$3] = $6 }
        END {
            n = 0
            for (r in num) if (r in den && den[r] > 0) v[++n] = num[r] / den[r]
            if (n == 0) exit
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            printf "%-44s %.2f [%.2f-%.2f] (n=%d)\n", label, med, v[1], v[n], n
        }' "$results"
}
echo
echo "== per-run figures ($results)"
printf 'scenario\tserver\trun\tops\tcpu_s\tops/cpu_s\tops/s\tcpu%%\tclient-cpu%%\n'
cat "$results"
echo
if ((icount)); then
    echo "== ratios of ops per server instruction (callgrind; cpu_s reads as millions of instructions): median [min-max] over runs"
else
    echo "== ratios of ops per server CPU-second: median [min-max] over runs"
fi
[[ $profile == debug ]] && echo "   (debug binaries: the steps ran; these figures mean nothing)"
ratio hs-ecdsa gateway nginx "full handshakes ECDSA  gateway/nginx"
ratio hs-ecdsa gateway haproxy "full handshakes ECDSA  gateway/haproxy"
ratio hs-ecdsa gateway pingora "full handshakes ECDSA  gateway/pingora"
ratio hs-ecdsa gateway bare "full handshakes ECDSA  gateway/bare_tls"
ratio hs-rsa gateway nginx "full handshakes RSA    gateway/nginx"
ratio hs-rsa gateway haproxy "full handshakes RSA    gateway/haproxy"
ratio hs-rsa gateway pingora "full handshakes RSA    gateway/pingora"
ratio hs-rsa gateway bare "full handshakes RSA    gateway/bare_tls"
ratio keepalive gateway nginx "keep-alive proxied     gateway/nginx"
ratio keepalive gateway haproxy "keep-alive proxied     gateway/haproxy"
ratio keepalive gateway pingora "keep-alive proxied     gateway/pingora"
ratio keepalive gateway bare "keep-alive (bare answers itself) gw/bare"
ratio hs-mtls gateway nginx "mTLS full handshakes   gateway/nginx"
ratio hs-mtls gateway haproxy "mTLS full handshakes   gateway/haproxy"
ratio hs-mtls gateway pingora "mTLS full handshakes   gateway/pingora"
ratio hs-mtls gateway bare "mTLS full handshakes   gateway/bare_tls"
ratio hs-mtls gateway-ca nginx "mTLS, CA-listed        gateway-ca/nginx"
ratio hs-mtls gateway-ca bare "mTLS, CA-listed        gateway-ca/bare_tls"
ratio hs-mtls gateway-ca haproxy "mTLS, CA-listed        gateway-ca/haproxy"
ratio hs-mtls gateway-ca pingora "mTLS, CA-listed        gateway-ca/pingora"
ratio h2 gateway nginx "HTTP/2 streams proxied gateway/nginx"
ratio h2 gateway haproxy "HTTP/2 streams proxied gateway/haproxy"
ratio h2 gateway pingora "HTTP/2 streams proxied gateway/pingora"
if [[ -s "$memory" ]]; then
    echo
    echo "== resident memory per idle TLS connection (KiB, median over runs; lower is better)"
    awk -F'\t' '{ v[$1] = v[$1] " " $6 } END { for (s in v) print s, v[s] }' "$memory" | sort |
        while read -r server values; do
            printf '%-10s %s KiB  (runs:%s)\n' "$server" \
                "$(echo "$values" | tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')" \
                " $values"
        done
fi
if [[ -s "$latency" ]]; then
    echo
    echo "== latency at a fixed rate (microseconds from the scheduled start; median of each percentile over runs)"
    printf '%-12s %-8s %7s %9s %9s %9s %9s\n' scenario server rate p50 p99 p99.9 max
    awk -F'\t' '{ k = $1 "\t" $2 "\t" $4; for (i = 5; i <= 8; i++) v[k, i] = v[k, i] " " $i; keys[k] = 1 }
        END {
            for (k in keys) {
                line = k
                for (i = 5; i <= 8; i++) {
                    n = split(substr(v[k, i], 2), a, " ")
                    for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
                    line = line "\t" ((n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
                }
                print line
            }
        }' "$latency" | sort | awk -F'\t' '{ printf "%-12s %-8s %7s %9s %9s %9s %9s\n", $1, $2, $3, $4, $5, $6, $7 }'
fi
echo "work folder: $work"
