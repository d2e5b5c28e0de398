"""Group commit: one thread owns the writing connection of dimwatch.sqlite3 and commits the
writes waiting at that moment in one transaction, hence one fsync (service/store.py).

A write is a function of the connection; its `done(error)` is called on the committer thread
once its group is committed (error None) or failed. A group is first run plainly; only if one of
its writes fails is it run again with each write in its own savepoint, so that it fails alone
(savepoints cost two statements per write, each taking the GIL back from busy threads).

A lazy write is one nobody waits for (a history point, which the replay of the batches can
rebuild): it joins the next group of writes that somebody waits for, or, if none comes within
LINGER seconds, is committed alone; so a batch's history costs no fsync of its own.
"""

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable

Write = Callable[[sqlite3.Connection], object]
Done = Callable[[BaseException | None], None]
LINGER = 0.05  # seconds a lazy write waits for a group to join
log = logging.getLogger("dimwatch")


class GroupCommit:
    """One thread that owns the writing connection and commits the waiting writes together."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.commits = 0  # transactions committed (writes per commit = grouping achieved)
        self._queue: queue.SimpleQueue[tuple[Write, Done, bool] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="dimwatch-commit", daemon=True)
        self._thread.start()

    def submit(self, write: Write, done: Done, lazy: bool = False) -> None:
        """Queue `write`; `done(None)` is called on the committer thread once its group is
        committed, `done(error)` if it failed. lazy: nobody waits for it (module docstring)."""
        self._queue.put((write, done, lazy))

    def close(self) -> None:
        """Commit what is queued, stop the thread, close the connection."""
        self._queue.put(None)
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        lingering: list[tuple[Write, Done, bool]] = []  # lazy writes waiting for a group
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
            lingering = group if more and all(lazy for _, _, lazy in group) else []
            if not lingering:
                self._commit(group)
        if lingering:
            self._commit(lingering)

    def _commit(self, group: list[tuple[Write, Done, bool]]) -> None:
        """One transaction for the group: first every write plainly (the usual case); if one
        fails, again with each write in its own savepoint, so that it fails alone."""
        errors = self._transaction(group, isolated=False)
        if any(error is not None for error in errors) and len(group) > 1:
            errors = self._transaction(group, isolated=True)
        for (_, done, _), error in zip(group, errors, strict=True):
            try:
                done(error)
            except Exception:  # a waiter's bug must not stop the committer
                log.exception("a commit's callback failed")

    def _transaction(
        self, group: list[tuple[Write, Done, bool]], isolated: bool
    ) -> list[BaseException | None]:
        db = self._db
        errors: list[BaseException | None] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for write, _, _ in group:
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
