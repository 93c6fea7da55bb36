#!/usr/bin/env bash
# Runs the shared store suite, the actix-session store's suite and its example app against
# ../shared/tools/upstash-on-redis in front of a real redis-server, over plain http and then
# over HTTPS (a CA and a localhost certificate made here with openssl; the API tests over TLS
# run too), installing and building what is missing. Loopback only; stops what it starts.
# The real-server tests are #[ignore]d in a plain `cargo test`: they run here with
# --include-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
uor_src=../shared/tools/upstash-on-redis
uor_target=${UOR_TARGET:-/tmp/uor-target}
redis_port=${E2E_REDIS_PORT:-6391}
uor_port=${E2E_UPSTASH_PORT:-8091}
uor_tls_port=${E2E_UPSTASH_TLS_PORT:-8092}

if ! command -v redis-server >/dev/null || ! command -v openssl >/dev/null; then
    apt-get update -qq && apt-get install -y -qq redis-server openssl >/dev/null
fi
if [ ! -x "$uor_target/release/upstash-on-redis" ]; then
    CARGO_TARGET_DIR=$uor_target cargo build --release --locked --manifest-path "$uor_src/Cargo.toml"
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/tmp/e2e-redis.log 2>&1 &
pids+=($!)
# upstash-on-redis connects to Redis once at start and exits if it cannot: wait for Redis.
ready=no
for _ in $(seq 1 100); do
    if redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; then ready=yes; break; fi
    sleep 0.1
done
[ "$ready" = yes ] || { echo "redis-server did not start:"; cat /tmp/e2e-redis.log; exit 1; }

# start_uor PORT SCHEME [VAR=VALUE...]: upstash-on-redis on PORT, once it answers PING.
start_uor() {
    local port=$1 scheme=$2
    shift 2
    env REDIS_URL=redis://127.0.0.1:$redis_port TOKEN=e2e-token BIND=127.0.0.1:$port "$@" \
        "$uor_target/release/upstash-on-redis" >"/tmp/e2e-uor-$port.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        if python3 - "$scheme" "$port" "$work/ca.pem" <<'PY' 2>/dev/null
import ssl, sys, urllib.request
scheme, port, ca = sys.argv[1:]
host = "localhost" if scheme == "https" else "127.0.0.1"
ctx = ssl.create_default_context(cafile=ca) if scheme == "https" else None
req = urllib.request.Request(f"{scheme}://{host}:{port}/", data=b'["PING"]',
                             headers={"Authorization": "Bearer e2e-token", "Content-Type": "application/json"})
sys.exit(0 if b"PONG" in urllib.request.urlopen(req, timeout=1, context=ctx).read() else 1)
PY
        then return 0; fi
        sleep 0.1
    done
    echo "upstash-on-redis ($scheme) did not start:"; cat "/tmp/e2e-uor-$port.log"; exit 1
}

# A throwaway CA and a localhost certificate it signs, for the HTTPS run.
work=$(mktemp -d)
trap 'cleanup; rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=upstash-sessions e2e CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 2 -extfile "$work/ext" -out "$work/server.pem" 2>/dev/null

start_uor "$uor_port" http
start_uor "$uor_tls_port" https TLS_CERT="$work/server.pem" TLS_KEY="$work/server.key"

echo "== store suite and the actix-session store over http://127.0.0.1:$uor_port"
# One test at a time, so upstash-on-redis's /__stats counts each test's requests alone.
UPSTASH_E2E_URL=http://127.0.0.1:$uor_port UPSTASH_E2E_TOKEN=e2e-token \
    cargo test --locked --all-features --test api -- store_suite actix_session_store \
    --include-ignored --test-threads=1 --nocapture

echo "== the actix-session example app against upstash-on-redis"
cargo build --locked --features actix-session --example actix_session_upstash
python3 scripts/e2e-actix-example.py target/debug/examples/actix_session_upstash \
    "http://127.0.0.1:$uor_port" e2e-token

echo "== store suite and the API over https://localhost:$uor_tls_port (private CA)"
UPSTASH_E2E_URL=https://localhost:$uor_tls_port UPSTASH_E2E_TOKEN=e2e-token \
    UPSTASH_E2E_CA_CERT="$work/ca.pem" \
    cargo test --locked --all-features --test api -- store_suite tls::e2e --include-ignored --nocapture
