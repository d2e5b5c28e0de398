"""`dimwatch worker --nats URL`: owns a fair share of the partitions by leases, trains them.

Every lease_seconds / 4 the worker renews its leases (compare-and-set on the lease key), beats
its heartbeat, counts the live workers and moves toward ceil(P / workers) partitions: it takes
free ones (a lease key created; the key's TTL frees it when its owner dies) and hands extra ones
over gracefully (stop, snapshot, delete the lease). A lease counts as held until
`LEASE_MARGIN * lease_seconds` after the renewal was sent, on the monotonic clock (which runs
on while the process is frozen): past that, the partition stops acting at once.
"""

import asyncio
import contextlib
import logging
import math
import os
import random
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import nats.errors
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from prometheus_client import start_http_server

from service.cluster import layout
from service.cluster.layout import Cluster
from service.cluster.log import Fenced, JetStreamLog
from service.cluster.partition import Partition
from service.live import Applied
from service.metrics import Metrics
from service.runtime.pool import freeze_heap, warm_up
from service.runtime.runtime import Entry, Runtime
from service.settings import Settings
from streaming.report import StepReport

log = logging.getLogger("dimwatch")
LEASE_MARGIN = 0.8


@dataclass
class Held:
    """A partition this worker holds: the lease's revision and validity, the running task."""

    partition: Partition
    revision: int
    deadline: float
    task: "asyncio.Task[None] | None" = field(default=None)


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # host-pid: an operator (or a test) finds the process behind a lease's epoch
        self.id = re.sub(r"[^A-Za-z0-9_-]", "_", f"{socket.gethostname()}-{os.getpid()}")
        self.metrics = Metrics()
        self.held: dict[int, Held] = {}
        self.metrics.watch(self._reports)
        self._epochs = 0
        self._c: Cluster | None = None
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None, "worker not started"
        return self._runtime

    def _reports(self) -> list[tuple[str, StepReport | None]]:
        """The last report of every stream of the partitions held, for /metrics (a scrape runs
        in prometheus_client's thread: the dicts are copied before they are walked)."""
        owned = [o for h in list(self.held.values()) for o in list(h.partition.streams.values())]
        return [(o.live.name, o.live.report) for o in owned]

    @property
    def c(self) -> Cluster:
        assert self._c is not None, "worker not started"
        return self._c

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set, then hand every partition over."""
        self._c = await layout.connect(self.settings, f"dimwatch-worker-{self.id}")
        self._runtime = Runtime(self.settings, self.metrics, JetStreamLog(self.c), self._events)
        await self.runtime.run(warm_up)
        if self.settings.metrics_port is not None:
            registry = self.metrics.registry
            start_http_server(self.settings.metrics_port, self.settings.host, registry)
        log.info("worker %s: connected, %d partitions", self.id, self.c.partitions)
        try:
            while not stop.is_set():
                try:
                    await self._tick()
                except nats.errors.Error as exc:  # NATS away for a moment (a restart, an election):
                    # leases not renewed lapse, and their partitions stop on their own
                    log.warning("worker %s: %r", self.id, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.lease_seconds / 4)
        finally:
            for p in list(self.held):
                await self._release(p, graceful=True)
            with contextlib.suppress(NotFoundError):
                await self.c.workers.delete(f"w.{self.id}")
            await self.c.close()
            await self.runtime.close()

    async def _tick(self) -> None:
        await self._renew()
        await self.c.workers.put(f"w.{self.id}", b"1")
        self.metrics.streams.set(len(self.runtime.entries))
        share = math.ceil(self.c.partitions / max(1, len(await layout.keys(self.c.workers))))
        if len(self.held) < share:
            await self._acquire(share - len(self.held))
        for p in sorted(self.held)[share:]:
            await self._release(p, graceful=True)

    # -------------------------------------------------------------------------------- leases

    async def _renew(self) -> None:
        for p, held in list(self.held.items()):
            sent = time.monotonic()
            try:
                held.revision = await self.c.leases.update(
                    layout.lease_key(p), held.partition.epoch.encode(), last=held.revision
                )
            except (KeyWrongLastSequenceError, NotFoundError):
                log.warning("worker %s: lost the lease of partition %d", self.id, p)
                await self._release(p, graceful=False)
                continue
            held.deadline = sent + LEASE_MARGIN * self.settings.lease_seconds

    async def _acquire(self, wanted: int) -> None:
        taken = {int(k.split(".")[1]) for k in await layout.keys(self.c.leases)}
        free = [p for p in range(self.c.partitions) if p not in taken and p not in self.held]
        random.shuffle(free)
        for p in free[:wanted]:
            self._epochs += 1
            epoch = f"{self.id}.{self._epochs}"
            sent = time.monotonic()
            try:
                revision = await self.c.leases.create(layout.lease_key(p), epoch.encode())
            except KeyWrongLastSequenceError:
                continue  # another worker was faster
            deadline = sent + LEASE_MARGIN * self.settings.lease_seconds
            valid = self._validity(p, epoch)
            part = Partition(self.c, self.settings, self.runtime, p, epoch, valid)
            held = Held(part, revision, deadline)
            self.held[p] = held
            held.task = asyncio.create_task(self._own(p, part), name=f"partition:{p}")
            log.info("worker %s: took partition %d (epoch %s)", self.id, p, epoch)

    def _events(self, entry: Entry, applied: Applied) -> None:
        held = self.held.get(layout.partition(entry.live.name, self.c.partitions))
        if held is not None and held.partition.streams.get(layout.token(entry.live.name)) is entry:
            held.partition.events(entry, applied)

    def _validity(self, p: int, epoch: str) -> Callable[[], bool]:
        """Whether this ownership period of partition p may still act: work of an earlier
        period that still runs in the runtime's queues (a later one may hold p now) may not."""

        def valid() -> bool:
            held = self.held.get(p)
            return (
                held is not None
                and held.partition.epoch == epoch
                and time.monotonic() < held.deadline
            )

        return valid

    async def _own(self, p: int, part: Partition) -> None:
        try:
            await part.run()
        except Fenced as exc:
            log.warning("worker %s: %s", self.id, exc)
        except Exception:
            log.exception("worker %s: partition %d failed; handing it back", self.id, p)
        else:
            return
        held = self.held.get(p)
        if held is not None and held.partition is part and not part.stopping:
            await self._release(p, graceful=False)

    async def _release(self, p: int, graceful: bool) -> None:
        """Stop the partition; graceful: snapshot its streams and free the lease at once."""
        held = self.held.get(p)
        if held is None:
            return
        held.partition.stop()
        if held.task is not None and held.task is not asyncio.current_task():
            await asyncio.gather(held.task, return_exceptions=True)
        if graceful and held.partition.valid():
            try:
                await held.partition.snapshot_all()
            except Exception:
                log.exception("worker %s: snapshots of partition %d failed", self.id, p)
        # NATS away (an election: "JetStream system temporarily unavailable"): the lease then
        # lapses by its TTL. Raising here left the partition held, its task dead, served by
        # no one while the lease was renewed (tests/cluster/test_partitions.py).
        with contextlib.suppress(nats.errors.Error):  # KeyWrongLastSequence, NotFound included
            if held.partition.valid():
                await self.c.leases.delete(layout.lease_key(p), last=held.revision)
        if self.held.get(p) is held:
            del self.held[p]
        log.info("worker %s: released partition %d", self.id, p)


def run(settings: Settings) -> None:
    """Run a worker until SIGTERM or SIGINT."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dimwatch").setLevel(settings.log_level.upper())

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        freeze_heap()  # as the server does once it is up
        await Worker(settings).run(stop)

    asyncio.run(main())
