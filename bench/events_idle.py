"""What idle server-sent-event listeners cost the server: CPU with L open, silent events streams,
against the same server with none, in the same run; optionally against another checkout.

    python -m bench.events_idle [--listeners 200] [--seconds 10] [--baseline PATH] [--quick]

Before issue 10 every listener woke every 250 ms to poll for shutdown; now a listener sleeps until
a publish, a delete, the server's stop or its keep-alive interval wakes it. --baseline runs the
same measurement on another checkout (e.g. a worktree of the commit before) for the ratio.
"""

import argparse
import asyncio
import os
import time
from pathlib import Path

import httpx

from bench.served import running_service


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _listen(base: str, count: int, seconds: float, pid: int) -> float:
    """Open `count` events streams of stream s, wait until all are connected, then measure the
    server's CPU seconds per second over `seconds` of silence."""
    limits = httpx.Limits(max_connections=count + 1)
    async with httpx.AsyncClient(base_url=base, timeout=None, limits=limits) as client:
        connected = asyncio.Event()
        opened = 0

        async def one() -> None:
            nonlocal opened
            async with client.stream("GET", "/v1/streams/s/events") as response:
                lines = response.aiter_lines()
                await anext(lines)  # ": connected"
                opened += 1
                if opened == count:
                    connected.set()
                async for _ in lines:
                    pass

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        if count:
            await asyncio.wait_for(connected.wait(), 120)
        start_cpu, start = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(seconds)  # the measured interval: nothing is sent
        used = (cpu_seconds(pid) - start_cpu) / (time.perf_counter() - start)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return used


def measure(listeners: int, seconds: float, source: Path | None) -> tuple[float, float]:
    """(CPU s/s with no listener, CPU s/s with `listeners`), one server, the same run."""
    env = {"DIMWATCH_KEEPALIVE_SECONDS": "3600"}
    with running_service(source=source, env=env) as server:
        httpx.post(f"{server.url}/v1/streams", json={"name": "s"}, timeout=60).raise_for_status()
        idle = asyncio.run(_listen(server.url, 0, seconds, server.pid))
        busy = asyncio.run(_listen(server.url, listeners, seconds, server.pid))
    return idle, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baseline", type=Path, help="a checkout of the revision to compare")
    parser.add_argument("--quick", action="store_true", help="50 listeners, 3 s")
    args = parser.parse_args()
    listeners, seconds = (50, 3.0) if args.quick else (args.listeners, args.seconds)
    print(f"load average {os.getloadavg()[0]:.1f}; {listeners} idle listeners, {seconds:g} s")
    runs = [("this checkout", None)]
    if args.baseline is not None:
        runs.insert(0, (f"baseline {args.baseline}", args.baseline.resolve()))
    for label, source in runs:
        idle, busy = measure(listeners, seconds, source)
        print(
            f"{label}: server CPU {idle * 1000:.1f} ms/s without listeners, "
            f"{busy * 1000:.1f} ms/s with {listeners} ({(busy - idle) * 1000:+.1f} ms/s)"
        )


if __name__ == "__main__":
    main()
