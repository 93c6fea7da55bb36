#!/usr/bin/env python3
"""End-to-end measurements of upstash-sessions against real Redis semantics.

Starts redis-server (unless one already answers on --redis-port), one upstash-on-redis per
scenario (../shared/tools/upstash-on-redis, restarted with each FAULT), both through
scripts/backend.py, and the release binary of the service (every variable it reads cleared from
the inherited environment), all on loopback, and prints a markdown report to stdout (progress goes to stderr):

  1. idle TTL sliding and the Upstash requests/commands of login, profile, logout, forged cookies
  2. the cost of GET /sessions/, DELETE /sessions/{id}, POST /logout/all/ for 1, 5, 20 sessions
  3. behaviour under injected faults (status500, 429, garbage, hang): flows, statuses, latencies
  4. "nothing lost": profile/logout races, concurrent logins

Python 3 standard library only. Every process it starts is stopped on exit; every loop is
bounded and the whole run has a time budget (--budget, seconds).

usage: python3 scripts/e2e-measure.py [--flows N] [--rounds N] [--sections 1,2,3,4] ... (see --help)
"""

import argparse
import collections
import concurrent.futures
import hashlib
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import backend  # noqa: E402  (scripts/backend.py: the one backend launcher)
from backend import port_open, service_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "e2e-measure-token"
COOKIE_NAME = "session_id"
START = time.monotonic()
BUDGET = [900.0]  # seconds; set from --budget

class BudgetExceeded(RuntimeError):
    pass


class Terminated(Exception):
    """SIGTERM/SIGHUP: stop measuring, stop the children, print what was measured."""


def on_signal(signum, _frame):
    raise Terminated(f"signal {signum}")


class ProcessExited(Exception):
    """A child exited while we waited for it: stop waiting."""


def check_budget():
    if time.monotonic() - START > BUDGET[0]:
        raise BudgetExceeded(f"time budget of {BUDGET[0]:.0f} s exceeded")


def log(msg):
    print(f"[{time.monotonic() - START:7.1f}s] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- processes

def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fn():
                return
        except (OSError, http.client.HTTPException, ValueError, RuntimeError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout} s")


# ----------------------------------------------------------------------------- HTTP

class Resp:
    __slots__ = ("status", "body", "cookies", "secs", "headers")

    def __init__(self, status, body, cookies, secs, headers):
        self.status, self.body, self.cookies, self.secs, self.headers = (
            status, body, cookies, secs, headers)

    def json(self):
        try:
            return json.loads(self.body)
        except (ValueError, TypeError):
            return None

    def session_cookie(self):
        """`session_id=<value>` from Set-Cookie, or None (absent or a removal cookie)."""
        for c in self.cookies:
            first = c.split(";", 1)[0].strip()
            if first.startswith(COOKIE_NAME + "="):
                value = first[len(COOKIE_NAME) + 1:]
                return f"{COOKIE_NAME}={value}" if value else None
        return None

    def cookie_attr(self, attr):
        for c in self.cookies:
            if c.startswith(COOKIE_NAME + "="):
                for part in c.split(";")[1:]:
                    k, _, v = part.strip().partition("=")
                    if k.lower() == attr.lower():
                        return v
        return None


def request(port, method, path, body=None, cookie=None, timeout=20.0, raw_headers=None):
    headers = {"Connection": "close"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if cookie is not None:
        headers["Cookie"] = cookie
    if raw_headers:
        headers.update(raw_headers)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        payload = r.read()
        result = Resp(r.status, payload, r.headers.get_all("Set-Cookie") or [],
                      time.perf_counter() - t0, {k.lower(): v for k, v in r.headers.items()})
    except (OSError, http.client.HTTPException) as e:
        result = Resp(f"ERR:{type(e).__name__}", b"", [], time.perf_counter() - t0, {})
    finally:
        conn.close()
    return result


def start_upstash(launch, name, port, redis_port, fault):
    """One upstash-on-redis instance (scripts/backend.py) with FAULT=`fault`."""
    return launch.upstash(redis_port, port, fault=fault, workers=2, token=TOKEN, name=name)


class Service:
    """One upstash-sessions process in front of an Upstash instance."""

    def __init__(self, launch, name, port, upstash, service_bin, extra_env=None):
        self.port = port
        self.name = name
        self.launch = launch
        # Every variable the service reads (src/settings.rs) is cleared from the inherited
        # environment, so a developer's shell cannot change what is measured.
        env = service_env({
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "COOKIE_SECURE": "false",
            **upstash.service_settings(),
            "UPSTASH_TIMEOUT_MS": "3000",
            "SESSION_TTL_SECONDS": "900",
            "SESSION_ABSOLUTE_TTL_SECONDS": "43200",
            "RUST_LOG": "warn",
            "LOG_FORMAT": "json",
            # Every request comes from 127.0.0.1: limits on, never reached.
            "RATE_LIMIT_LOGIN": "1000000/s",
            "RATE_LIMIT_REQUESTS": "1000000/s",
        })
        env.update(extra_env or {})
        if port_open(port):
            raise RuntimeError(f"port {port} is already in use: pick another with --service-port")
        # cwd is the scratch directory: the service loads ./.env, which must not be the repo's.
        self.proc = launch.start(name, [service_bin], env)
        t0 = time.monotonic()

        def up():
            if self.proc.poll() is not None:
                raise ProcessExited(f"{name} exited with {self.proc.returncode} (see its log)")
            return request(port, "GET", "/healthz", timeout=2).status == 200

        wait_for(f"service ({name})", up, 20)
        self.startup_secs = time.monotonic() - t0

    def stop(self):
        self.launch.stop(self.name)


class Redis:
    def __init__(self, port):
        self.port = port

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "--raw", *map(str, args)],
                             capture_output=True, text=True, timeout=15)
        if out.returncode != 0:
            raise RuntimeError(f"redis-cli {args}: {out.stderr.strip()}")
        return out.stdout.strip()

    def ttl(self, key):
        return int(self.cli("TTL", key))

    def exists(self, *keys):
        return int(self.cli("EXISTS", *keys)) if keys else 0

    def zcard(self, key):
        return int(self.cli("ZCARD", key))

    def zrange(self, key):
        out = self.cli("ZRANGE", key, 0, -1)
        return [x for x in out.splitlines() if x]


