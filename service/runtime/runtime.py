"""The Runtime: every stream one process serves (the embedded server, or a cluster worker's
partitions), each with its ordered work, and the one path of a batch:

    push (loop)       admission (429/413), then the stream's queue: one job at a time
    scheduler         the ready batches of all streams, in groups (scheduler.py)
    worker thread     begin (lock, width, seq) -> log.append(..., done) for each batch -> one
                      learn_together call for the group (while the log commits the batches) ->
                      stepped -> the answers rendered
    log's thread      done -> one wake of the loop
    Batch             once both are done (on the loop, or the worker thread if the commit came
                      first): committed (state swapped, lock released), history to the log
    loop              the answer, the metrics and events (once, here, for both modes), the
                      admission released, a snapshot if due, the stream's next job

No thread waits for a commit and the loop wakes once per batch. Other work in a stream's order
(snapshots, deletes) runs as coroutines in the same queue (`call`). A batch is answered only
after `done(None)`: durable in the log; one the core refuses is dropped from the log before its
error is answered.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import numpy as np

from service import views
from service.errors import ApiError
from service.live import Applied, LiveStream
from service.metrics import Metrics
from service.pubsub import Hub
from service.runtime.admission import Admission, Slot, Ticket
from service.runtime.batch import Batch, Reload
from service.runtime.log import StorageError, StreamLog
from service.runtime.pool import worker_pool
from service.runtime.scheduler import Scheduler
from service.settings import Settings
from streaming.learner import learn_together

T = TypeVar("T")
log = logging.getLogger("dimwatch")


@dataclass(eq=False)
class Job:
    """One piece of a stream's ordered work: a batch (x, seq, its log position), or `work`."""

    future: "asyncio.Future[Any]"
    ticket: Ticket | None = None
    x: np.ndarray | None = None
    seq: int | None = None
    position: int | None = None
    work: Callable[[], Awaitable[Any]] | None = None


@dataclass(eq=False)
class Entry:
    """One stream: its state, its admission slot, its queue, its event listeners."""

    live: LiveStream
    slot: Slot
    hub: Hub = field(default_factory=Hub)
    jobs: deque[Job] = field(default_factory=deque)
    busy: bool = False  # a job of it is running

    @property
    def pending(self) -> int:
        """Batches admitted and not answered yet."""
        return self.slot.pending


