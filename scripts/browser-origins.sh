#!/usr/bin/env bash
# Runs scripts/browser-origins.mjs: Debian's headless Chromium on pages from other origins
# against the service (CORS for an allowed origin; reads blocked and writes refused for
# another; the store untouched). Installs what it needs: chromium (apt) and playwright-core
# (npm, pinned, into target/browser-test/).
# env: PORT_BASE (default 8131; uses six ports from it), SERVICE_BIN (default: a debug build).
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION=1.65.1
DIR=target/browser-test
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

if [ ! -x /usr/bin/chromium ]; then
    echo "== installing chromium"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "== installing nodejs and npm"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
if [ "$(node -p "try{require('./$DIR/node_modules/playwright-core/package.json').version}catch{''}")" != "$PLAYWRIGHT_VERSION" ]; then
    echo "== installing playwright-core $PLAYWRIGHT_VERSION into $DIR"
    mkdir -p "$DIR"
    [ -f "$DIR/package.json" ] || echo '{"private": true}' >"$DIR/package.json"
    (cd "$DIR" && npm install --silent --no-audit --no-fund "playwright-core@$PLAYWRIGHT_VERSION")
fi

BIN=${SERVICE_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --locked --quiet --bin upstash-sessions
    BIN=target/debug/upstash-sessions
fi
SERVICE_BIN=$BIN PLAYWRIGHT_CORE="$PWD/$DIR/node_modules/playwright-core/index.mjs" \
    node scripts/browser-origins.mjs
