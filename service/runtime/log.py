"""The small interface the runtime needs from where streams are durable.

Two implementations: the SQLite store of one process (service/store.py, `SqliteLog`), which
logs a batch while the core trains it, and JetStream in the cluster (service/cluster/log.py),
where the API node appended the batch to the log before the worker saw it, so there is nothing
left to do. Either way, a batch is acknowledged only once `append` has called `done(None)` and
its step is done; a batch the core refuses is `drop`ped again (the cluster's replay refuses it
again, as the embedded replay does one whose drop a crash cut short).
"""

from collections.abc import Callable
from typing import Protocol

import numpy as np

from service.history import Change
from service.live import LiveStream
from service.store import StoredStream

Done = Callable[[BaseException | None], None]


class StorageError(Exception):
    """The log could not make a batch durable (a full or failing disk); answered 503."""


class StreamLog(Protocol):
    def append(self, live: LiveStream, step: int, x: np.ndarray, done: Done) -> None:
        """Make batch x durable as the stream's step `step`, while the core trains it, then call
        `done(None)` (from any thread); on failure `done(error)` or raise. Called on a worker
        thread, with the stream's lock held."""
        ...

    def drop(self, live: LiveStream, step: int, done: Done) -> None:
        """Take back the batch appended as `step`: the core refused it (or failed on it)."""
        ...

    def record(self, live: LiveStream, change: Change) -> None:
        """Mirror what the history did for an applied batch; nobody waits for it (a crash
        that loses it leaves the batch, whose replay rebuilds it)."""
        ...

    async def snapshot(self, live: LiveStream) -> None:
        """Store the stream's full state, so that replay starts after it (failures are logged
        by the runtime: the batches stay in the log and the next snapshot retries)."""
        ...

    async def delete(self, live: LiveStream) -> None:
        """Remove everything stored for the stream."""
        ...

    def load(self, name: str) -> StoredStream | None:
        """The stream's durable state (blocking; on a worker thread), read back by
        `LiveStream.recover` after a failed commit."""
        ...
