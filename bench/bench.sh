#!/usr/bin/env bash
# Load benchmark of upstash-sessions (see bench/README.md).
#
# Starts the release binary on a free loopback port, drives it with wrk and reports req/s,
# p50/p99, service CPU µs per request, peak RSS, RSS under load, Upstash requests per
# operation (when the backend has /__stats) and the TCP connects from the service to the
# backend. Every process it starts is stopped on exit; every run is bounded in time.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
SHARED_DIR=${SHARED_DIR:-$(cd "$ROOT/.." && pwd)/shared}

# ---------------------------------------------------------------------------- options
BUILD=1
MODE=memory                 # memory | upstash | local
UPSTASH_URL=${UPSTASH_URL:-}
UPSTASH_TOKEN=${UPSTASH_TOKEN:-}
SEED=0
FLOOR=0
REFERENCE=0
MILLION=0
CONNECTIONS=${CONNECTIONS:-32}      # comma-separated list: one run per value
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
SVC_WORKERS=${SVC_WORKERS:-}        # WORKERS of the service; empty: its default (cores)
OPS=${OPS:-100}                     # operations per kind for the /__stats count
LATENCY_MS=${LATENCY_MS:-0}         # upstash-on-redis added latency (--local-upstash)
TLS=0                               # --tls: upstash-on-redis over HTTPS (private CA)
REDIS_PORT=${REDIS_PORT:-6399}
UOR_TOKEN=${UOR_TOKEN:-bench-token}
UOR_WORKERS=${UOR_WORKERS:-1}
MILLION_COUNT=${MILLION_COUNT:-1000000}
MILLION_TIMEOUT=${MILLION_TIMEOUT:-300}   # seconds
MILLION_CHUNK=${MILLION_CHUNK:-3s}        # wrk duration of one chunk of logins
MILLION_USERS=${MILLION_USERS:-0}         # 0: a distinct user per session; N: N users cycled
SCENARIOS=${SCENARIOS:-profile,forged,login,patch}

usage() {
    cat <<'EOF'
usage: bench/bench.sh [options]

backends (default: the in-memory store)
  --upstash URL TOKEN   any Upstash-compatible REST endpoint
  --local-upstash       start redis-server (port $REDIS_PORT, default 6399) and
                        upstash-on-redis from ../shared/tools on free loopback ports
  --latency-ms N        LATENCY_MS of upstash-on-redis (env LATENCY_MS works too)
  --tls                 with --local-upstash: serve it over HTTPS with a throwaway CA and
                        a localhost certificate (openssl), trusted via UPSTASH_CA_CERT
extra runs
  --seed                also run the FastAPI seed (../shared/anchors/seed_fastapi.py)
                        against the same backend (implies --local-upstash on memory)
  --floor               also run examples/floor.rs: bare actix-web answering a constant
                        profile, and (with a backend) the same plus one reqwest GETEX
  --reference           also run actix-session + RedisSessionStore (bench/reference/),
                        native Redis protocol, on the same redis-server
  --million             memory store: create 1,000,000 sessions, report RSS
  --million-users N     ... spread over N user names (default 0: a distinct user each)
load
  -c LIST               wrk connections, comma-separated for several runs (default 32)
  -d DURATION           wrk duration per run (default 10s)
  -t N                  wrk threads (default 2)
  --workers N           WORKERS of the service (default: its own default, one per core)
  --ops N               operations per kind for the Upstash request count (default 100)
  --scenarios LIST      subset of profile,forged,login,patch (default all)
  --no-build            use target/release/upstash-sessions as it is
  -h, --help
Results: bench/results/<timestamp>-<mode>/ (summary.md holds the final table).
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --upstash)
            [[ $# -ge 3 ]] || { echo "--upstash needs URL and TOKEN" >&2; exit 2; }
            MODE=upstash; UPSTASH_URL=$2; UPSTASH_TOKEN=$3; shift 2 ;;
        --local-upstash) MODE=local ;;
        --latency-ms) LATENCY_MS=$2; shift ;;
        --tls) TLS=1 ;;
        --seed) SEED=1 ;;
        --floor) FLOOR=1 ;;
        --reference) REFERENCE=1 ;;
        --million) MILLION=1 ;;
        --million-users) MILLION_USERS=$2; shift ;;
        -c) CONNECTIONS=$2; shift ;;
        -d) DURATION=$2; shift ;;
        -t) THREADS=$2; shift ;;
        --workers) SVC_WORKERS=$2; shift ;;
        --ops) OPS=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

if [[ $SEED == 1 && $MODE == memory ]]; then
    echo "[bench] --seed needs an Upstash backend: using --local-upstash"
    MODE=local
fi
if [[ $TLS == 1 && $MODE != local ]]; then
    echo "[bench] --tls applies to --local-upstash (an --upstash URL says its own scheme)" >&2; exit 2
fi
if [[ $TLS == 1 && ( $FLOOR == 1 || $SEED == 1 || $REFERENCE == 1 ) ]]; then
    echo "[bench] --tls runs the service only (the yardsticks trust no private CA)" >&2; exit 2
fi
if [[ $MILLION == 1 && $MODE != memory ]]; then
    echo "[bench] --million measures the memory store; it is skipped on the $MODE backend"
    MILLION=0
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------- tools
APT_UPDATED=0
apt_install() {
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    command -v apt-get >/dev/null || die "missing $*; install it (no apt-get here)"
    if [[ $APT_UPDATED == 0 ]]; then
        log "apt-get update"
        $sudo apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
need() { # need COMMAND APT-PACKAGE
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
    command -v "$1" >/dev/null 2>&1 || die "$1 is still missing after installing $2"
}
need curl curl
need python3 python3
need wrk wrk
if [[ $MODE == local || $REFERENCE == 1 ]]; then need redis-server redis-server; fi
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------- processes
PIDS=()
cleanup() {
    local pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # stop one started process and forget it
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # wait_http URL PID NAME: until any HTTP answer, 60 s at most
    local url=$1 pid=$2 name=$3 i
    for i in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || die "$name exited at start (see its log in $RESULTS)"
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true) != 000 ]] && return 0
        sleep 0.2
    done
    die "$name did not answer $url within 60 s"
}

