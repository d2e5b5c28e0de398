"""Cluster mode on NATS JetStream against the single process (issue 12), in one run.

Ingest: binary batches of 10 rows, D = 10, one client loop per stream (1, 4, 16, 64 streams)
through one API node, with 1, 2 and 4 worker processes (16 partitions), each phase bounded in
time; the same loads against today's single process (`dimwatch serve --data-dir`). Ratios: to
one worker, and to the single process; the CPU time per batch of each process role (client, API
node, workers, NATS; or the single server) says what limits a figure. The one-client p50 is the
1-stream row. Takeover: one
client pushes to one stream with seq while its owner is killed with SIGKILL; the takeover time is
from the kill to the next acknowledged batch (lease time DIMWATCH_LEASE_SECONDS, default here 5).

    python -m bench.cluster [--seconds 5] [--workers 1 2 4] [--streams 1 4 16 64] [--quick]
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import progress, write_json
from bench.served import Server, running_service
from bench.service_speed import load
from service.cluster import layout, local

PARTITIONS = 16
LEASE_SECONDS = 5


def cluster_env(url: str) -> dict[str, str]:
    return {
        "DIMWATCH_NATS_URL": url,
        "DIMWATCH_PARTITIONS": str(PARTITIONS),
        "DIMWATCH_LEASE_SECONDS": str(LEASE_SECONDS),
        "DIMWATCH_MAX_STREAMS": "1000",
        "DIMWATCH_WORKERS": "1",  # training threads per worker: one core each
        "DIMWATCH_DEVICE": "cpu",
        "DIMWATCH_LOG_LEVEL": "warning",
        "OMP_NUM_THREADS": "1",
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def cluster(workers: int) -> Iterator[tuple[Server, str, dict[str, list[int]]]]:
    """A fresh nats-server, `workers` worker processes and one API node (a child process);
    the pids of each role."""
    with tempfile.TemporaryDirectory(prefix="dimwatch-cluster-") as tmp:
        server = local.start(Path(tmp) / "nats")
        env = {**os.environ, **cluster_env(server.url)}
        command = [str(Path(sys.executable).parent / "dimwatch"), "worker"]
        procs = [subprocess.Popen(command, env=env) for _ in range(workers)]
        try:
            with running_service(max_streams=1000, env=cluster_env(server.url)) as api:
                roles = {
                    "api": [api.pid],
                    "workers": [p.pid for p in procs],
                    "nats": [server.process.pid],
                }
                yield api, server.url, roles
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
            server.stop()


def ingest(seconds: float, workers: list[int], streams: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def run(target: str, url: str, roles: dict[str, list[int]]) -> None:
        roles = {**roles, "client": [os.getpid()]}
        for s in streams:
            before = {role: sum(map(cpu_seconds, pids)) for role, pids in roles.items()}
            r = asyncio.run(load(url, "binary", s, s, seconds, setup=True))
            # CPU per batch of each role over the whole phase (set-up and warm-up included)
            cpu = {
                role: (sum(map(cpu_seconds, pids)) - before[role]) / r["requests"] * 1e3
                for role, pids in roles.items()
            }
            rows.append({"target": target, **r, "cpu_ms_per_batch": cpu})
            progress(
                f"{target:<10} streams={s:<3} {r['batches_per_s']:8.1f} batches/s  "
                f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}  "
                + "  ".join(f"{k} {v:.2f}" for k, v in cpu.items())
                + f"  load {os.getloadavg()[0]:.1f}"
            )

    with running_service(max_streams=1000) as single:
        run("single", single.url, {"server": [single.pid]})
    for w in workers:
        with cluster(w) as (api, _, roles):
            run(f"workers={w}", api.url, roles)
    for r in rows:
        same = {x["target"]: x["batches_per_s"] for x in rows if x["streams"] == r["streams"]}
        r["vs_single"] = r["batches_per_s"] / same["single"]
        if f"workers={workers[0]}" in same:
            r["vs_first_workers"] = r["batches_per_s"] / same[f"workers={workers[0]}"]
    return rows


def takeover() -> dict[str, Any]:
    """Kill the owner of a stream being pushed to; the time to the next acknowledged batch."""
    x = np.random.default_rng(0).standard_normal((10, 10)).astype(np.float32)
    headers = {"Content-Type": "application/octet-stream", "X-Dim": "10"}
    with cluster(2) as (api, url, _), httpx.Client(base_url=api.url, timeout=60) as client:
        client.post("/v1/streams", json={"name": "t", "device": "cpu"}).raise_for_status()
        seq, killed_at, gap = 0, 0.0, None
        deadline = time.monotonic() + 120
        while gap is None and time.monotonic() < deadline:
            r = client.post(
                "/v1/streams/t/batches", content=x.tobytes(), headers={**headers, "X-Seq": str(seq)}
            )
            if r.status_code == 200:
                seq += 1
                if killed_at:
                    gap = time.monotonic() - killed_at
            if seq == 50 and not killed_at:
                pid = owner_pid(url, "t")
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
        step = client.get("/v1/streams/t").json()["step"]
    return {"lease_seconds": LEASE_SECONDS, "takeover_s": gap, "acknowledged": seq, "step": step}


def owner_pid(url: str, name: str) -> int:
    async def get() -> str:
        import nats

        nc = await nats.connect(url)
        kv = await nc.jetstream().key_value(layout.LEASES)
        entry = await kv.get(layout.lease_key(layout.partition(name, PARTITIONS)))
        await nc.close()
        return (entry.value or b"").decode()

    return int(asyncio.run(get()).rsplit(".", 1)[0].rsplit("-", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per load phase")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--quick", action="store_true", help="1 s phases, 1 and 16 streams")
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    streams = [1, 16] if args.quick else args.streams
    result: dict[str, Any] = {"seconds_per_phase": seconds, "partitions": PARTITIONS}
    result["ingest"] = ingest(seconds, args.workers, streams)
    result["takeover"] = takeover()
    progress(f"takeover: {result['takeover']}")
    write_json("cluster_quick" if args.quick else "cluster", result)


if __name__ == "__main__":
    main()
