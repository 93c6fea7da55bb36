#!/usr/bin/env python3
"""Runs the built example `actix_session_upstash` against an Upstash-compatible server and walks
it like a browser: visits are counted, a user logs in and out, and the session keys in Redis
appear, carry the 30-minute TTL and go away on logout. Stops the example it starts.

usage: e2e-actix-example.py EXAMPLE_BINARY UPSTASH_URL TOKEN
"""
import json
import os
import subprocess
import sys
import urllib.request

binary, upstash, token = sys.argv[1:4]


def redis(*command):
    req = urllib.request.Request(upstash, data=json.dumps(command).encode(),
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=5))["result"]


# Only this script's example writes under the default prefix on this server.
for key in redis("KEYS", "actix-session:*"):
    redis("DEL", key)

env = dict(os.environ, UPSTASH_REDIS_REST_URL=upstash, UPSTASH_REDIS_REST_TOKEN=token, PORT="0")
app = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, text=True)
try:
    line = app.stdout.readline().strip()
    assert line.startswith("listening on "), f"unexpected first line: {line!r}"
    base = line.removeprefix("listening on ")
    cookie = None

    def go(method, path):
        global cookie
        req = urllib.request.Request(base + path, method=method, data=b"" if method == "POST" else None)
        if cookie:
            req.add_header("Cookie", cookie)
        with urllib.request.urlopen(req, timeout=10) as res:
            for header in res.headers.get_all("Set-Cookie") or []:
                pair = header.split(";", 1)[0]
                cookie = None if pair.endswith("=") else pair
            return json.load(res)

    assert go("GET", "/") == {"visits": 1, "user": None}
    assert go("GET", "/") == {"visits": 2, "user": None}
    assert go("POST", "/login/alice") == {"user": "alice"}
    assert go("GET", "/") == {"visits": 3, "user": "alice"}
    keys = redis("KEYS", "actix-session:*")
    assert len(keys) == 1, keys
    ttl = redis("TTL", keys[0])
    assert 1790 <= ttl <= 1800, ttl
    assert go("POST", "/logout") == {"user": None}
    assert cookie is None, "logout removes the cookie"
    assert redis("KEYS", "actix-session:*") == [], "logout deletes the key"
    assert go("GET", "/") == {"visits": 1, "user": None}
    print("example app on upstash-on-redis: visits counted, login and logout work")
finally:
    app.terminate()
    app.wait(timeout=10)
