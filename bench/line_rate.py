"""The request path at line rate (issue 19): the real server against a no-op app, same run.

Every target runs as `dimwatch serve` runs (service.server: its own socket, the access log at
"info", written to a file); the no-op is a FastAPI app under the same uvicorn settings that
decodes the same bodies with the service's decoder (bench/noop_app.py). The three targets, the
no-op, the service at a baseline revision (`--before`, from a `git archive`) and this checkout,
run together for the whole run. With one client, its loop posts to them in turn, request by
request: on a shared machine whose load changes from second to second, all three meet the same
moments. 16 clients saturate the machine, so they load one target at a time, in an order
rotated by round. Rates are closed-loop equivalents: clients / mean latency. D = 10, B = 10:

    one      one kept-alive client, binary bodies, one stream
    json     one kept-alive client, JSON bodies, one stream
    sixteen  16 kept-alive clients, each on its own stream, binary bodies

Per case: batches/s, p50/p99, the server process's CPU time per batch (all its threads: less
sensitive than rates to the other work on a shared machine), and for the service the mean of
dimwatch_step_seconds (training step + durable commit) and of its commit over the phase.
Beside them, in the same run: the decode path alone (`decode_batch` per call, JSON and binary,
B = 10, both revisions) and the floor of a durable commit on this disk (one SQLite WAL
transaction with synchronous=FULL, the store's settings).

    python -m bench.service_speed --part line [--before REV] [--rounds 3] [--seconds 5]
"""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.served import Server, running_service

B, D = 10, 10
CASES = {"one": ("binary", 1), "json": ("json", 1), "sixteen": ("binary", 16)}


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return float("nan")


