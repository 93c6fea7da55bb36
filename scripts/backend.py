#!/usr/bin/env python3
"""The one backend launcher: redis-server and upstash-on-redis on loopback, for the bench,
the end-to-end checks and CI.

As a module (`sys.path` to scripts/, then `import backend`):

    with backend.Launcher() as launch:
        redis_port = launch.redis()                        # or launch.redis(6399, reuse=True)
        up = launch.upstash(redis_port, tls=True, latency_ms=5, fault="none", workers=1)
        up.url, up.token, up.ca                            # what a client needs
    # everything started is stopped here, and on SIGTERM/SIGINT/SIGHUP

It installs redis-server and openssl with apt-get when missing, builds
../shared/tools/upstash-on-redis into $UOR_TARGET (default /tmp/uor-target) when
$UOR_BIN (default $UOR_TARGET/release/upstash-on-redis) is missing, makes a throwaway CA and a
`localhost` certificate with openssl for HTTPS, and waits until each process answers (redis:
PING; upstash-on-redis: an authorized `["PING"]`). It also holds what every tool needs to
start the service itself: `service_env()` clears every variable the service reads (the list
`VARIABLES` in src/settings/mod.rs) from the inherited environment, `free_port()`, `wait_http()`.

As a command, it starts the backends, runs COMMAND with their addresses in the environment
(BACKEND_REDIS_PORT, BACKEND_TOKEN, BACKEND_HTTP_URL, BACKEND_HTTPS_URL, BACKEND_CA_CERT),
stops everything when COMMAND ends and exits with its status (without COMMAND: prints them
and waits for Ctrl-C):

    scripts/backend.py [--redis-port N] [--http-port N] [--https-port N] [--latency-ms N]
                       [--fault F] [--workers N] [--token T] [--logs DIR] [-- COMMAND ...]

Python 3 standard library only.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
UOR_SRC = SHARED / "tools/upstash-on-redis"


def log(msg):
    print(f"[backend {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


_apt_updated = False


def ensure_tool(cmd, package=None):
    """Installs `package` (default: `cmd`) with apt-get when `cmd` is not on PATH."""
    global _apt_updated
    if shutil.which(cmd):
        return
    package = package or cmd
    if not shutil.which("apt-get"):
        sys.exit(f"{cmd} is missing; install {package} (no apt-get here)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        log("apt-get update")
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
        _apt_updated = True
    log(f"apt-get install -y {package}")
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", package], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    if not shutil.which(cmd):
        sys.exit(f"{cmd} is still missing after installing {package}")


def uor_available():
    """True when upstash-on-redis is built or can be built (../shared is there)."""
    return uor_binary_path().exists() or UOR_SRC.is_dir()


def uor_binary_path():
    target = Path(os.environ.get("UOR_TARGET", "/tmp/uor-target"))
    return Path(os.environ.get("UOR_BIN", target / "release/upstash-on-redis"))


def uor_binary():
    """The upstash-on-redis binary, built from ../shared/tools when missing."""
    path = uor_binary_path()
    if not path.exists():
        if not UOR_SRC.is_dir():
            sys.exit(f"{path} is missing and {UOR_SRC} is not there to build it")
        target = os.environ.get("UOR_TARGET", "/tmp/uor-target")
        log(f"building upstash-on-redis into {target}")
        subprocess.run(["cargo", "build", "--release", "--locked", "--manifest-path",
                        str(UOR_SRC / "Cargo.toml")], check=True,
                       env={**os.environ, "CARGO_TARGET_DIR": target})
        path = Path(target) / "release/upstash-on-redis"
    return path


def make_certificates(work, ca_name="backend CA"):
    """A throwaway CA and a `localhost` server certificate it signs, as PEM files in `work`:
    returns (ca.pem, server.pem, server.key)."""
    ensure_tool("openssl")
    work = Path(work)

    def openssl(*a):
        subprocess.run(["openssl", *a], check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-days", "2", "-subj", f"/CN={ca_name}",
            "-keyout", f"{work}/ca.key", "-out", f"{work}/ca.pem")
    openssl("req", *ec, "-subj", "/CN=localhost",
            "-keyout", f"{work}/server.key", "-out", f"{work}/server.csr")
    (work / "ext").write_text("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
                              "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{work}/server.csr", "-CA", f"{work}/ca.pem",
            "-CAkey", f"{work}/ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", f"{work}/ext", "-out", f"{work}/server.pem")
    return work / "ca.pem", work / "server.pem", work / "server.key"


def redis_ping(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def connection(url, timeout=10, cafile=None):
    """An http.client connection to `url`'s host (HTTPS trusting `cafile` when given)."""
    m = re.match(r"(https?)://([^:/]+)(?::(\d+))?", url)
    scheme, host, port = m.group(1), m.group(2), m.group(3)
    if scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile) if cafile else None
        return http.client.HTTPSConnection(host, int(port or 443), timeout=timeout, context=ctx)
    return http.client.HTTPConnection(host, int(port or 80), timeout=timeout)


