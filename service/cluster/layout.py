"""Names, records and wire formats shared by API nodes and workers; the JetStream setup."""

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore
from pydantic import BaseModel

from service.errors import ApiError
from service.settings import Settings

log = logging.getLogger("dimwatch")

LOG = "DW_LOG"  # JetStream stream: every batch and delete, subject dw.log.<partition>.<token>
STREAMS = "dw-streams"  # KV: s.<partition>.<token> -> StreamRecord
LEASES = "dw-leases"  # KV, TTL = lease time: p.<partition> -> the owner's epoch
WORKERS = "dw-workers"  # KV, TTL = lease time: w.<worker id> -> heartbeat
META = "dw-meta"  # KV: partitions -> P
SNAPSHOTS = "dw-snapshots"  # object store: <token>.<log position> -> encoded snapshot
# Headers of a log message (TICKET: the owner's admission of the batch, cluster/partition.py).
OP, REPLY, SEQ, DIM, TICKET = "Dw-Op", "Dw-Reply", "Dw-Seq", "Dw-Dim", "Dw-Ticket"
SETUP_SECONDS = 60.0  # how long a process waits for JetStream at start
DUPLICATE_WINDOW = 120.0  # seconds JetStream remembers a Nats-Msg-Id (one per HTTP request)


def token(name: str) -> str:
    """A stream name as one subject token: dots separate tokens, and names never hold '='."""
    return name.replace(".", "=")


def name_of(tok: str) -> str:
    return tok.replace("=", ".")


def partition(name: str, partitions: int) -> int:
    """fnv1a32 of the stream's token, modulo the partition count."""
    h = 0x811C9DC5
    for byte in token(name).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h % partitions


def log_subject(p: int, tok: str) -> str:
    return f"dw.log.{p}.{tok}"


def read_subject(p: int) -> str:
    return f"dw.read.{p}"


def events_subject(tok: str) -> str:
    return f"dw.events.{tok}"


def stream_key(p: int, tok: str) -> str:
    return f"s.{p}.{tok}"


def lease_key(p: int) -> str:
    return f"p.{p}"


@dataclass(frozen=True)
class StreamRecord:
    """A stream's settings and where its state is: the snapshot object and the last log
    position it covers (at creation: the log's end), and the epoch of the owner that claimed it."""

    name: str
    config: dict[str, Any]  # the settings record (streaming/spec.py: StreamSpec.to_record)
    dim: int | None
    created_at: str
    log_seq: int
    snapshot: str | None = None
    epoch: str | None = None

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> "StreamRecord":
        return cls(**json.loads(data))


KEYS_TIMEOUT = 5.0  # seconds for the next keys of a listing
KEYS_BATCH = 256  # keys fetched per request


async def keys(kv: KeyValue, pattern: str = ">") -> list[str]:
    """The live keys matching a subject pattern: an ephemeral pull consumer of each key's last
    message (headers only), read to the count the server gave at its creation, then deleted.

    Not nats-py's watch (KeyValue.keys, watch), for two reasons found against a real server
    (tests/cluster/test_layout.py): its end-of-listing marker races the first delivery, so a
    listing could come back empty (4 of 600 listings of a one-key bucket); and its consumer
    outlives it for minutes, of which the server allows 1000 per bucket (a few workers or an
    API node's creates then got 500 "maximum consumers limit reached").
    """
    # nats-py's KeyValue has no public accessor for its JetStream context and bucket name
    js, stream, prefix = kv._js, f"KV_{kv._name}", f"$KV.{kv._name}."
    config = api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=api.AckPolicy.NONE,
        headers_only=True,
        mem_storage=True,
        inactive_threshold=1.0,  # dropped by the server even if the delete below is lost
    )
    sub = await js.pull_subscribe(prefix + pattern, durable=None, stream=stream, config=config)
    name = None
    try:
        info = await sub.consumer_info()
        name, left, found = info.name, info.num_pending or 0, []
        while left > 0:
            for msg in await sub.fetch(min(left, KEYS_BATCH), timeout=KEYS_TIMEOUT):
                left -= 1
                headers = msg.headers or {}
                if "KV-Operation" not in headers and "Nats-Marker-Reason" not in headers:
                    found.append(msg.subject[len(prefix) :])  # not a delete, purge or expiry
        return found
    finally:
        await sub.unsubscribe()
        if name is not None:
            with contextlib.suppress(nats.errors.Error):
                await js.delete_consumer(stream, name)