async def interleaved(
    servers: dict[str, Server], case: str, seconds: float, prefix: str = ""
) -> list[dict[str, Any]]:
    """One case against every target at once: each client loop posts to the targets in turn
    (no-op, before, after, no-op, ...), so that all of them meet the same moments of a shared
    machine. Streams are created on the services, one warm-up batch each (outside the figures).
    Per target: latencies, the closed-loop rate they allow (clients / mean latency), the server
    process's CPU per batch, and the services' mean step and commit from /metrics."""
    from bench.service_speed import sample_bodies

    kind, clients = CASES[case]
    bodies = sample_bodies(kind)
    names = [f"{prefix}{case}{i}" for i in range(clients)]
    limits = httpx.Limits(max_connections=len(servers) * clients + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for target, server in servers.items():
            for name in names if target != "noop" else []:
                spec = {"name": name, "dim": D, "device": "cpu"}
                (await client.post(f"{server.url}/v1/streams", json=spec)).raise_for_status()
            for name in names:
                body, headers = bodies[0]
                url = f"{server.url}/v1/streams/{name}/batches"
                (await client.post(url, content=body, headers=headers)).raise_for_status()
        metrics = {t: (await client.get(f"{s.url}/metrics")).text for t, s in servers.items()}
        cpu = {t: s.cpu_seconds() for t, s in servers.items()}
        latencies: dict[str, list[float]] = {t: [] for t in servers}
        deadline = time.perf_counter() + seconds

        async def loop(i: int) -> None:
            while time.perf_counter() < deadline:
                for target, server in servers.items():
                    body, headers = bodies[len(latencies[target]) % len(bodies)]
                    url = f"{server.url}/v1/streams/{names[i]}/batches"
                    start = time.perf_counter()
                    r = await client.post(url, content=body, headers=headers)
                    latencies[target].append(time.perf_counter() - start)
                    r.raise_for_status()

        await asyncio.gather(*(loop(i) for i in range(clients)))
        rows = []
        for target, server in servers.items():
            lat = np.array(latencies[target]) * 1e3
            row = {
                "case": case,
                "target": target,
                "requests": len(lat),
                "batches_per_s": clients / (lat.mean() / 1e3),
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "server_cpu_ms": 1e3 * (server.cpu_seconds() - cpu[target]) / len(lat),
            }
            if target != "noop":
                after = (await client.get(f"{server.url}/metrics")).text
                for key, metric in (("step_ms", "step_seconds"), ("commit_ms", "commit_seconds")):
                    row[key] = _mean_ms(metrics[target], after, f"dimwatch_{metric}")
            rows.append(row)
    return rows


def _mean_ms(before: str, after: str, histogram: str) -> float | None:
    """The mean of a histogram's observations between two /metrics texts, in ms (None: the
    server has no such histogram)."""
    count = _metric(after, histogram + "_count") - _metric(before, histogram + "_count")
    total = _metric(after, histogram + "_sum") - _metric(before, histogram + "_sum")
    return 1e3 * total / count if count > 0 else None


DECODE_PROBE = """
import json, sys, time
import numpy as np
from service.decode import decode_batch
from service.settings import Settings
settings, rows, reps = Settings(), int(sys.argv[1]), int(sys.argv[2])
x = np.random.default_rng(0).standard_normal((rows, 10)).astype(np.float32)
cases = {
    "json": ("application/json", json.dumps({"data": x.tolist(), "seq": 0}).encode(), {}),
    "binary": ("application/octet-stream", x.tobytes(), {"x-dim": "10", "x-seq": "0"}),
}
out = {}
for name, (kind, body, headers) in cases.items():
    best = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            decode_batch(kind, body, headers, settings)
        best.append((time.perf_counter() - start) / reps)
    out[name] = min(best) * 1e6
print(json.dumps(out))
"""

FSYNC_PROBE = """
import json, sqlite3, sys, tempfile, time
from pathlib import Path
with tempfile.TemporaryDirectory(dir=sys.argv[1]) as folder:
    db = sqlite3.connect(Path(folder) / "probe.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (step INTEGER PRIMARY KEY, data BLOB)")
    times = []
    for step in range(int(sys.argv[2])):
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (step, bytes(400)))
        db.execute("COMMIT")
        times.append(time.perf_counter() - start)
    db.close()
times.sort()
print(json.dumps({"commit_p50_ms": times[len(times) // 2] * 1e3}))
"""


def _probe(script: str, args: list[str], source: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        check=True, capture_output=True, text=True, cwd=source,
        env={**os.environ, "PYTHONPATH": str(source)},
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def part_line(seconds: float, before: str, rounds: int) -> list[dict[str, Any]]:
    """The three cases on the no-op, `before` and this checkout, running together and
    interleaved request by request, `rounds` times, with the decode and commit probes."""
    from bench.service_speed import checkout

    rows: list[dict[str, Any]] = []
    with checkout(before) as old, contextlib.ExitStack() as running:
        options: dict[str, dict[str, Any]] = {
            "noop": {"noop": True},
            "before": {"source": old},
            "after": {},
        }
        servers = {
            target: running.enter_context(running_service(real=True, max_streams=1000, **extra))
            for target, extra in options.items()
        }
        for round_ in range(rounds):
            runs = [(case, servers) for case in ("one", "json")]
            # 16 clients: one target at a time (else the client, loading three servers at
            # once, would be the limit), in an order rotated by round
            targets = list(servers)[round_ % 3 :] + list(servers)[: round_ % 3]
            runs += [("sixteen", {t: servers[t]}) for t in targets]
            for case, these in runs:
                for r in asyncio.run(interleaved(these, case, seconds, f"r{round_}")):
                    r["round"] = round_
                    rows.append(r)
                    _print(r)
            for target, source in (("before", old), ("after", Path.cwd())):
                r = {"case": "decode", "target": target, "round": round_}
                r.update(_probe(DECODE_PROBE, [str(B), "2000"], source))
                rows.append(r)
                _print(r)
            r = {"case": "commit", "target": "disk", "round": round_}
            r.update(_probe(FSYNC_PROBE, [str(Path.cwd()), "200"], Path.cwd()))
            rows.append(r)
            _print(r)
    return rows


def _print(r: dict[str, Any]) -> None:
    head = f"round {r['round']} {r['target']:<6} {r['case']:<8}"
    if r["case"] == "decode":
        print(f"{head} json {r['json']:7.1f} us  binary {r['binary']:7.1f} us", flush=True)
    elif r["case"] == "commit":
        print(f"{head} SQLite durable commit p50 {r['commit_p50_ms']:.3f} ms", flush=True)
    else:
        step = f"  step {r['step_ms']:.3f} ms" if r.get("step_ms") is not None else ""
        step += f" (commit {r['commit_ms']:.3f})" if r.get("commit_ms") is not None else ""
        print(
            f"{head} {r['batches_per_s']:8.1f} batches/s  p50 {r['p50_ms']:6.2f} ms  "
            f"p99 {r['p99_ms']:7.2f} ms  server CPU {r['server_cpu_ms']:.2f} ms/batch{step}",
            flush=True,
        )


def _ms(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


def line_table(rows: list[dict[str, Any]]) -> None:
    """Medians over rounds, with the ratios the issue's targets are stated in."""

    def median(case: str, target: str, key: str) -> float:
        found = [r.get(key) for r in rows if (r["case"], r["target"]) == (case, target)]
        values = [float(v) for v in found if v is not None]
        return float(np.median(values)) if values else float("nan")

    print(
        "| case | target | batches/s | p50 ms | p99 ms | / no-op | server CPU ms/batch "
        "| step ms | of which commit |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for case in CASES:
        noop = median(case, "noop", "batches_per_s")
        for target in ("noop", "before", "after"):
            rate = median(case, target, "batches_per_s")
            step, commit = (median(case, target, k) for k in ("step_ms", "commit_ms"))
            print(
                f"| {case} | {target} | {rate:.0f} | {median(case, target, 'p50_ms'):.2f} | "
                f"{median(case, target, 'p99_ms'):.2f} | {rate / noop:.2f} | "
                f"{median(case, target, 'server_cpu_ms'):.2f} | {_ms(step)} | {_ms(commit)} |"
            )
    for target in ("before", "after"):
        js, binary = median("decode", target, "json"), median("decode", target, "binary")
        served = median("json", target, "batches_per_s") / median("one", target, "batches_per_s")
        print(
            f"decode B={B} {target}: JSON {js:.1f} us, binary {binary:.1f} us "
            f"({js / binary:.1f}x); JSON through the server: {served:.2f} of binary's batches/s"
        )
    commit = median("commit", "disk", "commit_p50_ms")
    print(f"durable SQLite commit on this disk, p50: {commit:.3f} ms")