def wait_http(port, path, proc, name, timeout=120, cafile=None):
    """Until `GET path` on 127.0.0.1:port (https://localhost with `cafile`) answers at all."""
    url = f"https://localhost:{port}" if cafile else f"http://127.0.0.1:{port}"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{name} exited at start (code {proc.returncode})")
        try:
            c = connection(url, timeout=5, cafile=cafile)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{name} did not answer on port {port} within {timeout} s")


def settings_variables():
    """Every environment variable the service reads: `VARIABLES` in src/settings/mod.rs."""
    text = (ROOT / "src/settings/mod.rs").read_text()
    m = re.search(r"pub const VARIABLES: &\[Variable\] = &\[(.*?)\n\];", text, re.S)
    if not m:
        sys.exit("src/settings/mod.rs has no `pub const VARIABLES` table")
    return re.findall(r'name: "([A-Z0-9_]+)"', m.group(1))


def service_env(settings=None, base=None):
    """The environment to start the service with: `base` (default os.environ) without any
    variable the service reads, plus `settings`."""
    drop = set(settings_variables())
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in drop}
    env.update(settings or {})
    return env


class LaunchError(RuntimeError):
    """A backend did not start: the port was taken, or it exited or stayed silent."""


class Upstash:
    """One upstash-on-redis process: its URL, token, private CA (HTTPS) and /__stats."""

    def __init__(self, name, port, url, token, ca, proc):
        self.name, self.port, self.url, self.token, self.ca, self.proc = (
            name, port, url, token, ca, proc)

    def call(self, method, path, body=None):
        c = connection(self.url, timeout=10, cafile=self.ca)
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        c.request(method, urllib.parse.urlsplit(self.url).path.rstrip("/") + path, body=body,
                  headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data

    def service_settings(self):
        """The service's settings to use this backend."""
        settings = {"UPSTASH_REDIS_REST_URL": self.url, "UPSTASH_REDIS_REST_TOKEN": self.token}
        if self.ca:
            settings["UPSTASH_CA_CERT"] = self.ca
        return settings

    def ping(self):
        try:
            return b"PONG" in self.call("POST", "/", b'["PING"]')[1]
        except (OSError, http.client.HTTPException):
            return False

    def stats(self):
        """/__stats as a dict ({"requests": N, "commands": M, ...}), or None."""
        status, data = self.call("GET", "/__stats")
        return json.loads(data) if status == 200 and data else None

    def reset(self):
        status, _ = self.call("POST", "/__reset")
        if status != 200:
            raise RuntimeError(f"/__reset of {self.name} answered {status}")


class Launcher:
    """Starts processes and stops every one of them on exit (a `with` block, stop_all())
    and on SIGTERM/SIGINT/SIGHUP (raised as SystemExit, so `finally` blocks run)."""

    def __init__(self, logdir=None, signals=True):
        self._tmp = None if logdir else tempfile.mkdtemp(prefix="backend-")
        self.logdir = Path(logdir or self._tmp)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.procs = {}
        self._certs = None
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self._on_signal)

    @staticmethod
    def _on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop_all()

    def start(self, name, argv, env=None, cwd=None):
        """Starts `argv` as `name`, its output in LOGDIR/name.log."""
        if name in self.procs:
            raise RuntimeError(f"a process named {name} is already running")
        with open(self.logdir / f"{name}.log", "ab") as f:
            p = subprocess.Popen(argv, env=env, cwd=cwd or self.logdir, stdin=subprocess.DEVNULL,
                                 stdout=f, stderr=subprocess.STDOUT)
        self.procs[name] = p
        return p

    def log_tail(self, name, lines=20):
        try:
            return "\n".join((self.logdir / f"{name}.log").read_text(errors="replace")
                             .splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=12)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def stop_all(self):
        for name in list(self.procs)[::-1]:
            try:
                self.stop(name)
            except Exception as e:  # keep stopping the others
                log(f"could not stop {name}: {e}")
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def wait(self, name, ready, what, timeout=30):
        """Until ready() is true; fails with the log's tail if the process `name` exits."""
        end = time.monotonic() + timeout
        p = self.procs.get(name)
        while time.monotonic() < end:
            if p is not None and p.poll() is not None:
                raise LaunchError(f"{what} exited at start (code {p.returncode}):\n"
                                  f"{self.log_tail(name)}")
            try:
                if ready():
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.1)
        raise LaunchError(f"{what} did not answer within {timeout} s:\n{self.log_tail(name)}")

    def redis(self, port=None, reuse=False):
        """A redis-server on 127.0.0.1:`port` (a free one by default), without persistence.
        With `reuse`, one that already answers there is used as it is. Returns the port."""
        port = port or free_port()
        if reuse and redis_ping(port):
            log(f"redis-server already answers on 127.0.0.1:{port}: using it")
            return port
        if port_open(port):
            raise LaunchError(f"port {port} is already in use: pick another redis port")
        ensure_tool("redis-server")
        name = f"redis-{port}"
        self.start(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--daemonize", "no"])
        self.wait(name, lambda: redis_ping(port), f"redis-server on port {port}")
        return port

    def certificates(self):
        """(ca.pem, server.pem, server.key), made once per launcher."""
        if self._certs is None:
            self._certs = make_certificates(self.logdir)
        return self._certs

    def upstash(self, redis_port, port=None, tls=False, latency_ms=0, fault="none",
                workers=None, token="backend-token", name=None):
        """upstash-on-redis on 127.0.0.1:`port` in front of redis on `redis_port`, over
        http, or https (a `localhost` certificate of a throwaway CA) with `tls`."""
        port = port or free_port()
        if port_open(port):
            raise LaunchError(f"port {port} is already in use: pick another upstash-on-redis port")
        binary = uor_binary()
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{redis_port}", "TOKEN": token,
               "BIND": f"127.0.0.1:{port}", "LATENCY_MS": str(latency_ms), "FAULT": fault}
        if workers:
            env["WORKERS"] = str(workers)
        ca = None
        if tls:
            ca, cert, key = self.certificates()
            env.update(TLS_CERT=str(cert), TLS_KEY=str(key))
        scheme, host = ("https", "localhost") if tls else ("http", "127.0.0.1")
        name = name or f"upstash-on-redis-{port}"
        proc = self.start(name, [str(binary)], env)
        up = Upstash(name, port, f"{scheme}://{host}:{port}", token, str(ca) if ca else None, proc)
        # FAULT may break PING itself (status500, garbage, hang): then /__stats is enough.
        ready = up.ping if fault == "none" else (lambda: up.stats() is not None)
        self.wait(name, ready, f"upstash-on-redis ({scheme}, port {port})")
        log(f"upstash-on-redis on {up.url} (LATENCY_MS={latency_ms}, FAULT={fault}"
            f"{f', WORKERS={workers}' if workers else ''})")
        return up


