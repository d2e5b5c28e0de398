"""Group commit: waiting writes share one transaction; a failing write fails alone."""

import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path

from service.commit import WAL_PAGES, GroupCommit
from tests.service.helpers import wait_until


def _result(future: "Future[BaseException | None]") -> BaseException | None:
    return future.result(30)


def test_a_failing_write_fails_alone_in_a_group(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None, check_same_thread=False)
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    db.execute("INSERT INTO t VALUES (2)")
    committer = GroupCommit(db)
    held, release = threading.Event(), threading.Event()

    def blocking(db: sqlite3.Connection) -> None:  # holds the committer: the rest is one group
        held.set()
        release.wait(30)

    first: Future[BaseException | None] = Future()
    committer.submit(blocking, first.set_result)
    assert held.wait(30)
    commits = committer.commits
    futures: list[Future[BaseException | None]] = [Future() for _ in range(3)]
    for k, future in zip((1, 2, 3), futures, strict=True):  # 2 exists: its insert fails
        committer.submit(
            lambda db, k=k: db.execute("INSERT INTO t VALUES (?)", (k,)), future.set_result
        )
    wait_until(lambda: committer._queue.qsize() == 3)
    release.set()
    errors = [_result(f) for f in futures]
    assert _result(first) is None
    assert [type(e) for e in errors] == [type(None), sqlite3.IntegrityError, type(None)]
    assert committer.commits == commits + 2  # the blocking write's, then one for the three
    committer.close()
    check = sqlite3.connect(tmp_path / "t.sqlite3")
    assert [k for (k,) in check.execute("SELECT k FROM t ORDER BY k")] == [1, 2, 3]
    check.close()


def test_a_failing_write_alone_gets_its_error_and_the_committer_goes_on(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None, check_same_thread=False)
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    committer = GroupCommit(db)
    failed: Future[BaseException | None] = Future()
    committer.submit(lambda db: db.execute("INSERT INTO missing VALUES (1)"), failed.set_result)
    assert isinstance(_result(failed), sqlite3.OperationalError)
    after: Future[BaseException | None] = Future()
    committer.submit(lambda db: db.execute("INSERT INTO t VALUES (1)"), after.set_result)
    assert _result(after) is None
    committer.close()


def test_a_lazy_write_joins_the_next_group_or_commits_alone_after_lingering(
    tmp_path: Path,
) -> None:
    db = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None, check_same_thread=False)
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
    committer = GroupCommit(db)
    held, release = threading.Event(), threading.Event()
    first: Future[BaseException | None] = Future()
    committer.submit(lambda db: held.set() or release.wait(30), first.set_result)
    assert held.wait(30)
    lazy: Future[BaseException | None] = Future()
    committer.submit(lambda db: db.execute("INSERT INTO t VALUES (1)"), lazy.set_result, True)
    waited: Future[BaseException | None] = Future()
    committer.submit(lambda db: db.execute("INSERT INTO t VALUES (2)"), waited.set_result)
    release.set()
    assert (_result(first), _result(lazy), _result(waited)) == (None, None, None)
    assert committer.commits == 2  # the lazy write cost no commit of its own
    alone: Future[BaseException | None] = Future()
    committer.submit(lambda db: db.execute("INSERT INTO t VALUES (3)"), alone.set_result, True)
    assert _result(alone) is None  # nothing else came: committed after LINGER
    assert committer.commits == 3
    committer.close()
    check = sqlite3.connect(tmp_path / "t.sqlite3")
    assert [k for (k,) in check.execute("SELECT k FROM t ORDER BY k")] == [1, 2, 3]
    check.close()


def _wal_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, data BLOB)")
    return db


def _insert(committer: GroupCommit, k: int, data: bytes) -> None:
    done: Future[BaseException | None] = Future()
    committer.submit(
        lambda db: db.execute("INSERT INTO t VALUES (?, ?)", (k, data)),
        done.set_result,
        stored=len(data),
    )
    assert _result(done) is None


def test_checkpoints_run_beside_the_commits_and_the_wal_starts_over(tmp_path: Path) -> None:
    db = _wal_db(tmp_path / "t.sqlite3")
    committer = GroupCommit(db, wal=tmp_path / "t.sqlite3")
    checkpointer = committer._checkpointer
    assert checkpointer is not None
    assert db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # none inside a COMMIT
    data = bytes(256 * 1024)  # 64 pages
    for k in range(3 * WAL_PAGES // 64):
        _insert(committer, k, data)
    wait_until(lambda: checkpointer.checkpoints >= 2)
    # each checkpoint found about WAL_PAGES new frames: the WAL was started over in between
    assert checkpointer.frames < 2 * WAL_PAGES
    committer.close()
    check = sqlite3.connect(tmp_path / "t.sqlite3")
    assert check.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3 * WAL_PAGES // 64
    check.close()
