#!/usr/bin/env bash
# Runs the shared store suite, the actix-session store's suite and its example app against
# ../shared/tools/upstash-on-redis in front of a real redis-server, installing and building
# what is missing. Loopback only; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
uor_src=../shared/tools/upstash-on-redis
uor_target=${UOR_TARGET:-/tmp/uor-target}
redis_port=${E2E_REDIS_PORT:-6391}
uor_port=${E2E_UPSTASH_PORT:-8091}

if ! command -v redis-server >/dev/null; then
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
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

REDIS_URL=redis://127.0.0.1:$redis_port TOKEN=e2e-token BIND=127.0.0.1:$uor_port \
    "$uor_target/release/upstash-on-redis" >/tmp/e2e-uor.log 2>&1 &
pids+=($!)
ready=no
for _ in $(seq 1 100); do
    if python3 - "$uor_port" <<'PY' 2>/dev/null
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/", data=b'["PING"]',
                             headers={"Authorization": "Bearer e2e-token", "Content-Type": "application/json"})
sys.exit(0 if b"PONG" in urllib.request.urlopen(req, timeout=1).read() else 1)
PY
    then ready=yes; break; fi
    sleep 0.1
done
[ "$ready" = yes ] || { echo "upstash-on-redis did not start:"; cat /tmp/e2e-uor.log; exit 1; }

# The store suite, and the actix-session store through its middleware (one test at a time,
# so upstash-on-redis's /__stats counts each test's requests alone).
UPSTASH_E2E_URL=http://127.0.0.1:$uor_port UPSTASH_E2E_TOKEN=e2e-token \
    cargo test --locked --all-features --test api -- store_suite actix_session_store \
    --include-ignored --test-threads=1 --nocapture

echo "== the actix-session example app against upstash-on-redis"
cargo build --locked --features actix-session --example actix_session_upstash
python3 scripts/e2e-actix-example.py target/debug/examples/actix_session_upstash \
    "http://127.0.0.1:$uor_port" e2e-token
