#!/usr/bin/env bash
# Runs the shared store suite against ../shared/tools/upstash-on-redis in front of a real
# redis-server, installing and building what is missing. Loopback only; stops what it starts.
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

redis-server --port "$redis_port" --save "" --appendonly no --daemonize no >/dev/null &
pids+=($!)
REDIS_URL=redis://127.0.0.1:$redis_port TOKEN=e2e-token BIND=127.0.0.1:$uor_port \
    "$uor_target/release/upstash-on-redis" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
    curl -sf -H 'Authorization: Bearer e2e-token' -d '["PING"]' "http://127.0.0.1:$uor_port/" >/dev/null && break
    sleep 0.2
done

UPSTASH_E2E_URL=http://127.0.0.1:$uor_port UPSTASH_E2E_TOKEN=e2e-token \
    cargo test --locked --test api store_suite -- --nocapture