# ----------------------------------------------------------------------------- helpers

def sid_of(cookie):
    """The session id inside a `session_id=<id>.<tag>` cookie."""
    return cookie.split("=", 1)[1].split(".", 1)[0]


def ms(secs):
    return f"{secs * 1000:.1f}"


def status_counts(statuses):
    c = collections.Counter(str(s) for s in statuses)
    return ", ".join(f"{k}×{v}" for k, v in sorted(c.items())) or "-"


def lat(values):
    if not values:
        return "-", "-"
    return ms(statistics.median(values)), ms(max(values))


class Cost:
    """Upstash requests/commands of one operation, from /__stats reset just before it."""

    def __init__(self, upstash):
        self.upstash = upstash

    def __call__(self, fn):
        self.upstash.reset()
        result = fn()
        s = self.upstash.stats()
        return result, s["requests"], s["commands"]


def login(port, user, cookie=None, timeout=20.0):
    return request(port, "POST", "/login/", {"username": user}, cookie=cookie, timeout=timeout)


# ----------------------------------------------------------------------------- section 1

def section_ttl_and_costs(out, svc, ups, redis, run):
    log("section 1: TTL sliding and per-operation cost")
    cost = Cost(ups)
    user = f"{run}-ttl"
    out.append("## 1. Issue 3: idle TTL sliding and Upstash cost per operation\n")

    r, req_login, cmd_login = cost(lambda: login(svc.port, user))
    assert r.status == 200, f"login answered {r.status}: {r.body!r}"
    cookie = r.session_cookie()
    sid = r.json()["session_id"]
    key = f"session:{sid}"
    ttl_login = redis.ttl(key)
    t_sleep = time.monotonic()
    time.sleep(3.0)
    ttl_sleep = redis.ttl(key)
    slept = time.monotonic() - t_sleep
    p, req_prof, cmd_prof = cost(lambda: request(svc.port, "GET", "/profile/", cookie=cookie))
    ttl_prof = redis.ttl(key)
    zttl = redis.ttl(f"user_sessions:{user}")
    prof_ok = p.status == 200 and (p.json() or {}).get("session_id") == sid
    prof_data = (p.json() or {}).get("session_data")

    out.append(f"Session `{key}` (user `{user}`), SESSION_TTL_SECONDS=900, "
               "SESSION_ABSOLUTE_TTL_SECONDS=43200.\n")
    out.append("| moment | `redis-cli TTL session:<id>` | expected |")
    out.append("|---|---|---|")
    out.append(f"| right after POST /login/ | {ttl_login} | 900 (or 899) |")
    out.append(f"| after sleeping {slept:.1f} s | {ttl_sleep} | ~897 |")
    out.append(f"| right after GET /profile/ (status {p.status}) | {ttl_prof} | 900 (or 899) |")
    out.append(f"| `user_sessions:{user}` index key | {zttl} | ~43200 (absolute lifetime) |")
    out.append("")
    out.append(f"GET /profile/ answered {p.status}, same session id: {prof_ok}, "
               f"Set-Cookie Max-Age={p.cookie_attr('Max-Age')}; session_data = "
               f"`{json.dumps(prof_data, sort_keys=True)}`\n")

    rows = [("POST /login/ (no cookie)", r.status, req_login, cmd_login, "1 / 4")]
    rows.append(("GET /profile/", p.status, req_prof, cmd_prof, "1 / 1"))

    # Login while holding a valid cookie: the old session is ended in the same request.
    r2, req_rot, cmd_rot = cost(lambda: login(svc.port, user, cookie=cookie))
    cookie2 = r2.session_cookie()
    sid2 = (r2.json() or {}).get("session_id")
    old_exists = redis.exists(key)
    rows.append(("POST /login/ holding a valid cookie (rotation)", r2.status, req_rot, cmd_rot,
                 "1 / 5"))
    o, req_out, cmd_out = cost(lambda: request(svc.port, "POST", "/logout/", cookie=cookie2))
    new_exists = redis.exists(f"session:{sid2}")
    rows.append(("POST /logout/", o.status, req_out, cmd_out, "1 / 1"))
    a, req_after, cmd_after = cost(lambda: request(svc.port, "GET", "/profile/", cookie=cookie2))
    rows.append(("GET /profile/ with the logged-out cookie", a.status, req_after, cmd_after,
                 "404, 1 / 1"))
    lo, req_lo0, cmd_lo0 = cost(lambda: request(svc.port, "POST", "/logout/"))
    rows.append(("POST /logout/ without a cookie", lo.status, req_lo0, cmd_lo0, "200, 0 / 0"))

    # Forged and malformed cookies: must be refused before any store request.
    live = login(svc.port, user + "-live")
    live_cookie = live.session_cookie()
    live_sid, live_tag = live_cookie.split("=", 1)[1].split(".", 1)
    flipped = live_tag[:-1] + ("A" if live_tag[-1] != "A" else "B")
    forged = {
        "forged: live id, last tag char changed": f"{COOKIE_NAME}={live_sid}.{flipped}",
        "forged: random uuid with a live tag": f"{COOKIE_NAME}={uuid.uuid4()}.{live_tag}",
        "forged: live id, no tag": f"{COOKIE_NAME}={live_sid}",
        "forged: live id, tag of 43 'A'": f"{COOKIE_NAME}={live_sid}.{'A' * 43}",
        "malformed: `garbage`": f"{COOKIE_NAME}=garbage",
        "malformed: empty value": f"{COOKIE_NAME}=",
        "malformed: 4000 bytes": f"{COOKIE_NAME}={'x' * 4000}",
        "malformed: `../../etc/passwd.%00`": f"{COOKIE_NAME}=../../etc/passwd.%00",
        "malformed: quoted value": f'{COOKIE_NAME}="{live_sid}.{live_tag}x"',
    }
    for label, c in forged.items():
        f, req_f, cmd_f = cost(lambda c=c: request(svc.port, "GET", "/profile/", cookie=c))
        rows.append((f"GET /profile/ {label}", f.status, req_f, cmd_f, "404, 0 / 0"))
    n, req_n, cmd_n = cost(lambda: request(svc.port, "GET", "/profile/"))
    rows.append(("GET /profile/ without a cookie", n.status, req_n, cmd_n, "403, 0 / 0"))
    live_ttl = redis.ttl(f"session:{live_sid}")
    request(svc.port, "POST", "/logout/", cookie=live_cookie)

    out.append("| operation | status | Upstash requests | commands | expected (req / cmd) |")
    out.append("|---|---|---|---|---|")
    for label, status, req, cmd, exp in rows:
        out.append(f"| {label} | {status} | {req} | {cmd} | {exp} |")
    out.append("")
    out.append(f"After the rotating login: old `session:{sid}` EXISTS = {old_exists} (expected 0); "
               f"after POST /logout/: `session:{sid2}` EXISTS = {new_exists} (expected 0). "
               f"The live session targeted by the forged cookies still exists with TTL {live_ttl}.\n")


