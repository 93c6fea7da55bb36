"""What bench/bench.py reads while a run goes: the service's CPU ticks and RSS from /proc,
TCP connects to the backend, a sampler thread, wrk's Lua scripts and output, and one-off
HTTP calls for the request counts.
"""

import base64
import os
import re
import threading
import uuid

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def tree(pid):
    """`pid` and its descendants."""
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parents.setdefault(int(stat_fields(d)[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(parents.get(p, []))
    return seen


def tree_ticks(pid):
    """utime + stime (clock ticks) of `pid` and its descendants (a process sums its threads)."""
    t = 0
    for p in tree(pid):
        try:
            f = stat_fields(p)
            t += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
        except OSError:
            pass
    return t


def tree_kb(pid, key):
    kb = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        kb += int(line.split()[1])
        except OSError:
            pass
    return kb


def reset_peak(pid):
    """Resets VmHWM (peak RSS) of `pid` and its children to the current RSS (Linux >= 4.0)."""
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def backend_conns(bport):
    """{(client, server) address: TCP state} of every connection to the local port `bport`."""
    conns = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            lport = int(f[1].split(":")[1], 16)
            rport = int(f[2].split(":")[1], 16)
            if rport == bport and lport != bport:  # the client end
                conns[(f[1], f[2])] = f[3]
            elif lport == bport and rport != bport and f[3] != "0A":  # server end (0A: listen)
                conns.setdefault((f[2], f[1]), f[3])
    return conns


class Sampler(threading.Thread):
    """During a run: the highest VmRSS of the tree every 0.2 s, and every client port seen on a
    connection to the backend port (any state, TIME-WAIT included, so short-lived connections
    are still seen after they close). Ports present before the run are the baseline; each new
    port is one TCP connect to the backend (nothing else talks to it during a run)."""

    def __init__(self, pid, bport):
        super().__init__(daemon=True)
        self.pids, self.bport = tree(pid), bport
        self.halt = threading.Event()
        self.base = set(backend_conns(bport)) if bport else set()
        self.seen, self.max_rss, self.samples, self.est_end = set(), 0, 0, 0

    def sample(self):
        c = backend_conns(self.bport) if self.bport else {}
        self.seen |= set(c)
        return c

    def run(self):
        while not self.halt.is_set():
            self.max_rss = max(self.max_rss, tree_kb(self.pids[0], "VmRSS"))
            self.est_end = sum(1 for st in self.sample().values() if st == "01")
            self.samples += 1
            self.halt.wait(0.2)

    def finish(self):
        self.halt.set()
        self.join()
        self.sample()
        bp = self.bport
        return {"max_rss_kb": self.max_rss, "samples": self.samples,
                "backend_connects": len(self.seen - self.base) if bp else None,
                "backend_established_end": self.est_end if bp else None}


# ---------------------------------------------------------------------------- wrk scripts

LUA_THREADS = """local threads, next_id = {}, 1
function setup(thread)
    thread:set("tid", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end
"""
LUA = {
    "login": """-- POST /login/ with JSON bodies for 1000 user names per thread, cycled.
""" + LUA_THREADS + """local pool, i = {}, 0
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
""",
    "patch": """-- PATCH /profile/ with merge patches (RFC 7396) on one session (args[1]: its cookie value):
-- each thread sets its own key to one of 100 values, so the data stays small.
""" + LUA_THREADS + """local pool, i = {}, 0
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
""",
    "backend": """-- POST / {"GETEX", KEY, "EX", "900"} to the Upstash REST API: args KEY TOKEN.
function init(args)
    wrk.method = "POST"
    wrk.body = '["GETEX","' .. args[1] .. '","EX","900"]'
    wrk.headers["Authorization"] = "Bearer " .. args[2]
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Upstash-Encoding"] = "base64"
end
""",
    "million": """-- POST /login/ until args[1] logins got 200 in each thread. args[2]: chunk number (keeps
-- names unique across chunks); args[3]: 0 for a distinct user per login, else N users cycled.
""" + LUA_THREADS + """local target, chunk, users, ok, n = 0, 0, 0, 0, 0
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
    io.write(string.format("logins_ok %d\\n", total))
end
""",
}


def parse_wrk(text):
    def num(pat, default, conv=float):
        m = re.search(pat, text)
        return conv(m.group(1)) if m else default

    def lat_us(pct):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, text, re.M)
        if not m:
            return None
        return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[m.group(2)]

    errs = re.search(r"Socket errors: (.*)", text)
    return {"requests": num(r"(\d+) requests in", 0, int),
            "non2xx": num(r"Non-2xx or 3xx responses: (\d+)", 0, int),
            "socket_errors": errs.group(1) if errs else "",
            "rps": num(r"Requests/sec:\s+([\d.]+)", 0.0), "p50_us": lat_us(50), "p99_us": lat_us(99)}


def forged_cookie():
    """A well-formed value (v4 UUID . 43 base64url chars) with a wrong tag."""
    return f"{uuid.uuid4()}." + base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()


def call(conn, method, path, cookie=None, body=None, content_type="application/json"):
    """One request on `conn`: (status, the session cookie it set or None)."""
    h = {"Content-Type": content_type} if body is not None else {}
    if cookie is not None:
        h["Cookie"] = "session_id=" + cookie
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    r.read()
    m = re.match(r"session_id=([^;]*)", r.getheader("Set-Cookie") or "")
    return r.status, m.group(1) if m else None


# ---------------------------------------------------------------------------- the bench
