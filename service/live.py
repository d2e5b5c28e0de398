"""One live stream: its bank, last report and history, changed only by worker threads.

Every method here blocks (training, SQLite commits) and runs off the event loop. `lock`
serialises the training worker and readers (models, transform) of one stream; the registry's
per-stream queue keeps batches in arrival order.

The order inside `apply` makes a 2xx mean "durable": validate -> train (the core leaves the bank
untouched on bad input) -> commit the batch to the log -> publish the new report. The lock is held
from the step to the end of the commit, so no reader sees a step that is not durable. If the
commit fails, the stream is rebuilt from the store; if that fails too, the stream is marked
unavailable (its trained-ahead bank dropped), so memory never runs ahead of the disk.
"""

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from service.errors import ApiError
from service.history import History
from service.store import Store, StoredStream
from streaming.errors import InvalidBatchError
from streaming.learner import Learner, resolve_device
from streaming.report import ModelParams, StepReport
from streaming.spec import SPEC_VERSION, StreamSpec, migrate

log = logging.getLogger("dimwatch")

EPOCH = "1970-01-01T00:00:00Z"  # created_at of a stream whose row cannot be read


@dataclass(frozen=True)
class Unavailable:
    """A stored stream that cannot be served (its restore or its reload failed), kept listed and
    deletable: why, and what its stored row says."""

    name: str
    reason: str
    config: dict[str, Any]  # the stored settings as far as they could be read
    dim: int | None
    created_at: str
    step: int  # batches stored for it (0 when unknown)

    def error(self) -> ApiError:
        return unavailable_error(self.name, self.reason)


def unavailable_error(name: str, reason: str) -> ApiError:
    return ApiError(
        409,
        "stream_unavailable",
        f"stream {name!r} is unavailable: {reason}; delete it (DELETE /v1/streams/{name}) or "
        "restore its data and restart the server",
        {"reason": reason},
    )


@dataclass(frozen=True)
class Applied:
    """The outcome of one batch: the report after it, and what the selection was before."""

    report: StepReport
    rows: int
    duplicate: bool
    previous_best: int | None
    seconds: float


def stream_spec(config: dict[str, Any], default_device: str) -> StreamSpec:
    """The core's settings from a stream's settings (any stored spec version); device "auto"
    takes the server's."""
    spec = StreamSpec.from_record(config)
    return spec if spec.device != "auto" else spec.replace(device=default_device)


def _device_name(requested: str) -> str:
    """The device a bank will use, as "cpu" or "cuda:N" (never a bare "cuda")."""
    device = resolve_device(requested)
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


