#!/usr/bin/env bash
# Runs the shared store suite, the actix-session store's suite (its example app included,
# walked by a test in tests/api/actix_session_store.rs), the tower-sessions store's suite
# (tower-sessions' own route suite included) and its axum example, and the cost-control checks against a real Upstash-compatible server, then the store suite and
# the API tests over HTTPS.
#
# The server: the one named by UPSTASH_E2E_URL and UPSTASH_E2E_TOKEN when they are set
# (Upstash itself, serverless-redis-http, ...; the tests write and delete keys, so use a
# database you can wipe). Its HTTPS part runs against UPSTASH_E2E_HTTPS_URL, or against
# UPSTASH_E2E_URL when that is https://, trusting UPSTASH_E2E_CA_CERT besides the public CAs.
#
# Without them: upstash-on-redis in front of a real redis-server, over plain http and over
# HTTPS (a private CA and a localhost certificate). scripts/backend.py starts the backends
# (installing and building what is missing, loopback only, on E2E_REDIS_PORT,
# E2E_UPSTASH_PORT and E2E_UPSTASH_TLS_PORT) and stops them when this script's tests end:
# this script re-runs itself under it.
#
# The real-server tests are #[ignore]d in a plain `cargo test`: they run here with
# --include-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${UPSTASH_E2E_URL:-}${UPSTASH_E2E_TOKEN:-}" ]; then
    : "${UPSTASH_E2E_URL:?is needed with UPSTASH_E2E_TOKEN}"
    : "${UPSTASH_E2E_TOKEN:?is needed with UPSTASH_E2E_URL}"
    http_url=$UPSTASH_E2E_URL
    token=$UPSTASH_E2E_TOKEN
    https_url=${UPSTASH_E2E_HTTPS_URL:-}
    if [ -z "$https_url" ] && [[ $http_url == https://* ]]; then
        https_url=$http_url
    fi
    ca_cert=${UPSTASH_E2E_CA_CERT:-}
    # These tests count billed requests on upstash-on-redis's /__stats, which only it serves.
    skip=(--skip each_policy_costs_what_the_redis_store_costs_per_request::on_upstash_on_redis
          --skip extend_ttl_on_load_slides_the_ttl_on_reads_in_one_request::on_upstash_on_redis
          --skip cost_control::e2e
          --skip create_gives_a_colliding_id_a_new_id_and_never_overwrites::on_a_real_upstash
          --skip each_store_call_is_one_request_of_one_command::on_a_real_upstash
          --skip the_example_app_counts_visits_and_logs_a_user_in_and_out::on_a_real_upstash)
elif [ -z "${E2E_STORE_UNDER_LAUNCHER:-}" ]; then
    exec env E2E_STORE_UNDER_LAUNCHER=1 python3 scripts/backend.py \
        --redis-port "${E2E_REDIS_PORT:-6391}" --http-port "${E2E_UPSTASH_PORT:-8091}" \
        --https-port "${E2E_UPSTASH_TLS_PORT:-8092}" --token e2e-token -- bash "$0"
else
    http_url=$BACKEND_HTTP_URL
    token=$BACKEND_TOKEN
    https_url=$BACKEND_HTTPS_URL
    ca_cert=$BACKEND_CA_CERT
    skip=()
fi

# The private CA, when there is one, for every client the tests build.
ca_env=()
if [ -n "$ca_cert" ]; then
    ca_env=(UPSTASH_E2E_CA_CERT="$ca_cert")
fi

echo "== store suite, the actix-session store (and its example app), the tower-sessions store, and cost control over $http_url"
# The axum example's binary, which tower_sessions_store drives over HTTP (AXUM_EXAMPLE_BIN).
cargo build --locked --all-features --example axum_tower_sessions
# One test at a time, so upstash-on-redis's /__stats counts each test's requests alone
# (cost_control::e2e: refusals cost no billed command; the billed commands per operation).
env "${ca_env[@]}" UPSTASH_E2E_URL="$http_url" UPSTASH_E2E_TOKEN="$token" \
    AXUM_EXAMPLE_BIN=target/debug/examples/axum_tower_sessions \
    cargo test --locked --all-features --test api -- store_suite actix_session_store \
    tower_sessions_store cost_control::e2e "${skip[@]}" --include-ignored --test-threads=1 \
    --nocapture

if [ -z "$https_url" ]; then
    echo "== no HTTPS endpoint given (UPSTASH_E2E_HTTPS_URL): the HTTPS part is skipped"
    exit 0
fi
echo "== store suite and the API over $https_url"
env "${ca_env[@]}" UPSTASH_E2E_URL="$https_url" UPSTASH_E2E_TOKEN="$token" \
    cargo test --locked --all-features --test api -- store_suite tls::e2e --include-ignored --nocapture
