"""The embedded store: one SQLite file holding every stream, in WAL mode with synchronous=FULL.

Tables (docs/operations.md says what is fsynced when):

    streams    name, config JSON, dim, created_at, history_stride     one row per stream
    batches    stream, step, rows, data (float32 little-endian bytes)  the log since the snapshot
    snapshots  stream, step, state (LinearVAEBank.state_bytes())        the latest one per stream
    history    stream, step, best, bic JSON, batch_bic JSON             mirror of service.history

A batch is one transaction (its log row and its history row), committed, hence fsynced, before
the server answers. A snapshot replaces the previous one and deletes the log rows it covers in
one transaction. Loading a stream = its snapshot + the batches after it, replayed in order.
One connection serves every thread, behind a lock: SQLite serialises writers anyway.
"""

import fcntl
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from service.history import Change, Point

FILENAME = "dimwatch.sqlite3"
LOCKNAME = "dimwatch.lock"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    name TEXT PRIMARY KEY, config TEXT NOT NULL, dim INTEGER, created_at TEXT NOT NULL,
    history_stride INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS batches (
    stream TEXT NOT NULL, step INTEGER NOT NULL, rows INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (stream, step));
CREATE TABLE IF NOT EXISTS snapshots (
    stream TEXT PRIMARY KEY, step INTEGER NOT NULL, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    stream TEXT NOT NULL, step INTEGER NOT NULL, best INTEGER NOT NULL, bic TEXT NOT NULL,
    batch_bic TEXT NOT NULL, PRIMARY KEY (stream, step));
"""


@dataclass
class StoredStream:
    """Everything needed to bring one stream back: its row, snapshot, log and history."""

    name: str
    config: dict[str, Any]  # the StreamCreate fields but name and dim
    dim: int | None
    created_at: str
    history_stride: int
    snapshot: tuple[int, bytes] | None = None  # (step, state bytes)
    batches: list[tuple[int, bytes]] = field(default_factory=list)  # (step, float32 bytes)
    history: list[Point] = field(default_factory=list)

    @property
    def stored_step(self) -> int:
        """The step of its last stored batch (or of its snapshot)."""
        steps = [step for step, _ in self.batches]
        if self.snapshot is not None:
            steps.append(self.snapshot[0])
        return max(steps, default=0)


class Store:
    """Thread-safe access to the SQLite file in data_dir."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / FILENAME
        self._owner = _claim(data_dir)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: schema version {version}, expected {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._owner.close()  # releases the data directory

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -------------------------------------------------------------------------------- streams

    def create_stream(
        self, name: str, config: dict[str, Any], dim: int | None, created_at: str
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO streams (name, config, dim, created_at) VALUES (?, ?, ?, ?)",
                (name, json.dumps(config), dim, created_at),
            )

    def delete_stream(self, name: str) -> None:
        with self._transaction() as db:
            for table, column in _STREAM_TABLES:
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

    def stream_names(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT name FROM streams ORDER BY name").fetchall()
        return [r[0] for r in rows]

    def load_stream(self, name: str) -> StoredStream | None:
        """A stream with its latest snapshot, the batches after it and its history."""
        with self._lock:
            stored = self._row(name)
            if stored is not None:
                self._load_one(stored)
        return stored

    def load_row(self, name: str) -> StoredStream | None:
        """A stream's row alone (settings, dim, created_at), without its state."""
        with self._lock:
            return self._row(name)

    def _row(self, name: str) -> StoredStream | None:
        row = self._db.execute(
            "SELECT name, config, dim, created_at, history_stride FROM streams WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            return None
        return StoredStream(row[0], json.loads(row[1]), row[2], row[3], row[4])

    def _load_one(self, s: StoredStream) -> None:
        snap = self._db.execute(
            "SELECT step, state FROM snapshots WHERE stream = ?", (s.name,)
        ).fetchone()
        s.snapshot = None if snap is None else (snap[0], bytes(snap[1]))
        after = -1 if snap is None else snap[0]
        s.batches = [
            (step, bytes(data))
            for step, data in self._db.execute(
                "SELECT step, data FROM batches WHERE stream = ? AND step > ? ORDER BY step",
                (s.name, after),
            )
        ]
        s.history = [
            Point(step, best, tuple(json.loads(bic)), tuple(json.loads(bbic)))
            for step, best, bic, bbic in self._db.execute(
                "SELECT step, best, bic, batch_bic FROM history WHERE stream = ? ORDER BY step",
                (s.name,),
            )
        ]

    # -------------------------------------------------------------------------------- batches

    def append_batch(
        self, name: str, step: int, rows: int, data: bytes, dim: int, change: Change
    ) -> None:
        """Log one applied batch (step = the stream's step after it) durably, in one commit."""
        with self._transaction() as db:
            if step == 1:
                db.execute("UPDATE streams SET dim = ? WHERE name = ?", (dim, name))
            db.execute(
                "INSERT INTO batches (stream, step, rows, data) VALUES (?, ?, ?, ?)",
                (name, step, rows, data),
            )
            if change.added is not None:
                p = change.added
                db.execute(
                    "INSERT INTO history (stream, step, best, bic, batch_bic)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (name, p.step, p.best_latent_dim, json.dumps(p.bic), json.dumps(p.batch_bic)),
                )
            if change.thinned_to is not None:
                db.execute(
                    "DELETE FROM history WHERE stream = ? AND step % ? != 0",
                    (name, change.thinned_to),
                )
                db.execute(
                    "UPDATE streams SET history_stride = ? WHERE name = ?",
                    (change.thinned_to, name),
                )

    def save_snapshot(self, name: str, step: int, state: bytes) -> None:
        """Replace the stream's snapshot and drop the logged batches it covers."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO snapshots (stream, step, state) VALUES (?, ?, ?)",
                (name, step, state),
            )
            db.execute("DELETE FROM batches WHERE stream = ? AND step <= ?", (name, step))

    def logged_batches(self, name: str) -> int:
        """Rows of the batch log held for a stream (for tests and operations)."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM batches WHERE stream = ?", (name,))
            return int(row.fetchone()[0])


def _claim(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on data_dir/dimwatch.lock while the store is open: two servers on
    one store would interleave their logs. The kernel drops it when the process dies."""
    owner = (data_dir / LOCKNAME).open("w")
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner.close()
        raise RuntimeError(f"{data_dir} is in use by another dimwatch server") from None
    return owner


_STREAM_TABLES = (
    ("streams", "name"),
    ("batches", "stream"),
    ("snapshots", "stream"),
    ("history", "stream"),
)
