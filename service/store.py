"""The embedded store: two SQLite files in WAL mode with synchronous=FULL.

dimwatch.sqlite3 (docs/operations.md says what is fsynced when):

    streams    name, config JSON, dim, created_at, history_stride     one row per stream
    batches    stream, step, rows, data (float32 little-endian bytes)  the log since the snapshot
    history    stream, step, best, bic JSON, batch_bic JSON             mirror of service.history
    snapshots  stream, step, state                  only in files written before the file below

dimwatch-snapshots.sqlite3:

    snapshots  stream, step, state (the bank's state_bytes()),          the latest one per stream
               digests (the recent batches' digests, service/runtime/digests.py; NULL in files
               written before them)

Group commit (service/commit.py): every write of dimwatch.sqlite3 goes to one committer
thread, which runs the writes waiting at that moment in one transaction (one failing write
fails alone) and commits, hence fsyncs, once for all of them; a write is answered only after
the commit of its group is durable. Batches of many streams arriving together share one fsync
instead of queueing behind one fsync each. The WAL is copied into the file by a checkpointer
thread of its own, so that no commit waits for that.

A batch is logged while the core trains it (log_batch; the two overlap), dropped again if the
core refuses it, and its history point follows lazily, in the next group (mirror_history): the
replay rebuilds a point that a crash lost, as it skips a refused batch whose drop a crash cut
short (service/live.py).

Snapshots (hundreds of MB at the limits) are written to their own file with their own
connection, so they never hold the committer: the snapshot is committed first, then the log rows
it covers are deleted by a group commit. A crash in between leaves rows that the snapshot covers,
which loading skips. Loading a stream = its snapshot + the batches after it, replayed in order.
"""

import fcntl
import json
import logging
import sqlite3
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from service.commit import Done, GroupCommit, Write
from service.history import Change, Point

