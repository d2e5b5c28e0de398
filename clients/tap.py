"""Push embeddings from where they are made (a training or serving loop) without slowing it.

    tap = EmbeddingTap("http://127.0.0.1:8000", "encoder", every=50,
                       settings={"latent_dims": [8, 16, 32, 64, 128]})
    for step, batch in enumerate(loader):
        z = model.encode(batch)            # (B, D) torch tensor or numpy array
        tap(z)                             # every 50th call is queued; never waits on the server
        ...
    tap.close()                            # sends what is queued (up to a timeout)
    print(tap.stats)                       # offered, queued, sent, dropped, failed

A call copies the rows it takes (on their device: a CUDA tensor is cloned, not synchronised)
and puts them in a bounded queue; a background thread converts and pushes them. When the queue
is full (the server is slow or gone) the rows are dropped and counted, never waited for; a push
the server refuses or cannot answer is counted as failed and not retried. The loop never sees
an exception from the tap (the last one is kept in `stats.last_error`). Rows of more than two
axes are flattened to (N, D) over the last axis (token embeddings (B, T, D) -> (B T, D)).
"""

import contextlib
import queue
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np

from clients import errors
from clients._requests import RetryPolicy, WireDtype
from clients.client import DimwatchClient
from clients.models import StreamSettings

# Never resend: a lost push is a dropped sample, not a reason to hold the queue.
NO_RETRY = RetryPolicy(attempts=1, wait_ready=0)
_STOP = object()  # the queue's end marker


@dataclass(frozen=True)
class TapStats:
    """What the tap did so far. offered = taken + skipped by `every`; queued = sent + failed +
    still waiting; dropped: taken but the queue was full."""

    offered: int  # calls
    queued: int  # batches put in the queue
    dropped: int  # batches not queued because the queue was full
    sent: int  # batches the server applied
    failed: int  # batches the server refused or did not answer (not retried)
    rows_sent: int
    last_error: str | None  # the last failure, for a log line


class EmbeddingTap:
    """Every `every`-th call pushes its rows to `stream` from a background thread; a full queue
    of `queue_size` batches drops instead of waiting. `settings` creates the stream if it does
    not exist (an existing one keeps its own). Thread-safe; close it, or use `with`."""

    def __init__(
        self,
        server: str | DimwatchClient,
        stream: str,
        *,
        every: int = 1,
        queue_size: int = 8,
        token: str | None = None,
        timeout: float = 30.0,
        settings: StreamSettings | None = None,
    ) -> None:
        if every < 1 or queue_size < 1:
            raise errors.InputError(
                f"every and queue_size: expected >= 1, got {every}, {queue_size}"
            )
        own = not isinstance(server, DimwatchClient)
        self._client = (
            DimwatchClient(server, token, timeout=timeout, retry=NO_RETRY)
            if isinstance(server, str)
            else server
        )
        self._own_client = own
        self.stream = stream
        self.every = every
        self._settings = settings
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._counts = {"offered": 0, "queued": 0, "dropped": 0, "sent": 0, "failed": 0, "rows": 0}
        self._last_error: str | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"dimwatch-tap-{stream}", daemon=True
        )
        self._thread.start()

    def __call__(self, embeddings: Any) -> bool:
        """Offer a batch of embeddings; True when this call's rows were queued."""
        with self._lock:
            taken = self._counts["offered"] % self.every == 0
            self._counts["offered"] += 1
        if not taken:
            return False
        try:
            self._queue.put_nowait(_snapshot(embeddings))
        except queue.Full:
            self._count("dropped")
            return False
        self._count("queued")
        return True

    @property
    def stats(self) -> TapStats:
        with self._lock:
            c = self._counts
            return TapStats(
                c["offered"], c["queued"], c["dropped"], c["sent"], c["failed"], c["rows"],
                self._last_error,
            )  # fmt: skip

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued batch was sent or failed; False if `timeout` ran out first."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is queued (for up to `timeout` seconds), then stop the thread."""
        self.flush(timeout)
        # A full queue: the thread is stuck on a server that does not answer (it is a daemon).
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)
        if self._own_client and not self._thread.is_alive():
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def _run(self) -> None:
        ready = self._settings is None
        while (item := self._queue.get()) is not _STOP:
            try:
                if not ready:
                    self._client.ensure_stream(self.stream, **(self._settings or {}))
                    ready = True
                rows, dtype = _rows(item)
                self._client.push(self.stream, rows, dtype=dtype)
                self._count("sent")
                self._count("rows", len(rows))
            except Exception as exc:  # the loop must never see it: counted and kept
                with self._lock:
                    self._counts["failed"] += 1
                    self._last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._queue.task_done()
        self._queue.task_done()


def _snapshot(embeddings: Any) -> Any:
    """A copy the caller may overwrite at once: a torch tensor cloned on its own device (no
    host sync), anything else as a numpy array."""
    if hasattr(embeddings, "detach") and hasattr(embeddings, "clone"):
        return embeddings.detach().clone()
    return np.array(embeddings, copy=True)


def _rows(item: Any) -> tuple[np.ndarray, WireDtype | None]:
    """(N, D) rows on the host and the wire format: 2 bytes a number for half-precision data."""
    dtype: WireDtype | None = None
    if hasattr(item, "detach"):  # torch: bfloat16 has no numpy type, so it goes as float32 bits
        name = str(item.dtype)
        dtype = (
            "bfloat16"
            if name == "torch.bfloat16"
            else "float16"
            if name == "torch.float16"
            else None
        )
        item = item.float().cpu().numpy()
    rows = np.asarray(item)
    if rows.ndim > 2:
        rows = rows.reshape(-1, rows.shape[-1])
    return rows, dtype
