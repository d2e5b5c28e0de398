"""Speed and memory of the service over loopback (issue 6, item 5).

Throughput (batches/s) and latency (p50/p99) of POST /v1/streams/{name}/batches with batches of
10 rows, D = 10: JSON and binary (float32) bodies, 1 and 16 concurrent clients, 1 and 100
streams; against a no-op FastAPI endpoint (bench/noop_app.py) that parses the same payload with
the service's own decoder, in the same run. Server and clients run in separate processes; every
load phase is bounded in time. Memory: resident size of the server process per stream (D = 10
and D = 1000) and with 10,000 streams of D = 10.

    python -m bench.service_speed [--quick] [--seconds 5] [--part load memory]
"""

import argparse
import asyncio
import json
import time
from typing import Any

import httpx
import numpy as np

from bench.common import progress, write_json
from bench.served import Server, running_service

B, D = 10, 10


def payload(kind: str, x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    if kind == "json":
        return json.dumps({"data": x.tolist()}).encode(), {"Content-Type": "application/json"}
    return np.ascontiguousarray(x, dtype="<f4").tobytes(), {
        "Content-Type": "application/octet-stream",
        "X-Dim": str(x.shape[1]),
    }


async def create_streams(client: httpx.AsyncClient, names: list[str], dim: int) -> None:
    sem = asyncio.Semaphore(16)

    async def one(name: str) -> None:
        async with sem:
            r = await client.post("/v1/streams", json={"name": name, "dim": dim, "device": "cpu"})
            r.raise_for_status()

    await asyncio.gather(*(one(n) for n in names))


async def load(
    url: str, kind: str, clients: int, streams: int, seconds: float, setup: bool
) -> dict[str, Any]:
    """`clients` concurrent loops posting batches round-robin over `streams` for `seconds`."""
    rng = np.random.default_rng(0)
    bodies = [payload(kind, rng.standard_normal((B, D)).astype(np.float32)) for _ in range(16)]
    names = [f"s{kind}{clients}x{streams}n{i}" for i in range(streams)]
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        if setup:
            await create_streams(client, names, D)
        for i, name in enumerate(names):  # warm-up: every stream has a bank, the server is hot
            body, headers = bodies[i % len(bodies)]
            await client.post(f"/v1/streams/{name}/batches", content=body, headers=headers)
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds

        async def loop(i: int) -> None:
            nonlocal errors
            j = i
            while time.perf_counter() < deadline:
                body, headers = bodies[j % len(bodies)]
                t0 = time.perf_counter()
                r = await client.post(
                    f"/v1/streams/{names[j % streams]}/batches", content=body, headers=headers
                )
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code != 200
                j += clients

        start = time.perf_counter()
        await asyncio.gather(*(loop(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1e3
    return {
        "body": kind,
        "clients": clients,
        "streams": streams,
        "requests": len(latencies),
        "errors": errors,
        "batches_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


def part_load(seconds: float) -> list[dict[str, Any]]:
    rows = []
    cases = [(k, c, s) for k in ("binary", "json") for c in (1, 16) for s in (1, 100)]
    for target in ("dimwatch", "noop"):
        with running_service(noop=target == "noop", max_streams=1000) as server:
            for kind, clients, streams in cases:
                r = asyncio.run(
                    load(server.url, kind, clients, streams, seconds, setup=target == "dimwatch")
                )
                r["target"] = target
                rows.append(r)
                print(
                    f"{target:<8} {kind:<6} clients={clients:<3} streams={streams:<4} "
                    f"{r['batches_per_s']:8.1f} batches/s  p50 {r['p50_ms']:7.2f} ms  "
                    f"p99 {r['p99_ms']:7.2f} ms  errors {r['errors']}",
                    flush=True,
                )
    for r in rows:
        if r["target"] == "dimwatch":
            noop = next(
                n
                for n in rows
                if n["target"] == "noop"
                and (n["body"], n["clients"], n["streams"])
                == (r["body"], r["clients"], r["streams"])
            )
            r["fraction_of_noop"] = r["batches_per_s"] / noop["batches_per_s"]
    return rows


async def fill(server: Server, dim: int, streams: int) -> dict[str, Any]:
    """Create `streams` streams of dimension `dim`, one batch each; RSS before and after."""
    names = [f"m{dim}n{i}" for i in range(streams)]
    x = np.random.default_rng(1).standard_normal((B, dim)).astype(np.float32)
    body, headers = payload("binary", x)
    rss0 = server.rss_bytes()
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        await create_streams(client, names, dim)
        sem = asyncio.Semaphore(16)

        async def push(name: str) -> None:
            async with sem:
                r = await client.post(f"/v1/streams/{name}/batches", content=body, headers=headers)
                r.raise_for_status()

        start = time.perf_counter()
        for i in range(0, streams, 500):
            await asyncio.gather(*(push(n) for n in names[i : i + 500]))
            progress(f"D={dim}: {min(i + 500, streams)}/{streams} streams fed")
        seconds = time.perf_counter() - start
    rss1 = server.rss_bytes()
    return {
        "D": dim,
        "streams": streams,
        "rss_before_mb": rss0 / 2**20,
        "rss_after_mb": rss1 / 2**20,
        "per_stream_kb": (rss1 - rss0) / streams / 1024,
        "first_batches_per_s": streams / seconds,
    }


def part_memory(sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    rows = []
    for dim, streams in sizes:
        with running_service(max_streams=max(streams, 1)) as server:
            r = asyncio.run(fill(server, dim, streams))
        rows.append(r)
        print(
            f"D={dim:<5} streams={streams:<6} RSS {r['rss_before_mb']:7.1f} -> "
            f"{r['rss_after_mb']:7.1f} MB  ({r['per_stream_kb']:.1f} KB per stream)",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["load", "memory"], action="append")
    parser.add_argument("--seconds", type=float, default=5.0, help="per load phase")
    parser.add_argument("--quick", action="store_true", help="1 s phases, fewer streams")
    args = parser.parse_args()
    parts = args.part or ["load", "memory"]
    seconds = 1.0 if args.quick else args.seconds
    result: dict[str, Any] = {"seconds_per_phase": seconds, "B": B, "D": D}
    if "load" in parts:
        result["load"] = part_load(seconds)
    if "memory" in parts:
        sizes = (
            [(10, 200), (1000, 20), (10, 1000)]
            if args.quick
            else [(10, 1000), (1000, 100), (10, 10_000)]
        )
        result["memory"] = part_memory(sizes)
    write_json("service_speed_quick" if args.quick else "service_speed", result)


if __name__ == "__main__":
    main()
