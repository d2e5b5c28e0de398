"""One partition owned by a worker for one ownership period (one lease epoch).

`run()`: claim every stream record of the partition (compare-and-set, which fences the previous
owner), load their snapshots, replay the log after them with a fresh ordered consumer, then serve
reads while handing new batches, in log order, to the worker's runtime (service/runtime/): each
stream's batches apply in order, different streams' in parallel (and stepped together). Every
outside effect (an answer, an event, a snapshot, a purge) happens only while the lease is valid
on this process's monotonic clock, and every state write is a compare-and-set on a record this
epoch claimed: a frozen old owner can neither answer with stale state nor overwrite the new
owner's snapshot.

Admission: before an API node appends a batch to the log it asks the owner to admit it (op
"admit", answered with a ticket): the runtime's queue depth and memory budget, so both hold for
the stream across every API node. The ticket rides in the message and is released when the
batch is answered; one whose message never comes (the API node gave up) expires.
"""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import numpy as np
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext, api
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from service import backend, views
from service.cluster import layout
from service.cluster.layout import Cluster, StreamRecord
from service.cluster.log import Claim, Fenced, JetStreamLog, restore
from service.errors import ApiError, from_core, not_found
from service.live import LiveStream, stream_spec
from service.model_schemas import TransformIn
from service.runtime.admission import Slot, Ticket
from service.runtime.runtime import Entry, Runtime
from service.settings import Settings
from streaming.errors import StreamingError

log = logging.getLogger("dimwatch")
POLL_SECONDS = 0.25  # how often an idle consumer checks for a stop or for having caught up
INTERNAL = ApiError(500, "internal", "internal server error; see the worker's log")


