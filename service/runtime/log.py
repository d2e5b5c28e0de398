"""The small interface the runtime needs from where streams are durable.

Two implementations: the SQLite store of one process (service/store.py, `SqliteLog`), which
commits a batch after its step, and JetStream in the cluster (service/cluster/log.py), where the
API node appended the batch to the log before the worker saw it, so there is nothing left to
commit. Either way, a batch is acknowledged only once `commit` has called `done(None)`.
"""

from collections.abc import Callable
from typing import Protocol

from service.live import LiveStream, Pending
from service.store import StoredStream

Done = Callable[[BaseException | None], None]


class StorageError(Exception):
    """The log could not make a batch durable (a full or failing disk); answered 503."""


class StreamLog(Protocol):
    def commit(self, live: LiveStream, pending: Pending, done: Done) -> None:
        """Make a trained batch durable, then call `done(None)` (from any thread); on failure
        `done(error)` or raise. Called on a worker thread, with the stream's lock held."""
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
