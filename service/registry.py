"""The embedded mode: every stream of one server, on the runtime (service/runtime/) with the
SQLite store as its log.

- A batch is trained on a worker thread, then committed by the store's group commit (many
  streams' batches share one fsync), then answered (service/runtime/runtime.py has the path).
- Stored streams are restored (snapshot + replay) on worker threads after start; until then routes
  answer 503 and /readyz says "starting". Each is restored on its own: one that cannot be (a
  corrupt row, a snapshot of an unknown version, a device this machine lacks) is kept as
  `Unavailable` (listed, deletable, counted; its routes answer 409 stream_unavailable) and
  every other stream serves. A stream whose commit and reload both fail becomes one too.
"""

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from starlette.concurrency import run_in_threadpool

from service import views
from service.budget import Budget
from service.errors import ApiError, not_found
from service.history import Change
from service.live import EPOCH, Applied, LiveStream, Unavailable
from service.metrics import Metrics
from service.runtime.admission import check_limits
from service.runtime.log import Done, StorageError
from service.runtime.pool import warm_up
from service.runtime.runtime import Entry, Runtime
from service.schemas import StreamCreate
from service.settings import Settings
from service.store import Store, StoredStream
from streaming.spec import migrate

T = TypeVar("T")
log = logging.getLogger("dimwatch")


def restore(
    store: Store, name: str, default_device: str, history_limit: int
) -> LiveStream | Unavailable | None:
    """The stream `name` restored from the embedded store, or why it cannot be (never raises);
    None: no such stream."""
    stored: StoredStream | None = None
    try:
        stored = store.load_stream(name)
        if stored is None:
            return None
        return LiveStream.restore(stored, default_device, history_limit)
    except KeyError as exc:  # a row of another schema
        log.exception("stream %r cannot be restored; serving it as unavailable", name)
        reason = f"could not restore it (stored setting {exc} missing)"
    except Exception as exc:
        log.exception("stream %r cannot be restored; serving it as unavailable", name)
        reason = f"could not restore it ({exc})"
    if stored is None:
        try:
            stored = store.load_row(name)
        except Exception:
            log.exception("stream %r: its row cannot be read", name)
    if stored is None:
        return Unavailable(name, reason, {}, None, EPOCH, 0)
    try:
        config = migrate(dict(stored.config))
    except Exception:
        config = dict(stored.config)
    return Unavailable(name, reason, config, stored.dim, stored.created_at, stored.stored_step)


class SqliteLog:
    """The runtime's log in one process: service/store.py. A commit joins the store's next group
    commit; snapshots go to their own file, then drop the log rows they cover."""

    def __init__(self, registry: "Registry") -> None:
        self._registry = registry

    @property
    def store(self) -> Store:
        return self._registry.store

    def append(self, live: LiveStream, step: int, x: np.ndarray, done: Done) -> None:
        def stored(error: BaseException | None) -> None:
            done(StorageError(str(error)) if isinstance(error, sqlite3.Error) else error)

        try:
            self.store.log_batch(live.name, step, x.shape[0], x.tobytes(), x.shape[1], stored)
        except sqlite3.Error as exc:
            stored(exc)

    def drop(self, live: LiveStream, step: int, done: Done) -> None:
        self.store.drop_batch(live.name, step, done)

    def record(self, live: LiveStream, change: Change) -> None:
        self.store.mirror_history(live.name, change)

    async def snapshot(self, live: LiveStream) -> None:
        await asyncio.to_thread(self.snapshot_now, live)

    def snapshot_now(self, live: LiveStream) -> None:
        """snapshot(), blocking."""
        state = live.state()
        if state is not None:
            step, data, digests = state
            self.store.save_snapshot(live.name, step, data, digests)
            live.snapshot_step = step

    async def delete(self, live: LiveStream) -> None:
        await asyncio.to_thread(self.store.delete_stream, live.name)

    def load(self, name: str) -> StoredStream | None:
        return self.store.load_stream(name)


