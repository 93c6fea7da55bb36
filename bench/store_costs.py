#!/usr/bin/env python3
"""What the stores cost in bytes: the memory store's resident memory against its
`memory_store_bytes` gauge, and on upstash-on-redis the requests, billed commands and reply
bytes (`/__stats`) of each session operation, the listing of many sessions with large data
included.

usage: bench/store_costs.py memory   [--binary PATH] [--logins N] [--data-bytes N] [--port N]
       bench/store_costs.py upstash  [--binary PATH] [--sessions N] [--data-bytes N] [--port N]
                                     [--redis-port N] [--http-port N]

memory: starts the service on the memory store (MEMORY_STORE_MAX_BYTES 1 GiB, so nothing is
refused), logs in N distinct users each with `data` of about N bytes, and prints VmRSS before
and after, and the gauge. upstash: starts redis-server and upstash-on-redis (scripts/backend.py),
then counts, one operation at a time over one keep-alive connection: a login with that data,
a profile read, a logout, and `GET /sessions/` of one user holding N such sessions (twice: the
first also loads the listing script). The binary defaults to target/profiling/upstash-sessions
(`cargo build --profile profiling`); pass another build to compare. Python standard library.
"""

import argparse
import http.client
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from backend import Launcher, free_port, service_env, wait_http  # noqa: E402


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None, cookie=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if cookie:
            headers["Cookie"] = cookie
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        cookie = next((v.split(";")[0] for k, v in r.getheaders()
                       if k.lower() == "set-cookie" and v.startswith("session_id=")), None)
        return r.status, data, cookie

    def login(self, user, data_bytes):
        body = {"username": user}
        if data_bytes:
            body["data"] = {"d": "x" * max(data_bytes - 8, 0)}
        status, data, cookie = self.call("POST", "/login/", json.dumps(body))
        if status != 200:
            sys.exit(f"login of {user} answered {status}: {data[:200]!r}")
        return cookie

    def gauge(self, name):
        _, text, _ = self.call("GET", "/metrics")
        for line in text.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None


def start_service(launch, binary, port, settings):
    env = service_env({"PORT": str(port), "COOKIE_SECURE": "false", "RUST_LOG": "warn",
                       "WORKERS": "1", **settings})
    proc = launch.start("service", [str(binary)], env)
    wait_http(port, "/healthz", proc, "the service")
    return proc


def memory(args, launch):
    proc = start_service(launch, args.binary, args.port,
                         {"MEMORY_STORE_MAX_BYTES": str(1 << 30),
                          "SESSION_TTL_SECONDS": "3600"})
    client = Client(args.port)
    client.login("warm-up", args.data_bytes)
    client.call("POST", "/logout/", cookie=None)
    before = rss_kib(proc.pid)
    gauge_before = client.gauge("memory_store_bytes")
    for i in range(args.logins):
        client.login(f"user-{i:06}", args.data_bytes)
    time.sleep(0.5)
    after = rss_kib(proc.pid)
    gauge = client.gauge("memory_store_bytes")
    grown = (after - before) * 1024
    row = {"binary": str(args.binary), "logins": args.logins, "data_bytes": args.data_bytes,
           "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
           "rss_growth_bytes": grown, "memory_store_bytes": gauge,
           "gauge_growth": None if gauge is None else gauge - (gauge_before or 0)}
    if row["gauge_growth"]:
        row["rss_growth_per_gauge_byte"] = round(grown / row["gauge_growth"], 3)
    print(json.dumps(row))


def upstash(args, launch):
    rport = launch.redis(args.redis_port)
    up = launch.upstash(rport, args.http_port)
    start_service(launch, args.binary, args.port, up.service_settings())
    client = Client(args.port)

    def counted(what, fn):
        up.reset()
        result = fn()
        s = up.stats()
        print(json.dumps({"binary": str(args.binary), "operation": what,
                          "requests": s.get("requests"), "commands": s.get("commands"),
                          "reply_bytes": s.get("reply_bytes")}))
        return result

    # A profile read warms the connection pool so every count below is the operation alone.
    cookie = client.login("warm-up", 0)
    client.call("GET", "/profile/", cookie=cookie)
    cookie = counted(f"login ({args.data_bytes} B data)",
                     lambda: client.login("single", args.data_bytes))
    counted("profile", lambda: client.call("GET", "/profile/", cookie=cookie))
    counted("logout", lambda: client.call("POST", "/logout/", cookie=cookie))
    for _ in range(args.sessions):
        cookie = client.login("lister", args.data_bytes)
    for run in ("first", "again"):
        status, body, _ = counted(
            f"GET /sessions/ ({args.sessions} sessions x {args.data_bytes} B data, {run})",
            lambda: client.call("GET", "/sessions/", cookie=cookie))
        listed = len(json.loads(body)["sessions"]) if status == 200 else None
        if listed != args.sessions:
            sys.exit(f"the listing answered {status} with {listed} sessions")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["memory", "upstash"])
    ap.add_argument("--binary", type=Path, default=ROOT / "target/profiling/upstash-sessions")
    ap.add_argument("--logins", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--data-bytes", type=int, default=None,
                    help="serialized data per session (default 16384 memory, 15000 upstash)")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--redis-port", type=int, default=None)
    ap.add_argument("--http-port", type=int, default=None)
    args = ap.parse_args()
    if args.data_bytes is None:
        args.data_bytes = 16_384 if args.mode == "memory" else 15_000
    args.port = args.port or free_port()
    if not args.binary.exists():
        sys.exit(f"{args.binary} is missing: cargo build --profile profiling")
    with Launcher() as launch:
        (memory if args.mode == "memory" else upstash)(args, launch)


if __name__ == "__main__":
    main()