class Partition:
    def __init__(
        self,
        cluster: Cluster,
        settings: Settings,
        runtime: Runtime,
        p: int,
        epoch: str,
        valid: Callable[[], bool],
    ) -> None:
        self.c, self.settings, self.runtime = cluster, settings, runtime
        self.p, self.epoch, self.valid = p, epoch, valid
        self.streams: dict[str, Entry] = {}  # by token
        self.serving = False
        self.stopping = False
        self.fenced: Fenced | None = None
        self._loading = asyncio.Lock()
        self._reads: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tickets: dict[str, tuple[Ticket, Entry, float]] = {}  # id -> (..., expiry)
        self._covered: dict[str, int] = {}  # by token: the log position its snapshot covers
        self._reserved: dict[str, tuple[Slot, float]] = {}  # by name: a new stream's bank
        self._sweep = 0.0  # when tickets were last checked for expiry

    @property
    def log(self) -> JetStreamLog:
        assert isinstance(self.runtime.log, JetStreamLog)
        return self.runtime.log

    def check(self) -> None:
        if self.fenced is not None:
            raise self.fenced
        if not self.valid():
            raise Fenced(f"partition {self.p}: lease of epoch {self.epoch} expired")

    def fence(self, why: Fenced) -> None:
        self.fenced = self.fenced or why

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -------------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Claim, replay, serve until stop() or until fenced; raises Fenced when fenced."""
        end = (await self.c.js.stream_info(layout.LOG)).state.last_seq  # before listing: see
        # claim(); every batch after `end` belongs to a stream listed now or created later
        for tok in await self._tokens():
            await self._claim(tok)
        start = min([e.live.position for e in self.streams.values()] + [end]) + 1
        try:
            await self._consume(start, end)
        finally:
            await self._unserve()
            for entry in self.streams.values():
                self._forget(entry)
            for ticket, entry, _ in self._tickets.values():
                self.runtime.admission.release(ticket, entry.live.dim)

    def stop(self) -> None:
        self.stopping = True

    async def snapshot_all(self) -> None:
        """Snapshot every stream with batches after its snapshot (a graceful hand-over)."""
        for entry in list(self.streams.values()):
            if entry.live.unsnapped:
                await self.runtime.call(entry, _snapshot(self.log, entry.live))

    async def _serve(self) -> None:
        # what was replayed is applied before any read
        await asyncio.gather(*self._tasks, return_exceptions=True)
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

    async def _claim(self, tok: str) -> Entry | None:
        """Take the stream's record for this epoch (CAS) and load its snapshot; None: no such
        stream. Retries when the record moved under us (an old owner's last write)."""
        key = layout.stream_key(self.p, tok)
        for _ in range(5):
            try:
                found = await self.c.streams.get(key)
            except NotFoundError:
                return None
            assert found.value is not None and found.revision is not None
            record = replace(StreamRecord.decode(found.value), epoch=self.epoch)
            self.check()
            try:
                revision = await self.c.streams.update(key, record.encode(), last=found.revision)
            except KeyWrongLastSequenceError:
                continue
            data = None
            if record.snapshot is not None:
                data = (await self.c.snapshots.get(record.snapshot)).data
            live = await self.runtime.run(restore, record, data, self.settings)
            reserved = self._reserved.pop(live.name, None)  # at its creation (op "reserve")
            slot = (
                reserved[0]
                if reserved is not None
                else self.runtime.admission.restored(live.name, live.spec, live.dim)
            )
            entry = self.runtime.add(live, slot)
            self.log.claims[live.name] = Claim(self, live, record, revision)
            self.streams[tok], self._covered[tok] = entry, record.log_seq
            return entry
        raise Fenced(f"partition {self.p}: the record of {tok!r} keeps moving")

    async def _owned(self, tok: str) -> Entry | None:
        """The stream, claimed on first sight when it was created after this epoch began."""
        entry = self.streams.get(tok)
        if entry is not None:
            return entry
        async with self._loading:
            return self.streams.get(tok) or await self._claim(tok)

    def _forget(self, entry: Entry) -> None:
        self.runtime.remove(entry, "shutdown")
        claim = self.log.claims.get(entry.live.name)
        if claim is not None and claim.owner is self:
            del self.log.claims[entry.live.name]

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
                    self.check()
                    if not self.serving and await self._drained(sub):
                        await self._serve()
                    continue
                finally:
                    self._expire_tickets()
                self.check()
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
        """Hand one log message to its stream's queue (in log order); its answer goes back to
        the API node that wrote it once the runtime has applied it."""
        tok = msg.subject.split(".", 3)[3]
        headers = msg.headers or {}
        claimed = self._tickets.pop(headers.get(layout.TICKET, ""), None)
        ticket = None if claimed is None else claimed[0]
        entry = await self._owned(tok)
        if entry is None or seq <= self._covered[tok]:
            if claimed is not None:
                self.runtime.admission.release(claimed[0], claimed[1].live.dim)
            if entry is None:  # (else: covered by the stream's snapshot, answered before)
                self._answer(headers, layout.answer_error(not_found(f"stream {_name(tok)!r}")))
            return
        if headers.get(layout.OP) == "delete":
            self._spawn(self._delete(tok, entry, seq, headers))
            return
        x = np.frombuffer(msg.data, "<f4").reshape(-1, int(headers[layout.DIM])).copy()
        batch_seq = int(headers[layout.SEQ]) if layout.SEQ in headers else None
        applying = self.runtime.apply(entry, x, batch_seq, seq, ticket)
        self._spawn(self._answered(applying, headers))

    async def _answered(self, applying: Awaitable[Any], headers: dict[str, str]) -> None:
        try:
            out = layout.answer_json((await applying).answer)
        except ApiError as exc:
            out = layout.answer_error(exc)
        except StreamingError as exc:
            out = layout.answer_error(from_core(exc))
        except Exception:  # a bug: answered as the embedded server answers one (500)
            log.exception("partition %d: a batch failed", self.p)
            out = layout.answer_error(INTERNAL)
        self._answer(headers, out)

    def _answer(self, headers: dict[str, str], out: bytes) -> None:
        reply = headers.get(layout.REPLY)
        if reply and self.valid() and self.fenced is None:
            self._spawn(self.c.nc.publish(reply, out))

    def events(self, entry: Entry, applied: Any) -> None:
        """One message per applied batch: its step and events (service/pubsub.py gives ids)."""
        if self.valid() and self.fenced is None:
            events = {"step": applied.report.step, "events": views.step_events(applied)}
            subject = layout.events_subject(layout.token(entry.live.name))
            self._spawn(self.c.nc.publish(subject, json.dumps(events).encode()))

    async def _delete(self, tok: str, entry: Entry, seq: int, headers: dict[str, str]) -> None:
        async def delete() -> None:
            entry.live.deleted = True
            entry.live.position = seq
            await self.log.delete(entry.live)

        try:
            await self.runtime.call(entry, delete)
        except Fenced:
            return
        except Exception as exc:  # NATS away mid-delete: hand the partition over; the next
            # owner replays the delete from the log
            log.exception("partition %d: delete of %r failed", self.p, entry.live.name)
            self.fence(Fenced(f"partition {self.p}: a delete failed ({exc!r})"))
            return
        if self.streams.get(tok) is entry:
            del self.streams[tok], self._covered[tok]
        self.runtime.remove(entry)
        self._answer(headers, layout.answer(None))

    # -------------------------------------------------------------------------------- admission

    def _admit(self, entry: Entry, request: dict[str, Any]) -> dict[str, str]:
        """A ticket for a batch of request's rows x dim (429/413 as the runtime says)."""
        ticket = self.runtime.admission.admit(entry.slot, request["rows"], request["dim"])
        key = uuid.uuid4().hex
        expiry = time.monotonic() + 2 * self.settings.answer_timeout
        self._tickets[key] = (ticket, entry, expiry)
        return {"ticket": key}

    def _reserve(self, request: dict[str, Any]) -> None:
        """Reserve a stream's bank before an API node creates it with a dim (422 when it does
        not fit); the claim of the new stream takes the reservation over."""
        name, dim = request["name"], request["dim"]
        spec = stream_spec(request["config"], self.settings.device)
        slot = self.runtime.admission.new_stream(name, spec, dim)
        old = self._reserved.pop(name, None)
        if old is not None:
            self.runtime.admission.drop(old[0])
        self._reserved[name] = (slot, time.monotonic() + 2 * self.settings.answer_timeout)

    def _expire_tickets(self) -> None:
        """Release the tickets whose batch never came (its API node gave up on it) and the
        reservations of streams never created."""
        now = time.monotonic()
        if now < self._sweep + POLL_SECONDS:
            return
        self._sweep = now
        for key, (ticket, entry, expiry) in list(self._tickets.items()):
            if expiry < now:
                del self._tickets[key]
                self.runtime.admission.release(ticket, entry.live.dim)
        for name, (slot, expiry) in list(self._reserved.items()):
            if expiry < now:
                del self._reserved[name]
                self.runtime.admission.drop(slot)

    # -------------------------------------------------------------------------------- reads

    async def _on_read(self, msg: Msg) -> None:
        self._spawn(self._read(msg))

    async def _read(self, msg: Msg) -> None:
        if not self.valid() or not self.serving or self.fenced is not None:
            return  # no answer: the API node retries or answers 503
        request = json.loads(msg.data)
        try:
            out = layout.answer(await self._reply(request))
        except ApiError as exc:
            out = layout.answer_error(exc)
        except StreamingError as exc:
            out = layout.answer_error(from_core(exc))
        if self.valid():
            await msg.respond(out)

    async def _reply(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op == "ping":
            return None
        if op == "list":
            return await self._list(request.get("after"), request.get("limit"))
        if op == "reserve":
            return self._reserve(request)
        entry = await self._owned(layout.token(request["name"]))
        if entry is None:
            raise not_found(f"stream {request['name']!r}")
        if op == "admit":
            return self._admit(entry, request)
        return await _QUERIES[op](self, entry.live, request)

    async def _list(self, after: str | None, limit: int | None) -> list[Any]:
        """This partition's streams sorted by name: those after `after`, at most `limit`."""
        names = sorted(_name(tok) for tok in await self._tokens())
        names = [n for n in names if after is None or n > after][:limit]
        entries = [await self._owned(layout.token(n)) for n in names]
        return [views.stream(e.live).model_dump(mode="json") for e in entries if e is not None]

    async def _model(self, live: LiveStream, request: dict[str, Any]) -> Any:
        latent_dim = backend.model_latent_dim(live, request["which"])
        return await self.runtime.run(backend.model_out, live, latent_dim)

    async def _project(self, live: LiveStream, request: dict[str, Any]) -> Any:
        body = TransformIn.model_validate(request["body"])
        backend.check_projection(live, body)
        decode = bool(request["decode"])
        return await self.runtime.run(backend.project_out, live, body, decode, self.settings)


def _snapshot(log_: JetStreamLog, live: LiveStream) -> Callable[[], Awaitable[None]]:
    return lambda: log_.snapshot(live)


def _name(tok: str) -> str:
    return layout.name_of(tok)


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
