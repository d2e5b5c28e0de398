"""Speed and memory of the service over loopback (issue 6, item 5).

Throughput (batches/s) and latency (p50/p99) of POST /v1/streams/{name}/batches with batches of
10 rows, D = 10: JSON and binary (float32) bodies, 1 and 16 concurrent clients, 1 and 100
streams; against a no-op FastAPI endpoint (bench/noop_app.py) that parses the same payload with
the service's own decoder, in the same run. Server and clients run in separate processes; every
load phase is bounded in time. Memory: resident size of the server process per stream (D = 10
and D = 1000) and with 10,000 streams of D = 10.

Commits (issue 10, item 5): 1 client on 1 stream and 16 clients on 16 streams against the no-op
app, the service at a baseline revision (--before, run from a `git archive` of it) and this
checkout, in alternated rounds of one run; and the stall a large snapshot causes: 15 clients on
small streams while a 16th pushes to a stream whose snapshots are ~40 MB.

Line rate (issue 19): the real server at one and 16 kept-alive clients, JSON against binary,
the step time, against the no-op and a baseline revision (bench/line_rate.py).

    python -m bench.service_speed [--quick] [--seconds 5] [--part load memory commit store line]
                                  [--before REV] [--rounds 2]
"""

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import line_rate
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


def sample_bodies(kind: str, count: int = 16) -> list[tuple[bytes, dict[str, str]]]:
    """`count` reproducible B x D batches as request bodies of `kind` (json or binary)."""
    rng = np.random.default_rng(0)
    return [payload(kind, rng.standard_normal((B, D)).astype(np.float32)) for _ in range(count)]


async def create_streams(client: httpx.AsyncClient, names: list[str], dim: int) -> None:
    sem = asyncio.Semaphore(16)

    async def one(name: str) -> None:
        async with sem:
            r = await client.post("/v1/streams", json={"name": name, "dim": dim, "device": "cpu"})
            r.raise_for_status()

    await asyncio.gather(*(one(n) for n in names))


Post = tuple[str, bytes, dict[str, str]]  # (stream, body, headers)


async def drive(
    client: httpx.AsyncClient, posts: list[list[Post]], seconds: float
) -> list[dict[str, Any]]:
    """One loop per list of posts, each posting its batches in turn for `seconds`, together;
    the rate, latencies and errors of each loop."""
    deadline = time.perf_counter() + seconds

    async def loop(mine: list[Post]) -> dict[str, Any]:
        latencies: list[float] = []
        errors, start = 0, time.perf_counter()
        while time.perf_counter() < deadline:
            name, body, headers = mine[len(latencies) % len(mine)]
            t0 = time.perf_counter()
            r = await client.post(f"/v1/streams/{name}/batches", content=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 200
        return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - start}

    return list(await asyncio.gather(*(loop(p) for p in posts)))


def summary(loops: list[dict[str, Any]]) -> dict[str, Any]:
    """Batches/s, p50/p99 latency and errors of several loops together."""
    lat = np.concatenate([np.array(loop["latencies"]) for loop in loops]) * 1e3
    seconds = max(loop["seconds"] for loop in loops)
    return {
        "requests": len(lat),
        "errors": sum(loop["errors"] for loop in loops),
        "batches_per_s": len(lat) / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }


async def load(
    url: str, kind: str, clients: int, streams: int, seconds: float, setup: bool
) -> dict[str, Any]:
    """`clients` concurrent loops posting batches round-robin over `streams` for `seconds`."""
    bodies = sample_bodies(kind)
    names = [f"s{kind}{clients}x{streams}n{i}" for i in range(streams)]
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        if setup:
            await create_streams(client, names, D)
        for i, name in enumerate(names):  # warm-up: every stream has a bank, the server is hot
            body, headers = bodies[i % len(bodies)]
            await client.post(f"/v1/streams/{name}/batches", content=body, headers=headers)
        # client i posts to streams i, i + clients, ... and bodies likewise, round-robin
        posts = [
            [
                (names[j % streams], *bodies[j % len(bodies)])
                for j in range(i, i + clients * max(streams, len(bodies)), clients)
            ]
            for i in range(clients)
        ]
        loops = await drive(client, posts, seconds)
    return {"body": kind, "clients": clients, "streams": streams, **summary(loops)}


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


COMMIT_CASES = ((1, 1), (16, 16))  # (clients, streams)
BIG_DIM, BIG_LATENTS = 1000, [100, 200, 300, 400]  # a stream whose snapshot is ~40 MB
STALL_ENV = {"DIMWATCH_SNAPSHOT_EVERY": "10"}


@contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """The repository at `rev`, extracted (git archive) into a temporary folder."""
    tar = subprocess.run(["git", "archive", "--format=tar", rev], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="dimwatch-before-") as folder:
        with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
            archive.extractall(folder, filter="data")
        yield Path(folder)


async def stall(url: str, seconds: float) -> dict[str, Any]:
    """15 clients on 15 small streams while a 16th pushes to a stream with large snapshots: the
    small streams' rate and latency, and the large stream's batches (and so snapshots)."""
    x = np.random.default_rng(0).standard_normal((B, D)).astype(np.float32)
    big = np.random.default_rng(1).standard_normal((B, BIG_DIM)).astype(np.float32)
    small = [f"small{i}" for i in range(15)]
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await create_streams(client, small, D)
        spec = {"name": "big", "dim": BIG_DIM, "device": "cpu", "latent_dims": BIG_LATENTS}
        (await client.post("/v1/streams", json=spec)).raise_for_status()
        posts = [[(name, *payload("binary", x))] for name in small]
        posts.append([("big", *payload("binary", big))])
        for loop in posts:  # warm-up
            await client.post(
                f"/v1/streams/{loop[0][0]}/batches", content=loop[0][1], headers=loop[0][2]
            )
        loops = await drive(client, posts, seconds)
    return {
        "case": "15 small + 1 large-snapshot stream",
        **summary(loops[:-1]),
        "large_stream_batches": len(loops[-1]["latencies"]),
    }


