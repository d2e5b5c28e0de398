"""Batches of many streams stepped together (issue 20, item 4: the service's seam).

Each stream runs one job at a time, but many streams have a batch ready at the same moment under
load. The scheduler collects the batches that are ready (across streams) and hands them to a
worker thread as one group; the group is stepped with one call to the core,
`streaming.learner.learn_together([(learner, batch), ...])`, whose result per pair is what
`learn_many` on that pair alone would have returned (or raised), and which stacks the steps of
the same shape into one computation. While the `workers` threads are all busy, newly
ready batches wait here and go in the next groups: the busier the server, the larger the groups.

Dispatch happens at the end of the event loop's current iteration (`call_soon`): no timer, no
batch waits for another to arrive.
"""

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("dimwatch")


class Scheduler(Generic[T]):
    """Ready items, run in groups by `run(group)` on at most `workers` threads of `pool`. A
    thread that finishes a group takes the next ready items itself: the loop is not woken
    for it."""

    def __init__(
        self, pool: ThreadPoolExecutor, workers: int, run: Callable[[list[T]], None]
    ) -> None:
        self._pool, self._workers, self._run = pool, workers, run
        self._lock = threading.Lock()  # _ready, _running and the counts
        self._ready: list[T] = []
        self._running = 0  # threads taking groups
        self._idle = 0  # of them, those between groups
        self._armed = False  # a dispatch is scheduled on the loop
        self.groups = 0  # groups run (for tests and the bench: items / groups)
        self.items = 0

    def add(self, item: T) -> None:
        """`item` is ready (on the loop): it goes to a thread at the end of this loop
        iteration, with the items made ready in the same iteration."""
        with self._lock:
            self._ready.append(item)
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._armed = False
        with self._lock:
            start = min(self._workers - self._running, len(self._ready))
            self._running += start
            self._idle += start
        for _ in range(start):
            self._pool.submit(self._drain)

    def _drain(self) -> None:
        """On a worker thread: run groups until nothing is ready."""
        while True:
            with self._lock:
                if not self._ready:
                    self._running -= 1
                    self._idle -= 1
                    return
                share = -(-len(self._ready) // self._idle)  # even shares among idle threads
                group, self._ready = self._ready[:share], self._ready[share:]
                self._idle -= 1
                self.groups += 1
                self.items += len(group)
            try:
                self._run(group)
            except Exception:  # run() answers its items' errors itself: this is a bug
                log.exception("a group of batches failed")
            with self._lock:
                self._idle += 1
