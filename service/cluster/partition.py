"""One partition owned by a worker for one ownership period (one lease epoch).

`run()`: claim every stream record of the partition (compare-and-set, which fences the previous
owner), load their snapshots, replay the log after them with a fresh ordered consumer, then serve
reads while applying new batches in log order. Every outside effect (an answer, an event, a
snapshot, a purge) happens only while the lease is valid on this process's monotonic clock, and
every state write is a compare-and-set on a record this epoch claimed: a frozen old owner can
neither answer with stale state nor overwrite the new owner's snapshot.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from service import backend, views
from service.cluster import layout
from service.cluster.layout import Cluster, StreamRecord
from service.errors import ApiError, from_core, not_found
from service.live import Applied, LiveStream
from service.metrics import Metrics
from service.schemas import TransformIn
from service.settings import Settings
from streaming.errors import StreamingError

T = TypeVar("T")
log = logging.getLogger("dimwatch")
POLL_SECONDS = 0.25  # how often an idle consumer checks for a stop or for having caught up


class Fenced(Exception):
    """This owner's lease or claim is gone: stop without writing anything more."""


@dataclass
class Owned:
    """A stream of the partition: its state, its record as claimed, the last log position
    applied to the state, and the batches applied since its snapshot."""

    live: LiveStream
    record: StreamRecord
    revision: int
    log_seq: int
    unsnapped: int = 0


