#!/usr/bin/env bash
# Runs the shared store suite, the actix-session store's suite and its example app, the
# tower-sessions store's suite (tower-sessions' own route suite included) and its axum example
# against
# ../shared/tools/upstash-on-redis in front of a real redis-server, over plain http and then
# over HTTPS (a private CA and a localhost certificate; the API tests over TLS run too).
# scripts/backend.py starts the backends (installing and building what is missing, loopback
# only) and stops them when this script's tests end: this script re-runs itself under it.
# The real-server tests are #[ignore]d in a plain `cargo test`: they run here with
# --include-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${E2E_STORE_UNDER_LAUNCHER:-}" ]; then
    exec env E2E_STORE_UNDER_LAUNCHER=1 python3 scripts/backend.py \
        --redis-port "${E2E_REDIS_PORT:-6391}" --http-port "${E2E_UPSTASH_PORT:-8091}" \
        --https-port "${E2E_UPSTASH_TLS_PORT:-8092}" --token e2e-token -- bash "$0"
fi

echo "== store suite, the actix-session and tower-sessions stores, and cost control over $BACKEND_HTTP_URL"
# The axum example's binary, which tower_sessions_store drives over HTTP (AXUM_EXAMPLE_BIN).
cargo build --locked --all-features --example axum_tower_sessions
# One test at a time, so upstash-on-redis's /__stats counts each test's requests alone
# (cost_control::e2e: refusals cost no billed command; the billed commands per operation).
UPSTASH_E2E_URL=$BACKEND_HTTP_URL UPSTASH_E2E_TOKEN=$BACKEND_TOKEN \
    AXUM_EXAMPLE_BIN=target/debug/examples/axum_tower_sessions \
    cargo test --locked --all-features --test api -- store_suite actix_session_store \
    tower_sessions_store cost_control::e2e --include-ignored --test-threads=1 --nocapture

echo "== the actix-session example app against upstash-on-redis"
cargo build --locked --features actix-session --example actix_session_upstash
python3 scripts/e2e-actix-example.py target/debug/examples/actix_session_upstash \
    "$BACKEND_HTTP_URL" "$BACKEND_TOKEN"

echo "== store suite and the API over $BACKEND_HTTPS_URL (private CA)"
UPSTASH_E2E_URL=$BACKEND_HTTPS_URL UPSTASH_E2E_TOKEN=$BACKEND_TOKEN \
    UPSTASH_E2E_CA_CERT=$BACKEND_CA_CERT \
    cargo test --locked --all-features --test api -- store_suite tls::e2e --include-ignored --nocapture
