"""The runtime's log in the cluster: JetStream (service/runtime/log.py has the interface).

A batch reaches a worker only after the API node appended it to DW_LOG and JetStream
acknowledged it (file storage, an fsync per write, R replicas): `append` has nothing left to do.
A snapshot is the stream's state in the dw-snapshots object store, then its record (a
compare-and-set: a newer owner's claim fences this one), then the purge of the stream's log
behind the position the snapshot covers. Every write first checks the owner's lease.
"""

import asyncio
import json
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from nats.js.errors import KeyWrongLastSequenceError

from service.cluster import layout
from service.cluster.layout import Cluster, StreamRecord
from service.history import Change, Point
from service.live import LiveStream
from service.runtime.log import Done
from service.settings import Settings
from service.store import StoredStream


class Fenced(Exception):
    """This owner's lease or claim is gone: stop without writing anything more."""


class Owner(Protocol):
    """The partition that claimed a stream."""

    def check(self) -> None:
        """Raise Fenced when this process no longer holds the partition's lease."""

    def fence(self, why: Fenced) -> None:
        """Another owner claimed one of the partition's streams: stop the partition."""


@dataclass
class Claim:
    """A stream's record as this owner claimed or last wrote it (the compare-and-set base), and
    the state it claimed it for."""

    owner: Owner
    live: LiveStream
    record: StreamRecord
    revision: int


class JetStreamLog:
    """Snapshots and deletes of the streams a worker's partitions claimed (`claims`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.claims: dict[str, Claim] = {}  # by stream name

    def append(self, live: LiveStream, step: int, x: np.ndarray, done: Done) -> None:
        done(None)  # in the log (and acknowledged by JetStream) before the worker saw it

    def drop(self, live: LiveStream, step: int, done: Done) -> None:
        done(None)  # stays in the log: its replay refuses it again

    def record(self, live: LiveStream, change: Change) -> None:
        pass  # the history travels in the snapshot; the replay rebuilds what came after it

    def load(self, name: str) -> StoredStream | None:
        raise AssertionError("a commit to JetStream cannot fail after the worker saw the batch")

    async def snapshot(self, live: LiveStream) -> None:
        """Object, then the record (CAS: fenced if another epoch claimed it), then the purge of
        the stream's log behind the record's position, then the old object."""
        claim = self.claims.get(live.name)
        if claim is None or claim.live is not live:  # work left by an earlier owner period
            return
        state = await asyncio.to_thread(live.state)
        if state is None:
            return
        step, data, digests = state
        position, tok = live.position, layout.token(live.name)
        p = layout.partition(live.name, self.c.partitions)
        name = f"{tok}.{position}"
        claim.owner.check()
        await self.c.snapshots.put(name, encode(live, step, data, digests, position))
        record = replace(claim.record, snapshot=name, log_seq=position, dim=live.dim)
        key = layout.stream_key(p, tok)
        try:
            revision = await self.c.streams.update(key, record.encode(), last=claim.revision)
        except KeyWrongLastSequenceError:
            raise self._fenced(claim, live.name) from None
        old, claim.record, claim.revision = claim.record, record, revision
        live.snapshot_step = step
        await self.c.js.purge_stream(
            layout.LOG, subject=layout.log_subject(p, tok), seq=position + 1
        )
        if old.snapshot is not None and old.snapshot != name:
            await self.c.snapshots.delete(old.snapshot)

    async def delete(self, live: LiveStream) -> None:
        """The record (CAS), the end of its events, its log up to the delete, its snapshot."""
        claim = self.claims.get(live.name)
        if claim is None or claim.live is not live:
            raise Fenced(f"stream {live.name!r} is no longer claimed by this owner period")
        tok, p = layout.token(live.name), layout.partition(live.name, self.c.partitions)
        claim.owner.check()
        try:
            await self.c.streams.delete(layout.stream_key(p, tok), last=claim.revision)
        except KeyWrongLastSequenceError:
            raise self._fenced(claim, live.name) from None
        if self.claims.get(live.name) is claim:
            del self.claims[live.name]
        await self.c.nc.publish(layout.events_subject(tok), b"", headers={layout.OP: "end"})
        await self.c.js.purge_stream(
            layout.LOG, subject=layout.log_subject(p, tok), seq=live.position + 1
        )
        if claim.record.snapshot is not None:
            await self.c.snapshots.delete(claim.record.snapshot)

    @staticmethod
    def _fenced(claim: Claim, name: str) -> Fenced:
        fenced = Fenced(f"stream {name!r} was claimed by another owner")
        claim.owner.fence(fenced)
        return fenced


def encode(live: LiveStream, step: int, state: bytes, digests: bytes, position: int) -> bytes:
    """The bank's state bytes after a JSON head: step, dim, log position, history, digests."""
    points = live.history.since(-1, len(live.history))
    head = {
        "step": step,
        "dim": live.dim,
        "log_seq": position,
        "stride": live.history.stride,
        "history": [[p.step, p.best_latent_dim, p.bic, p.batch_bic] for p in points],
        "digests": digests.hex(),
    }
    raw = json.dumps(head).encode()
    return len(raw).to_bytes(8, "little") + raw + state


def decode(record: StreamRecord, snapshot: bytes | None) -> StoredStream:
    """The stream as of its record's snapshot (none: as created)."""
    stored = StoredStream(record.name, record.config, record.dim, record.created_at, 1)
    if snapshot is not None:
        size = int.from_bytes(snapshot[:8], "little")
        head = json.loads(snapshot[8 : 8 + size])
        stored.dim = head["dim"]
        stored.history_stride = head["stride"]
        stored.history = [Point(s, b, tuple(bic), tuple(bb)) for s, b, bic, bb in head["history"]]
        stored.snapshot = (head["step"], snapshot[8 + size :])
        stored.digests = bytes.fromhex(head.get("digests", ""))
    return stored


def restore(record: StreamRecord, snapshot: bytes | None, settings: Settings) -> LiveStream:
    """The stream as of its record's snapshot, at the log position the snapshot covers."""
    live = LiveStream.restore(decode(record, snapshot), settings.device, settings.history_limit)
    live.position = record.log_seq
    return live