class Partition:
    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        pool: ThreadPoolExecutor,
        metrics: Metrics,
        p: int,
        epoch: str,
        valid: Callable[[], bool],
    ) -> None:
        self.c, self.settings, self.pool, self.metrics = cluster, settings, pool, metrics
        self.p, self.epoch, self.valid = p, epoch, valid
        self.streams: dict[str, Owned] = {}
        self.serving = False
        self.stopping = False
        self._loading = asyncio.Lock()
        self._reads: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _check(self) -> None:
        if not self.valid():
            raise Fenced(f"partition {self.p}: lease of epoch {self.epoch} expired")

    # -------------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Claim, replay, serve until stop() or until fenced; raises Fenced when fenced."""
        end = (await self.c.js.stream_info(layout.LOG)).state.last_seq  # before listing: see
        # claim(); every batch after `end` belongs to a stream listed now or created later
        for tok in await self._tokens():
            await self._claim(tok)
        start = min([o.log_seq for o in self.streams.values()] + [end]) + 1
        try:
            await self._consume(start, end)
        finally:
            await self._unserve()

    def stop(self) -> None:
        self.stopping = True

    async def snapshot_all(self) -> None:
        """Snapshot every stream with batches after its snapshot (a graceful hand-over)."""
        for tok, owned in list(self.streams.items()):
            if owned.unsnapped:
                await self._snapshot(tok, owned)

    async def _serve(self) -> None:
        self.serving = True
        self._reads = await self.c.nc.subscribe(layout.read_subject(self.p), cb=self._on_read)
        log.info(
            "partition %d: serving %d streams (epoch %s)", self.p, len(self.streams), self.epoch
        )

    async def _unserve(self) -> None:
        self.serving = False
        if self._reads is not None:
            await self._reads.unsubscribe()
            self._reads = None

    # -------------------------------------------------------------------------------- claiming

    async def _tokens(self) -> list[str]:
        keys = await layout.keys(self.c.streams, layout.stream_key(self.p, "*"))
        return [k.split(".", 2)[2] for k in keys]

    async def _claim(self, tok: str) -> Owned | None:
        """Take the stream's record for this epoch (CAS) and load its snapshot; None: no such
        stream. Retries when the record moved under us (an old owner's last write)."""
        key = layout.stream_key(self.p, tok)
        for _ in range(5):
            try:
                entry = await self.c.streams.get(key)
            except NotFoundError:
                return None
            assert entry.value is not None and entry.revision is not None
            record = replace(StreamRecord.decode(entry.value), epoch=self.epoch)
            self._check()
            try:
                revision = await self.c.streams.update(key, record.encode(), last=entry.revision)
            except KeyWrongLastSequenceError:
                continue
            data = None
            if record.snapshot is not None:
                data = (await self.c.snapshots.get(record.snapshot)).data
            live = await self._run(layout.restore, record, data, self.settings)
            owned = Owned(live, record, revision, record.log_seq)
            self.streams[tok] = owned
            return owned
        raise Fenced(f"partition {self.p}: the record of {tok!r} keeps moving")

    async def _owned(self, tok: str) -> Owned | None:
        """The stream, claimed on first sight when it was created after this epoch began."""
        owned = self.streams.get(tok)
        if owned is not None:
            return owned
        async with self._loading:
            return self.streams.get(tok) or await self._claim(tok)

    # -------------------------------------------------------------------------------- the log

    async def _consume(self, start: int, end: int) -> None:
        sub = await self.c.js.subscribe(
            layout.log_subject(self.p, ">"),
            ordered_consumer=True,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
            ),
        )
        try:
            if start > end:
                await self._serve()
            while not self.stopping:
                try:
                    msg = await sub.next_msg(timeout=POLL_SECONDS)
                except NatsTimeout:
                    if not self.serving and await self._drained(sub):
                        await self._serve()
                    continue
                self._check()
                seq = msg.metadata.sequence.stream
                await self._handle(msg, seq)
                if not self.serving and (seq >= end or msg.metadata.num_pending == 0):
                    await self._serve()
        finally:
            await sub.unsubscribe()

    @staticmethod
    async def _drained(sub: JetStreamContext.PushSubscription) -> bool:
        """Nothing left to replay: none buffered here, none pending on the server."""
        return sub.pending_msgs == 0 and (await sub.consumer_info()).num_pending == 0

    async def _handle(self, msg: Msg, seq: int) -> None:
        tok = msg.subject.split(".", 3)[3]
        headers = msg.headers or {}
        owned = await self._owned(tok)
        if owned is None:
            out = layout.answer_error(not_found(f"stream {layout.name_of(tok)!r}"))
        elif seq <= owned.log_seq:
            return  # covered by the stream's snapshot, or older than the stream
        elif headers.get(layout.OP) == "delete":
            out = await self._delete(tok, owned, seq)
        else:
            out = await self._apply(tok, owned, msg.data, headers, seq)
        reply = headers.get(layout.REPLY)
        if reply:
            self._check()
            await self.c.nc.publish(reply, out)
        # After the answer: a snapshot covering a batch never applied again by a new owner must
        # not be able to leave its API node waiting for an answer that will never come.
        # (A deleted stream is no longer in self.streams.)
        kept = owned is not None and self.streams.get(tok) is owned
        if kept and owned is not None and owned.unsnapped >= self.settings.snapshot_every:
            await self._snapshot(tok, owned)

    async def _apply(
        self, tok: str, owned: Owned, data: bytes, headers: dict[str, str], seq: int
    ) -> bytes:
        x = np.frombuffer(data, "<f4").reshape(-1, int(headers[layout.DIM])).copy()
        batch_seq = int(headers[layout.SEQ]) if layout.SEQ in headers else None
        try:
            applied = await self._run(owned.live.apply, x, batch_seq)
        except ApiError as exc:
            out = layout.answer_error(exc)
        except StreamingError as exc:
            out = layout.answer_error(from_core(exc))
        else:
            out = layout.answer(views.batch_out(applied))
            if not applied.duplicate:
                owned.unsnapped += 1
                self._count(applied)
                self._check()
                # One message per batch: its step and events (service/pubsub.py gives the ids).
                events = {"step": applied.report.step, "events": views.step_events(applied)}
                await self.c.nc.publish(layout.events_subject(tok), json.dumps(events).encode())
        owned.log_seq = seq
        return out

    def _count(self, applied: Applied) -> None:
        """This worker's /metrics: batches, rows, step time, selection changes."""
        self.metrics.batches.inc()
        self.metrics.rows.inc(applied.rows)
        self.metrics.step_seconds.observe(applied.seconds)
        if applied.previous_best not in (None, applied.report.best_latent_dim):
            self.metrics.selection_changes.inc()

    async def _snapshot(self, tok: str, owned: Owned) -> None:
        """Object, then the record (CAS: fenced if another epoch claimed it), then the purge of
        the stream's log behind the record's position, then the old object."""
        if owned.live.bank is None:
            return
        data = await self._run(_encode, owned.live, owned.log_seq)
        name = f"{tok}.{owned.log_seq}"
        self._check()
        await self.c.snapshots.put(name, data)
        record = replace(owned.record, snapshot=name, log_seq=owned.log_seq, dim=owned.live.dim)
        key = layout.stream_key(self.p, tok)
        try:
            revision = await self.c.streams.update(key, record.encode(), last=owned.revision)
        except KeyWrongLastSequenceError:
            raise Fenced(f"partition {self.p}: {tok!r} was claimed by another owner") from None
        old, owned.record, owned.revision, owned.unsnapped = owned.record, record, revision, 0
        await self.c.js.purge_stream(
            layout.LOG, subject=layout.log_subject(self.p, tok), seq=owned.log_seq + 1
        )
        if old.snapshot is not None and old.snapshot != name:
            await self.c.snapshots.delete(old.snapshot)

    async def _delete(self, tok: str, owned: Owned, seq: int) -> bytes:
        await self._run(owned.live.delete)
        self._check()
        try:
            await self.c.streams.delete(layout.stream_key(self.p, tok), last=owned.revision)
        except KeyWrongLastSequenceError:
            raise Fenced(f"partition {self.p}: {tok!r} was claimed by another owner") from None
        del self.streams[tok]
        await self.c.nc.publish(layout.events_subject(tok), b"", headers={layout.OP: "end"})
        await self.c.js.purge_stream(
            layout.LOG, subject=layout.log_subject(self.p, tok), seq=seq + 1
        )
        if owned.record.snapshot is not None:
            await self.c.snapshots.delete(owned.record.snapshot)
        return layout.answer(None)

    # -------------------------------------------------------------------------------- reads

    async def _on_read(self, msg: Msg) -> None:
        task = asyncio.create_task(self._read(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, msg: Msg) -> None:
        if not self.valid() or not self.serving:
            return  # no answer: the API node retries or answers 503
        request = json.loads(msg.data)
        try:
            out = layout.answer(await self._answer(request))
        except ApiError as exc:
            out = layout.answer_error(exc)
        except StreamingError as exc:
            out = layout.answer_error(from_core(exc))
        if self.valid():
            await msg.respond(out)

    async def _answer(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == "ping":
            return None
        if op == "list":
            lives = [await self._owned(tok) for tok in await self._tokens()]
            return [views.stream(o.live).model_dump(mode="json") for o in lives if o is not None]
        owned = await self._owned(layout.token(request["name"]))
        if owned is None:
            raise not_found(f"stream {request['name']!r}")
        return await _QUERIES[op](self, owned.live, request)

    async def _model(self, live: LiveStream, request: dict[str, Any]) -> Any:
        latent_dim = backend.model_latent_dim(live, request["which"])
        return await self._run(backend.model_out, live, latent_dim)

    async def _project(self, live: LiveStream, request: dict[str, Any]) -> Any:
        body = TransformIn.model_validate(request["body"])
        backend.check_projection(live, body)
        decode = bool(request["decode"])
        return await self._run(backend.project_out, live, body, decode, self.settings)


def _encode(live: LiveStream, log_seq: int) -> bytes:
    with live.lock:
        return layout.encode_snapshot(live, log_seq)


async def _plain(value: Any) -> Any:
    return value


Query = Callable[[Partition, LiveStream, dict[str, Any]], Awaitable[Any]]
_QUERIES: dict[str, Query] = {
    "stream": lambda part, live, r: _plain(views.stream(live)),
    "selection": lambda part, live, r: _plain(views.selection(live.report)),
    "collapse": lambda part, live, r: _plain(views.collapse(live)),
    "history": lambda part, live, r: _plain(backend.history_out(live, r["after"], r["limit"])),
    "model": Partition._model,
    "project": Partition._project,
}
