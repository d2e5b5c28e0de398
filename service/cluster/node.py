"""The API node of the cluster (`dimwatch serve --nats URL`): the routes' Backend, stateless.

Writes (batches, deletes) are published to the log with one Nats-Msg-Id per HTTP request (so
the node's own publish retries never apply twice) and a reply inbox; the answer is the owning
worker's, once it applied the batch in log order. Reads are requests to the partition's owner.
Creating a stream writes its record (the settings, checked here as the embedded mode checks them).
"""

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import nats.errors
import numpy as np
from nats.aio.msg import Msg
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from service import views
from service.cluster import layout
from service.cluster.layout import Cluster, StreamRecord
from service.errors import ApiError, not_found
from service.live import LiveStream
from service.metrics import Metrics
from service.model_schemas import CollapseOut, HistoryOut, ModelParamsOut, TransformIn, TransformOut
from service.pubsub import Hub
from service.runtime.admission import check_limits
from service.schemas import NAME_PATTERN, SelectionOut, StreamCreate, StreamOut
from service.settings import Settings

READ_TIMEOUT = 5.0  # seconds a read waits for the owner (a frozen owner: then 503)
# Seconds a write waits for the owner's admission; past it (or with no owner at all) the batch is
# logged unadmitted and waits in the log for an owner, as a batch sent during a takeover does.
ADMIT_TIMEOUT = 1.0
PUBLISH_RETRY_SECONDS = 0.25  # between publishes of one batch while JetStream is away
HEADROOM = 1024  # bytes of a log message beyond its data (headers), under max_payload


def _exists(name: str) -> ApiError:
    return ApiError(409, "stream_exists", f"stream {name!r} already exists; pick another name")


def _name(stream: StreamOut) -> str:
    return stream.name


def _check_name(name: str) -> None:
    """404 for a name that no stream can have, before it is made a NATS key or subject token
    (which it cannot always be: the embedded server answers 404 for it too)."""
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise not_found(f"stream {name!r}")


def unavailable(what: str) -> ApiError:
    return ApiError(503, "not_ready", f"{what}; retry shortly", headers={"Retry-After": "1"})


@dataclass
class _Listening:
    hub: Hub
    subscription: Any


