"""The live streams of one server and the ordered, bounded work queue of each.

Threads and the loop:
- Training and SQLite commits run in a thread pool, never on the loop: at most
  `settings.workers` training steps at once (a semaphore), and up to COMMIT_WAITERS more threads
  waiting on their commit, so that the store can group the commits of many streams into one.
- Each stream has one consumer task that takes its jobs in arrival order and runs them one at a
  time in the pool: batches of one stream apply in order, different streams in parallel.
- A stream's queue holds at most `settings.queue_depth` batches; past that, 429 + Retry-After.
- Stored streams are restored (snapshot + replay) in the pool after start; until then routes
  answer 503 and /readyz says "starting". Each is restored on its own: one that cannot be (a
  corrupt row, a snapshot of an unknown version, a device this machine lacks) is kept as
  `Unavailable` (listed, deletable, counted; its routes answer 409 stream_unavailable) and
  every other stream serves. A stream whose commit and reload both fail becomes one too.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
import torch
from starlette.concurrency import run_in_threadpool

from service import views
from service.budget import Budget, bank_bytes, batch_bytes
from service.errors import ApiError, not_found
from service.live import Applied, LiveStream, Unavailable, restore
from service.metrics import Metrics
from service.pubsub import Hub
from service.schemas import StreamCreate
from service.settings import Settings
from service.store import Store
from streaming.learner import Learner, resolve_device
from streaming.spec import StreamSpec

T = TypeVar("T")
log = logging.getLogger("dimwatch")
COMMIT_WAITERS = 32  # pool threads beyond the training ones (they wait on group commits)


def _init_worker() -> None:
    # One intra-op thread per worker: results do not depend on scheduling, so a replay after a
    # crash reproduces the original run bit for bit; parallelism comes from many streams.
    torch.set_num_threads(1)


def _warm_up() -> None:
    """Build and step a tiny learner of each rule once: torch's first optimizer costs seconds of
    lazy imports, paid here before /readyz rather than by the first batch of a stream."""
    for optimizer in ("subspace", "adam"):
        spec = StreamSpec(latent_dims=(1,), device="cpu", optimizer=optimizer)
        Learner(2, spec).learn_many(np.ones((2, 2), np.float32))


@dataclass
class _Job:
    fn: Callable[[], Any]
    future: "asyncio.Future[Any]"
    counted: bool  # counts against queue_depth (batches do; deletes and snapshots do not)
    reserved: int = 0  # memory budget bytes of a batch, released when it is done


@dataclass
class Entry:
    """One stream: its state, its queue and consumer, its event listeners."""

    live: LiveStream
    queue: "asyncio.Queue[_Job | None]" = field(default_factory=asyncio.Queue)
    pending: int = 0  # counted jobs queued or running
    hub: Hub = field(default_factory=Hub)
    task: "asyncio.Task[None] | None" = None
    resident: int = 0  # memory budget bytes reserved for its bank


class Registry:
    """Every live stream, keyed by name; the one object routes talk to."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ready = False
        self._streams: dict[str, Entry] = {}
        # /metrics' per-stream gauges: every serving stream's last report, read at each scrape
        metrics.watch(lambda: [(e.live.name, e.live.report) for e in list(self._streams.values())])
        self._unavailable: dict[str, Unavailable] = {}
        self._store: Store | None = None
        self._pool = ThreadPoolExecutor(
            settings.workers + COMMIT_WAITERS, "dimwatch-worker", _init_worker
        )
        self._gate = threading.Semaphore(settings.workers)  # training steps at once
        self.budget = Budget(settings.memory_budget_mb)
        metrics.memory_budget.set(self.budget.limit)
        metrics.memory.labels("resident").set_function(lambda: self.budget.resident)
        metrics.memory.labels("transient").set_function(lambda: self.budget.transient)
        self._loader: asyncio.Task[None] | None = None

    @property
    def store(self) -> Store:
        assert self._store is not None, "registry not started"
        return self._store

    # -------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the store and begin restoring stored streams in the background."""
        self._store = await self._run(Store, self.settings.data_dir)
        self._loader = asyncio.create_task(self._load())

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            await self._run(_warm_up)
            names = await self._run(self.store.stream_names)
        except Exception:
            log.exception("could not read the stored streams; the server stays unready")
            return
        for restored in await asyncio.gather(*(self._run(self._restore, n) for n in names)):
            if isinstance(restored, LiveStream):
                resident = 0 if restored.dim is None else bank_bytes(restored.spec, restored.dim)
                self.budget.resident += resident  # stored streams come back, over budget or not
                self._start(Entry(restored, resident=resident))
            elif restored is not None:
                self._unavailable[restored.name] = restored
        self._count()
        self.ready = True
        log.info(
            "loaded %d streams in %.2f s (%d unavailable)",
            len(self._streams),
            time.perf_counter() - started,
            len(self._unavailable),
        )

    def _restore(self, name: str) -> LiveStream | Unavailable | None:
        s = self.settings
        live = restore(self.store, name, s.device, s.history_limit, self._gate)
        if isinstance(live, LiveStream):
            try:
                live.snapshot_if_due(s.snapshot_every)
            except Exception:  # restored all the same; the next snapshot retries
                log.exception("snapshot of stream %r failed", name)
        return live

    def _count(self) -> None:
        self.metrics.streams.set(len(self._streams))
        self.metrics.unavailable.set(len(self._unavailable))

    async def close(self) -> None:
        """Drain every queue, snapshot every stream, close the store (graceful shutdown)."""
        if self._loader is not None:
            await asyncio.gather(self._loader, return_exceptions=True)
        entries = list(self._streams.values())
        for entry in entries:
            entry.hub.close()
            entry.queue.put_nowait(None)
        await asyncio.gather(*(e.task for e in entries if e.task is not None))
        await asyncio.gather(*(self._run(e.live.snapshot) for e in entries))
        if self._store is not None:
            await self._run(self._store.close)
        self._pool.shutdown(wait=True)

    def _start(self, entry: Entry) -> None:
        """Register the stream and start its consumer."""
        entry.task = asyncio.create_task(self._consume(entry), name=f"stream:{entry.live.name}")
        self._streams[entry.live.name] = entry
        self._count()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -------------------------------------------------------------------------------- queues

    async def _consume(self, entry: Entry) -> None:
        """Run the stream's jobs one at a time, in order, in the pool."""
        while (job := await entry.queue.get()) is not None:
            try:
                result = await self._run(job.fn)
            except Exception as exc:
                if not job.future.done():
                    job.future.set_exception(exc)
            else:
                if isinstance(result, Applied) and not result.duplicate:
                    self._published(entry, result)
                if not job.future.done():
                    job.future.set_result(result)
            finally:
                entry.pending -= job.counted
                self.budget.transient -= job.reserved
            if job.reserved and entry.live.dim is None:  # its first batch failed: no bank yet
                self._release(entry)
            if entry.live.unavailable is not None and not entry.live.deleted:
                self._retire(entry)

    def _retire(self, entry: Entry) -> None:
        """Move a stream that became unavailable to the unavailable ones (its queued jobs answer
        409 stream_unavailable, then its consumer ends)."""
        if self._streams.get(entry.live.name) is not entry:
            return
        del self._streams[entry.live.name]
        self._unavailable[entry.live.name] = entry.live.as_unavailable()
        entry.queue.put_nowait(None)
        entry.hub.close()
        self._release(entry)
        self._count()

    def _release(self, entry: Entry) -> None:
        """Give the memory budget reserved for the stream's bank back."""
        self.budget.resident -= entry.resident
        entry.resident = 0

    def _check_queue(self, entry: Entry) -> None:
        if entry.pending >= self.settings.queue_depth:
            raise ApiError(
                429,
                "rate_limited",
                f"stream {entry.live.name!r} has {entry.pending} batches queued; the limit "
                f"queue_depth is {self.settings.queue_depth}; retry later",
                headers={"Retry-After": "1"},
            )

    async def _submit(
        self, entry: Entry, fn: Callable[[], T], counted: bool = True, reserved: int = 0
    ) -> T:
        if counted:
            self._check_queue(entry)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry.pending += counted
        entry.queue.put_nowait(_Job(fn, future, counted, reserved))
        return await future

    def _published(self, entry: Entry, applied: Applied) -> None:
        """Metrics and events of one applied batch (on the loop, in step order)."""
        report = applied.report
        self.metrics.batches.inc()
        self.metrics.rows.inc(applied.rows)
        self.metrics.step_seconds.observe(applied.seconds)
        changed = applied.previous_best not in (None, report.best_latent_dim)
        if changed:
            self.metrics.selection_changes.inc()
        # Rendered only when a listener reads them (now, or on a reconnect with Last-Event-ID).
        entry.hub.publish(report.step, lambda: views.step_events(applied))

    # -------------------------------------------------------------------------------- streams

    def get(self, name: str) -> Entry:
        """The serving stream `name`; 404 when there is none, 409 when it is unavailable."""
        entry = self._streams.get(name)
        if entry is None or entry.live.deleted:
            if name in self._unavailable:
                raise self._unavailable[name].error()
            raise not_found(f"stream {name!r}")
        return entry

    def streams(self) -> list[LiveStream | Unavailable]:
        """Every stream, serving or unavailable, sorted by name."""
        found: list[LiveStream | Unavailable] = [e.live for e in self._streams.values()]
        found.extend(self._unavailable.values())
        return sorted(found, key=lambda s: s.name)

    @property
    def unavailable(self) -> list[str]:
        """Names of the streams that cannot be served."""
        return sorted(self._unavailable)

    async def create(self, spec: StreamCreate) -> LiveStream:
        """Validate the settings against the limits and the core, store them, go live."""
        if spec.name in self._streams or spec.name in self._unavailable:
            raise ApiError(
                409, "stream_exists", f"stream {spec.name!r} already exists; pick another name"
            )
        self.check_limits(spec, self.settings, len(self._streams) + len(self._unavailable))
        live = self.new_stream(spec, self.store, self.settings, self._gate)
        config, created_at = live.record, live.created_at
        resident = 0 if spec.dim is None else bank_bytes(live.spec, spec.dim)
        self.budget.reserve_stream(spec.name, resident)
        entry = Entry(live, resident=resident)
        self._streams[spec.name] = entry  # reserve the name while the row is written
        try:
            await self._run(self.store.create_stream, spec.name, config, spec.dim, created_at)
        except BaseException:
            del self._streams[spec.name]
            self._release(entry)
            raise
        self._start(entry)
        return live

    @staticmethod
    def new_stream(
        spec: StreamCreate,
        store: Store,
        settings: Settings,
        gate: threading.Semaphore | None = None,
    ) -> LiveStream:
        """The stream spec asks for, created now, its settings checked by the core."""
        live = LiveStream(
            spec.name,
            spec.model_dump(exclude={"name", "dim"}),
            spec.dim,
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            store,
            settings.device,
            settings.history_limit,
            gate,
        )
        if spec.dim is not None:
            live.spec.check_dim(spec.dim)
        return live

    @staticmethod
    def check_limits(spec: StreamCreate, s: Settings, streams: int) -> None:
        """422 limit_exceeded when a new stream would pass a limit (the cluster checks too)."""
        settings = spec.model_dump()
        latent_dims, mc_samples = settings["latent_dims"], settings["mc_samples"]
        if streams >= s.max_streams:
            raise ApiError(
                422,
                "limit_exceeded",
                f"{streams} streams exist; the limit max_streams is {s.max_streams}",
            )
        if len(latent_dims) > s.max_latent_dims:
            raise ApiError(
                422,
                "limit_exceeded",
                f"{len(latent_dims)} latent sizes given; "
                f"the limit max_latent_dims is {s.max_latent_dims}",
            )
        if max(latent_dims) >= s.max_dim:
            raise ApiError(
                422,
                "limit_exceeded",
                f"latent size {max(latent_dims)} needs D > {max(latent_dims)}; "
                f"the limit max_dim is {s.max_dim}",
            )
        if spec.dim is not None and spec.dim > s.max_dim:
            raise ApiError(
                422, "limit_exceeded", f"dim is {spec.dim}; the limit max_dim is {s.max_dim}"
            )
        if mc_samples > s.max_mc_samples:
            raise ApiError(
                422,
                "limit_exceeded",
                f"mc_samples is {mc_samples}; the limit max_mc_samples is {s.max_mc_samples}",
            )
        device = settings["device"]
        resolve_device(device if device != "auto" else s.device)

    async def delete(self, name: str) -> None:
        """Remove a stream; its queued batches and every later request answer 404."""
        if name in self._unavailable and name not in self._streams:
            await self._delete_unavailable(name)
            return
        entry = self.get(name)
        entry.live.deleted = True  # checked by requests and by queued batches
        try:
            await self._submit(entry, entry.live.delete, counted=False)
        except BaseException:
            entry.live.deleted = False  # still stored: keep serving it
            raise
        entry.queue.put_nowait(None)
        entry.hub.close()
        del self._streams[name]
        self._release(entry)
        self._count()

    async def _delete_unavailable(self, name: str) -> None:
        record = self._unavailable.pop(name)  # a second delete meanwhile answers 404
        try:
            await self._run(self.store.delete_stream, name)
        except BaseException:
            self._unavailable[name] = record
            raise
        self._count()

    # -------------------------------------------------------------------------------- work

    async def push(self, name: str, x: np.ndarray, seq: int | None) -> Applied:
        """Apply one batch in the stream's order; returns once it is durable. Its memory (and
        its stream's bank's, for a first batch) is reserved from the budget until it is done."""
        entry = self.get(name)
        live, every = entry.live, self.settings.snapshot_every
        self._check_queue(entry)
        rows, dim = x.shape
        bank = 0 if entry.resident else bank_bytes(live.spec, dim)
        reserved = batch_bytes(live.spec, dim, rows)
        self.budget.admit_batch(name, bank, reserved)
        entry.resident += bank

        def job() -> Applied:
            applied = live.apply(x, seq)
            try:
                live.snapshot_if_due(every)
            except Exception:  # the batch is durable in the log; the next batch retries
                log.exception("snapshot of stream %r failed", live.name)
            return applied

        return await self._submit(entry, job, reserved=reserved)

    async def read(self, name: str, fn: Callable[[LiveStream], T]) -> T:
        """Run a blocking read of the stream's bank off the loop, not behind its queue."""
        live = self.get(name).live
        return await run_in_threadpool(fn, live)