# ----------------------------------------------------------------------------- section 2

def section_user_sessions(out, svc, ups, redis, run):
    log("section 2: per-user operations for 1, 5, 20 sessions")
    cost = Cost(ups)
    out.append("## 2. Issue 6: per-user operations do not cost more with more sessions\n")
    out.append("Each row: a user holding N live sessions; the request comes with the cookie of "
               "the first one. `ZCARD` is `user_sessions:<user>` right after the operation.\n")
    out.append("| N | operation | status | result | Upstash requests | commands | ZCARD after |")
    out.append("|---|---|---|---|---|---|---|")
    notes = []
    for n in (1, 5, 20):
        check_budget()
        user = f"{run}-many{n}"
        zkey = f"user_sessions:{user}"
        cookies = []
        for _ in range(n):
            r = login(svc.port, user)
            assert r.status == 200, f"login answered {r.status}"
            cookies.append(r.session_cookie())
        ids = [sid_of(c) for c in cookies]
        out.append(f"| {n} | {n} × POST /login/ | 200 | - | - | - | {redis.zcard(zkey)} |")

        lst, rq, cm = cost(lambda: request(svc.port, "GET", "/sessions/", cookie=cookies[0]))
        listed = (lst.json() or {}).get("sessions", [])
        current = [s["session_id"] for s in listed if s.get("current")]
        ok = sorted(s["session_id"] for s in listed) == sorted(ids) and current == [ids[0]]
        out.append(f"| {n} | GET /sessions/ | {lst.status} | {len(listed)} listed, "
                   f"ids match: {ok} | {rq} | {cm} | {redis.zcard(zkey)} |")

        # DELETE another session (or, with N = 1, the current one), then log in again so the
        # user holds N sessions for /logout/all/.
        target = ids[1] if n > 1 else ids[0]
        d, rq, cm = cost(lambda: request(svc.port, "DELETE", f"/sessions/{target}",
                                         cookie=cookies[0]))
        gone = redis.exists(f"session:{target}") == 0
        what = "another session" if n > 1 else "the current session"
        out.append(f"| {n} | DELETE /sessions/{{id}} ({what}) | {d.status} | key gone: {gone} | "
                   f"{rq} | {cm} | {redis.zcard(zkey)} |")
        if n == 1:
            r = login(svc.port, user)
            cookies = [r.session_cookie()]
        else:
            r = login(svc.port, user)
            cookies = [cookies[0]] + cookies[2:] + [r.session_cookie()]
        ids = [sid_of(c) for c in cookies]

        # DELETE of an id that is not the user's (another user's live session): 404.
        other = login(svc.port, f"{user}-other")
        other_id = other.json()["session_id"]
        d2, rq2, cm2 = cost(lambda: request(svc.port, "DELETE", f"/sessions/{other_id}",
                                            cookie=cookies[0]))
        other_alive = redis.exists(f"session:{other_id}") == 1
        out.append(f"| {n} | DELETE /sessions/{{another user's id}} | {d2.status} | "
                   f"their session intact: {other_alive} | {rq2} | {cm2} | {redis.zcard(zkey)} |")
        request(svc.port, "POST", "/logout/", cookie=other.session_cookie())

        la, rq, cm = cost(lambda: request(svc.port, "POST", "/logout/all/", cookie=cookies[0]))
        ended = (la.json() or {}).get("ended")
        left = redis.exists(*[f"session:{i}" for i in ids])
        out.append(f"| {n} | POST /logout/all/ (holding {len(ids)}) | {la.status} | "
                   f"ended={ended}, keys left: {left} | {rq} | {cm} | {redis.zcard(zkey)} |")
        if redis.exists(zkey):
            notes.append(f"`{zkey}` still exists after /logout/all/")

    # Plain logouts leave their ids in the index (pruned by absolute expiry only).
    check_budget()
    user = f"{run}-churn"
    zkey = f"user_sessions:{user}"
    k = 20
    for _ in range(k):
        r = login(svc.port, user)
        request(svc.port, "POST", "/logout/", cookie=r.session_cookie())
    z_after_logouts = redis.zcard(zkey)
    r = login(svc.port, user)
    lst, rq, cm = cost(lambda: request(svc.port, "GET", "/sessions/", cookie=r.session_cookie()))
    listed = len((lst.json() or {}).get("sessions", []))
    z_after_list = redis.zcard(zkey)
    la, rq2, cm2 = cost(lambda: request(svc.port, "POST", "/logout/all/",
                                        cookie=r.session_cookie()))
    out.append(f"| churn | {k} × (POST /login/ + POST /logout/) | 200 | - | - | - | "
               f"{z_after_logouts} |")
    out.append(f"| churn | + 1 login, GET /sessions/ | {lst.status} | {listed} listed | {rq} | {cm} "
               f"| {z_after_list} |")
    out.append(f"| churn | POST /logout/all/ | {la.status} | "
               f"ended={(la.json() or {}).get('ended')} | {rq2} | {cm2} | {redis.zcard(zkey)} |")
    out.append("")
    out.append("Expected: GET /sessions/ 3 requests (GETEX; ZREMRANGEBYSCORE+ZRANGE; MGET), "
               "DELETE 3 (GETEX; ZSCORE; DEL+ZREM), /logout/all/ 3 (GETEX; ZRANGE; DEL+ZREM), "
               "whatever N is. The churn rows show what a plain POST /logout/ leaves in the index: "
               "its id stays in `user_sessions:<user>` until the session's absolute expiry "
               "(12 h), so the MGET of GET /sessions/ carries every id logged out within that "
               "time (still one request and one command).\n")
    for note in notes:
        out.append(f"- {note}")
    if notes:
        out.append("")