STAMP=$(date +%Y%m%d-%H%M%S)
RUN_NAME="$STAMP-$MODE"
[[ $MODE == local && $LATENCY_MS != 0 ]] && RUN_NAME+="-lat${LATENCY_MS}ms"
[[ $MILLION == 1 ]] && RUN_NAME+="-million"
[[ $MILLION == 1 && $MILLION_USERS != 0 ]] && RUN_NAME+="-${MILLION_USERS}users"
[[ $SEED == 1 ]] && RUN_NAME+="-seed"
[[ $FLOOR == 1 ]] && RUN_NAME+="-floor"
[[ $REFERENCE == 1 ]] && RUN_NAME+="-reference"
RESULTS="$BENCH_DIR/results/$RUN_NAME"
mkdir -p "$RESULTS"
ROWS="$RESULTS/rows.jsonl"
: >"$ROWS"
# The service reads ./.env: run it from an empty directory so a developer's .env is ignored.
RUN_DIR="$RESULTS/cwd"
mkdir -p "$RUN_DIR"
log "results in $RESULTS"

# ---------------------------------------------------------------------------- build
BIN="$ROOT/target/release/upstash-sessions"
if [[ $BUILD == 1 ]]; then
    command -v cargo >/dev/null || die "cargo is missing (https://rustup.rs), or pass --no-build"
    log "cargo build --release"
    build_args=(--release --bin upstash-sessions)
    [[ $FLOOR == 1 ]] && build_args+=(--example floor)
    (cd "$ROOT" && cargo build "${build_args[@]}") >"$RESULTS/build.log" 2>&1 \
        || { tail -30 "$RESULTS/build.log" >&2; die "release build failed (log: $RESULTS/build.log)"; }
fi
REF_DIR="$BENCH_DIR/reference/actix-session-redis"
REF_BIN="$ROOT/target/reference/release/actix-session-reference"
if [[ $REFERENCE == 1 && $BUILD == 1 ]]; then
    log "cargo build --release (actix-session reference, its own lockfile)"
    (cd "$REF_DIR" && CARGO_TARGET_DIR="$ROOT/target/reference" cargo build --release --locked) >"$RESULTS/reference-build.log" 2>&1 \
        || { tail -30 "$RESULTS/reference-build.log" >&2; die "reference build failed (log: $RESULTS/reference-build.log)"; }
fi
[[ $REFERENCE == 0 || -x $REF_BIN ]] || die "$REF_BIN is missing: drop --no-build to build it"
FLOOR_BIN="$ROOT/target/release/examples/floor"
[[ $FLOOR == 0 || -x $FLOOR_BIN ]] || die "$FLOOR_BIN is missing: build it (cargo build --release --example floor) or drop --no-build"
[[ -x $BIN ]] || die "$BIN is missing: build it or drop --no-build"
git -C "$ROOT" rev-parse --short HEAD >"$RESULTS/commit.txt" 2>/dev/null || true
git -C "$ROOT" status --porcelain -- src Cargo.toml >>"$RESULTS/commit.txt" 2>/dev/null || true

# ---------------------------------------------------------------------------- redis
# ensure_redis: a redis-server on 127.0.0.1:$REDIS_PORT, reused when one already answers.
redis_ping() {
    python3 - "$REDIS_PORT" <<'EOF'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(64).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
EOF
}
ensure_redis() {
    if redis_ping; then
        log "redis-server already answers on 127.0.0.1:$REDIS_PORT: using it"
    else
        log "starting redis-server on 127.0.0.1:$REDIS_PORT"
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
            >"$RESULTS/redis.log" 2>&1 &
        PIDS+=($!)
        for _ in $(seq 100); do redis_ping && break; sleep 0.1; done
        redis_ping || die "redis-server did not start (see $RESULTS/redis.log)"
    fi
}

# ---------------------------------------------------------------------------- backend
BACKEND_URL=""
BACKEND_TOKEN=""
HAS_STATS=0
if [[ $MODE == upstash ]]; then
    BACKEND_URL=$UPSTASH_URL
    BACKEND_TOKEN=$UPSTASH_TOKEN