class ClusterBackend:
    """Every stream of the cluster, as the routes see them."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._c: Cluster | None = None
        self._inbox = f"_DW.{uuid.uuid4().hex}"
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._known: set[str] = set()
        self._hubs: dict[str, _Listening] = {}

    @property
    def c(self) -> Cluster:
        assert self._c is not None, "API node not started"
        return self._c

    async def start(self) -> None:
        self._c = await layout.connect(self.settings, "dimwatch-api")
        await self.c.nc.subscribe(f"{self._inbox}.*", cb=self._on_answer)

    async def close(self) -> None:
        for listening in self._hubs.values():
            listening.hub.close("shutdown")
        if self._c is not None:
            await self._c.close()

    @property
    def ready(self) -> bool:
        return self._c is not None and self._c.nc.is_connected

    async def readiness(self) -> bool:
        """Connected, and every partition has an owner that has caught up and answers."""
        if not self.ready:
            return False
        pings = [self._ask(p, {"op": "ping"}, timeout=1.0) for p in range(self.c.partitions)]
        results = await asyncio.gather(*pings, return_exceptions=True)
        return not any(isinstance(r, Exception) for r in results)

    # -------------------------------------------------------------------------------- streams

    async def require(self, name: str) -> None:
        if name in self._known:
            return
        _check_name(name)
        key = layout.stream_key(self._partition(name), layout.token(name))
        try:
            await self.c.streams.get(key)
        except NotFoundError:
            raise not_found(f"stream {name!r}") from None
        self._known.add(name)

    async def create(self, spec: StreamCreate) -> StreamOut:
        """Checked as the embedded server checks (a dim given: its learner against the owner's
        memory budget), then its record written."""
        check_limits(spec, self.settings, await self._count())
        live = LiveStream.create(spec, self.settings)
        key = layout.stream_key(self._partition(spec.name), layout.token(spec.name))
        if spec.dim is not None:
            if await self._exists(key):
                raise _exists(spec.name)
            await self._admitted(spec.name, "reserve", config=live.record, dim=spec.dim)
        end = (await self.c.js.stream_info(layout.LOG)).state.last_seq
        record = StreamRecord(spec.name, live.record, spec.dim, live.created_at, end)
        try:
            await self.c.streams.create(key, record.encode())
        except KeyWrongLastSequenceError:
            raise _exists(spec.name) from None
        self._known.add(spec.name)
        return views.stream(live)

    async def _exists(self, key: str) -> bool:
        try:
            await self.c.streams.get(key)
        except NotFoundError:
            return False
        return True

    async def _count(self) -> int:
        return len(await layout.keys(self.c.streams))

    async def streams(self, after: str | None = None, limit: int | None = None) -> list[StreamOut]:
        """Each partition's first `limit` after `after`, merged."""
        ask = {"op": "list", "after": after, "limit": limit}
        lists = await asyncio.gather(*(self._ask(p, ask) for p in range(self.c.partitions)))
        out = sorted((StreamOut.model_validate(s) for one in lists for s in one), key=_name)
        return out if limit is None else out[:limit]

    async def stream(self, name: str) -> StreamOut:
        return StreamOut.model_validate(await self._query(name, "stream"))

    async def delete(self, name: str) -> None:
        layout.parse(await self._write(name, b"", {layout.OP: "delete"}))
        self._known.discard(name)

    # -------------------------------------------------------------------------------- batches

    async def push(self, name: str, x: np.ndarray, seq: int | None) -> bytes:
        """Admitted by the stream's owner (queue depth and memory budget, for the whole
        cluster), appended to the log, answered by the owner once applied."""
        data = x.tobytes()
        if len(data) + HEADROOM > self.c.nc.max_payload:
            raise ApiError(
                413,
                "limit_exceeded",
                f"batch has {len(data)} bytes of float32; the cluster's NATS max_payload allows "
                f"{self.c.nc.max_payload - HEADROOM}; send fewer rows per batch",
            )
        rows, dim = x.shape
        headers = {layout.OP: "batch", layout.DIM: str(dim)}
        admitted = await self._admitted(name, "admit", rows=rows, dim=dim)
        if admitted is not None:
            headers[layout.TICKET] = admitted["ticket"]
        if seq is not None:
            headers[layout.SEQ] = str(seq)
        body = layout.parse_json(await self._write(name, data, headers))
        answer = json.loads(body)
        if not answer["duplicate"]:
            self.metrics.batches.inc()
            self.metrics.rows.inc(answer["rows"])
        return body

    async def _write(self, name: str, data: bytes, headers: dict[str, str]) -> bytes:
        """Publish to the log (durable once acknowledged), then wait for the owner's answer."""
        _check_name(name)
        request = uuid.uuid4().hex
        reply = f"{self._inbox}.{request}"
        headers = {**headers, layout.REPLY: reply, "Nats-Msg-Id": request}
        subject = layout.log_subject(self._partition(name), layout.token(name))
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request] = future
        try:
            await self._publish(subject, data, headers)
            try:
                answer = await asyncio.wait_for(future, self.settings.answer_timeout)
            except TimeoutError:
                raise unavailable(
                    f"stream {name!r}: the request is in the log but its partition's worker "
                    f"did not answer within {self.settings.answer_timeout:g} s (changing owner?)"
                ) from None
        finally:
            del self._waiting[request]
        return answer

    async def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        """Publish until JetStream acknowledges (the same Nats-Msg-Id: stored once), through a
        stream leader's election (no responders, timeouts) for up to answer_timeout."""
        deadline = time.monotonic() + self.settings.answer_timeout
        while True:
            try:
                await self.c.js.publish(subject, data, headers=headers)
                return
            except nats.errors.Error as exc:  # NoStreamResponseError, timeouts, reconnecting
                if time.monotonic() > deadline:
                    raise unavailable(f"the log (JetStream) did not acknowledge: {exc}") from None
                await asyncio.sleep(PUBLISH_RETRY_SECONDS)

    async def _on_answer(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject.rsplit(".", 1)[1])
        if future is not None and not future.done():
            future.set_result(msg.data)

    # -------------------------------------------------------------------------------- reads

    async def selection(self, name: str) -> SelectionOut:
        return SelectionOut.model_validate(await self._query(name, "selection"))

    async def collapse(self, name: str) -> CollapseOut:
        return CollapseOut.model_validate(await self._query(name, "collapse"))

    async def history(self, name: str, after: int, limit: int) -> HistoryOut:
        return HistoryOut.model_validate(
            await self._query(name, "history", after=after, limit=limit)
        )

    async def model(self, name: str, which: str) -> ModelParamsOut:
        return ModelParamsOut.model_validate(await self._query(name, "model", which=which))

    async def project(self, name: str, body: TransformIn, decode: bool) -> TransformOut:
        out = await self._query(name, "project", body=body.model_dump(), decode=decode)
        return TransformOut.model_validate(out)

    async def _admitted(self, name: str, op: str, **args: Any) -> Any:
        """The owner's admission (its 4xx stand); None when no owner answers in ADMIT_TIMEOUT
        (a takeover, a frozen or cut-off owner): the write goes on unadmitted."""
        request = {"op": op, "name": name, **args}
        try:
            return await self._ask(self._partition(name), request, timeout=ADMIT_TIMEOUT)
        except ApiError as exc:
            if exc.status != 503:
                raise
            return None

    async def _query(self, name: str, op: str, **args: Any) -> Any:
        _check_name(name)
        return await self._ask(self._partition(name), {"op": op, "name": name, **args})

    async def _ask(self, p: int, request: dict[str, Any], timeout: float = READ_TIMEOUT) -> Any:
        payload = json.dumps(request).encode()
        try:
            msg = await self.c.nc.request(layout.read_subject(p), payload, timeout=timeout)
        except nats.errors.Error:  # no responders, timeouts, a reconnecting connection
            raise unavailable(
                f"partition {p} has no serving worker (starting or changing owner)"
            ) from None
        return layout.parse(msg.data)

    def _partition(self, name: str) -> int:
        return layout.partition(name, self.c.partitions)

    # -------------------------------------------------------------------------------- events

    async def hub(self, name: str) -> Hub:
        await self.require(name)
        listening = self._hubs.get(name)
        if listening is None:
            hub = Hub()

            async def relay(msg: Msg) -> None:
                if (msg.headers or {}).get(layout.OP) == "end":  # the stream was deleted
                    hub.close("deleted")  # a closed hub ends later listeners at once: forget it
                    gone = self._hubs.get(name)
                    if gone is not None and gone.hub is hub:
                        del self._hubs[name]
                        await gone.subscription.unsubscribe()
                    return
                batch = json.loads(msg.data)
                events = [(str(e), str(d)) for e, d in batch["events"]]
                hub.publish(int(batch["step"]), lambda: events)

            subject = layout.events_subject(layout.token(name))
            listening = _Listening(hub, await self.c.nc.subscribe(subject, cb=relay))
            await self.c.nc.flush()  # subscribed on the server before the listener is told so
            self._hubs[name] = listening
        return listening.hub
