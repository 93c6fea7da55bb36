#!/usr/bin/env python3
"""Instructions and heap allocations the service spends per request, under valgrind.

Wall-clock CPU figures from `bench.py` move by about ±20% between identical runs on a shared
2-core VM. This counts instead: the release binary (built with `--profile profiling`, the
release profile plus line tables) runs under `valgrind --tool=callgrind`,
one keep-alive client sends N requests of one kind at a time, and callgrind's counters are
zeroed before and dumped after each batch. Per request it reports:

* instructions executed in user space by the service (all threads; kernel work is not
  counted, so this is the part the code controls),
* calls to malloc/calloc/realloc (heap allocations).

The same binary, inputs and settings give the same counts to within a fraction of a percent,
so a change of a few percent is a real change. Requests go one at a time, so on the Upstash
backend each profile is one plain command (auto-pipelining needs concurrent requests).

With `--tls https` the service reaches upstash-on-redis over HTTPS (a throwaway CA and a
`localhost` certificate made with openssl, trusted through UPSTASH_CA_CERT); `--tls both`
runs the service twice in one invocation, over http and over https against the same
redis-server, for a same-run comparison. Each run also reports the TLS handshakes the
service made (`upstash_tls_handshakes_total` on /metrics, counted from start: the start-up
PING and the worker's pool warm-up included).

usage: bench/instructions.py [--local-upstash [--tls http|https|both]] [--floor] [-n N]
                             [--scenarios LIST] [--env "K=V ..."] [--keep DIR] [--json FILE]
                             [--limits-ab] [--no-build]

The per-client rate limits stay on (RATE_LIMIT_LOGIN and RATE_LIMIT_REQUESTS at 1000000/s:
never reached from the one client address); `--limits-ab` runs each backend a second time
with both off, in the same invocation, so the two rows show what the limiter costs.
Scenarios: profile, forged, login, logout, and patch (`PATCH /profile/` of a small
merge patch on one session: on Upstash one EVALSHA each, the script loaded in the warm-up).
Needs valgrind (apt-get install -y valgrind); --local-upstash also needs redis-server and
../shared/tools/upstash-on-redis (built into /tmp/uor-target when missing); --tls https|both
needs openssl.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "scripts"))
from backend import (Launcher, ensure_tool, free_port, service_env, uor_available,  # noqa: E402
                     wait_http)

ALLOCATORS = {"malloc", "calloc", "realloc"}
PROFILE_DIR = ROOT / "target/profiling"


def log(msg):
    print(f"[instructions {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def port_from_env(name):
    """A fixed loopback port from the environment (INSTR_PORT, INSTR_REDIS_PORT,
    INSTR_UPSTASH_PORT: the next one too with --tls both), or None for a free one."""
    return int(os.environ.get(name) or 0) or None


def build(*targets):
    """`cargo build --profile profiling` (release plus line tables) of `targets`."""
    log(f"cargo build --profile profiling {' '.join(targets)}")
    subprocess.run(["cargo", "build", "--profile", "profiling", "--quiet", *targets], cwd=ROOT,
                   check=True)


def metric(port, name):
    """One unlabelled sample of the service's /metrics, or None."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return None


def parse_dump(path):
    """Total Ir, allocator calls and requested bytes from one callgrind output file.

    Callgrind compresses names: `fn=(7) malloc` the first time, `fn=(7)` after. Calls to a
    function are the `calls=COUNT ...` line after a `cfn=` naming it; the cost line after
    that is the inclusive cost of those calls, not the caller's own, so it is skipped when
    summing the totals (the `summary:`/`totals:` line already has them).
    """
    names = {}
    total = None
    allocs = 0
    callee = None
    with open(path) as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                key, _, rest = line.partition("=")
                m = re.match(r"\((\d+)\)(?: (.*))?", rest.strip())
                if m:
                    ident, name = m.group(1), m.group(2)
                    if name:
                        names[ident] = name
                    name = names.get(ident, "")
                else:
                    name = rest.strip()
                if key == "cfn":
                    callee = name
            elif line.startswith("calls="):
                if callee in ALLOCATORS:
                    allocs += int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    return total, allocs