# ----------------------------------------------------------------------------- section 3

def run_flow(port, user, spare_cookie, timeout=20.0):
    """login → profile → logout on the service under test. When the login fails, profile and
    logout still run, with a session made beforehand on the healthy service (same token, same
    Redis), so every endpoint is measured. Returns a dict of results."""
    res = {"user": user}
    lg = login(port, user, timeout=timeout)
    res["login"] = lg
    cookie = lg.session_cookie() if lg.status == 200 else None
    res["own"] = cookie is not None
    if cookie is None:
        cookie = spare_cookie
    res["sid"] = sid_of(cookie)
    pf = request(port, "GET", "/profile/", cookie=cookie, timeout=timeout)
    res["profile"] = pf
    res["profile_same"] = pf.status == 200 and (pf.json() or {}).get("session_id") == res["sid"]
    lo = request(port, "POST", "/logout/", cookie=cookie, timeout=timeout)
    res["logout"] = lo
    res["ok"] = (res["own"] and lg.status == 200 and res["profile_same"] and lo.status == 200)
    return res


def section_faults(out, launch, args, redis, base_svc, run, scenarios):
    log("section 3: faults")
    out.append("## 3. Issue 4: behaviour under Upstash faults\n")
    out.append("One fresh upstash-on-redis per scenario (`FAULT` = every Nth request since "
               "start/reset fails; `hang` stalls 30 s and then runs the command), one fresh "
               "service in front of it (UPSTASH_TIMEOUT_MS=3000). A flow is POST /login/ → "
               "GET /profile/ → POST /logout/; it succeeds when all three answer 200 with the "
               "same session. When a login fails, profile and logout still run with a session "
               "made beforehand through a healthy instance (same token and Redis), so each "
               "endpoint is measured. Times are client-side wall times in ms.\n")
    summary = []
    for fault, n_seq, n_conc in scenarios:
        check_budget()
        label = fault.replace(":", "-")
        log(f"  scenario FAULT={fault}: {n_seq} sequential + {n_conc} concurrent flows")
        # Spare sessions for flows whose login fails, made through the healthy service.
        spares = []
        for i in range(n_seq + n_conc):
            r = login(base_svc.port, f"{run}-{label}-spare{i}")
            assert r.status == 200, f"spare login answered {r.status}"
            spares.append(r.session_cookie())
        ups = start_upstash(launch, f"uor-fault-{label}", args.uor_port + 1, args.redis_port,
                            fault)
        svc = None
        try:
            t0 = time.monotonic()
            svc = Service(launch, f"svc-fault-{label}", args.service_port + 1, ups,
                          args.service_bin)
            startup = time.monotonic() - t0
            phases = []
            ups.reset()
            t_seq = time.monotonic()
            seq = []
            for i in range(n_seq):
                check_budget()
                seq.append(run_flow(svc.port, f"{run}-{label}-s{i}", spares[i]))
            t_seq = time.monotonic() - t_seq
            st_seq = ups.stats()
            phases.append(("sequential", seq, t_seq, st_seq))
            ups.reset()
            t_conc = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, n_conc)) as pool:
                futs = [pool.submit(run_flow, svc.port, f"{run}-{label}-c{i}", spares[n_seq + i])
                        for i in range(n_conc)]
                conc = [f.result(timeout=120) for f in futs]
            t_conc = time.monotonic() - t_conc
            st_conc = ups.stats()
            phases.append((f"concurrent ({n_conc} threads)", conc, t_conc, st_conc))
            flows = seq + conc
            last_request = time.monotonic()

            # Consistency: a logout answered 200 must have deleted the key.
            def kept_after_200():
                return sum(1 for f in flows if f["logout"].status == 200
                           and redis.exists(f"session:{f['sid']}") == 1)

            kept200 = kept_after_200()
            failed_logouts = [f for f in flows if f["logout"].status != 200]
            alive_now = sum(redis.exists(f"session:{f['sid']}") for f in failed_logouts)
            late = None
            if fault.startswith("hang"):
                # Stalled requests run their command after 30 s: wait and look again.
                wait = max(0.0, 32.0 - (time.monotonic() - last_request))
                log(f"  waiting {wait:.0f} s for stalled requests to run their commands")
                time.sleep(wait)
                alive_late = sum(redis.exists(f"session:{f['sid']}") for f in failed_logouts)
                late = alive_late
            # Ghost sessions: indexed for a flow's user but never returned to the client.
            ghosts = 0
            ghosts_alive = 0
            for f in flows:
                given = {(f["login"].json() or {}).get("session_id")} if f["own"] else set()
                members = redis.zrange(f"user_sessions:{f['user']}")
                extra = [m for m in members if m not in given]
                ghosts += len(extra)
                ghosts_alive += redis.exists(*[f"session:{m}" for m in extra])

            out.append(f"### FAULT={fault}\n")
            out.append(f"Service start (PING at start included): {startup:.2f} s.\n")
            out.append("| phase | flows ok | endpoint | n | statuses | median ms | max ms |")
            out.append("|---|---|---|---|---|---|---|")
            for name, fl, _, _ in phases:
                okc = f"{sum(f['ok'] for f in fl)}/{len(fl)}"
                for ep, key in (("POST /login/", "login"), ("GET /profile/", "profile"),
                                ("POST /logout/", "logout")):
                    rs = [f[key] for f in fl]
                    med, mx = lat([r.secs for r in rs])
                    out.append(f"| {name} | {okc} | {ep} | {len(rs)} | "
                               f"{status_counts(r.status for r in rs)} | {med} | {mx} |")
            out.append("")
            for name, fl, secs, st in phases:
                out.append(f"- {name}: {len(fl)} flows in {secs:.2f} s; Upstash saw "
                           f"{st['requests']} requests, {st['commands']} commands "
                           f"({st['requests'] / max(1, len(fl)):.2f} requests per flow; "
                           "a flow costs 3 without faults)")
            retry_after = collections.Counter(
                f[k].headers.get("retry-after") for f in flows for k in ("login", "profile",
                                                                         "logout")
                if f[k].status == 503)
            if retry_after:
                out.append(f"- Retry-After on the 503s: "
                           f"{', '.join(f'{k!s}×{v}' for k, v in retry_after.items())}")
            bodies = collections.Counter(
                (f[k].status, f[k].body.decode(errors="replace")) for f in flows
                for k in ("login", "profile", "logout") if f[k].status != 200)
            for (status, body), c in sorted(bodies.items(), key=lambda x: str(x[0])):
                out.append(f"- body of the {status}s ({c}): `{body[:120]}`")
            out.append(f"- logouts answered 200 whose key still exists: {kept200} (expected 0)")
            out.append(f"- logouts not answered 200: {len(failed_logouts)}; their session key "
                       f"still exists right after the run: {alive_now}")
            if late is not None:
                out.append(f"- ... and 32 s after the last request (stalled DELs have run): "
                           f"{late}")
            out.append(f"- sessions in the flows' user indexes that no client was given "
                       f"(a failed login's write landing anyway): {ghosts}, of which "
                       f"{ghosts_alive} have a live `session:` key")
            out.append("")
            allflows = [f for _, fl, _, _ in phases for f in fl]
            summary.append((fault, sum(f["ok"] for f in allflows), len(allflows),
                            max(f[k].secs for f in allflows for k in ("login", "profile",
                                                                      "logout"))))
        finally:
            if svc is not None:
                svc.stop()
            launch.stop(ups.name)
        for c in spares:  # tidy the spares that are still there
            redis.cli("DEL", f"session:{sid_of(c)}")
    out.append("| FAULT | flows fully ok | slowest response (ms) |")
    out.append("|---|---|---|")
    for fault, okc, total, mx in summary:
        out.append(f"| {fault} | {okc}/{total} | {ms(mx)} |")
    out.append("")


