"""The markdown table bench/bench.py prints at the end of a run, from its rows.jsonl."""

import json
import os
from pathlib import Path


def summary(args, rows_path, out, backend_url, idle_rss):
    rows, ops = [], {}
    for line in open(rows_path):
        r = json.loads(line)
        if "ops" in r:
            ops[r["ops"]] = r["result"]
        else:
            rows.append(r)
    mode, latency = args.mode, str(args.latency_ms)

    def ms(us):
        return "-" if us is None else "%.3f ms" % (us / 1000)

    def mib(kb):
        return "-" if kb is None else "%.1f MiB" % (kb / 1024)

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
    sharing = " and the backend" if backend_url else ""
    if args.reference:
        sharing = ", the backend and redis-server" if backend_url else " and redis-server"
    w("wrk -t%s, %s per run, %s cores shared by wrk, the service%s. Service idle RSS %s." % (
        args.threads, args.duration, os.cpu_count(), sharing, mib(idle_rss)))
    w("")
    w("| scenario | req/s | p50 | p99 | CPU µs/req | peak RSS | RSS under load | Upstash req/op | backend TCP connects | non-2xx |")
    w("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    names = {"service-1M": "service (1M sessions)",
             "reference": "actix-session + RedisSessionStore (Redis protocol)",
             "floor-static": "floor: bare actix-web, constant answer",
             "floor-rest": "floor: bare actix-web + one reqwest GETEX"}
    for r in rows:
        label = r.get("label", r["target"])
        for k, v in names.items():
            label = label.replace(k, v)
        name = "%s %s c=%s" % (label, r["op"], r["conns"])
        if r["scenario"] == "million-login":
            name = "service million logins c=%s (%d sessions, %s; %.0f B/session)" % (
                r["conns"], r["sessions"], r.get("users", ""), r["bytes_per_session"] or 0)
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, "{:,.0f}".format(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]),
            "-" if r["cpu_us_per_req"] is None else "%.1f" % r["cpu_us_per_req"],
            mib(r["peak_rss_kb"]),
            mib(r.get("rss_load_max_kb")) if r.get("rss_load_max_kb") else mib(r.get("rss_end_kb")),
            reqop(r["target"], r["op"], r),
            "-" if r.get("backend_connects") is None else "%d (%d open)" % (
                r["backend_connects"], r["backend_established_end"]),
            r["non2xx"]))
    for target in ops:
        for op in ("logout", "malformed"):
            if op in ops[target]:
                w("| %s %s (N=%d, one keep-alive client) | - | - | - | - | - | - | %s | - | %s |" % (
                    target, op, ops[target][op]["n"], reqop(target, op),
                    sum(v for k, v in ops[target][op]["statuses"].items()
                        if not str(k).startswith("2"))))
    w("")
    svc = {(r["op"], r["conns"]): r for r in rows if r["target"] == "service"}
    seed = {(r["op"], r["conns"]): r for r in rows if r["target"] == "seed"}
    for key in sorted(seed):
        if key in svc and seed[key]["rps"]:
            w("- service / seed throughput, %s c=%s: %.0f×"
              % (key[0], key[1], svc[key]["rps"] / seed[key]["rps"]))
    direct = {r["conns"]: r for r in rows if r["target"] == "backend"}
    for r in rows:
        if r["target"] == "service" and r["op"] == "profile" and r["p50_us"] is not None:
            d = direct.get(r["conns"])
            if d and d["p50_us"] is not None:
                w("- profile c=%s: p50 %.3f ms vs one backend round trip (direct) %.3f ms: "
                  "+%.3f ms; throughput %.0f%% of the direct backend rate"
                  % (r["conns"], r["p50_us"] / 1000, d["p50_us"] / 1000,
                     (r["p50_us"] - d["p50_us"]) / 1000,
                     100 * r["rps"] / d["rps"] if d["rps"] else 0))
            elif mode == "local" and latency != "0":
                w("- profile c=%s: p50 − LATENCY_MS = %.3f ms"
                  % (r["conns"], r["p50_us"] / 1000 - float(latency)))
    text = "\n".join(lines) + "\n"
    Path(out).write_text(text)
    print(text)