def control(pid, *args):
    # valgrind names its vgdb pipes after $USER and $HOST, and the service is started with
    # HOST=127.0.0.1 (its listen address): callgrind_control must see the same values.
    r = subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, text=True,
                       env={**os.environ, "HOST": "127.0.0.1"})
    if r.returncode != 0:
        sys.exit(f"callgrind_control {' '.join(args)} failed:\n{r.stdout}{r.stderr}")


def dump(pid, label, outdir):
    before = set(outdir.glob("callgrind.out.*"))
    control(pid, "--dump=" + label)
    for _ in range(200):
        new = set(outdir.glob("callgrind.out.*")) - before
        if new:
            time.sleep(0.3)  # let valgrind finish writing
            return max(new, key=lambda p: p.stat().st_mtime)
        time.sleep(0.1)
    sys.exit("callgrind_control --dump wrote no file")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--local-upstash", action="store_true", help="redis-server + upstash-on-redis")
    ap.add_argument("--tls", choices=["http", "https", "both"], default="http",
                    help="with --local-upstash: reach it over http, https, or both in one run")
    ap.add_argument("-n", type=int, default=1000, help="requests per scenario (default 1000)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--scenarios", default="profile,forged,login,logout")
    ap.add_argument("--env", default="", help="extra service settings, e.g. METRICS=false")
    ap.add_argument("--json", help="also write the rows to this file")
    ap.add_argument("--keep", help="copy the callgrind dumps here (for callgrind_annotate)")
    ap.add_argument("--limits-ab", action="store_true",
                    help="run each backend twice: rate limits on (never reached), then off")
    ap.add_argument("--floor", action="store_true",
                    help="count bench/floor.rs instead (bare actix-web; profile only)")
    args = ap.parse_args()

    if args.floor and args.tls != "http":
        sys.exit("--floor runs over http only (bench/floor.rs trusts no private CA)")
    ensure_tool("valgrind", "valgrind")
    binary = PROFILE_DIR / ("examples/floor" if args.floor else "upstash-sessions")
    if args.floor:
        args.scenarios = "profile"
    if not args.no_build:
        build(*(["--example", "floor"] if args.floor else ["--bin", "upstash-sessions"]))
    if not binary.exists():
        sys.exit(f"{binary} is missing")
    if args.local_upstash and not uor_available():
        log("skipped: --local-upstash needs ../shared/tools/upstash-on-redis")
        return

    launch = Launcher()
    env = {k: v for k, v in service_env().items() if not k.startswith("FLOOR_")}
    env.update(COOKIE_SECURE="false", RUST_LOG="warn", WORKERS="1", HOST="127.0.0.1",
               # Every request comes from 127.0.0.1: the per-client limits stay on (their cost
               # is counted) but are never reached. `--env RATE_LIMIT_REQUESTS=off` for an A/B.
               RATE_LIMIT_LOGIN="1000000/s", RATE_LIMIT_REQUESTS="1000000/s")
    # (label, settings) of each service run.
    runs = [("memory", {})]
    try:
        if args.local_upstash:
            rport = launch.redis(port_from_env("INSTR_REDIS_PORT"))
            runs = []
            schemes = ["http", "https"] if args.tls == "both" else [args.tls]
            for i, scheme in enumerate(schemes):
                uport = port_from_env("INSTR_UPSTASH_PORT")
                up = launch.upstash(rport, uport and uport + i, tls=scheme == "https",
                                    token="bench-token")
                settings = up.service_settings()
                if args.floor:
                    settings.update(FLOOR_UPSTREAM_URL=up.url, FLOOR_UPSTREAM_TOKEN=up.token)
                label = "upstash-on-redis" + (f" ({scheme})" if args.tls != "http" else "")
                runs.append((label, settings))
        for kv in filter(None, args.env.split()):
            k, _, v = kv.partition("=")
            env[k] = v

        if args.limits_ab and not args.floor:
            off = {"RATE_LIMIT_LOGIN": "off", "RATE_LIMIT_REQUESTS": "off"}
            runs = [variant for label, settings in runs for variant in (
                (f"{label}, rate limits on", settings),
                (f"{label}, rate limits off", {**settings, **off}))]
        rows = []
        for backend, settings in runs:
            if args.floor:
                backend = f"floor, {'one reqwest GETEX' if args.local_upstash else 'constant answer'}"
            rows += measure(args, binary, {**env, **settings}, backend, launch)

        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        what = ", ".join(label for label, _ in runs)
        print(f"\n## instructions per request ({what}, commit {commit}, "
              f"{args.n} sequential requests per scenario on one keep-alive connection)\n")
        print("| backend | scenario | instructions/request | heap allocations/request | TLS handshakes (whole run) |")
        print("|---|---|---:|---:|---:|")
        for r in rows:
            hs = r.get("tls_handshakes")
            print(f"| {r['backend']} | {r['scenario']} | {r['instructions_per_request']:,} | "
                  f"{r['allocations_per_request']} | {'-' if hs is None else hs} |")
        if args.json:
            Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in rows))
    finally:
        launch.stop_all()