# ----------------------------------------------------------------------------- section 4

def section_nothing_lost(out, svc, ups, redis, run, rounds, n_logins, pool_size):
    log(f"section 4: {rounds} profile/logout races, {n_logins} concurrent logins")
    out.append("## 4. Issue 4: nothing lost, nothing resurrected (FAULT=none)\n")
    resurrections = []
    race_profile = collections.Counter()
    race_logout = collections.Counter()
    final_status = collections.Counter()
    login_fail = 0
    barrier = threading.Barrier(2, timeout=30)

    def after_barrier(fn):
        barrier.wait()
        return fn()

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for i in range(rounds):
            check_budget()
            r = login(svc.port, f"{run}-race{i}")
            if r.status != 200:
                login_fail += 1
                continue
            cookie = r.session_cookie()
            sid = r.json()["session_id"]
            barrier.reset()
            fp = pool.submit(after_barrier,
                             lambda: request(svc.port, "GET", "/profile/", cookie=cookie))
            fo = pool.submit(after_barrier,
                             lambda: request(svc.port, "POST", "/logout/", cookie=cookie))
            p, o = fp.result(timeout=60), fo.result(timeout=60)
            race_profile[p.status] += 1
            race_logout[o.status] += 1
            final = request(svc.port, "GET", "/profile/", cookie=cookie)
            final_status[final.status] += 1
            exists = redis.exists(f"session:{sid}")
            if final.status != 404 or exists != 0:
                resurrections.append((i, sid, p.status, o.status, final.status, exists))
    out.append(f"{rounds} rounds of: POST /login/, then GET /profile/ and POST /logout/ released "
               "together from two threads, then a final GET /profile/ and "
               "`EXISTS session:<id>`.\n")
    out.append("| what | result | expected |")
    out.append("|---|---|---|")
    out.append(f"| failed logins | {login_fail} | 0 |")
    out.append(f"| racing GET /profile/ statuses | {status_counts(race_profile.elements())} | "
               "200 or 404 |")
    out.append(f"| racing POST /logout/ statuses | {status_counts(race_logout.elements())} | "
               "all 200 |")
    out.append(f"| final GET /profile/ statuses | {status_counts(final_status.elements())} | "
               "all 404 |")
    out.append(f"| resurrections (final profile not 404, or key still there) | "
               f"{len(resurrections)} | 0 |")
    out.append("")
    for item in resurrections[:10]:
        out.append(f"- resurrected: round {item[0]}, session {item[1]}: racing profile "
                   f"{item[2]}, logout {item[3]}, final profile {item[4]}, EXISTS {item[5]}")
    if resurrections:
        out.append("")

    # Concurrent logins: distinct ids, all readable.
    check_budget()
    users = [f"{run}-burst{i % 10}" for i in range(n_logins)]
    ups.reset()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=pool_size) as pool:
        logins = list(pool.map(lambda u: login(svc.port, u), users, timeout=300))
    t_login = time.monotonic() - t0
    st_login = ups.stats()
    ok = [(u, r) for u, r in zip(users, logins) if r.status == 200]
    ids = [r.json()["session_id"] for _, r in ok]
    cookie_ids = [sid_of(r.session_cookie()) for _, r in ok]
    ups.reset()
    t0 = time.monotonic()

    def read(pair):
        u, r = pair
        p = request(svc.port, "GET", "/profile/", cookie=r.session_cookie())
        data = p.json() or {}
        good = (p.status == 200 and data.get("session_id") == r.json()["session_id"]
                and (data.get("session_data") or {}).get("user") == u)
        return p, good

    with concurrent.futures.ThreadPoolExecutor(max_workers=pool_size) as pool:
        reads = list(pool.map(read, ok, timeout=300))
    t_read = time.monotonic() - t0
    st_read = ups.stats()
    zsizes = collections.Counter(redis.zcard(f"user_sessions:{run}-burst{i}") for i in range(10))
    per_user = collections.Counter(users)
    med_l, max_l = lat([r.secs for r in logins])
    med_r, max_r = lat([p.secs for p, _ in reads])
    out.append(f"{n_logins} concurrent POST /login/ (thread pool of {pool_size}, 10 users × "
               f"{n_logins // 10} sessions), then every session read back concurrently.\n")
    out.append("| what | result | expected |")
    out.append("|---|---|---|")
    out.append(f"| login statuses | {status_counts(r.status for r in logins)} | "
               f"all 200 |")
    out.append(f"| distinct session ids | {len(set(ids))} of {len(ids)} | all distinct |")
    out.append(f"| cookie id = body id | {sum(a == b for a, b in zip(ids, cookie_ids))} of "
               f"{len(ids)} | all |")
    out.append(f"| readable: GET /profile/ 200 with the same id and user | "
               f"{sum(g for _, g in reads)} of {len(reads)} | all |")
    out.append(f"| profile statuses | {status_counts(p.status for p, _ in reads)} | all 200 |")
    out.append(f"| `ZCARD user_sessions:<user>` over the 10 users | "
               f"{status_counts(zsizes.elements())} | "
               f"{max(per_user.values())}×10 |")
    out.append(f"| logins: wall time, median / max ms, Upstash requests | {t_login:.2f} s, "
               f"{med_l} / {max_l}, {st_login['requests']} | {n_logins} requests |")
    out.append(f"| reads: wall time, median / max ms, Upstash requests | {t_read:.2f} s, "
               f"{med_r} / {max_r}, {st_read['requests']} | {len(ok)} requests |")
    out.append("")


