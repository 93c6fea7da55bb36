#!/usr/bin/env python3
"""Load benchmark of upstash-sessions (see bench/README.md).

Starts the service (built with `--profile profiling`: release plus line tables) on a free
loopback port, drives it with wrk and reports req/s, p50/p99, service CPU µs per request, peak
RSS, RSS under load, Upstash requests per operation (when the backend has /__stats) and the TCP
connects from the service to the backend. Backends start through scripts/backend.py. Every
process it starts is stopped on exit (also on Ctrl-C); every run is bounded in time.

Environment defaults of the options: CONNECTIONS, DURATION, THREADS, SVC_WORKERS, OPS, LATENCY_MS, SCENARIOS; and REDIS_PORT (6399), UOR_TOKEN,
UOR_WORKERS (1), MILLION_COUNT, MILLION_TIMEOUT (s), MILLION_CHUNK (wrk -d of one chunk),
SVC_ENV ("K=V ..." extra settings of the service, for A/B runs), SHARED_DIR.
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
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "scripts"))
import backend  # noqa: E402  (scripts/backend.py: the one backend launcher)
from backend import SHARED, Launcher, ensure_tool, free_port, wait_http  # noqa: E402
from measure import (CLK_TCK, LUA, Sampler, call, forged_cookie, parse_wrk, reset_peak,  # noqa: E402
                     tree_kb, tree_ticks)
from report import summary  # noqa: E402

ALL_SCENARIOS = "profile,forged,login,patch"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(1)


def options():
    env = os.environ.get
    ap = argparse.ArgumentParser(
        prog="bench/bench.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__, epilog="Results: bench/results/<timestamp>-<mode>/ "
        "(summary.md holds the final table).")
    g = ap.add_argument_group("backends (default: the in-memory store)")
    g.add_argument("--upstash", nargs=2, metavar=("URL", "TOKEN"),
                   help="any Upstash-compatible REST endpoint")
    g.add_argument("--local-upstash", action="store_true",
                   help="start redis-server (port $REDIS_PORT, default 6399) and upstash-on-redis "
                   "from ../shared/tools on free loopback ports")
    g.add_argument("--latency-ms", type=int, default=int(env("LATENCY_MS", "0")),
                   help="LATENCY_MS of upstash-on-redis (env LATENCY_MS works too)")
    g.add_argument("--tls", action="store_true",
                   help="with --local-upstash: serve it over HTTPS with a throwaway CA and a "
                   "localhost certificate (openssl), trusted via UPSTASH_CA_CERT")
    g = ap.add_argument_group("extra runs")
    g.add_argument("--seed", action="store_true",
                   help="also run the FastAPI seed (../shared/anchors/seed_fastapi.py) against "
                   "the same backend (implies --local-upstash on memory)")
    g.add_argument("--floor", action="store_true",
                   help="also run bench/floor.rs: bare actix-web answering a constant profile, "
                   "and (with a backend) the same plus one reqwest GETEX")
    g.add_argument("--reference", action="store_true",
                   help="also run actix-session + RedisSessionStore (bench/reference/), native "
                   "Redis protocol, on the same redis-server")
    g.add_argument("--million", action="store_true",
                   help="memory store: create 1,000,000 sessions, report RSS")
    g.add_argument("--million-users", type=int, default=int(env("MILLION_USERS", "0")),
                   help="... spread over N user names (default 0: a distinct user each)")
    g = ap.add_argument_group("load")
    g.add_argument("-c", dest="connections", default=env("CONNECTIONS", "32"),
                   help="wrk connections, comma-separated for several runs (default 32)")
    g.add_argument("-d", dest="duration", default=env("DURATION", "10s"),
                   help="wrk duration per run (default 10s)")
    g.add_argument("-t", dest="threads", type=int, default=int(env("THREADS", "2")),
                   help="wrk threads (default 2)")
    g.add_argument("--workers", default=env("SVC_WORKERS", ""),
                   help="WORKERS of the service (default: its own default, one per core)")
    g.add_argument("--ops", type=int, default=int(env("OPS", "100")),
                   help="operations per kind for the Upstash request count (default 100)")
    g.add_argument("--scenarios", default=env("SCENARIOS", ALL_SCENARIOS),
                   help=f"subset of {ALL_SCENARIOS} (default all)")
    g.add_argument("--no-build", action="store_true",
                   help="use target/profiling/upstash-sessions as it is")
    a = ap.parse_args()
    a.mode = "upstash" if a.upstash else "local" if a.local_upstash else "memory"
    if a.seed and a.mode == "memory":
        log("--seed needs an Upstash backend: using --local-upstash")
        a.mode = "local"
    if a.tls and a.mode != "local":
        ap.error("--tls applies to --local-upstash (an --upstash URL says its own scheme)")
    if a.tls and (a.floor or a.seed or a.reference):
        ap.error("--tls runs the service only (the yardsticks trust no private CA)")
    if a.million and a.mode != "memory":
        log(f"--million measures the memory store; it is skipped on the {a.mode} backend")
        a.million = False
    a.scenarios = set(a.scenarios.split(","))
    a.conns = [int(c) for c in a.connections.split(",")]
    return a


# ---------------------------------------------------------------------------- /proc

class Bench:
    def __init__(self, args, results, launch):
        self.a, self.results, self.launch = args, results, launch
        self.rows_path = results / "rows.jsonl"
        self.rows_path.write_text("")
        self.run_dir = results / "cwd"  # the service reads ./.env: an empty directory
        self.run_dir.mkdir()
        self.up = self.url = self.token = None
        self.bport = 0
        self.has_stats = False
        self.lua = {}
        for name, text in LUA.items():
            self.lua[name] = results / f"{name}.lua"
            self.lua[name].write_text(text)

    def add_row(self, row):
        with open(self.rows_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------- backend
    def backend_call(self, method, path):
        return self.up.call(method, path)

    def stats(self):
        if not self.has_stats:
            return {}
        try:
            status, body = self.backend_call("GET", "/__stats")
            return json.loads(body) if status == 200 else {}
        except (OSError, ValueError, http.client.HTTPException):
            return {}

    def stats_reset(self):
        if self.has_stats:
            try:
                self.backend_call("POST", "/__reset")
            except (OSError, http.client.HTTPException):
                pass

    def start_backend(self):
        a = self.a
        if a.mode == "upstash":
            self.up = backend.Upstash("upstash", None, a.upstash[0], a.upstash[1], None, None)
        elif a.mode == "local":
            rport = self.redis()
            self.up = self.launch.upstash(rport, tls=a.tls, latency_ms=a.latency_ms,
                                          workers=os.environ.get("UOR_WORKERS", "1"),
                                          token=os.environ.get("UOR_TOKEN", "bench-token"),
                                          name="upstash-on-redis")
        else:
            return
        self.url, self.token = self.up.url, self.up.token
        try:
            status, body = self.backend_call("GET", "/__stats")
            self.has_stats = status == 200 and b'"requests"' in body
        except (OSError, http.client.HTTPException):
            self.has_stats = False
        log("backend exposes /__stats: Upstash requests per operation will be counted"
            if self.has_stats else
            "backend has no /__stats: Upstash requests per operation are not counted")
        u = urllib.parse.urlsplit(self.url)
        self.bport = u.port or (443 if u.scheme == "https" else 80)

    def redis(self):
        return self.launch.redis(int(os.environ.get("REDIS_PORT", "6399")), reuse=True)

    # ------------------------------------------------------------- runs
    def run_wrk(self, name, pid, port, conns, op, path, wrk_opts=(), script_args=(),
                target="service", label="service", base=None, bport=None):
        """One load run, one table row."""
        a = self.a
        out = self.results / f"{name}.wrk.txt"
        url = (base or f"http://127.0.0.1:{port}") + path
        argv = ["wrk", f"-t{a.threads}", f"-c{conns}", f"-d{a.duration}", "--latency",
                "--timeout", "5s", *wrk_opts, url, *(["--", *script_args] if script_args else [])]
        log(f"run {name}: {' '.join(argv)}")
        reset_peak(pid)
        self.stats_reset()
        sampler = Sampler(pid, self.bport if bport is None else bport)
        sampler.start()
        time.sleep(0.3)
        t0, s0 = tree_ticks(pid), time.monotonic()
        with open(out, "w") as f:
            if subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
                log(f"wrk exited with an error (see {out})")
        t1, s1 = tree_ticks(pid), time.monotonic()
        smp = sampler.finish()
        (self.results / f"{name}.sampler.json").write_text(json.dumps(smp))
        stats = self.stats()
        w = parse_wrk(out.read_text())
        cpu_s = (t1 - t0) / CLK_TCK
        row = {"scenario": name, "op": op, "conns": conns, "target": target, "label": label,
               **w, "cpu_us_per_req": cpu_s * 1e6 / w["requests"] if w["requests"] else None,
               "cpu_cores": cpu_s / (s1 - s0), "peak_rss_kb": tree_kb(pid, "VmHWM"),
               "rss_end_kb": tree_kb(pid, "VmRSS"), "rss_load_max_kb": smp["max_rss_kb"],
               "backend_connects": smp["backend_connects"],
               "backend_established_end": smp["backend_established_end"],
               "upstash_requests_load": stats.get("requests"),
               "upstash_commands_load": stats.get("commands")}
        if w["requests"] and stats.get("requests") is not None:
            row["upstash_req_per_op_load"] = stats["requests"] / w["requests"]
        self.add_row(row)
        log(f"   req/s {row['rps']:.0f}  p50 {row['p50_us']} us  p99 {row['p99_us']} us  "
            f"cpu {row['cpu_us_per_req'] or 0:.1f} us/req  non-2xx {w['non2xx']}  "
            f"backend connects {row['backend_connects']}")

    def scenarios(self, pid, port, label, scenarios, target=None, bport=None):
        """The wrk runs against one server."""
        a, target = self.a, target or label
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        status, cookie = call(conn, "POST", "/login/", body=json.dumps({"username": "bench-user"}))
        if not cookie:
            die(f"login on port {port} gave no session cookie ({status})")
        if call(conn, "GET", "/profile/", cookie=cookie)[0] != 200:
            die(f"GET /profile/ with the login cookie is not 200 on port {port}")
        conn.close()
        forged = forged_cookie()
        run = dict(target=target, label=label, bport=bport)
        for c in a.conns:
            if label == "service" and a.mode == "local" and "profile" in scenarios:
                # One Upstash round trip on its own: wrk straight at upstash-on-redis with the
                # request the service sends for a profile read (GETEX of this session's key).
                self.run_wrk(f"backend-direct-c{c}", self.launch.procs["upstash-on-redis"].pid,
                             self.up.port, c, "GETEX", "/", ["-s", str(self.lua["backend"])],
                             [f"session:{cookie.split('.')[0]}", self.token], target="backend",
                             label="backend direct (GETEX)", base=self.url.rstrip("/"), bport=0)
            if "profile" in scenarios:
                self.run_wrk(f"{label}-profile-c{c}", pid, port, c, "profile", "/profile/",
                             ["-H", f"Cookie: session_id={cookie}"], **run)
            if "forged" in scenarios:
                self.run_wrk(f"{label}-forged-c{c}", pid, port, c, "forged", "/profile/",
                             ["-H", f"Cookie: session_id={forged}"], **run)
            if "login" in scenarios:
                self.run_wrk(f"{label}-login-c{c}", pid, port, c, "login", "/login/",
                             ["-s", str(self.lua["login"])], **run)
            if "patch" in scenarios and label == "service":
                self.run_wrk(f"{label}-patch-c{c}", pid, port, c, "patch", "/profile/",
                             ["-s", str(self.lua["patch"])], [cookie], **run)

    def count_ops(self, port, label):
        """Exactly --ops logins, profiles, patches, logouts, forged and malformed-cookie
        profiles over one keep-alive connection, /__reset before and /__stats after each."""
        if not self.has_stats:
            return
        n = self.a.ops
        log(f"counting Upstash requests per operation for {label} (N={n} each)")
        svc = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        cookies, result = [], {}

        def measure(kind, fn):
            self.stats_reset()
            statuses = {}
            for i in range(n):
                s = fn(i)
                statuses[s] = statuses.get(s, 0) + 1
            st = self.stats()
            result[kind] = {"n": n, "statuses": statuses, "requests": st.get("requests"),
                            "commands": st.get("commands"),
                            "req_per_op": st.get("requests", 0) / n,
                            "cmd_per_op": st.get("commands", 0) / n}

        def login(i):
            s, v = call(svc, "POST", "/login/", body=json.dumps({"username": f"ops-user-{i}"}))
            cookies.append(v)
            return s

        measure("login", login)
        measure("profile", lambda i: call(svc, "GET", "/profile/", cookie=cookies[i])[0])
        measure("patch", lambda i: call(svc, "PATCH", "/profile/", cookie=cookies[i],
                                        body=json.dumps({"cart": {"apple": i}}),
                                        content_type="application/merge-patch+json")[0])
        measure("logout", lambda i: call(svc, "POST", "/logout/", cookie=cookies[i])[0])
        measure("forged", lambda i: call(svc, "GET", "/profile/", cookie=forged_cookie())[0])
        measure("malformed", lambda i: call(svc, "GET", "/profile/",
                                            cookie=f"not-a-session-{i}")[0])
        (self.results / f"ops-{label}.json").write_text(json.dumps(result, indent=1))
        self.add_row({"ops": label, "result": result})
        for k, v in result.items():
            log("   %-9s %5.2f requests/op  %5.2f commands/op  statuses %s"
                % (k, v["req_per_op"], v["cmd_per_op"], v["statuses"]))

    def start(self, name, argv, settings, health="/healthz", port=None):
        """`argv` from the empty run directory with only PATH, HOME, HOST, PORT (`port`, or a
        free one) and `settings`, once it answers HTTP on `health`: returns (process, port)."""
        port = port or free_port()
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
               "HOST": "127.0.0.1", "PORT": str(port), **settings}
        log(f"starting {name} on 127.0.0.1:{port}")
        proc = self.launch.start(name, argv, env, cwd=self.run_dir)
        try:
            wait_http(port, health, proc, name, timeout=60)
        except SystemExit:
            die(f"{name} did not start (see {self.results}/{name}.log)")
        return proc, port

    def million(self, pid, port):
        a = self.a
        count = int(os.environ.get("MILLION_COUNT", "1000000"))
        timeout = int(os.environ.get("MILLION_TIMEOUT", "300"))
        chunk_d = os.environ.get("MILLION_CHUNK", "3s")
        mc = a.conns[0]
        before = tree_kb(pid, "VmRSS")
        users = f"{a.million_users} users" if a.million_users else "a distinct user per session"
        log(f"million: logging in until {count} sessions exist ({users}; wrk -t{a.threads} "
            f"-c{mc} in {chunk_d} chunks, at most {timeout}s)")
        # wrk's thread:stop() ends a thread early but wrk still waits out -d: run short chunks,
        # each asking for what is still missing, so at most one chunk's tail is idle.
        t0, s0 = tree_ticks(pid), time.monotonic()
        ok_total = req_total = chunk = 0
        with open(self.results / "million.wrk.txt", "w") as all_out:
            while ok_total < count:
                if time.monotonic() - s0 >= timeout:
                    log(f"million: time is up after {ok_total} sessions")
                    break
                chunk += 1
                per_thread = -(-(count - ok_total) // a.threads)
                r = subprocess.run(
                    ["wrk", f"-t{a.threads}", f"-c{mc}", f"-d{chunk_d}", "--latency", "--timeout",
                     "5s", "-s", str(self.lua["million"]), f"http://127.0.0.1:{port}/login/",
                     "--", str(per_thread), str(chunk), str(a.million_users)],
                    capture_output=True, text=True)
                text = r.stdout + r.stderr
                all_out.write(text)
                m = re.search(r"^logins_ok (\d+)$", text, re.M)
                ok = int(m.group(1)) if m else 0
                if ok <= 0:
                    log(f"million: a chunk made no session (see {all_out.name})")
                    break
                ok_total += ok
                req_total += parse_wrk(text)["requests"]
        t1, s1 = tree_ticks(pid), time.monotonic()
        time.sleep(1)
        after, hwm = tree_kb(pid, "VmRSS"), tree_kb(pid, "VmHWM")
        row = {"scenario": "million-login", "op": "login", "target": "service", "conns": mc,
               "requests": req_total, "non2xx": req_total - ok_total, "sessions": ok_total,
               "users": users, "rps": ok_total / (s1 - s0), "p50_us": None, "p99_us": None,
               "cpu_us_per_req": (t1 - t0) / CLK_TCK * 1e6 / req_total if req_total else None,
               "peak_rss_kb": hwm, "rss_end_kb": after, "rss_load_max_kb": None,
               "rss_before_kb": before,
               "bytes_per_session": (after - before) * 1024 / ok_total if ok_total else None}
        self.add_row(row)
        log("   %d sessions in %.1f s; RSS %.1f MiB (was %.1f MiB, peak %.1f MiB): %.0f bytes/session"
            % (ok_total, s1 - s0, after / 1024, before / 1024, hwm / 1024,
               row["bytes_per_session"] or 0))
        # profile lookups with the million sessions in place
        self.scenarios(pid, port, "service-1M", {"profile"}, target="service")

    def yardstick(self, label, argv, settings, has_stats, bport):
        """A comparison server (floor, reference): the profile scenario against it. Without
        `has_stats` no Upstash counts; `bport`: the port whose connects to count (0: none)."""
        a = self.a
        if a.workers:
            settings = {**settings, "WORKERS": a.workers}
        proc, port = self.start(label, argv, settings)
        saved = self.has_stats
        self.has_stats = has_stats
        self.scenarios(proc.pid, port, label, {"profile"}, bport=bport)
        self.has_stats = saved
        self.launch.stop(label)

    def seed(self):
        app = SHARED / "anchors/seed_fastapi.py"
        if not app.is_file():
            log(f"skipped the seed: {app} is missing")
            return
        py = sys.executable
        if subprocess.run([py, "-c", "import fastapi, uvicorn, upstash_redis"],
                          capture_output=True).returncode != 0:
            log("pip install fastapi uvicorn upstash-redis")
            with open(self.results / "pip.log", "w") as f:
                if subprocess.run([py, "-m", "pip", "install", "-q", "fastapi", "uvicorn",
                                   "upstash-redis"], stdout=f, stderr=subprocess.STDOUT).returncode:
                    die(f"pip install failed (see {self.results}/pip.log)")
        port = free_port()
        proc, port = self.start("seed", [
            py, "-m", "uvicorn", "seed_fastapi:app", "--app-dir", str(app.parent), "--host",
            "127.0.0.1", "--port", str(port), "--log-level", "warning", "--workers", "1",
            "--no-access-log"], {"UPSTASH_REDIS_REST_URL": self.url,
                                 "UPSTASH_REDIS_REST_TOKEN": self.token}, "/profile/", port)
        self.scenarios(proc.pid, port, "seed", self.a.scenarios)
        self.count_ops(port, "seed")
        self.launch.stop("seed")


def build(args, results):
    """The profiling build of the service (and floor, reference); exits on failure."""
    binary = ROOT / "target/profiling/upstash-sessions"
    floor = ROOT / "target/profiling/examples/floor"
    ref_dir = BENCH / "reference/actix-session-redis"
    ref = ROOT / "target/reference/release/actix-session-reference"
    if not args.no_build:
        if not shutil.which("cargo"):
            die("cargo is missing (https://rustup.rs), or pass --no-build")
        steps = [("cargo build --profile profiling", "build.log", ROOT, {},
                  ["--profile", "profiling", "--bin", "upstash-sessions",
                   *(["--example", "floor"] if args.floor else [])])]
        if args.reference:
            steps.append(("cargo build --release (actix-session reference, its own lockfile)",
                          "reference-build.log", ref_dir,
                          {"CARGO_TARGET_DIR": str(ROOT / "target/reference")},
                          ["--release", "--locked"]))
        for what, logname, cwd, env, cargs in steps:
            log(what)
            with open(results / logname, "w") as f:
                if subprocess.run(["cargo", "build", *cargs], cwd=cwd, stdout=f,
                                  stderr=subprocess.STDOUT, env={**os.environ, **env}).returncode:
                    sys.stderr.write("".join(open(results / logname).readlines()[-30:]))
                    die(f"{what} failed (log: {results / logname})")
    if args.reference and not os.access(ref, os.X_OK):
        die(f"{ref} is missing: drop --no-build to build it")
    if args.floor and not os.access(floor, os.X_OK):
        die(f"{floor} is missing: build it (cargo build --profile profiling --example floor) "
            "or drop --no-build")
    if not os.access(binary, os.X_OK):
        die(f"{binary} is missing: build it or drop --no-build")
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True,
                                    text=True).stdout
    (results / "commit.txt").write_text(git("rev-parse", "--short", "HEAD")
                                        + git("status", "--porcelain", "--", "src", "Cargo.toml"))
    return binary, floor, ref


def main():
    a = options()
    ensure_tool("wrk")
    if a.mode == "local" and not backend.uor_available():
        log(f"skipped: --local-upstash needs {backend.UOR_SRC} (not in this checkout's parent); "
            "use --upstash URL TOKEN or the memory store")
        return
    name = time.strftime("%Y%m%d-%H%M%S") + f"-{a.mode}"
    name += f"-lat{a.latency_ms}ms" if a.mode == "local" and a.latency_ms else ""
    name += "-million" if a.million else ""
    name += f"-{a.million_users}users" if a.million and a.million_users else ""
    name += "-seed" if a.seed else ""
    name += "-floor" if a.floor else ""
    name += "-reference" if a.reference else ""
    results = BENCH / "results" / name
    results.mkdir(parents=True)
    log(f"results in {results}")
    binary, floor, ref = build(a, results)

    with Launcher(results) as launch:
        b = Bench(a, results, launch)
        b.start_backend()
        settings = {"COOKIE_SECURE": "false", "RUST_LOG": "warn", "LOG_FORMAT": "pretty",
                    # Every request comes from 127.0.0.1: the per-client limits stay on (their
                    # cost is part of what is measured) but are never reached.
                    "RATE_LIMIT_LOGIN": "1000000/s", "RATE_LIMIT_REQUESTS": "1000000/s"}
        if a.workers:
            settings["WORKERS"] = a.workers
        if b.up:
            settings.update(b.up.service_settings())
        if a.million:
            # A million sessions count about 269 MB, past the default MEMORY_STORE_MAX_BYTES.
            settings.update(SESSION_TTL_SECONDS="31536000", SESSION_ABSOLUTE_TTL_SECONDS="31536000",
                            MEMORY_STORE_MAX_BYTES=str(1 << 30))
        # SVC_ENV="UPSTASH_AUTO_PIPELINE=false ..." passes extra settings (A/B runs).
        settings.update(kv.partition("=")[::2] for kv in os.environ.get("SVC_ENV", "").split())
        proc, port = b.start("service", [str(binary)], settings)
        idle_rss = tree_kb(proc.pid, "VmRSS")
        log(f"service up (pid {proc.pid}, idle RSS {idle_rss // 1024} MiB)")
        if a.million:
            b.million(proc.pid, port)
        else:
            b.scenarios(proc.pid, port, "service", a.scenarios)
            b.count_ops(port, "service")
        launch.stop("service")

        # bench/floor.rs: the same HTTP answer with none of the service's code, and (with
        # a backend) the same after one reqwest round trip per request.
        if a.floor:
            b.yardstick("floor-static", [str(floor)], {}, False, 0)
            if b.url:
                b.yardstick("floor-rest", [str(floor)], {"FLOOR_UPSTREAM_URL": b.url,
                                                         "FLOOR_UPSTREAM_TOKEN": b.token},
                            b.has_stats, b.bport)
        # actix-session + RedisSessionStore (GET + EXPIRE per profile over the Redis protocol):
        # its "backend TCP connects" are its connections to redis-server.
        if a.reference:
            rport = b.redis()
            b.yardstick("reference", [str(ref)], {"REDIS_URL": f"redis://127.0.0.1:{rport}"},
                        False, rport)
        if a.seed:
            b.seed()
        summary(a, b.rows_path, results / "summary.md", b.url, idle_rss)
    log(f"raw outputs: {results}")


if __name__ == "__main__":
    main()