def measure(args, binary, env, backend, launch):
    """Starts the service under callgrind with `env` and counts each scenario; stops it."""
    work = launch.logdir
    port = port_from_env("INSTR_PORT") or free_port()
    env = {**env, "PORT": str(port)}
    log(f"starting {binary.name} under callgrind ({backend})")
    proc_name = f"valgrind-{port}"
    svc = launch.start(proc_name, ["valgrind", "--tool=callgrind", "--collect-atstart=yes",
                              f"--callgrind-out-file={work}/callgrind.out.%p", str(binary)], env)
    wait_http(port, "/healthz", svc, "the service")

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def req(method, path, body=None, cookie=None, content_type="application/json"):
        headers = {}
        if body is not None:
            headers["Content-Type"] = content_type
        if cookie:
            headers["Cookie"] = f"session_id={cookie}"
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        return r

    def login(name):
        r = req("POST", "/login/", json.dumps({"username": name}))
        m = re.search(r"session_id=([^;]+)", r.getheader("Set-Cookie") or "")
        if r.status != 200 or not m:
            sys.exit(f"login failed: {r.status}")
        return m.group(1)

    cookie = login("bench")
    forged = f"{uuid.uuid4()}.{'A' * 43}"
    counter = iter(range(10**9))
    logout_cookies = []

    def run(name, i):
        if name == "profile":
            return req("GET", "/profile/", cookie=cookie).status == 200
        if name == "forged":
            return req("GET", "/profile/", cookie=forged).status == 404
        if name == "login":
            return req("POST", "/login/", json.dumps({"username": f"user{next(counter)}"})).status == 200
        if name == "logout":
            return req("POST", "/logout/", cookie=logout_cookies.pop()).status == 200
        if name == "patch":
            body = json.dumps({"cart": {"apple": i % 10, "pear": None}, "n": i})
            return req("PATCH", "/profile/", body, cookie=cookie,
                       content_type="application/merge-patch+json").status == 200
        raise SystemExit(f"unknown scenario {name}")

    rows = []
    for name in args.scenarios.split(","):
        for i in range(args.warmup):
            if name == "logout":
                logout_cookies.append(login(f"warm{i}"))
            run(name, i)
        if name == "logout":  # the sessions to end, made before counting starts
            logout_cookies = [login(f"out{i}") for i in range(args.n)]
        time.sleep(0.5)
        control(svc.pid, "--zero")
        ok = sum(bool(run(name, i)) for i in range(args.n))
        if ok != args.n:
            sys.exit(f"{name}: {args.n - ok} of {args.n} requests had the wrong status")
        out = dump(svc.pid, name, work)
        total, allocs = parse_dump(out)
        if total is None:
            sys.exit(f"{out} has no totals line: is it a callgrind dump?")
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(out, Path(args.keep) / f"callgrind.{backend}.{name}")
        row = {"backend": backend, "scenario": name, "requests": args.n,
               "instructions_per_request": round(total / args.n),
               "allocations_per_request": round(allocs / args.n, 1)}
        rows.append(row)
        log(json.dumps(row))
    handshakes = None if args.floor else metric(port, "upstash_tls_handshakes_total")
    for row in rows:
        row["tls_handshakes"] = handshakes
    launch.stop(proc_name)
    return rows


if __name__ == "__main__":
    main()
