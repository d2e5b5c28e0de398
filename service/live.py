"""One live stream: its bank, last report and history, changed only by worker threads.

Every method here blocks (training, reloads) and runs off the event loop. The runtime
(service/runtime/) drives a batch through three calls, which make a 2xx mean "durable":

    begin(x, seq)     takes the stream's lock; checks width, then seq (a duplicate is answered
                      here, a reused seq refused); None: the batch is to be trained
    stepped(...)      after the core's step (which leaves the bank untouched on bad input): the
                      history point, for the log to mirror (the batch itself was handed to the
                      log before the step, and commits while it trains)
    committed(p)      once the batch is durable and trained: the new state becomes the
                      stream's, and the lock is released (from the thread that saw both done)

The lock is held from `begin` to the end of the commit, so no reader (models, transform) sees a
step that is not durable and the stream's next batch trains on durable state only. If the commit
fails, `recover` rebuilds the stream from the store; if that fails too, the stream is marked
unavailable (its trained-ahead bank dropped), so memory never runs ahead of the disk.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from service.errors import ApiError
from service.history import Change, History
from service.runtime.digests import Digests, digest
from service.schemas import SelectionOut, StreamCreate
from service.settings import Settings
from service.store import StoredStream
from streaming.errors import InvalidBatchError
from streaming.learner import Learner, resolve_device
from streaming.report import ModelParams, StepReport
from streaming.spec import SPEC_VERSION, StreamSpec

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
    """The outcome of one batch: the report after it, and what the selection was before. The
    runtime adds the answer (BatchOut's JSON) and the selection's JSON (the `step` event's data),
    rendered off the event loop."""

    report: StepReport
    rows: int
    duplicate: bool
    previous_best: int | None
    seconds: float  # the training step and the durable commit, overlapping (step_seconds)
    commit_seconds: float = 0.0  # the commit (its hand-off to the log until durable)
    answer: bytes = b""
    selection: SelectionOut | None = None


@dataclass
class Pending:
    """A trained batch waiting for its commit; its stream's lock is held until `committed` or
    `recover`."""

    bank: Learner
    report: StepReport
    x: np.ndarray  # (B, D) float32, the batch as logged
    change: Change  # what the history did, for the log to mirror
    digest: bytes
    previous: StepReport | None
    started: float  # perf_counter when the step began
    position: int | None  # the batch's position in its log (JetStream's sequence), if any


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
    """The in-memory state of one stream, mirrored durably in its log."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        dim: int | None,
        created_at: str,
        default_device: str,
        history_limit: int,
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
        self.digests = Digests()
        self.unmirrored: list[Change] = []  # history changes a replay rebuilt, for the log
        self.snapshot_step = 0
        self.position = 0  # the log position of the last batch applied (cluster: JetStream's)
        self.deleted = False
        self.unavailable: str | None = None  # why the stream cannot be served any more
        self.lock = threading.Lock()

    @classmethod
    def create(cls, spec: StreamCreate, settings: Settings) -> "LiveStream":
        """The stream `spec` asks for, created now, its settings checked by the core."""
        created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = spec.model_dump(exclude={"name", "dim"})
        live = cls(spec.name, config, spec.dim, created_at, settings.device, settings.history_limit)
        if spec.dim is not None:
            live.spec.check_dim(spec.dim)
        return live

    @property
    def step(self) -> int:
        return 0 if self.report is None else self.report.step

    @property
    def unsnapped(self) -> int:
        """Batches applied since the last snapshot."""
        return self.step - self.snapshot_step

    # -------------------------------------------------------------------------------- writing

    def begin(self, x: np.ndarray, seq: int | None) -> Applied | None:
        """Take the lock and check batch X (B, D) float32: its width first, then seq (which, if
        given, must be the current step; a resend of an earlier one is a duplicate). None: train
        it (the lock stays held); an Applied duplicate or an error: the lock is released."""
        self.lock.acquire()
        return self.check(x, seq)

    def check(self, x: np.ndarray, seq: int | None) -> Applied | None:
        """begin's checks, the lock already taken by the caller."""
        try:
            return self._checked(x, seq)
        except BaseException:
            self.lock.release()
            raise

    def _checked(self, x: np.ndarray, seq: int | None) -> Applied | None:
        if self.deleted:
            raise ApiError(404, "not_found", f"stream {self.name!r} not found")
        if self.unavailable is not None:
            raise unavailable_error(self.name, self.unavailable)
        if self.dim is not None and x.shape[1] != self.dim:
            raise InvalidBatchError(f"expected {self.dim} columns, got {x.shape[1]}")
        step = self.step
        if seq is not None and seq < step:
            self.digests.check(self.name, seq, x)
            previous = self.report
            assert previous is not None
            self.lock.release()
            return Applied(previous, x.shape[0], True, previous.best_latent_dim, 0.0)
        if seq is not None and seq > step:
            raise ApiError(
                409,
                "seq_gap",
                f"expected seq {step} (the next batch of {self.name!r}), got {seq}",
                {"expected_seq": step},
            )
        return None

    def learner(self, dim: int) -> Learner:
        """The bank to train (a new one for the first batch); call between begin and stepped."""
        return self.bank if self.bank is not None else self._new_bank(dim)

    def stepped(
        self,
        x: np.ndarray,
        bank: Learner,
        report: StepReport,
        started: float,
        position: int | None = None,
    ) -> Pending:
        """The trained batch, ready for its commit (its history point added)."""
        change = self.history.add(report)
        return Pending(bank, report, x, change, digest(x), self.report, started, position)

    def committed(self, pending: Pending) -> Applied:
        """The batch is durable: make it the stream's state and release the lock (from any
        thread)."""
        seq = pending.report.step - 1
        self.digests.add(seq, pending.x, pending.digest)
        self.bank, self.report, self.dim = pending.bank, pending.report, pending.bank.dim
        if pending.position is not None:
            self.position = pending.position
        self.lock.release()
        previous = pending.previous
        best = None if previous is None else previous.best_latent_dim
        now = time.perf_counter()
        return Applied(pending.report, pending.x.shape[0], False, best, now - pending.started)

    def abort(self) -> None:
        """The step raised (the core refused the batch): nothing changed; release the lock."""
        self.lock.release()

    def recover(self, why: str, load: Callable[[], StoredStream | None]) -> None:
        """The batch in progress could not be made durable (or its step failed part way): reload
        the stream's durable state with `load` (or mark it unavailable), then release the
        lock."""
        try:
            log.error("stream %r: %s", self.name, why)
            self._reload(why, load)
        finally:
            self.lock.release()

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

    def _check_serving(self) -> None:
        if self.deleted:
            raise ApiError(404, "not_found", f"stream {self.name!r} not found")
        if self.unavailable is not None:
            raise unavailable_error(self.name, self.unavailable)

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

    # -------------------------------------------------------------------------------- snapshots

    def state(self) -> tuple[int, bytes, bytes] | None:
        """(step, the bank's state bytes, the digests) for a snapshot; None when there is
        nothing new to snapshot (or nothing to snapshot at all)."""
        with self.lock:
            if self.bank is None or self.deleted or self.unavailable is not None:
                return None
            if self.bank.step == self.snapshot_step:
                return None
            return self.bank.step, self.bank.state_bytes(), self.digests.to_bytes()

    # -------------------------------------------------------------------------------- restoring

    @classmethod
    def restore(cls, stored: StoredStream, default_device: str, history_limit: int) -> "LiveStream":
        """Snapshot + replay of the logged batches after it: the state of the last commit."""
        live = cls(
            stored.name,
            stored.config,
            stored.dim,
            stored.created_at,
            default_device,
            history_limit,
        )
        live._load(stored)
        return live

    def _load(self, stored: StoredStream) -> None:
        """Snapshot + replay into fresh objects; the stream changes only if all of it worked.
        The replay skips a batch the core refuses (the last one logged, whose drop a crash cut
        short) and rebuilds the history points that a crash lost (`unmirrored`: for the log)."""
        history = History(self.history.capacity, stored.history_stride, stored.history)
        mirrored = stored.history[-1].step if stored.history else 0
        unmirrored = []
        digests = Digests.from_bytes(stored.digests)
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
            try:
                report = bank.learn_many(x)
            except InvalidBatchError as exc:
                log.warning("stream %r: logged step %d refused, skipped (%s)", self.name, step, exc)
                continue
            if bank.step != step:
                raise RuntimeError(f"log step {step} replayed as {bank.step}")
            digests.add(step - 1, x, digest(x))
            if step > mirrored and (change := history.add(report)) != Change(None, None):
                unmirrored.append(change)
        if bank is not None and bank.step == 0:  # its one batch refused: as before any
            bank = None
        self.history, self.bank, self.snapshot_step = history, bank, snapshot_step
        self.digests, self.unmirrored = digests, unmirrored
        self.report = None if bank is None else bank.report()

    def _reload(self, why: str, load: Callable[[], StoredStream | None]) -> None:
        """Bring memory back to the log's state after a failed commit; when that fails too,
        drop the trained-ahead bank and mark the stream unavailable."""
        try:
            stored = load()
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