class LiveStream:
    """The in-memory state of one stream, mirrored durably in the store."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        dim: int | None,
        created_at: str,
        store: Store,
        default_device: str,
        history_limit: int,
        gate: threading.Semaphore | None = None,
    ) -> None:
        self.name = name
        stored = StreamSpec.from_record(config)  # migrated from older records
        # the settings as created, every StreamSpec field (device as asked: "auto" stays)
        self.config = {k: v for k, v in stored.to_record().items() if k != "spec_version"}
        self.dim = dim
        self.created_at = created_at
        self.spec = stream_spec(config, default_device)
        self.device = _device_name(self.spec.device)
        self.bank: Learner | None = None
        self.report: StepReport | None = None  # after the last durable batch
        self.history = History(history_limit)
        self.snapshot_step = 0
        self.deleted = False
        self.unavailable: str | None = None  # why the stream cannot be served any more
        self.lock = threading.Lock()
        self._store = store
        # bounds the training steps running at once across streams (Settings.workers); threads
        # beyond it wait on commits, which the store groups
        self._gate = gate if gate is not None else threading.Semaphore(1)

    @property
    def step(self) -> int:
        return 0 if self.report is None else self.report.step

    # -------------------------------------------------------------------------------- writing

    def apply(self, x: np.ndarray, seq: int | None) -> Applied:
        """Learn one batch X (B, D) float32 durably; seq (if any) must equal the current step."""
        start = time.perf_counter()
        with self.lock:
            self._check_serving()
            previous = self.report
            step = self.step
            if seq is not None and seq < step:
                assert previous is not None
                return Applied(previous, x.shape[0], True, previous.best_latent_dim, 0.0)
            if seq is not None and seq > step:
                raise ApiError(
                    409,
                    "seq_gap",
                    f"expected seq {step} (the next batch of {self.name!r}), got {seq}",
                    {"expected_seq": step},
                )
            self._check_columns(x)
            with self._gate:
                bank = self.bank if self.bank is not None else self._new_bank(x.shape[1])
                report = bank.learn_many(x)
            try:
                change = self.history.add(report)
                self._store.append_batch(
                    self.name, report.step, x.shape[0], x.tobytes(), bank.dim, change
                )
            except sqlite3.Error as exc:
                log.exception("stream %r: could not store step %d", self.name, report.step)
                self._reload(f"could not store step {report.step} ({exc})")
                raise ApiError(
                    503,
                    "storage_error",
                    f"could not store the batch ({exc}); nothing was applied, retry later",
                    headers={"Retry-After": "1"},
                ) from exc
            except BaseException as exc:
                self._reload(f"could not store step {report.step} ({exc!r})")
                raise
            self.bank, self.report, self.dim = bank, report, bank.dim
        best = None if previous is None else previous.best_latent_dim
        return Applied(report, x.shape[0], False, best, time.perf_counter() - start)

    def _check_serving(self) -> None:
        if self.deleted:
            raise ApiError(404, "not_found", f"stream {self.name!r} not found")
        if self.unavailable is not None:
            raise unavailable_error(self.name, self.unavailable)

    def _check_columns(self, x: np.ndarray) -> None:
        if self.dim is not None and x.shape[1] != self.dim:
            raise InvalidBatchError(f"expected {self.dim} columns, got {x.shape[1]}")

    def snapshot_if_due(self, every: int) -> bool:
        """Snapshot when `every` batches were logged since the last snapshot."""
        if self.step - self.snapshot_step < every:
            return False
        self.snapshot()
        return True

    def snapshot(self) -> None:
        """Store the bank's full state and drop the log rows it covers."""
        with self.lock:
            if self.bank is None or self.deleted or self.unavailable is not None:
                return
            if self.bank.step == self.snapshot_step:
                return
            self._store.save_snapshot(self.name, self.bank.step, self.bank.state_bytes())
            self.snapshot_step = self.bank.step

    def delete(self) -> None:
        """Remove the stream from the store; later work on it answers 404."""
        with self.lock:
            self.deleted = True
            self._store.delete_stream(self.name)

    # -------------------------------------------------------------------------------- reading

    def params(self, latent_dim: int | None) -> tuple[int, ModelParams]:
        with self.lock:
            self._check_serving()
            bank = self._trained_bank()
            return bank.step, bank.params(latent_dim)

    def transform(
        self, x: np.ndarray, latent_dim: int | None, decode: bool
    ) -> tuple[int, np.ndarray]:
        """Posterior means (decode=False) or reconstructions of X with one model (None: best)."""
        with self.lock:
            self._check_serving()
            bank = self._trained_bank()
            h = bank.best_latent_dim if latent_dim is None else latent_dim
            out = bank.reconstruct(x, h) if decode else bank.encode(x, h)
            return h, out

    def _new_bank(self, dim: int) -> Learner:
        return Learner(dim, self.spec)

    @property
    def record(self) -> dict[str, Any]:
        """The settings as stored: with their spec version."""
        return {**self.config, "spec_version": SPEC_VERSION}

    def _trained_bank(self) -> Learner:
        if self.bank is None:
            raise ApiError(
                409, "no_data_yet", f"stream {self.name!r} has no batch yet; push one first"
            )
        return self.bank

    # -------------------------------------------------------------------------------- restoring

    @classmethod
    def restore(
        cls,
        stored: StoredStream,
        store: Store,
        default_device: str,
        history_limit: int,
        gate: threading.Semaphore | None = None,
    ) -> "LiveStream":
        """Snapshot + replay of the logged batches after it: the state of the last commit."""
        live = cls(
            stored.name,
            stored.config,
            stored.dim,
            stored.created_at,
            store,
            default_device,
            history_limit,
            gate,
        )
        with live._gate:
            live._load(stored)
        return live

    def _load(self, stored: StoredStream) -> None:
        """Snapshot + replay into fresh objects; the stream changes only if all of it worked."""
        history = History(self.history.capacity, stored.history_stride, stored.history)
        bank: Learner | None = None
        snapshot_step = 0
        if stored.snapshot is not None:
            snapshot_step, state = stored.snapshot
            bank = Learner.from_bytes(state, device=self.spec.device)
        for step, data in stored.batches:
            assert stored.dim is not None
            x = np.frombuffer(data, dtype="<f4").reshape(-1, stored.dim).copy()
            if bank is None:
                bank = self._new_bank(stored.dim)
            bank.learn_many(x)
            if bank.step != step:
                raise RuntimeError(f"log step {step} replayed as {bank.step}")
        self.history, self.bank, self.snapshot_step = history, bank, snapshot_step
        self.report = None if bank is None else bank.report()

    def _reload(self, why: str) -> None:
        """Bring memory back to the store's state after a failed commit; when that fails too,
        drop the trained-ahead bank and mark the stream unavailable."""
        try:
            stored = self._store.load_stream(self.name)
            if stored is None:
                raise LookupError("its row is gone from the store")
            self._load(stored)
        except Exception as exc:
            log.exception("stream %r: reload after a failed commit failed", self.name)
            self.bank = None  # trained ahead of the disk; the report is the last durable one
            self.unavailable = f"{why}, then could not reload it from the store ({exc})"

    def as_unavailable(self) -> Unavailable:
        """The record the registry lists once this stream became unavailable."""
        assert self.unavailable is not None
        return Unavailable(
            self.name, self.unavailable, self.config, self.dim, self.created_at, self.step
        )


def restore(
    store: Store,
    name: str,
    default_device: str,
    history_limit: int,
    gate: threading.Semaphore | None = None,
) -> LiveStream | Unavailable | None:
    """The stored stream `name` restored, or why it cannot be (never raises); None: no such
    stream."""
    stored: StoredStream | None = None
    try:
        stored = store.load_stream(name)
        if stored is None:
            return None
        return LiveStream.restore(stored, store, default_device, history_limit, gate)
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