elif [[ $MODE == local ]]; then
    if [[ ! -d $SHARED_DIR/tools/upstash-on-redis ]]; then
        log "skipped: --local-upstash needs $SHARED_DIR/tools/upstash-on-redis (not in this checkout's parent); use --upstash URL TOKEN or the memory store"
        exit 0
    fi
    ensure_redis
    UOR_BIN=${UOR_BIN:-/tmp/uor-target/release/upstash-on-redis}
    if [[ ! -x $UOR_BIN ]]; then
        log "building upstash-on-redis into /tmp/uor-target"
        CARGO_TARGET_DIR=/tmp/uor-target cargo build --release --locked \
            --manifest-path "$SHARED_DIR/tools/upstash-on-redis/Cargo.toml" >"$RESULTS/uor-build.log" 2>&1 \
            || die "upstash-on-redis build failed (see $RESULTS/uor-build.log)"
        UOR_BIN=/tmp/uor-target/release/upstash-on-redis
    fi
    UOR_PORT=$(free_port)
    uor_tls=()
    BACKEND_URL="http://127.0.0.1:$UOR_PORT"
    if [[ $TLS == 1 ]]; then
        need openssl openssl
        # A throwaway CA and a localhost certificate; curl, python and the service trust it.
        ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=bench CA" \
            -keyout "$RESULTS/ca.key" -out "$RESULTS/ca.pem" 2>/dev/null
        openssl req "${ec[@]}" -subj "/CN=localhost" \
            -keyout "$RESULTS/server.key" -out "$RESULTS/server.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$RESULTS/ext"
        openssl x509 -req -in "$RESULTS/server.csr" -CA "$RESULTS/ca.pem" -CAkey "$RESULTS/ca.key" \
            -CAcreateserial -days 2 -extfile "$RESULTS/ext" -out "$RESULTS/server.pem" 2>/dev/null
        export CURL_CA_BUNDLE="$RESULTS/ca.pem" SSL_CERT_FILE="$RESULTS/ca.pem"
        uor_tls=(TLS_CERT="$RESULTS/server.pem" TLS_KEY="$RESULTS/server.key")
        BACKEND_URL="https://localhost:$UOR_PORT"
    fi
    log "starting upstash-on-redis on $BACKEND_URL (LATENCY_MS=$LATENCY_MS, WORKERS=$UOR_WORKERS)"
    env REDIS_URL="redis://127.0.0.1:$REDIS_PORT" BIND="127.0.0.1:$UOR_PORT" TOKEN="$UOR_TOKEN" \
        LATENCY_MS="$LATENCY_MS" WORKERS="$UOR_WORKERS" FAULT=none ${uor_tls[@]+"${uor_tls[@]}"} \
        "$UOR_BIN" >"$RESULTS/upstash-on-redis.log" 2>&1 &
    UOR_PID=$!
    PIDS+=("$UOR_PID")
    wait_http "$BACKEND_URL/__stats" "$UOR_PID" upstash-on-redis
    BACKEND_TOKEN=$UOR_TOKEN