def part_commit(seconds: float, before: str, rounds: int) -> list[dict[str, Any]]:
    """The no-op app, the service at `before` and this checkout, alternated `rounds` times."""
    rows: list[dict[str, Any]] = []
    with checkout(before) as old:
        targets: dict[str, dict[str, Any]] = {
            "noop": {"noop": True},
            "before": {"source": old},
            "after": {},
        }
        for round_ in range(rounds):
            for target, options in targets.items():
                found = []
                with running_service(max_streams=1000, **options) as server:
                    for clients, streams in COMMIT_CASES:
                        r = asyncio.run(
                            load(server.url, "binary", clients, streams, seconds, target != "noop")
                        )
                        found.append({"case": f"{clients} clients x {streams} streams", **r})
                if target != "noop":
                    with running_service(max_streams=1000, env=STALL_ENV, **options) as server:
                        found.append(asyncio.run(stall(server.url, seconds)))
                for r in found:
                    r.update(target=target, round=round_)
                    rows.append(r)
                    print(
                        f"round {round_} {target:<6} {r['case']:<36} {r['batches_per_s']:8.1f} "
                        f"batches/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
                        f"errors {r['errors']}  {r.get('large_stream_batches', '')}",
                        flush=True,
                    )
    return rows


STORE_PROBE = """
import json, sys, tempfile, threading, time
from pathlib import Path
from service.history import Change
from service.store import Store
threads, seconds = int(sys.argv[1]), float(sys.argv[2])
with tempfile.TemporaryDirectory() as folder:
    store = Store(Path(folder))
    for i in range(threads):
        store.create_stream(f"s{i}", {}, 10, "2026-11-29T00:00:00Z")
    counts, data, deadline = [0] * threads, bytes(400), time.perf_counter() + seconds
    def append(i):
        while time.perf_counter() < deadline:
            counts[i] += 1
            store.append_batch(f"s{i}", counts[i], 10, data, 10, Change(None, None))
    start = time.perf_counter()
    workers = [threading.Thread(target=append, args=(i,)) for i in range(threads)]
    for w in workers: w.start()
    for w in workers: w.join()
    print(json.dumps({"appends_per_s": sum(counts) / (time.perf_counter() - start)}))
    store.close()
"""


def part_store(seconds: float, before: str, rounds: int) -> list[dict[str, Any]]:
    """Durable appends of 10 x 10 batches per second straight into the store (no HTTP, no
    training), 1 and 16 threads each on its own stream: the commit path alone, before/after."""
    rows = []
    with checkout(before) as old:
        for round_ in range(rounds):
            for target, source in (("before", old), ("after", Path.cwd())):
                for threads in (1, 16):
                    out = subprocess.run(
                        [sys.executable, "-c", STORE_PROBE, str(threads), str(seconds)],
                        check=True, capture_output=True, text=True, cwd=source,
                        env={**os.environ, "PYTHONPATH": str(source)},
                    )  # fmt: skip
                    r = {"target": target, "threads": threads, "round": round_}
                    r.update(json.loads(out.stdout))
                    rows.append(r)
                    print(
                        f"round {round_} store {target:<6} {threads:>2} threads "
                        f"{r['appends_per_s']:8.1f} durable appends/s",
                        flush=True,
                    )
    return rows


def commit_table(rows: list[dict[str, Any]]) -> None:
    """Median over rounds per target and case, with the ratio to the no-op app's median."""

    def median(case: str, target: str, key: str) -> float | None:
        mine = [r[key] for r in rows if (r["case"], r["target"]) == (case, target)]
        return float(np.median(mine)) if mine else None

    for case in dict.fromkeys(r["case"] for r in rows):
        noop = median(case, "noop", "batches_per_s")
        for target in ("noop", "before", "after"):
            rate, p99 = median(case, target, "batches_per_s"), median(case, target, "p99_ms")
            if rate is None or p99 is None:
                continue
            ratio = "" if noop is None else f"{rate / noop:.2f}x no-op"
            print(f"{case:<36} {target:<6} {rate:8.1f} batches/s  p99 {p99:8.2f} ms  {ratio}")


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
    parts = ["load", "memory", "commit", "store", "line"]
    parser.add_argument("--part", choices=parts, action="append")
    parser.add_argument("--before", default="b4631f6", help="baseline revision (part commit)")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds (part commit)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per load phase")
    parser.add_argument("--quick", action="store_true", help="1 s phases, fewer streams")
    args = parser.parse_args()
    parts = args.part or ["load", "memory"]
    seconds = 1.0 if args.quick else args.seconds
    result: dict[str, Any] = {"seconds_per_phase": seconds, "B": B, "D": D}
    if "load" in parts:
        result["load"] = part_load(seconds)
    if "commit" in parts:
        result["before"] = args.before
        result["commit"] = part_commit(seconds, args.before, args.rounds)
        commit_table(result["commit"])
    if "store" in parts:
        result["before"] = args.before
        result["store"] = part_store(seconds, args.before, args.rounds)
    if "line" in parts:
        result["before"] = args.before
        result["line"] = line_rate.part_line(seconds, args.before, args.rounds)
        line_rate.line_table(result["line"])
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