# ------------------------------------------------------------------------------------ answers


def answer(body: BaseModel | list[Any] | dict[str, Any] | None) -> bytes:
    """A worker's successful answer."""
    if isinstance(body, BaseModel):
        return answer_json(body.model_dump_json().encode())
    return json.dumps({"ok": body}).encode()


def answer_json(body: bytes) -> bytes:
    """A worker's successful answer whose body is JSON already."""
    return b'{"ok":' + body + b"}"


def parse_json(data: bytes) -> bytes:
    """A worker's answer's body as the JSON it sent (answer_json's); its error answer raised as
    the same ApiError."""
    if data.startswith(b'{"ok":'):
        return data[6:-1]
    return json.dumps(parse(data)).encode()


def answer_error(exc: ApiError) -> bytes:
    fields = ("status", "code", "message", "details", "headers")
    return json.dumps({"error": {f: getattr(exc, f) for f in fields}}).encode()


def parse(data: bytes) -> Any:
    """A worker's answer's body; its error answer raised as the same ApiError."""
    message = json.loads(data)
    if "error" in message:
        raise ApiError(**message["error"])
    return message["ok"]


# ------------------------------------------------------------------------------------ setup


@dataclass
class Cluster:
    """A connection and the JetStream pieces every process uses."""

    nc: Client
    js: JetStreamContext
    streams: KeyValue
    leases: KeyValue
    workers: KeyValue
    snapshots: ObjectStore
    partitions: int

    async def close(self) -> None:
        await self.nc.drain()


async def connect(settings: Settings, name: str) -> Cluster:
    """Connect to settings.nats_url and create what is missing (every process may: the configs
    are identical, so creating twice is a no-op). Retried while JetStream is not available yet
    (servers of a cluster starting together elect a meta leader first)."""
    assert settings.nats_url is not None
    servers = [s.strip() for s in settings.nats_url.split(",") if s.strip()]
    # A connection whose server is cut off (a partition: no reset, no error) is only noticed by
    # unanswered pings; nats-py's default (every 120 s, two outstanding) left a worker or an API
    # node stalled for minutes. Pinging 4 times per lease, it moves to another server in about
    # 3 pings, before its leases lapse (tests/cluster/test_partitions.py).
    ping = max(1, int(settings.lease_seconds / 4))
    nc = await nats.connect(
        servers,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        ping_interval=ping,
        max_outstanding_pings=2,
    )
    js = nc.jetstream(timeout=10)
    deadline = time.monotonic() + SETUP_SECONDS
    while True:
        try:
            return await _setup(nc, js, settings)
        except nats.errors.Error as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("JetStream not ready (%r); retrying", exc)
            await asyncio.sleep(1)


async def _setup(nc: Client, js: JetStreamContext, settings: Settings) -> Cluster:
    replicas = settings.nats_replicas
    await js.add_stream(
        name=LOG,
        subjects=["dw.log.>"],
        storage=api.StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW,
        discard=api.DiscardPolicy.NEW,  # a full log refuses batches: never drops unapplied ones
        allow_direct=True,
    )
    ttl = settings.lease_seconds
    kv = dict(storage=api.StorageType.FILE, replicas=replicas, history=1)
    streams = await js.create_key_value(bucket=STREAMS, **kv)  # type: ignore[arg-type]
    leases = await js.create_key_value(bucket=LEASES, ttl=ttl, **kv)  # type: ignore[arg-type]
    workers = await js.create_key_value(bucket=WORKERS, ttl=ttl, **kv)  # type: ignore[arg-type]
    meta = await js.create_key_value(bucket=META, **kv)  # type: ignore[arg-type]
    snapshots = await js.create_object_store(
        SNAPSHOTS, config=api.ObjectStoreConfig(storage=api.StorageType.FILE, replicas=replicas)
    )
    try:
        await meta.create("partitions", str(settings.partitions).encode())
        partitions = settings.partitions
    except KeyWrongLastSequenceError:
        partitions = int((await meta.get("partitions")).value or b"0")
        if partitions != settings.partitions:
            log.warning("the cluster has %d partitions (set when it was created)", partitions)
    return Cluster(nc, js, streams, leases, workers, snapshots, partitions)