# ----------------------------------------------------------------------------- main

def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--service-bin", default=os.path.join(ROOT, "target/release/upstash-sessions"))
    ap.add_argument("--uor-bin", help="default: $UOR_BIN, or built into $UOR_TARGET "
                    "(/tmp/uor-target) by scripts/backend.py when missing")
    ap.add_argument("--redis-port", type=int, default=6385)
    ap.add_argument("--uor-port", type=int, default=8095,
                    help="healthy instance; the fault scenarios use the next port")
    ap.add_argument("--service-port", type=int, default=8105,
                    help="healthy instance; the fault scenarios use the next port")
    ap.add_argument("--flows", type=int, default=50, help="sequential flows per fault scenario")
    ap.add_argument("--concurrent", type=int, default=20, help="concurrent flows per scenario")
    ap.add_argument("--hang-flows", type=int, default=5, help="flows (each phase) for hang:1")
    ap.add_argument("--rounds", type=int, default=200, help="profile/logout race rounds")
    ap.add_argument("--logins", type=int, default=300, help="concurrent logins")
    ap.add_argument("--pool", type=int, default=50, help="thread pool for the logins")
    ap.add_argument("--sections", default="1,2,3,4")
    ap.add_argument("--built-from", default="", help="what the binary was built from, for the report")
    ap.add_argument("--budget", type=float, default=900.0, help="time budget in seconds")
    ap.add_argument("--keep-logs", action="store_true", help="keep the process logs")
    args = ap.parse_args()
    BUDGET[0] = args.budget
    sections = {s.strip() for s in args.sections.split(",")}

    if not os.access(args.service_bin, os.X_OK):
        sys.exit(f"missing binary {args.service_bin} (cargo build --release)")
    backend.ensure_tool("redis-server")
    backend.ensure_tool("redis-cli", "redis-tools")

    scratch = tempfile.mkdtemp(prefix="e2e-measure-")
    # A private copy of the binary: a rebuild during the run must not swap it.
    service_bin = os.path.join(scratch, "svc-under-test")
    shutil.copy2(args.service_bin, service_bin)
    bin_mtime = time.strftime("%Y-%m-%d %H:%M:%S",
                              time.localtime(os.path.getmtime(args.service_bin)))
    with open(service_bin, "rb") as f:
        bin_sha = hashlib.sha256(f.read()).hexdigest()[:12]
    bin_src = args.service_bin
    args.service_bin = service_bin
    if args.uor_bin:
        os.environ["UOR_BIN"] = args.uor_bin
    launch = backend.Launcher(scratch, signals=False)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    run = "m" + uuid.uuid4().hex[:8]
    out = []
    failed = None
    try:
        redis = Redis(args.redis_port)
        reused = backend.redis_ping(args.redis_port)
        launch.redis(args.redis_port, reuse=True)
        redis_note = "already running, reused" if reused else "started by this script"
        log(f"redis on {args.redis_port} ({redis_note}); run id {run}; logs in {scratch}")

        out.append("# upstash-sessions: end-to-end measurements\n")
        dirty = git("status", "--short", "--", "src", "Cargo.toml", "Cargo.lock")
        repo_now = (f"{git('rev-parse', '--short', 'HEAD')}, src/Cargo "
                    f"{'clean' if not dirty else 'modified: ' + ' '.join(dirty.split())}")
        out.append(f"- service binary `{bin_src}` (sha256 {bin_sha}, built {bin_mtime}), "
                   f"built from: {args.built_from or 'not given (--built-from)'}; "
                   f"repository at run time: {repo_now}")
        out.append(f"- backend: upstash-on-redis over "
                   f"redis-server {redis.cli('INFO', 'server').split('redis_version:')[1].split()[0]} "
                   f"(port {args.redis_port}, {redis_note}); run id `{run}` (prefix of every "
                   "user name)")
        out.append("- service env: COOKIE_SECURE=false UPSTASH_TIMEOUT_MS=3000 "
                   "SESSION_TTL_SECONDS=900 SESSION_ABSOLUTE_TTL_SECONDS=43200 RUST_LOG=warn LOG_FORMAT=json\n")

        base_ups = start_upstash(launch, "uor-none", args.uor_port, args.redis_port, "none")
        base_svc = Service(launch, "svc-none", args.service_port, base_ups,
                           args.service_bin)
        if "1" in sections:
            section_ttl_and_costs(out, base_svc, base_ups, redis, run)
        if "2" in sections:
            section_user_sessions(out, base_svc, base_ups, redis, run)
        if "3" in sections:
            scenarios = [
                ("none", args.flows, args.concurrent),
                ("status500:3", args.flows, args.concurrent),
                ("429:3", args.flows, args.concurrent),
                ("garbage:1", args.flows, args.concurrent),
                ("hang:1", args.hang_flows, args.hang_flows),
            ]
            section_faults(out, launch, args, redis, base_svc, run, scenarios)
        if "4" in sections:
            section_nothing_lost(out, base_svc, base_ups, redis, run, args.rounds, args.logins,
                                 args.pool)
    except Exception as e:  # report what was measured so far
        failed = e
        import traceback
        traceback.print_exc()
    finally:
        launch.stop_all()
        # Warnings and errors the services logged, for the report.
        logs = []
        for name in sorted(os.listdir(scratch)):
            if name.startswith("svc-") and name.endswith(".log"):
                with open(os.path.join(scratch, name), errors="replace") as f:
                    lines = f.read().splitlines()
                kinds = collections.Counter()
                for line in lines:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        kinds[("other", line[:90])] += 1
                        continue
                    level = ev.get("level", "?")
                    if level in ("WARN", "ERROR"):
                        msg = ev.get("message", "")
                        status = ev.get("status")
                        cause = str(ev.get("error.cause_chain") or ev.get("error") or "")
                        # the last link of the cause chain, without ids or numbers
                        cause = cause.split(": ")[-1][:60] if cause else ""
                        text = msg + (f" (status {status})" if status else "")
                        text += f" [{cause}]" if cause else ""
                        kinds[(level, text)] += 1
                logs.append((name[:-4], len(lines), kinds))
        if not args.keep_logs:
            shutil.rmtree(scratch, ignore_errors=True)
    if logs:
        out.append("## Service logs (warnings and errors, grouped)\n")
        for name, nlines, kinds in logs:
            top = "; ".join(f"{lv} `{m}` ×{c}" for (lv, m), c in kinds.most_common(4)) or "none"
            out.append(f"- {name}: {nlines} lines; {top}")
        out.append("")
    out.append(f"Total runtime: {time.monotonic() - START:.1f} s.")
    if failed is not None:
        out.append(f"\n**Run aborted: {type(failed).__name__}: {failed}**")
    print("\n".join(out))
    return 1 if failed is not None else 0


if __name__ == "__main__":
    sys.exit(main())