class Registry:
    """Every stream of this server, keyed by name; the one object routes talk to."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ready = False
        self._unavailable: dict[str, Unavailable] = {}
        self._store: Store | None = None
        self._log = SqliteLog(self)
        self.runtime = Runtime(settings, metrics, self._log, self._events, self._retire)
        # /metrics' per-stream gauges: every serving stream's last report, read at each scrape
        metrics.watch(lambda: [(e.live.name, e.live.report) for e in self.runtime.serving()])
        self._loader: asyncio.Task[None] | None = None

    @property
    def store(self) -> Store:
        assert self._store is not None, "registry not started"
        return self._store

    @property
    def budget(self) -> Budget:
        return self.runtime.admission.budget

    # -------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the store and begin restoring stored streams in the background."""
        self._store = await self.runtime.run(Store, self.settings.data_dir)
        self._loader = asyncio.create_task(self._load())

    async def _load(self) -> None:
        started = time.perf_counter()
        try:
            await self.runtime.run(warm_up)
            names = await self.runtime.run(self.store.stream_names)
        except Exception:
            log.exception("could not read the stored streams; the server stays unready")
            return
        for restored in await asyncio.gather(*(self.runtime.run(self._restore, n) for n in names)):
            if isinstance(restored, LiveStream):
                slot = self.runtime.admission.restored(restored.name, restored.spec, restored.dim)
                self.runtime.add(restored, slot)
            elif restored is not None:
                self._unavailable[restored.name] = restored
        self._count()
        self.ready = True
        log.info(
            "loaded %d streams in %.2f s (%d unavailable)",
            len(self.runtime.entries),
            time.perf_counter() - started,
            len(self._unavailable),
        )

    def _restore(self, name: str) -> LiveStream | Unavailable | None:
        s = self.settings
        live = restore(self.store, name, s.device, s.history_limit)
        if isinstance(live, LiveStream):
            self.runtime.mirror_rebuilt(live)
        if isinstance(live, LiveStream) and live.unsnapped >= s.snapshot_every:
            try:
                self._log.snapshot_now(live)
            except Exception:  # restored all the same; the next snapshot retries
                log.exception("snapshot of stream %r failed", name)
        return live

    def _count(self) -> None:
        self.metrics.streams.set(len(self.runtime.entries))
        self.metrics.unavailable.set(len(self._unavailable))

    async def close(self) -> None:
        """Drain every queue, snapshot every stream, close the store (graceful shutdown)."""
        if self._loader is not None:
            await asyncio.gather(self._loader, return_exceptions=True)
        entries = list(self.runtime.entries.values())
        for entry in entries:
            entry.hub.close()
        await self.runtime.close()
        if self._store is not None:
            for entry in entries:
                try:
                    await self.runtime.log.snapshot(entry.live)
                except Exception:
                    log.exception("snapshot of stream %r failed", entry.live.name)
            await asyncio.to_thread(self._store.close)

    def _events(self, entry: Entry, applied: Applied) -> None:
        # Rendered only when a listener reads them (now, or on a reconnect with Last-Event-ID).
        entry.hub.publish(applied.report.step, lambda: views.step_events(applied))

    def _retire(self, entry: Entry) -> None:
        """Move a stream that became unavailable to the unavailable ones (its queued batches
        answer 409 stream_unavailable)."""
        if self.runtime.entries.get(entry.live.name) is not entry:
            return
        self.runtime.remove(entry)
        self._unavailable[entry.live.name] = entry.live.as_unavailable()
        self._count()

    # -------------------------------------------------------------------------------- streams

    def get(self, name: str) -> Entry:
        """The serving stream `name`; 404 when there is none, 409 when it is unavailable."""
        entry = self.runtime.entries.get(name)
        if entry is None or entry.live.deleted:
            if name in self._unavailable:
                raise self._unavailable[name].error()
            raise not_found(f"stream {name!r}")
        return entry

    def streams(self) -> list[LiveStream | Unavailable]:
        """Every stream, serving or unavailable, sorted by name."""
        found: list[LiveStream | Unavailable] = [e.live for e in self.runtime.entries.values()]
        found.extend(self._unavailable.values())
        return sorted(found, key=lambda s: s.name)

    @property
    def unavailable(self) -> list[str]:
        """Names of the streams that cannot be served."""
        return sorted(self._unavailable)

    async def create(self, spec: StreamCreate) -> LiveStream:
        """Validate the settings against the limits and the core, store them, go live."""
        entries = self.runtime.entries
        if spec.name in entries or spec.name in self._unavailable:
            raise ApiError(
                409, "stream_exists", f"stream {spec.name!r} already exists; pick another name"
            )
        check_limits(spec, self.settings, len(entries) + len(self._unavailable))
        live = LiveStream.create(spec, self.settings)
        slot = self.runtime.admission.new_stream(spec.name, live.spec, spec.dim)
        entry = self.runtime.add(live, slot)  # reserves the name while the row is written
        try:
            await self.runtime.run(
                self.store.create_stream, spec.name, live.record, spec.dim, live.created_at
            )
        except BaseException:
            self.runtime.remove(entry)
            raise
        self._count()
        return live

    async def delete(self, name: str) -> None:
        """Remove a stream; its queued batches and every later request answer 404."""
        if name in self._unavailable and name not in self.runtime.entries:
            await self._delete_unavailable(name)
            return
        entry = self.get(name)
        entry.live.deleted = True  # checked by requests and by queued batches
        try:
            await self.runtime.call(entry, lambda: self.runtime.log.delete(entry.live))
        except BaseException:
            entry.live.deleted = False  # still stored: keep serving it
            raise
        self.runtime.remove(entry)
        self._count()

    async def _delete_unavailable(self, name: str) -> None:
        record = self._unavailable.pop(name)  # a second delete meanwhile answers 404
        try:
            await self.runtime.run(self.store.delete_stream, name)
        except BaseException:
            self._unavailable[name] = record
            raise
        self._count()

    # -------------------------------------------------------------------------------- work

    async def push(self, name: str, x: np.ndarray, seq: int | None) -> Applied:
        """Apply one batch in the stream's order; returns once it is durable."""
        return await self.runtime.push(self.get(name), x, seq)

    async def read(self, name: str, fn: Callable[[LiveStream], T]) -> T:
        """Run a blocking read of the stream's bank off the loop, not behind its queue."""
        live = self.get(name).live
        return await run_in_threadpool(fn, live)