class Runtime:
    """The streams of one process. `events(entry, applied)` publishes an applied batch's events
    (embedded: the stream's hub; cluster: NATS); `retire(entry)` is told when a stream became
    unavailable (its commit and its reload failed)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        log_: StreamLog,
        events: Callable[[Entry, Applied], None],
        retire: Callable[[Entry], None] = lambda entry: None,
    ) -> None:
        self.settings, self.metrics, self.log = settings, metrics, log_
        self.pool = worker_pool(settings.workers)
        self.admission = Admission(settings, metrics)
        self.entries: dict[str, Entry] = {}
        self.scheduler: Scheduler[tuple[Entry, Job]] = Scheduler(
            self.pool, settings.workers, self._step_group
        )
        self._events, self._retire = events, retire
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def serving(self) -> list[Entry]:
        """The streams now (a copy: safe from another thread, e.g. a /metrics scrape)."""
        return list(self.entries.values())

    def add(self, live: LiveStream, slot: Slot) -> Entry:
        entry = Entry(live, slot)
        self.entries[live.name] = entry
        return entry

    def remove(self, entry: Entry, reason: str = "deleted") -> None:
        """Forget the stream (its queued jobs still run, and fail as its state says), end its
        event listeners, give its memory back."""
        if self.entries.get(entry.live.name) is entry:
            del self.entries[entry.live.name]
        entry.hub.close(reason)
        self.admission.drop(entry.slot)

    async def close(self) -> None:
        """Let every stream's queued work finish, then stop the worker threads."""
        await asyncio.gather(*(self.call(e, _nothing) for e in list(self.entries.values())))
        self.pool.shutdown(wait=True)

    # -------------------------------------------------------------------------------- the queue

    async def push(
        self, entry: Entry, x: np.ndarray, seq: int | None, position: int | None = None
    ) -> Applied:
        """Apply batch X (B, D) in the stream's order; returns once durable (429/413 at once
        when admission refuses it)."""
        ticket = self.admission.admit(entry.slot, x.shape[0], x.shape[1])
        return await self.apply(entry, x, seq, position, ticket)

    async def apply(
        self,
        entry: Entry,
        x: np.ndarray,
        seq: int | None,
        position: int | None = None,
        ticket: Ticket | None = None,
    ) -> Applied:
        """As push, for a batch admitted already (`ticket`, released when it is answered) or
        one that must be applied whatever the limits (replayed from the cluster's log)."""
        future = asyncio.get_running_loop().create_future()
        self._enqueue(entry, Job(future, ticket, x, seq, position))
        result: Applied = await future
        return result

    async def call(self, entry: Entry, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` in the stream's order: after every job queued before it."""
        future = asyncio.get_running_loop().create_future()
        self._enqueue(entry, Job(future, work=work))
        result: T = await future
        return result

    def _enqueue(self, entry: Entry, job: Job) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        entry.jobs.append(job)
        self._next(entry)

    def _next(self, entry: Entry) -> None:
        if entry.busy or not entry.jobs:
            return
        job = entry.jobs.popleft()
        entry.busy = True
        if job.work is None:
            self.scheduler.add((entry, job))
            return
        task = asyncio.ensure_future(job.work())
        task.add_done_callback(lambda t: self._done(entry, job, *_outcome(t)))

    def _done(self, entry: Entry, job: Job, result: Any, error: BaseException | None) -> None:
        """A job ended (on the loop): answer it, publish, start the stream's next job."""
        if isinstance(error, Reload):
            self._recover(entry, job, error)
            return
        live = entry.live
        if job.ticket is not None:
            self.admission.release(job.ticket, live.dim)
        applied = isinstance(result, Applied) and not result.duplicate
        if applied:
            self._published(entry, result)
        if not job.future.done():  # (its request may have been cancelled)
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)
        entry.busy = False
        if live.unavailable is not None and not live.deleted:
            self._retire(entry)
        elif applied and live.unsnapped >= self.settings.snapshot_every:
            snapshot = Job(asyncio.get_running_loop().create_future(), work=self._snapshot(live))
            snapshot.future.add_done_callback(_ignore)
            entry.jobs.appendleft(snapshot)
        self._next(entry)

    def _published(self, entry: Entry, applied: Applied) -> None:
        """Metrics and events of one applied batch (on the loop, in step order)."""
        report = applied.report
        self.metrics.batches.inc()
        self.metrics.rows.inc(applied.rows)
        self.metrics.step_seconds.observe(applied.seconds)
        self.metrics.commit_seconds.observe(applied.commit_seconds)
        if applied.previous_best not in (None, report.best_latent_dim):
            self.metrics.selection_changes.inc()
        self._events(entry, applied)

    def _snapshot(self, live: LiveStream) -> Callable[[], Awaitable[None]]:
        async def snapshot() -> None:
            try:
                await self.log.snapshot(live)
            except Exception:  # the batches stay in the log; the next one retries
                log.exception("snapshot of stream %r failed", live.name)

        return snapshot

    def _recover(self, entry: Entry, job: Job, failed: Reload) -> None:
        """Reload the stream on a worker thread, then answer the error."""
        live = entry.live
        reloading = asyncio.get_running_loop().run_in_executor(
            self.pool, live.recover, failed.why, lambda: self.log.load(live.name)
        )
        answer = _storage_error(failed.cause)
        reloading.add_done_callback(lambda _: self._reloaded(entry, job, answer))

    def _reloaded(self, entry: Entry, job: Job, answer: BaseException) -> None:
        self.mirror_rebuilt(entry.live)
        self._done(entry, job, None, answer)

    def mirror_rebuilt(self, live: LiveStream) -> None:
        """Hand the log the history points a replay rebuilt (ones a crash lost)."""
        for change in live.unmirrored:
            self.log.record(live, change)
        live.unmirrored = []

    # -------------------------------------------------------------------------------- threads

    def _step_group(self, group: list[tuple[Entry, Job]]) -> None:
        """Step a group of batches of different streams (on a worker thread). A stream whose
        lock a reader holds is stepped after the others, so that none of them waits for it."""
        ready: list[tuple[Entry, Job]] = []
        busy: list[tuple[Entry, Job]] = []
        for entry, job in group:
            (ready if entry.live.lock.acquire(blocking=False) else busy).append((entry, job))
        self._step_locked(ready)
        for entry, _ in busy:
            entry.live.lock.acquire()
        self._step_locked(busy)

    def _step_locked(self, group: list[tuple[Entry, Job]]) -> None:
        """Check, log, step (one learn_together call), render: batches whose streams' locks this
        thread holds. Each batch is handed to the log before the step, so that it becomes
        durable while the group trains; it is answered once both are done (runtime/batch.py)."""
        started = time.perf_counter()
        steps = []
        for entry, job in group:
            assert job.x is not None
            try:
                duplicate = entry.live.check(job.x, job.seq)  # releases the lock unless None
                if duplicate is not None:
                    self._finish(entry, job, _render(duplicate), None)
                    continue
            except BaseException as exc:
                self._finish(entry, job, None, exc)
                continue
            try:
                bank = entry.live.learner(job.x.shape[1])
            except BaseException as exc:
                entry.live.abort()
                self._finish(entry, job, None, exc)
                continue
            steps.append((entry, job, bank, self._append(entry, job, started)))
        if not steps:
            return
        pairs = [(bank, job.x) for _, job, bank, _ in steps if job.x is not None]
        try:
            reports: list[Any] = list(learn_together(pairs))
        except Exception as exc:  # a bug of the core: its learners may be stepped part way
            log.exception("a group of %d batches failed in the core", len(steps))
            for *_, batch in steps:
                batch.stepped(None, Reload(f"the core failed ({exc!r})", exc))
            return
        rendering = []
        for (entry, job, bank, batch), report in zip(steps, reports, strict=True):
            assert job.x is not None
            try:
                if isinstance(report, BaseException):
                    raise report
                pending = entry.live.stepped(job.x, bank, report, started, job.position)
            except BaseException as exc:
                batch.stepped(None, exc)
                continue
            rendering.append((pending, batch))
        for pending, batch in rendering:
            best = None if pending.previous is None else pending.previous.best_latent_dim
            batch.stepped(pending, _render(Applied(pending.report, len(pending.x), False, best, 0)))

    def _append(self, entry: Entry, job: Job, started: float) -> Batch:
        """Hand the batch to the log, to be durable while it trains; -> what joins the two."""
        assert job.x is not None
        finish = partial(self._finish, entry, job)
        batch = Batch(entry.live, self.log, finish, started)
        handed = time.perf_counter()

        def done(error: BaseException | None) -> None:
            # On the log's thread (SQLite's committer), straight to the join: when the step is
            # done already, the batch is applied here and only its answer goes to the loop (a
            # hop through the loop first cost ~0.3 ms a batch at D = 256, B = 256).
            batch.logged(error, time.perf_counter() - handed)

        try:
            self.log.append(entry.live, entry.live.step + 1, job.x, done)
        except Exception as exc:
            done(exc)
        return batch

    def _finish(self, entry: Entry, job: Job, result: Any, error: BaseException | None) -> None:
        """Back to the loop with a job's outcome (from any thread)."""
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            self._done(entry, job, result, error)
        else:
            self._loop.call_soon_threadsafe(self._done, entry, job, result, error)


def _render(applied: Applied) -> Applied:
    """The applied batch with its answer (BatchOut's JSON) and selection rendered."""
    selection = views.selection(applied.report)
    answer = views.batch_out(applied, selection).model_dump_json().encode()
    return replace(applied, answer=answer, selection=selection)


def _storage_error(cause: BaseException) -> BaseException:
    if isinstance(cause, StorageError):
        return ApiError(
            503,
            "storage_error",
            f"could not store the batch ({cause}); nothing was applied, retry later",
            headers={"Retry-After": "1"},
        )
    return cause


def _outcome(task: "asyncio.Future[Any]") -> tuple[Any, BaseException | None]:
    if task.cancelled():
        return None, asyncio.CancelledError()
    error = task.exception()
    return (None, error) if error is not None else (task.result(), None)


def _ignore(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled():
        future.exception()


async def _nothing() -> None:
    return None