FILENAME = "dimwatch.sqlite3"
SNAPSHOTS = "dimwatch-snapshots.sqlite3"
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
_SNAPSHOT_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    stream TEXT PRIMARY KEY, step INTEGER NOT NULL, state BLOB NOT NULL);
"""
_SNAPSHOT_DIGESTS = "ALTER TABLE snapshots ADD COLUMN digests BLOB"
log = logging.getLogger("dimwatch")


@dataclass
class StoredStream:
    """Everything needed to bring one stream back: its row, snapshot, log and history."""

    name: str
    config: dict[str, Any]  # the settings record (streaming/spec.py: StreamSpec.to_record)
    dim: int | None
    created_at: str
    history_stride: int
    snapshot: tuple[int, bytes] | None = None  # (step, state bytes)
    batches: list[tuple[int, bytes]] = field(default_factory=list)  # (step, float32 bytes)
    history: list[Point] = field(default_factory=list)
    digests: bytes | None = None  # the snapshot's recent-batch digests

    @property
    def stored_step(self) -> int:
        """The step of its last stored batch (or of its snapshot)."""
        steps = [step for step, _ in self.batches]
        if self.snapshot is not None:
            steps.append(self.snapshot[0])
        return max(steps, default=0)


class Store:
    """Thread-safe access to the SQLite files in data_dir."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / FILENAME
        self._owner = _claim(data_dir)
        writer = _connect(self.path)
        version = writer.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: schema version {version}, expected {SCHEMA_VERSION}")
        writer.executescript(_SCHEMA)
        writer.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._committer = GroupCommit(writer, wal=self.path)
        self._lock = threading.Lock()  # the reading connection
        self._db = _connect(self.path)
        self._snap_lock = threading.Lock()
        self._snaps = _connect(data_dir / SNAPSHOTS)
        self._snaps.executescript(_SNAPSHOT_SCHEMA)
        columns = {row[1] for row in self._snaps.execute("PRAGMA table_info(snapshots)")}
        if "digests" not in columns:
            self._snaps.execute(_SNAPSHOT_DIGESTS)

    def close(self) -> None:
        self._committer.close()
        with self._lock, self._snap_lock:
            self._db.close()
            self._snaps.close()
        self._owner.close()  # releases the data directory

    @property
    def commits(self) -> int:
        """Transactions committed to dimwatch.sqlite3 since the store opened."""
        return self._committer.commits

    def _write(self, write: Write) -> None:
        """Run `write` in the next group commit; returns once it is durable."""
        done: Future[BaseException | None] = Future()
        self._committer.submit(write, done.set_result)
        if (error := done.result()) is not None:
            raise error

    # -------------------------------------------------------------------------------- streams

    def create_stream(
        self, name: str, config: dict[str, Any], dim: int | None, created_at: str
    ) -> None:
        self._drop_snapshot(name)  # left over if a crash cut a delete of this name short
        self._write(
            lambda db: db.execute(
                "INSERT INTO streams (name, config, dim, created_at) VALUES (?, ?, ?, ?)",
                (name, json.dumps(config), dim, created_at),
            )
        )

    def delete_stream(self, name: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            for table, column in _STREAM_TABLES:
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

        self._write(write)
        self._drop_snapshot(name)

    def stream_names(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT name FROM streams ORDER BY name").fetchall()
        return [r[0] for r in rows]

    def load_stream(self, name: str) -> StoredStream | None:
        """A stream with its latest snapshot, the batches after it and its history."""
        snapshot, digests = self._snapshot(name)
        with self._lock:
            self._db.execute("BEGIN")  # one consistent view of the row, log and history
            try:
                stored = self._row(name)
                if stored is not None:
                    self._load_one(stored, snapshot)
                    if stored.snapshot == snapshot:
                        stored.digests = digests
            finally:
                self._db.execute("COMMIT")
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

    def _load_one(self, s: StoredStream, snapshot: tuple[int, bytes] | None) -> None:
        legacy = self._db.execute(
            "SELECT step, state FROM snapshots WHERE stream = ?", (s.name,)
        ).fetchone()  # written by servers before the snapshot file existed
        if legacy is not None and (snapshot is None or legacy[0] > snapshot[0]):
            snapshot = (legacy[0], bytes(legacy[1]))
        s.snapshot = snapshot
        after = -1 if snapshot is None else snapshot[0]
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

    def log_batch(self, name: str, step: int, rows: int, data: bytes, dim: int, done: Done) -> None:
        """Log a batch as the stream's step `step` (its step after it), as the core trains it:
        `done(None)` (on the committer thread) once durable, `done(error)` if it failed. A batch
        the core then refuses is dropped again (drop_batch); one whose drop a crash cut short is
        refused again by the replay, which skips it, and the stream's next batch replaces it."""
        self._committer.submit(
            lambda db: _log_batch(db, name, step, rows, data, dim), done, stored=len(data)
        )

    def drop_batch(self, name: str, step: int, done: Done) -> None:
        """Take a logged batch out again (the core refused it): `done` as in log_batch."""
        self._committer.submit(
            lambda db: db.execute(
                "DELETE FROM batches WHERE stream = ? AND step = ?", (name, step)
            ),
            done,
        )

    def mirror_history(self, name: str, change: Change) -> None:
        """Mirror what the stream's history did for a logged batch, lazily (service/commit.py):
        nobody waits for it, and if a crash loses it, the replay of the batch rebuilds it."""
        if change.added is None and change.thinned_to is None:
            return

        def failed(error: BaseException | None) -> None:
            if error is not None:
                log.error("stream %r: could not store a history point (%s)", name, error)

        self._committer.submit(lambda db: _mirror_history(db, name, change), failed, lazy=True)

    def append_batch(
        self, name: str, step: int, rows: int, data: bytes, dim: int, change: Change
    ) -> None:
        """Log a batch and its history point in one transaction; returns once durable (for
        tools and tests: the server logs a batch while it trains, log_batch)."""

        def write(db: sqlite3.Connection) -> None:
            _log_batch(db, name, step, rows, data, dim)
            _mirror_history(db, name, change)

        self._write(write)

    def logged_batches(self, name: str) -> int:
        """Rows of the batch log held for a stream (for tests and operations)."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM batches WHERE stream = ?", (name,))
            return int(row.fetchone()[0])

    # -------------------------------------------------------------------------------- snapshots

    def save_snapshot(self, name: str, step: int, state: bytes, digests: bytes = b"") -> None:
        """Replace the stream's snapshot (durably, in the snapshot file, holding no other
        stream's commit), then drop the logged batches it covers."""
        self._write(lambda db: None)  # history points still lingering first: it covers them
        with self._snap_lock:
            self._snaps.execute(
                "INSERT OR REPLACE INTO snapshots (stream, step, state, digests) "
                "VALUES (?, ?, ?, ?)",
                (name, step, state, digests),
            )

        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM batches WHERE stream = ? AND step <= ?", (name, step))
            db.execute("DELETE FROM snapshots WHERE stream = ?", (name,))

        self._write(write)

    def _snapshot(self, name: str) -> tuple[tuple[int, bytes] | None, bytes | None]:
        """(step, state) of the stream's snapshot and its digests; (None, None) without one."""
        with self._snap_lock:
            row = self._snaps.execute(
                "SELECT step, state, digests FROM snapshots WHERE stream = ?", (name,)
            ).fetchone()
        if row is None:
            return None, None
        return (row[0], bytes(row[1])), None if row[2] is None else bytes(row[2])

    def _drop_snapshot(self, name: str) -> None:
        with self._snap_lock:
            self._snaps.execute("DELETE FROM snapshots WHERE stream = ?", (name,))


def _log_batch(
    db: sqlite3.Connection, name: str, step: int, rows: int, data: bytes, dim: int
) -> None:
    if step == 1:
        db.execute("UPDATE streams SET dim = ? WHERE name = ?", (dim, name))
    db.execute(
        "INSERT OR REPLACE INTO batches (stream, step, rows, data) VALUES (?, ?, ?, ?)",
        (name, step, rows, data),
    )


def _mirror_history(db: sqlite3.Connection, name: str, change: Change) -> None:
    if change.added is not None:
        p = change.added
        db.execute(
            "INSERT OR REPLACE INTO history (stream, step, best, bic, batch_bic) "
            "VALUES (?, ?, ?, ?, ?)",
            (name, p.step, p.best_latent_dim, json.dumps(p.bic), json.dumps(p.batch_bic)),
        )
    if change.thinned_to is not None:
        db.execute(
            "DELETE FROM history WHERE stream = ? AND step % ? != 0", (name, change.thinned_to)
        )
        db.execute(
            "UPDATE streams SET history_stride = ? WHERE name = ?", (change.thinned_to, name)
        )


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
    # Debian's SQLite zeroes every freed page (SECURE_DELETE): dropping the 100 batches a
    # snapshot covers (256 KiB each at D = 256) wrote 26 MB of zeros, an 80 ms commit. FAST
    # zeroes only what costs no extra I/O; freed pages are reused by the next batches.
    db.execute("PRAGMA secure_delete=FAST")
    return db


class DataDirInUse(RuntimeError):
    """Another dimwatch server holds the data directory."""


def _claim(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on data_dir/dimwatch.lock while the store is open: two servers on
    one store would interleave their logs. The kernel drops it when the process dies."""
    owner = (data_dir / LOCKNAME).open("w")
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner.close()
        raise DataDirInUse(f"{data_dir} is in use by another dimwatch server") from None
    return owner


def check_free(data_dir: Path) -> None:
    """Create data_dir if needed; DataDirInUse if another server holds it (as Store() would)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _claim(data_dir).close()


_STREAM_TABLES = (
    ("streams", "name"),
    ("batches", "stream"),
    ("snapshots", "stream"),
    ("history", "stream"),
)