def main():
    try:
        return launch_and_run()
    except LaunchError as e:
        sys.exit(str(e))


def launch_and_run():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis-port", type=int, help="default: a free port")
    ap.add_argument("--http-port", type=int, help="upstash-on-redis over http on this port")
    ap.add_argument("--https-port", type=int, help="upstash-on-redis over https on this port")
    ap.add_argument("--latency-ms", type=int, default=0, help="LATENCY_MS of upstash-on-redis")
    ap.add_argument("--fault", default="none", help="FAULT of upstash-on-redis")
    ap.add_argument("--workers", type=int, help="WORKERS of upstash-on-redis")
    ap.add_argument("--token", default="backend-token")
    ap.add_argument("--logs", help="directory for the logs, certificates (default: temporary)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not args.http_port and not args.https_port:
        args.http_port = free_port()

    with Launcher(args.logs) as launch:
        env = {"BACKEND_REDIS_PORT": str(launch.redis(args.redis_port)),
               "BACKEND_TOKEN": args.token}
        for scheme, port in (("http", args.http_port), ("https", args.https_port)):
            if port:
                up = launch.upstash(int(env["BACKEND_REDIS_PORT"]), port, tls=scheme == "https",
                                    latency_ms=args.latency_ms, fault=args.fault,
                                    workers=args.workers, token=args.token)
                env[f"BACKEND_{scheme.upper()}_URL"] = up.url
                if up.ca:
                    env["BACKEND_CA_CERT"] = up.ca
        if not command:
            for k, v in env.items():
                print(f"{k}={v}", flush=True)
            log("running; Ctrl-C stops everything")
            while True:
                time.sleep(3600)
        child = subprocess.Popen(command, env={**os.environ, **env})
        try:
            return child.wait()
        finally:
            if child.poll() is None:
                child.terminate()
                child.wait()


if __name__ == "__main__":
    sys.exit(main())
