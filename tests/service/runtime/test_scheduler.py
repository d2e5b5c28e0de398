"""The scheduler: batches of different streams ready at the same time are stepped in one call."""

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

import httpx
import numpy as np
import pytest

from service.runtime import runtime
from service.runtime.scheduler import Scheduler
from tests.service.helpers import Server, batch, push, wait_until


def test_items_ready_while_every_thread_is_busy_go_in_one_group() -> None:
    groups: list[list[str]] = []
    busy, release = threading.Event(), threading.Event()

    def run(group: list[str]) -> None:
        groups.append(group)
        if group == ["first"]:
            busy.set()
            release.wait(30)

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            scheduler: Scheduler[str] = Scheduler(pool, 1, run)
            scheduler.add("first")
            await asyncio.sleep(0)  # dispatched at the end of this loop iteration
            assert await asyncio.to_thread(busy.wait, 30)
            for name in ("a", "b", "c"):
                scheduler.add(name)
            await asyncio.sleep(0.05)
            release.set()
            await asyncio.to_thread(wait_until, lambda: len(groups) == 2)

    asyncio.run(main())
    assert groups == [["first"], ["a", "b", "c"]]


def test_items_ready_in_one_loop_iteration_are_shared_among_the_threads() -> None:
    groups: list[list[int]] = []
    lock = threading.Lock()

    def run(group: list[int]) -> None:
        with lock:
            groups.append(group)

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            scheduler: Scheduler[int] = Scheduler(pool, 2, run)
            for i in range(6):
                scheduler.add(i)
            await asyncio.to_thread(wait_until, lambda: sum(map(len, groups)) == 6)

    asyncio.run(main())
    assert sorted(i for group in groups for i in group) == list(range(6))  # each once
    assert [0, 1, 2] in groups  # the first thread took an even share, not all six


def test_waiting_batches_of_many_streams_are_stepped_in_one_call(
    make_server: Callable[..., AbstractContextManager[Server]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = runtime.learn_together

    def recording(pairs: Sequence[tuple[Any, np.ndarray]]) -> list[Any]:
        calls.append(len(pairs))
        return real(pairs)

    monkeypatch.setattr(runtime, "learn_together", recording)
    names = ["held", "a", "b", "c"]
    with make_server(workers=1) as server:
        for name in names:
            server.client.post("/v1/streams", json={"name": name, "latent_dims": [1, 2]})
        held = server.registry.get("held")
        codes: dict[str, int] = {}

        def send(name: str) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                codes[name] = push(c, name, batch(rows=3, dim=4), seq=0).status_code

        threads = [threading.Thread(target=send, args=(name,)) for name in names]
        with held.live.lock:  # the one worker thread waits for it: the other batches queue up
            threads[0].start()
            wait_until(lambda: server.registry.runtime.scheduler.groups == 1)
            for t in threads[1:]:
                t.start()
            wait_until(lambda: all(server.registry.get(n).pending == 1 for n in names[1:]))
        for t in threads:
            t.join(30)
    assert codes == dict.fromkeys(names, 200)
    assert calls == [1, 3]  # the held stream's batch alone, then the three that waited, together
