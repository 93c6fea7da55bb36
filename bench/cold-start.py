#!/usr/bin/env python3
"""Cold start over HTTPS, as serverless platforms run it: a fresh process, and the request
that woke it sent as soon as the port accepts a connection.

Starts redis-server and upstash-on-redis over HTTPS (a throwaway CA and a `localhost`
certificate made with openssl, trusted through UPSTASH_CA_CERT), logs in once with a
first service process to get a session cookie, then starts the release (profiling) binary afresh for
each run, alternating UPSTASH_WARM_POOL=true and false, and measures:

* start to first 200: from just before the process is spawned to the end of the first
  `200` answer to `GET /profile/` with that cookie (connection attempts every 1 ms until
  the port accepts, then the request at once);
* first request: that request alone, from sending it to the end of its answer;
* second request: the next `GET /profile/` on the same connection, for comparison;
* first request once ready: in a separate start, the first `GET /profile/` sent 300 ms after
  `/healthz` first answered (a platform that waits for a readiness probe): the worker's
  connection is then open if it was warmed, and still to be made if not.

Wall-clock figures: on a shared machine, compare medians of many alternating runs.

usage: bench/cold-start.py [--runs N] [--workers N] [--no-build]
Builds with `cargo build --profile profiling` (target/profiling/upstash-sessions).
Needs redis-server, openssl and ../shared/tools/upstash-on-redis (built into
/tmp/uor-target when missing).
"""

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from instructions import PROFILE_DIR, build, log  # noqa: E402
from backend import Launcher, free_port, service_env, uor_available, wait_http  # noqa: E402


def first_profile(port, cookie, proc, deadline=30.0):
    """Connects as soon as the port accepts; returns (start->200 end, first, second) in ms."""
    end = time.monotonic() + deadline
    while True:
        if proc.poll() is not None:
            sys.exit(f"the service exited at start (code {proc.returncode})")
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            if time.monotonic() > end:
                sys.exit("the service did not accept connections")
            time.sleep(0.001)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.sock = sock
    headers = {"Cookie": f"session_id={cookie}"}
    sent = time.monotonic()
    conn.request("GET", "/profile/", headers=headers)
    r = conn.getresponse()
    r.read()
    done = time.monotonic()
    if r.status != 200:
        sys.exit(f"first GET /profile/ answered {r.status}")
    conn.request("GET", "/profile/", headers=headers)
    s2 = time.monotonic()
    r = conn.getresponse()
    r.read()
    second = time.monotonic() - s2
    conn.close()
    return done, (done - sent) * 1000, second * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20, help="runs per setting (default 20)")
    ap.add_argument("--workers", default="1", help="WORKERS of the service (default 1)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()

    binary = PROFILE_DIR / "upstash-sessions"
    if not args.no_build:
        build("--bin", "upstash-sessions")
    if not uor_available():
        log("skipped: needs ../shared/tools/upstash-on-redis")
        return

    with Launcher() as launch:
        up = launch.upstash(launch.redis(int(os.environ.get("REDIS_PORT") or 0) or None),
                            int(os.environ.get("UOR_PORT") or 0) or None, tls=True,
                            token="bench-token")
        env = service_env({"COOKIE_SECURE": "false", "RUST_LOG": "warn", "HOST": "127.0.0.1",
                           "WORKERS": args.workers, "SESSION_TTL_SECONDS": "3600",
                           **up.service_settings()})

        def start(warm):
            port = free_port()
            t0 = time.monotonic()
            proc = launch.start("service", [str(binary)],
                                {**env, "PORT": str(port), "UPSTASH_WARM_POOL": warm})
            return t0, port, proc

        def stop(_proc):
            launch.stop("service")

        # A session to read, made by another process (the cookie key derives from the token).
        _, port, proc = start("false")
        wait_http(port, "/healthz", proc, "the service")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/login/", body=json.dumps({"username": "cold"}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        m = re.search(r"session_id=([^;]+)", r.getheader("Set-Cookie") or "")
        stop(proc)
        if r.status != 200 or not m:
            sys.exit(f"login failed: {r.status}")
        cookie = m.group(1)

        results = {"true": [], "false": []}
        for i in range(args.runs * 2):
            warm = "true" if i % 2 == 0 else "false"
            t0, port, proc = start(warm)
            try:
                done, first, second = first_profile(port, cookie, proc)
            finally:
                stop(proc)
            _, port, proc = start(warm)
            try:
                wait_http(port, "/healthz", proc, "the service")
                time.sleep(0.3)
                _, ready_first, _ = first_profile(port, cookie, proc)
            finally:
                stop(proc)
            results[warm].append(((done - t0) * 1000, first, second, ready_first))

        print(f"\n## cold start over HTTPS (WORKERS={args.workers}, {args.runs} alternating runs each; ms)\n")
        print("| UPSTASH_WARM_POOL | start to first 200, median (min-max) | first request, median (min-max) | second request, median | first request once ready, median (min-max) |")
        print("|---|---:|---:|---:|---:|")
        for warm, rows in results.items():
            col = list(zip(*rows))
            cell = lambda xs: f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})"
            print(f"| {warm} | {cell(col[0])} | {cell(col[1])} | {statistics.median(col[2]):.2f} | {cell(col[3])} |")


if __name__ == "__main__":
    main()
