#!/usr/bin/env bash
# Fuzzes the running service from its own /openapi.json with schemathesis (pinned below,
# installed from PyPI into a venv under target/): positive and negative data, every check,
# all four phases (examples, coverage, fuzzing, stateful), with a logged-in session cookie
# supplied. Any finding fails the run.
#
# Two passes, each with a fresh cookie: the read operations alone first (so the supplied
# session stays alive for all of them; no stateful phase, whose links start at POST /login/),
# then every operation, all four phases (where the fuzzer also logs the session out, which
# the document says it may). scripts/fuzz_checks.py adds the service's own credential check.
#
# usage: scripts/fuzz-openapi.sh [extra `st run` options, e.g. --max-examples 200]
# env:   FUZZ_PORT (default: a free port), FUZZ_MAX_EXAMPLES (default 40), FUZZ_BIN (default:
#        target/debug/upstash-sessions, built here)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=target/fuzz-venv
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-40}

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "== installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

BIN=${FUZZ_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --locked --quiet --bin upstash-sessions
    BIN=target/debug/upstash-sessions
fi
PORT=${FUZZ_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
BASE="http://127.0.0.1:$PORT"
TMP=$(mktemp -d)
LOG=$TMP/service.log

# Plain http, so the cookie is not Secure; the memory store. The fuzzer sends thousands of
# requests (hundreds of logins) from 127.0.0.1: the per-client limits stay on but are set
# beyond its reach, so every answer is the operation's own (a 429 is documented, but would
# hide what the operation does).
env -i PATH="$PATH" HOST=127.0.0.1 PORT="$PORT" COOKIE_SECURE=false WORKERS=2 RUST_LOG=warn \
    RATE_LIMIT_LOGIN=1000000/s RATE_LIMIT_REQUESTS=1000000/s \
    "$BIN" >"$LOG" 2>&1 &
SERVICE=$!
trap 'kill "$SERVICE" 2>/dev/null || true; wait "$SERVICE" 2>/dev/null || true; rm -rf "$TMP"' EXIT

for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('$BASE/healthz', timeout=2)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SERVICE" 2>/dev/null; then
        cat "$LOG"
        echo "the service did not start" >&2
        exit 1
    fi
    sleep 0.2
done

# A fresh logged-in session's cookie value.
login() {
    python3 - "$BASE" <<'EOF'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/login/", data=b'{"username":"fuzzer"}',
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=5) as resp:
    print(resp.headers["Set-Cookie"].split(";")[0].split("=", 1)[1])
EOF
}

# The cookie goes in as the document's `session_cookie` credential, so the fuzzer knows it is
# the credential (it leaves it out, or forges it, on purpose). `ignored_auth` is replaced by
# scripts/fuzz_checks.py (see there why). One worker: with two, this machine's Python
# 3.11.7 failed `ast.parse` inside hypothesis ("AST constructor recursion depth mismatch"), a
# CPython thread-safety bug, not a finding.
run() {
    local config phases=$1
    shift
    config=$TMP/schemathesis-$phases.toml
    printf '[auth.openapi.session_cookie]\napi_key = "%s"\n' "$(login)" >"$config"
    SCHEMATHESIS_HOOKS=fuzz_checks PYTHONPATH=scripts "$VENV/bin/st" --config-file "$config" run "$BASE/openapi.json" \
        --checks all \
        --exclude-checks ignored_auth \
        --mode all \
        --phases "$phases" \
        --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --request-timeout 10 \
        --no-color \
        "$@"
}

status=0
echo "== schemathesis $SCHEMATHESIS_VERSION: read operations, with a live session"
run examples,coverage,fuzzing --include-method-regex '^(GET|HEAD|OPTIONS)$' "$@" || status=1
echo "== schemathesis $SCHEMATHESIS_VERSION: every operation"
run examples,coverage,fuzzing,stateful "$@" || status=1

if ! kill -0 "$SERVICE" 2>/dev/null; then
    echo "the service died during the run:" >&2
    cat "$LOG" >&2
    exit 1
fi
if grep -q "panicked" "$LOG"; then
    cat "$LOG" >&2
    status=1
fi
exit $status
