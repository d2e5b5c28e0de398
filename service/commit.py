"""Group commit: one thread owns the writing connection of dimwatch.sqlite3 and commits the
writes waiting at that moment in one transaction, hence one fsync (service/store.py).

A write is a function of the connection; its `done(error)` is called on the committer thread
once its group is committed (error None) or failed. A group is first run plainly; only if one of
its writes fails is it run again with each write in its own savepoint, so that it fails alone
(savepoints cost two statements per write, each taking the GIL back from busy threads).

A lazy write is one nobody waits for (a history point, which the replay of the batches can
rebuild): it joins the next group of writes that somebody waits for, or, if none comes within
LINGER seconds, is committed alone; so a batch's history costs no fsync of its own.

Checkpoints (copying the WAL's pages into the database file) run on a thread of their own
(`Checkpointer`), not inside a commit as SQLite's automatic checkpoint does: the commit that took
the WAL past 1,000 pages paid ~10 ms for it, every ~15 batches at D = 256, B = 256.
"""

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

Write = Callable[[sqlite3.Connection], object]
Done = Callable[[BaseException | None], None]
LINGER = 0.05  # seconds a lazy write waits for a group to join
WAL_PAGES = 1000  # pages written between two checkpoints (SQLite's automatic default)
log = logging.getLogger("dimwatch")
Item = tuple[Write, Done, bool, int]  # a write, its callback, lazy, bytes it stores


class Checkpointer:
    """Copies the WAL into the database file on its own thread and connection, once about
    WAL_PAGES pages were committed since the last time (`PRAGMA wal_checkpoint(PASSIVE)`, which
    never blocks a writer).

    The next write transaction starts the WAL over only if every frame was copied before it
    began, and under steady writes one is always under way when a checkpoint ends. So after each
    one, the committer checkpoints the frames committed meanwhile itself, after its next group
    (`tail`): a few batches' worth, where SQLite's own checkpoint copied all of them there."""

    def __init__(self, path: Path, page_size: int) -> None:
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._page_size = page_size
        self._pages = 0  # pages committed since the last checkpoint began (committer thread)
        self.frames = 0  # frames the WAL held at the last checkpoint
        self.checkpoints = 0
        self.tail = False  # a checkpoint ended: the committer copies what came meanwhile
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="dimwatch-checkpoint", daemon=True)
        self._thread.start()

    def committed(self, stored: int, writes: int) -> None:
        """A group of `writes` writes storing `stored` bytes was committed (committer thread):
        about one page each for the b-tree, and the bytes' own."""
        self._pages += writes + stored // self._page_size
        if self._pages >= WAL_PAGES:
            self._pages = 0
            self._wake.set()

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                _, self.frames, _ = checkpoint(self._db)
                self.checkpoints += 1
                self.tail = True
            except sqlite3.Error:  # a full or failing disk: the commits say so; try again later
                log.exception("checkpoint of the write-ahead log failed")


def checkpoint(db: sqlite3.Connection) -> tuple[int, int, int]:
    """PRAGMA wal_checkpoint(PASSIVE): (busy, frames in the WAL, frames copied)."""
    ((busy, frames, copied),) = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return int(busy), int(frames), int(copied)


class GroupCommit:
    """One thread that owns the writing connection and commits the waiting writes together;
    `wal`: the database's path, for checkpoints off the commit path (Checkpointer)."""

    def __init__(self, db: sqlite3.Connection, wal: Path | None = None) -> None:
        self._db = db
        self.commits = 0  # transactions committed (writes per commit = grouping achieved)
        self._checkpointer: Checkpointer | None = None
        if wal is not None:
            db.execute("PRAGMA wal_autocheckpoint=0")
            page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
            self._checkpointer = Checkpointer(wal, page_size)
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dimwatch-commit", daemon=True)
        self._thread.start()

    def submit(self, write: Write, done: Done, lazy: bool = False, stored: int = 0) -> None:
        """Queue `write`; `done(None)` is called on the committer thread once its group is
        committed, `done(error)` if it failed. lazy: nobody waits for it (module docstring);
        stored: about how many bytes it stores (for the checkpoints)."""
        self._queue.put((write, done, lazy, stored))

    def close(self) -> None:
        """Commit what is queued, stop the threads, close the connection."""
        self._queue.put(None)
        self._thread.join()
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._db.close()

    def _run(self) -> None:
        lingering: list[Item] = []  # lazy writes waiting for a group
        while True:
            try:
                first = self._queue.get(timeout=LINGER if lingering else None)
            except queue.Empty:
                self._commit(lingering)
                lingering = []
                continue
            if first is None:
                break
            group, more = [*lingering, first], True
            while more:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:  # close(): commit this group, then stop
                    self._queue.put(None)
                    more = False
                else:
                    group.append(item)
            lingering = group if more and all(lazy for _, _, lazy, _ in group) else []
            if not lingering:
                self._commit(group)
        if lingering:
            self._commit(lingering)

    def _commit(self, group: list[Item]) -> None:
        """One transaction for the group: first every write plainly (the usual case); if one
        fails, again with each write in its own savepoint, so that it fails alone. The callbacks
        come before any checkpoint."""
        errors = self._transaction(group, isolated=False)
        if any(error is not None for error in errors) and len(group) > 1:
            errors = self._transaction(group, isolated=True)
        for (_, done, _, _), error in zip(group, errors, strict=True):
            try:
                done(error)
            except Exception:  # a waiter's bug must not stop the committer
                log.exception("a commit's callback failed")
        checkpointer = self._checkpointer
        if checkpointer is not None:
            checkpointer.committed(sum(item[3] for item in group), len(group))
            if checkpointer.tail:  # copy what came during its checkpoint: the WAL starts over
                checkpointer.tail = False
                try:
                    checkpoint(self._db)
                except sqlite3.Error:
                    log.exception("checkpoint of the write-ahead log failed")

    def _transaction(self, group: list[Item], isolated: bool) -> list[BaseException | None]:
        db = self._db
        errors: list[BaseException | None] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for write, *_ in group:
                if isolated:
                    errors.append(_savepoint(db, write))
                else:
                    write(db)
                    errors.append(None)
            db.execute("COMMIT")
            self.commits += 1
            return errors
        except BaseException as exc:  # a plain write, or the whole group (e.g. a full disk)
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:  # the next BEGIN fails and says why; the thread must live on
                log.exception("rollback of a failed group commit failed")
            return [exc] * len(group)


def _savepoint(db: sqlite3.Connection, write: Write) -> BaseException | None:
    """Run `write` in a savepoint: its error, rolled back alone, or None."""
    db.execute("SAVEPOINT write")
    try:
        write(db)
        return None
    except Exception as exc:
        db.execute("ROLLBACK TO write")
        return exc
    finally:
        db.execute("RELEASE write")
