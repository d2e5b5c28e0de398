"""The request path at line rate (issue 19): the real server against a no-op app, same run.

Every target runs as `dimwatch serve` runs (service.server: its own socket, the access log at
"info", written to a file); the no-op is a FastAPI app under the same uvicorn settings that
decodes the same bodies with the service's decoder (bench/noop_app.py). Targets are alternated
in rounds: the no-op, the service at a baseline revision (`--before`, from a `git archive`) and
this checkout. Cases, D = 10, B = 10:

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
import json
import os
import subprocess
import sys
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


async def phase(server: Server, case: str, seconds: float, setup: bool) -> dict[str, Any]:
    """One case against one server: streams created (service only), one warm-up batch each
    (outside the figures), then `seconds` of load; the step time from /metrics around it."""
    from bench.service_speed import create_streams, drive, sample_bodies, summary

    kind, clients = CASES[case]
    bodies = sample_bodies(kind)
    names = [f"{case}{i}" for i in range(clients)]
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        if setup:
            await create_streams(client, names, D)
        for name in names:
            body, headers = bodies[0]
            r = await client.post(f"/v1/streams/{name}/batches", content=body, headers=headers)
            r.raise_for_status()
        before = (await client.get("/metrics")).text if setup else ""
        posts = [[(name, *bodies[j % len(bodies)]) for j in range(16)] for name in names]
        cpu = server.cpu_seconds()
        loops = await drive(client, posts, seconds)
        cpu = server.cpu_seconds() - cpu
        after = (await client.get("/metrics")).text if setup else ""
    out = {"case": case, **summary(loops)}
    out["server_cpu_ms"] = 1e3 * cpu / out["requests"]  # per batch, every thread of it
    if setup:
        for key, metric in (("step_ms", "step_seconds"), ("commit_ms", "commit_seconds")):
            out[key] = _mean_ms(before, after, f"dimwatch_{metric}")
    return out


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
    """The three cases on the no-op, `before` and this checkout, alternated `rounds` times, with
    the decode and commit probes in each round."""
    from bench.service_speed import checkout

    rows: list[dict[str, Any]] = []
    with checkout(before) as old:
        sources: dict[str, Path | None] = {"noop": None, "before": old, "after": None}
        for round_ in range(rounds):
            for target, source in sources.items():
                with running_service(
                    noop=target == "noop", max_streams=100, source=source, real=True
                ) as server:
                    for case in CASES:
                        r = asyncio.run(phase(server, case, seconds, target != "noop"))
                        r.update(target=target, round=round_)
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
            f"p99 {r['p99_ms']:7.2f} ms  server CPU {r['server_cpu_ms']:.2f} ms/batch  "
            f"errors {r['errors']}{step}",
            flush=True,
        )


def _ms(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.3f}"


def line_table(rows: list[dict[str, Any]]) -> None:
    """Medians over rounds, with the ratios the issue's targets are stated in."""

    def median(case: str, target: str, key: str) -> float:
        found = [r.get(key) for r in rows if (r["case"], r["target"]) == (case, target)]
        found = [v for v in found if v is not None]
        return float(np.median(found)) if found else float("nan")

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