fi
if [[ -n $BACKEND_URL ]]; then
    if curl -sf --max-time 5 "${BACKEND_URL%/}/__stats" 2>/dev/null | grep -q '"requests"'; then
        HAS_STATS=1
        log "backend exposes /__stats: Upstash requests per operation will be counted"
    else
        log "backend has no /__stats: Upstash requests per operation are not counted"
    fi
    # host and port of the backend, for counting the service's connects to it
    read -r BACKEND_HOST BACKEND_PORT < <(python3 -c '
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(u.hostname, u.port or (443 if u.scheme == "https" else 80))' "$BACKEND_URL")
fi

# ---------------------------------------------------------------------------- measuring
# tree_ticks PID: utime+stime (clock ticks) of PID and its descendants, from /proc/<pid>/stat
# (the process line sums all its threads).
PYLIB=$(cat <<'EOF'
import os, re
def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                if int(s[s.rindex(")") + 2:].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError):
                pass
    return out
def tree(pid):
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(children(p))
    return seen
def ticks(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            t += int(fields[11]) + int(fields[12])   # utime, stime (fields 14, 15)
        except OSError:
            pass
    return t
def status_kb(pids, key):
    kb = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        kb += int(line.split()[1])
        except OSError:
            pass
    return kb
EOF
)
tree_ticks() { python3 -c "$PYLIB
print(ticks(tree($1)))"; }
tree_kb() { python3 -c "$PYLIB
print(status_kb(tree($1), '$2'))"; }
# Resets VmHWM (peak RSS) of PID and its children to the current RSS (Linux >= 4.0).
reset_peak() { python3 -c "$PYLIB
for p in tree($1):
    try:
        open(f'/proc/{p}/clear_refs', 'w').write('5')
    except OSError:
        pass"; }

# Background sampler during a run: max VmRSS of the tree every 0.2 s, and every client port
# seen in /proc/net/tcp on a connection to the backend port (any state, TIME-WAIT included,
# so short-lived connections are still seen after they close). Ports present before the run
# are the baseline; each new port during the run is one TCP connect to the backend. Nothing
# else talks to the backend during a run, so these are the service's connects.
start_sampler() { # start_sampler PID OUT.json
    python3 - "$1" "$2" "${BACKEND_PORT:-0}" "${BACKEND_HOST:-}" <<EOF &
$PYLIB
import json, signal, socket, sys, time
pid, out, bport, bhost = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
pids = tree(pid)
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
def backend_conns():
    conns = {}
    if not bport:
        return conns
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            lport = int(f[1].split(":")[1], 16)
            rport = int(f[2].split(":")[1], 16)
            if rport == bport and lport != bport:      # the client end
                conns[(f[1], f[2])] = f[3]
            elif lport == bport and rport != bport and f[3] != "0A":  # server end (listen 0A)
                conns[(f[2], f[1])] = conns.get((f[2], f[1]), f[3])
    return conns
base = set(backend_conns())
seen, max_rss, samples, est_end = set(), 0, 0, 0
while not stop:
    max_rss = max(max_rss, status_kb(pids, "VmRSS"))
    c = backend_conns()
    seen |= set(c)
    est_end = sum(1 for st in c.values() if st == "01")
    samples += 1
    time.sleep(0.2)
c = backend_conns()
seen |= set(c)
json.dump({"max_rss_kb": max_rss, "samples": samples,
           "backend_connects": len(seen - base) if bport else None,
           "backend_established_end": est_end if bport else None}, open(out, "w"))
EOF
    SAMPLER_PID=$!
    PIDS+=("$SAMPLER_PID")
}
stop_sampler() { kill -TERM "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true
    local keep=() p; for p in "${PIDS[@]}"; do [[ $p == "$SAMPLER_PID" ]] || keep+=("$p"); done; PIDS=("${keep[@]}"); }

stats_reset() { [[ $HAS_STATS == 1 ]] && curl -sf --max-time 5 -X POST "${BACKEND_URL%/}/__reset" >/dev/null || true; }
stats_get() { if [[ $HAS_STATS == 1 ]]; then curl -sf --max-time 5 "${BACKEND_URL%/}/__stats" || echo '{}'; else echo '{}'; fi; }

# login_cookie PORT: one login with curl; prints the session cookie value.
login_cookie() {
    curl -s -D - -o /dev/null --max-time 10 -H 'Content-Type: application/json' \
        -d '{"username":"bench-user"}' "http://127.0.0.1:$1/login/" \
        | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: session_id=\([^;]*\).*/\1/p' | head -1
}
forged_cookie() { # a well-formed value (v4 UUID . 43 base64url chars) with a wrong tag
    python3 -c 'import uuid, os, base64; print(str(uuid.uuid4()) + "." + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode())'
}

# Numbers wrk's threads 1, 2, ... (as `tid`) and keeps them for a done() summary.
LUA_THREADS=$(cat <<'EOF'
local threads, next_id = {}, 1
function setup(thread)
    thread:set("tid", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end
EOF
)

LUA_LOGIN="$RESULTS/login.lua"
cat >"$LUA_LOGIN" <<EOF
-- POST /login/ with JSON bodies for 1000 user names per thread, cycled.
$LUA_THREADS
EOF
cat >>"$LUA_LOGIN" <<'EOF'
local pool, i = {}, 0
function init(args)
    local h = { ["Content-Type"] = "application/json" }
    for k = 1, 1000 do
        pool[k] = wrk.format("POST", "/login/", h, string.format('{"username":"user-%d-%d"}', tid, k))
    end
end
function request()
    i = i % 1000 + 1
    return pool[i]
end
EOF

LUA_PATCH="$RESULTS/patch.lua"
cat >"$LUA_PATCH" <<EOF
-- PATCH /profile/ with merge patches (RFC 7396) on one session (args[1]: its cookie value):
-- each thread sets its own key to one of 100 values, so the data stays small.
$LUA_THREADS
EOF
cat >>"$LUA_PATCH" <<'EOF'
local pool, i = {}, 0
function init(args)
    local h = { ["Content-Type"] = "application/merge-patch+json", ["Cookie"] = "session_id=" .. args[1] }
    for k = 1, 100 do
        pool[k] = wrk.format("PATCH", "/profile/", h, string.format('{"t%d":{"n":%d,"gone":null}}', tid, k))
    end
end
function request()
    i = i % 100 + 1
    return pool[i]
end
EOF

LUA_BACKEND="$RESULTS/backend.lua"
cat >"$LUA_BACKEND" <<'EOF'
-- POST / {"GETEX", KEY, "EX", "900"} to the Upstash REST API: args KEY TOKEN.
function init(args)
    wrk.method = "POST"
    wrk.body = '["GETEX","' .. args[1] .. '","EX","900"]'
    wrk.headers["Authorization"] = "Bearer " .. args[2]
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Upstash-Encoding"] = "base64"
end
EOF

LUA_MILLION="$RESULTS/million.lua"
cat >"$LUA_MILLION" <<EOF
-- POST /login/ until args[1] logins got 200 in each thread. args[2]: chunk number (keeps
-- names unique across chunks); args[3]: 0 for a distinct user per login, else N users cycled.
$LUA_THREADS
EOF
cat >>"$LUA_MILLION" <<'EOF'
local target, chunk, users, ok, n = 0, 0, 0, 0, 0
local h = { ["Content-Type"] = "application/json" }
function init(args)
    target, chunk, users = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
end
function request()
    n = n + 1
    local name
    if users > 0 then
        name = "u" .. ((n * 2 + tid) % users)
    else
        name = "m" .. chunk .. "-" .. tid .. "-" .. n
    end
    return wrk.format("POST", "/login/", h, '{"username":"' .. name .. '"}')
end
function response(status, headers, body)
    if status == 200 then
        ok = ok + 1
        if ok >= target then wrk.thread:stop() end
    end
    wrk.thread:set("ok", ok)
end
function done(summary, latency, requests)
    local total = 0
    for _, t in ipairs(threads) do total = total + (t:get("ok") or 0) end
    io.write(string.format("logins_ok %d\n", total))
end
EOF

# run_wrk NAME TARGET_PID PORT CONNS OP URLPATH [wrk args...]: one load run, one table row.
run_wrk() {
    local name=$1 tpid=$2 port=$3 conns=$4 op=$5 path=$6
    shift 6
    local out="$RESULTS/$name.wrk.txt" smp="$RESULTS/$name.sampler.json"
    log "run $name: wrk -t$THREADS -c$conns -d$DURATION --latency $* http://127.0.0.1:$port$path"
    reset_peak "$tpid"
    stats_reset
    start_sampler "$tpid" "$smp"
    sleep 0.3
    local t0 t1 s0 s1
    t0=$(tree_ticks "$tpid")
    s0=$(date +%s.%N)
    local pre=() post=() seen=0 a
    for a in "$@"; do   # wrk options before the URL, script arguments (after --) behind it
        if [[ $seen == 1 ]]; then post+=("$a"); elif [[ $a == -- ]]; then seen=1; else pre+=("$a"); fi
    done
    wrk -t"$THREADS" -c"$conns" -d"$DURATION" --latency --timeout 5s "${pre[@]}" "${WRK_BASE:-http://127.0.0.1:$port}$path" \
        ${post[@]+-- "${post[@]}"} >"$out" 2>&1 \
        || log "wrk exited with an error (see $out)"
    t1=$(tree_ticks "$tpid")
    s1=$(date +%s.%N)
    stop_sampler
    local hwm rss stats
    hwm=$(tree_kb "$tpid" VmHWM)
    rss=$(tree_kb "$tpid" VmRSS)
    stats=$(stats_get)
    python3 - "$out" "$smp" "$ROWS" <<EOF
import json, re, sys
out, smp, rows = sys.argv[1:4]
text = open(out).read()
def num(pat, default=None, conv=float):
    m = re.search(pat, text)
    return conv(m.group(1)) if m else default
def lat_us(pct):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, text, re.M)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[m.group(2)]
requests = num(r"(\d+) requests in", 0, int)
non2xx = num(r"Non-2xx or 3xx responses: (\d+)", 0, int)
errs = re.search(r"Socket errors: (.*)", text)
sampler = json.load(open(smp))
stats = json.loads('''$stats''' or "{}")
cpu_s = ($t1 - $t0) / $CLK_TCK
row = {
    "scenario": "$name", "op": "$op", "conns": $conns, "target": "${TARGET_LABEL:-service}",
    "label": "${CUR_LABEL:-service}",
    "requests": requests, "non2xx": non2xx, "socket_errors": errs.group(1) if errs else "",
    "rps": num(r"Requests/sec:\s+([\d.]+)", 0.0),
    "p50_us": lat_us(50), "p99_us": lat_us(99),
    "cpu_us_per_req": cpu_s * 1e6 / requests if requests else None,
    "cpu_cores": cpu_s / ($s1 - $s0),
    "peak_rss_kb": $hwm, "rss_end_kb": $rss, "rss_load_max_kb": sampler["max_rss_kb"],
    "backend_connects": sampler["backend_connects"],
    "backend_established_end": sampler["backend_established_end"],
    "upstash_requests_load": stats.get("requests"), "upstash_commands_load": stats.get("commands"),
}
if requests and stats.get("requests") is not None:
    row["upstash_req_per_op_load"] = stats["requests"] / requests
open(rows, "a").write(json.dumps(row) + "\n")
print("   req/s %.0f  p50 %s us  p99 %s us  cpu %.1f us/req  non-2xx %d  backend connects %s"
      % (row["rps"], row["p50_us"], row["p99_us"], row["cpu_us_per_req"] or 0, non2xx,
         row["backend_connects"]), file=sys.stderr)
EOF
}

# count_ops PORT LABEL: exactly OPS logins, profiles, logouts, forged and malformed-cookie
# profiles over one keep-alive connection, /__reset before and /__stats after each kind.
count_ops() {
    local port=$1 label=$2
    [[ $HAS_STATS == 1 ]] || return 0
    log "counting Upstash requests per operation for $label (N=$OPS each)"
    python3 - "$port" "${BACKEND_URL%/}" "$OPS" "$label" "$RESULTS/ops-$label.json" "$ROWS" <<'EOF'
import base64, http.client, json, os, sys, urllib.parse, uuid
port, backend, n, label, out, rows = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
b = urllib.parse.urlsplit(backend)
def backend_call(method, path):
    c = (http.client.HTTPSConnection if b.scheme == "https" else http.client.HTTPConnection)(b.hostname, b.port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return json.loads(body) if body else {}
svc = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
def call(method, path, cookie=None, body=None, content_type="application/json"):
    h = {"Content-Type": content_type} if body is not None else {}
    if cookie is not None:
        h["Cookie"] = "session_id=" + cookie
    svc.request(method, path, body=body, headers=h)
    r = svc.getresponse()
    r.read()
    sc = r.getheader("Set-Cookie") or ""
    value = sc.split(";", 1)[0].split("=", 1)[1] if sc.startswith("session_id=") else None
    return r.status, value
cookies, result = [], {}
def measure(kind, fn):
    backend_call("POST", "/__reset")
    statuses = {}
    for i in range(n):
        s = fn(i)
        statuses[s] = statuses.get(s, 0) + 1
    st = backend_call("GET", "/__stats")
    result[kind] = {"n": n, "statuses": statuses, "requests": st.get("requests"), "commands": st.get("commands"),
                    "req_per_op": st.get("requests", 0) / n, "cmd_per_op": st.get("commands", 0) / n}
def login(i):
    s, v = call("POST", "/login/", body=json.dumps({"username": "ops-user-%d" % i}))
    cookies.append(v)
    return s
measure("login", login)
measure("profile", lambda i: call("GET", "/profile/", cookie=cookies[i])[0])
patch = lambda i: call("PATCH", "/profile/", cookie=cookies[i], body=json.dumps({"cart": {"apple": i}}),
                       content_type="application/merge-patch+json")[0]
measure("patch", patch)
measure("logout", lambda i: call("POST", "/logout/", cookie=cookies[i])[0])
forged = lambda: str(uuid.uuid4()) + "." + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
measure("forged", lambda i: call("GET", "/profile/", cookie=forged())[0])
measure("malformed", lambda i: call("GET", "/profile/", cookie="not-a-session-%d" % i)[0])
json.dump(result, open(out, "w"), indent=1)
with open(rows, "a") as f:
    f.write(json.dumps({"ops": label, "result": result}) + "\n")
for k, v in result.items():
    print("   %-9s %5.2f requests/op  %5.2f commands/op  statuses %s" % (k, v["req_per_op"], v["cmd_per_op"], v["statuses"]), file=sys.stderr)
EOF
}

# scenarios TARGET_PID PORT LABEL: the wrk runs against one server.
scenarios() {
    local tpid=$1 port=$2 label=$3 c cookie forged
    CUR_LABEL=$label
    cookie=$(login_cookie "$port")
    [[ -n $cookie ]] || die "login on port $port gave no session cookie"
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Cookie: session_id=$cookie" "http://127.0.0.1:$port/profile/") == 200 ]] \
        || die "GET /profile/ with the login cookie is not 200 on port $port"
    forged=$(forged_cookie)
    IFS=, read -ra CLIST <<<"$CONNECTIONS"
    for c in "${CLIST[@]}"; do
        if [[ $label == service && $MODE == local && ,$SCENARIOS, == *,profile,* ]]; then
            # One Upstash round trip on its own: wrk straight at upstash-on-redis with the
            # request the service sends for a profile read (GETEX of this session's key).
            CUR_LABEL="backend direct (GETEX)"; TARGET_LABEL=backend
            local saved_port=$BACKEND_PORT
            BACKEND_PORT=0
            WRK_BASE=${BACKEND_URL%/} run_wrk "backend-direct-c$c" "$UOR_PID" "$UOR_PORT" "$c" GETEX / -s "$LUA_BACKEND" -- "session:${cookie%%.*}" "$BACKEND_TOKEN"
            BACKEND_PORT=$saved_port
            CUR_LABEL=$label; TARGET_LABEL=$label
        fi
        if [[ ,$SCENARIOS, == *,profile,* ]]; then
            run_wrk "$label-profile-c$c" "$tpid" "$port" "$c" profile /profile/ -H "Cookie: session_id=$cookie"
        fi
        if [[ ,$SCENARIOS, == *,forged,* ]]; then
            run_wrk "$label-forged-c$c" "$tpid" "$port" "$c" forged /profile/ -H "Cookie: session_id=$forged"
        fi
        if [[ ,$SCENARIOS, == *,login,* ]]; then
            run_wrk "$label-login-c$c" "$tpid" "$port" "$c" login /login/ -s "$LUA_LOGIN"
        fi
        if [[ ,$SCENARIOS, == *,patch,* && $label == service ]]; then
            run_wrk "$label-patch-c$c" "$tpid" "$port" "$c" patch /profile/ -s "$LUA_PATCH" -- "$cookie"
        fi
    done
}

# ---------------------------------------------------------------------------- the service
SVC_PORT=$(free_port)
svc_env=(HOST=127.0.0.1 PORT="$SVC_PORT" COOKIE_SECURE=false RUST_LOG=warn LOG_FORMAT=pretty)
[[ -n $SVC_WORKERS ]] && svc_env+=(WORKERS="$SVC_WORKERS")
if [[ -n $BACKEND_URL ]]; then
    svc_env+=(UPSTASH_REDIS_REST_URL="$BACKEND_URL" UPSTASH_REDIS_REST_TOKEN="$BACKEND_TOKEN")
    if [[ $TLS == 1 ]]; then svc_env+=(UPSTASH_CA_CERT="$RESULTS/ca.pem"); fi
fi
if [[ $MILLION == 1 ]]; then
    svc_env+=(SESSION_TTL_SECONDS=31536000 SESSION_ABSOLUTE_TTL_SECONDS=31536000)
fi
# SVC_ENV="UPSTASH_AUTO_PIPELINE=false ..." passes extra settings to the service (A/B runs).
if [[ -n ${SVC_ENV:-} ]]; then
    read -r -a extra_env <<<"$SVC_ENV"
    svc_env+=("${extra_env[@]}")
fi
log "starting upstash-sessions on 127.0.0.1:$SVC_PORT ($MODE store${SVC_WORKERS:+, WORKERS=$SVC_WORKERS})"
(
    cd "$RUN_DIR"
    # only the variables set here: none of the caller's UPSTASH_*/SESSION_* leak in
    exec env -i PATH="$PATH" HOME="${HOME:-/tmp}" "${svc_env[@]}" "$BIN"
) >"$RESULTS/service.log" 2>&1 &
SVC_PID=$!
PIDS+=("$SVC_PID")
wait_http "http://127.0.0.1:$SVC_PORT/healthz" "$SVC_PID" upstash-sessions
SVC_IDLE_RSS=$(tree_kb "$SVC_PID" VmRSS)
log "service up (pid $SVC_PID, idle RSS $((SVC_IDLE_RSS / 1024)) MiB)"

TARGET_LABEL=service
if [[ $MILLION == 1 ]]; then
    mc=${CONNECTIONS%%,*}
    before=$(tree_kb "$SVC_PID" VmRSS)
    users_desc="a distinct user per session"
    [[ $MILLION_USERS != 0 ]] && users_desc="$MILLION_USERS users"
    log "million: logging in until $MILLION_COUNT sessions exist ($users_desc; wrk -t$THREADS -c$mc in ${MILLION_CHUNK} chunks, at most ${MILLION_TIMEOUT}s)"
    # wrk's thread:stop() ends a thread early but wrk still waits out -d: run short chunks,
    # each asking for what is still missing, so at most one chunk's tail is idle.
    t0=$(tree_ticks "$SVC_PID"); s0=$(date +%s.%N)
    done_ok=0; done_req=0; chunk=0
    : >"$RESULTS/million.wrk.txt"
    while (( done_ok < MILLION_COUNT )); do
        (( $(date +%s) - ${s0%.*} < MILLION_TIMEOUT )) || { log "million: time is up after $done_ok sessions"; break; }
        chunk=$((chunk + 1))
        per_thread=$(( (MILLION_COUNT - done_ok + THREADS - 1) / THREADS ))
        wrk -t"$THREADS" -c"$mc" -d"$MILLION_CHUNK" --latency --timeout 5s -s "$LUA_MILLION" \
            "http://127.0.0.1:$SVC_PORT/login/" -- "$per_thread" "$chunk" "$MILLION_USERS" >"$RESULTS/million.chunk.txt" 2>&1 || true
        cat "$RESULTS/million.chunk.txt" >>"$RESULTS/million.wrk.txt"
        ok=$(sed -n 's/^logins_ok \([0-9]*\)$/\1/p' "$RESULTS/million.chunk.txt")
        req=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$RESULTS/million.chunk.txt")
        [[ -n $ok && $ok -gt 0 ]] || { log "million: a chunk made no session (see $RESULTS/million.wrk.txt)"; break; }
        done_ok=$((done_ok + ok)); done_req=$((done_req + ${req:-0}))
    done
    t1=$(tree_ticks "$SVC_PID"); s1=$(date +%s.%N)
    sleep 1
    after=$(tree_kb "$SVC_PID" VmRSS); hwm=$(tree_kb "$SVC_PID" VmHWM)
    python3 - "$ROWS" <<EOF
import json, sys
ok, reqs = $done_ok, $done_req
row = {"scenario": "million-login", "op": "login", "target": "service", "conns": int("$mc"),
       "requests": reqs, "non2xx": reqs - ok, "sessions": ok, "users": "$users_desc",
       "rps": ok / ($s1 - $s0), "p50_us": None, "p99_us": None,
       "cpu_us_per_req": ($t1 - $t0) / $CLK_TCK * 1e6 / reqs if reqs else None,
       "peak_rss_kb": $hwm, "rss_end_kb": $after, "rss_load_max_kb": None,
       "rss_before_kb": $before, "bytes_per_session": ($after - $before) * 1024 / ok if ok else None}
open(sys.argv[1], "a").write(json.dumps(row) + "\n")
print("   %d sessions in %.1f s; RSS %.1f MiB (was %.1f MiB, peak %.1f MiB): %.0f bytes/session"
      % (ok, $s1 - $s0, $after / 1024, $before / 1024, $hwm / 1024, row["bytes_per_session"] or 0), file=sys.stderr)
EOF
    # profile lookups with the million sessions in place
    SCENARIOS_SAVED=$SCENARIOS; SCENARIOS=profile
    scenarios "$SVC_PID" "$SVC_PORT" service-1M
    SCENARIOS=$SCENARIOS_SAVED
else
    scenarios "$SVC_PID" "$SVC_PORT" service
    count_ops "$SVC_PORT" service
fi
stop_pid "$SVC_PID"

# ---------------------------------------------------------------------------- yardsticks
# yardstick LABEL STATS BPORT BIN [VAR=VALUE...]: start BIN (from the empty run directory,
# HOST/PORT/WORKERS set, plus the given variables), wait for /healthz, run the profile
# scenario against it as LABEL and stop it. STATS=0 and BPORT are for a server that does not
# talk to the Upstash backend: no Upstash counts, and the port whose connects to count (0: none).
yardstick() {
    local label=$1 stats=$2 bport=$3 bin=$4 port pid
    shift 4
    port=$(free_port)
    local env_vars=(HOST=127.0.0.1 PORT="$port" "$@")
    [[ -n $SVC_WORKERS ]] && env_vars+=(WORKERS="$SVC_WORKERS")
    log "starting $label on 127.0.0.1:$port"
    (cd "$RUN_DIR" && exec env -i PATH="$PATH" "${env_vars[@]}" "$bin") >"$RESULTS/$label.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_http "http://127.0.0.1:$port/healthz" "$pid" "$label"
    local saved_scenarios=$SCENARIOS saved_stats=$HAS_STATS saved_bport=${BACKEND_PORT:-}
    SCENARIOS=profile; HAS_STATS=$stats; BACKEND_PORT=$bport; TARGET_LABEL=$label
    scenarios "$pid" "$port" "$label"
    SCENARIOS=$saved_scenarios; HAS_STATS=$saved_stats; BACKEND_PORT=$saved_bport
    stop_pid "$pid"
}

# examples/floor.rs: the same HTTP answer with none of the service's code, and (with a
# backend) the same after one reqwest round trip per request.
if [[ $FLOOR == 1 ]]; then
    yardstick floor-static 0 0 "$FLOOR_BIN"
    if [[ -n $BACKEND_URL ]]; then
        yardstick floor-rest "$HAS_STATS" "${BACKEND_PORT:-0}" "$FLOOR_BIN" \
            FLOOR_UPSTREAM_URL="$BACKEND_URL" FLOOR_UPSTREAM_TOKEN="$BACKEND_TOKEN"
    fi
fi

# actix-session + RedisSessionStore (GET + EXPIRE per profile over the Redis protocol): its
# "backend TCP connects" are its connections to redis-server.
if [[ $REFERENCE == 1 ]]; then
    ensure_redis
    yardstick reference 0 "$REDIS_PORT" "$REF_BIN" REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
fi

# ---------------------------------------------------------------------------- the seed
if [[ $SEED == 1 ]]; then
    SEED_APP="$SHARED_DIR/anchors/seed_fastapi.py"
    if [[ ! -f $SEED_APP ]]; then
        log "skipped the seed: $SEED_APP is missing"
    else
        PY=$(python3 -c 'import sys; print(sys.executable)')
        if ! "$PY" -c 'import fastapi, uvicorn, upstash_redis' 2>/dev/null; then
            log "pip install fastapi uvicorn upstash-redis"
            "$PY" -m pip install -q fastapi uvicorn upstash-redis >"$RESULTS/pip.log" 2>&1 \
                || die "pip install failed (see $RESULTS/pip.log)"
        fi
        SEED_PORT=$(free_port)
        log "starting the FastAPI seed on 127.0.0.1:$SEED_PORT"
        (
            cd "$RUN_DIR"
            exec env -i PATH="$PATH" HOME="${HOME:-/tmp}" UPSTASH_REDIS_REST_URL="$BACKEND_URL" \
                UPSTASH_REDIS_REST_TOKEN="$BACKEND_TOKEN" \
                "$PY" -m uvicorn seed_fastapi:app --app-dir "$SHARED_DIR/anchors" --host 127.0.0.1 \
                --port "$SEED_PORT" --log-level warning --workers 1 --no-access-log
        ) >"$RESULTS/seed.log" 2>&1 &
        SEED_PID=$!
        PIDS+=("$SEED_PID")
        wait_http "http://127.0.0.1:$SEED_PORT/profile/" "$SEED_PID" seed
        TARGET_LABEL=seed
        scenarios "$SEED_PID" "$SEED_PORT" seed
        count_ops "$SEED_PORT" seed
        stop_pid "$SEED_PID"
    fi
fi

# ---------------------------------------------------------------------------- summary
python3 - "$ROWS" "$RESULTS/summary.md" "$MODE" "$LATENCY_MS" "$BACKEND_URL" "$DURATION" "$THREADS" "$(nproc)" "$SVC_IDLE_RSS" "$REFERENCE" <<'EOF'
import json, sys
rows_path, out, mode, latency, backend, duration, threads, cores, idle_rss, reference = sys.argv[1:11]
rows, ops = [], {}
for line in open(rows_path):
    r = json.loads(line)
    if "ops" in r:
        ops[r["ops"]] = r["result"]
    else:
        rows.append(r)
def ms(us): return "-" if us is None else "%.3f ms" % (us / 1000)
def mib(kb): return "-" if kb is None else "%.1f MiB" % (kb / 1024)
def reqop(target, op, r=None):
    res = ops.get(target, {}).get(op)
    parts = []
    if res:
        parts.append("%.2f (%.2f cmds)" % (res["req_per_op"], res["cmd_per_op"]))
    if r is not None and r.get("upstash_req_per_op_load") is not None:
        parts.append("%.3f under load" % r["upstash_req_per_op_load"])
    return "; ".join(parts) or "-"
lines = []
w = lines.append
w("## upstash-sessions benchmark: %s store%s" % (
    {"memory": "in-memory", "local": "upstash-on-redis", "upstash": "Upstash"}[mode],
    " (LATENCY_MS=%s)" % latency if mode == "local" and latency != "0" else ""))
w("")
sharing = " and the backend" if backend else ""
if reference == "1":
    sharing = ", the backend and redis-server" if backend else " and redis-server"
w("wrk -t%s, %s per run, %s cores shared by wrk, the service%s. Service idle RSS %s." % (
    threads, duration, cores, sharing, mib(int(idle_rss))))
w("")
w("| scenario | req/s | p50 | p99 | CPU µs/req | peak RSS | RSS under load | Upstash req/op | backend TCP connects | non-2xx |")
w("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
for r in rows:
    label = r.get("label", r["target"]).replace("service-1M", "service (1M sessions)")
    label = label.replace("reference", "actix-session + RedisSessionStore (Redis protocol)")
    label = label.replace("floor-static", "floor: bare actix-web, constant answer").replace("floor-rest", "floor: bare actix-web + one reqwest GETEX")
    name = "%s %s c=%s" % (label, r["op"], r["conns"])
    if r["scenario"] == "million-login":
        name = "service million logins c=%s (%d sessions, %s; %.0f B/session)" % (r["conns"], r["sessions"], r.get("users", ""), r["bytes_per_session"] or 0)
    w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        name, "{:,.0f}".format(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]),
        "-" if r["cpu_us_per_req"] is None else "%.1f" % r["cpu_us_per_req"],
        mib(r["peak_rss_kb"]), mib(r.get("rss_load_max_kb")) if r.get("rss_load_max_kb") else mib(r.get("rss_end_kb")),
        reqop(r["target"], r["op"], r),
        "-" if r.get("backend_connects") is None else "%d (%d open)" % (r["backend_connects"], r["backend_established_end"]),
        r["non2xx"]))
for target in ops:
    for op in ("logout", "malformed"):
        if op in ops[target]:
            w("| %s %s (N=%d, one keep-alive client) | - | - | - | - | - | - | %s | - | %s |" % (
                target, op, ops[target][op]["n"], reqop(target, op),
                sum(v for k, v in ops[target][op]["statuses"].items() if not str(k).startswith("2"))))
w("")
notes = []
svc = {(r["op"], r["conns"]): r for r in rows if r["target"] == "service"}
seed = {(r["op"], r["conns"]): r for r in rows if r["target"] == "seed"}
for key in sorted(seed):
    if key in svc and seed[key]["rps"]:
        notes.append("service / seed throughput, %s c=%s: %.0f×" % (key[0], key[1], svc[key]["rps"] / seed[key]["rps"]))
direct = {r["conns"]: r for r in rows if r["target"] == "backend"}
for r in rows:
    if r["target"] == "service" and r["op"] == "profile" and r["p50_us"] is not None:
        d = direct.get(r["conns"])
        if d and d["p50_us"] is not None:
            notes.append("profile c=%s: p50 %.3f ms vs one backend round trip (direct) %.3f ms: +%.3f ms; throughput %.0f%% of the direct backend rate"
                         % (r["conns"], r["p50_us"] / 1000, d["p50_us"] / 1000, (r["p50_us"] - d["p50_us"]) / 1000, 100 * r["rps"] / d["rps"] if d["rps"] else 0))
        elif mode == "local" and latency != "0":
            notes.append("profile c=%s: p50 − LATENCY_MS = %.3f ms" % (r["conns"], r["p50_us"] / 1000 - float(latency)))
for n in notes:
    w("- " + n)
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
EOF
log "raw outputs: $RESULTS"
