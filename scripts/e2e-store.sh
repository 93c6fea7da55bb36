#!/usr/bin/env bash
# Runs the shared store suite and the actix-session store's suite (its example app included) against
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

echo "== store suite and the actix-session store (and its example app) over $BACKEND_HTTP_URL"
# One test at a time, so upstash-on-redis's /__stats counts each test's requests alone.
UPSTASH_E2E_URL=$BACKEND_HTTP_URL UPSTASH_E2E_TOKEN=$BACKEND_TOKEN \
    cargo test --locked --all-features --test api -- store_suite actix_session_store \
    --include-ignored --test-threads=1 --nocapture

echo "== store suite and the API over $BACKEND_HTTPS_URL (private CA)"
UPSTASH_E2E_URL=$BACKEND_HTTPS_URL UPSTASH_E2E_TOKEN=$BACKEND_TOKEN \
    UPSTASH_E2E_CA_CERT=$BACKEND_CA_CERT \
    cargo test --locked --all-features --test api -- store_suite tls::e2e --include-ignored --nocapture
