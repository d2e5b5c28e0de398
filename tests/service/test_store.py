"""The SQLite store on its own: one owner per data directory, schema, log and snapshots."""

import sqlite3
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from service.history import Change, Point
from service.store import SNAPSHOTS, Store
from tests.service.helpers import wait_until


def test_open_same_data_dir_twice_refused(tmp_path: Path) -> None:
    first = Store(tmp_path)
    with pytest.raises(RuntimeError, match="is in use by another dimwatch server"):
        Store(tmp_path)
    first.close()
    Store(tmp_path).close()  # free again once closed


def test_append_and_snapshot_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.create_stream("s", {"seed": 1}, None, "2026-11-25T15:00:00Z")
    point = Point(step=1, best_latent_dim=2, bic=(1.5, float("inf")), batch_bic=(None, 2.0))
    store.append_batch("s", 1, 2, b"\x00" * 16, 2, Change(point, None))
    store.append_batch("s", 2, 2, b"\x01" * 16, 2, Change(None, None))
    store.save_snapshot("s", 1, b"state")
    store.close()
    reopened = Store(tmp_path)
    stored = reopened.load_stream("s")
    reopened.close()
    assert stored is not None
    assert (stored.config, stored.dim, stored.created_at) == (
        {"seed": 1},
        2,
        "2026-11-25T15:00:00Z",
    )
    assert stored.snapshot == (1, b"state")
    assert stored.batches == [(2, b"\x01" * 16)]
    assert stored.history == [point]


def test_dropping_covered_batches_writes_no_zeroed_pages(tmp_path: Path) -> None:
    # Debian builds SQLite with SECURE_DELETE: dropping the batches a snapshot covers wrote
    # every freed page again as zeros (64 pages a 256 KiB batch). The store turns that off.
    store = Store(tmp_path)
    store.create_stream("s", {}, None, "2026-12-07T00:00:00Z")
    for step in range(1, 21):
        store.append_batch("s", step, 256, bytes(256 * 256 * 4), 256, Change(None, None))
    reader = sqlite3.connect(store.path, isolation_level=None)
    reader.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the WAL starts empty
    store.save_snapshot("s", 20, b"state")
    _, frames, _ = reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    reader.close()
    store.close()
    assert frames < 64  # the b-tree pages that changed, not 20 * 64 zeroed overflow pages


def test_delete_stream_removes_every_row(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.create_stream("s", {}, 2, "2026-11-25T15:00:00Z")
    store.append_batch("s", 1, 1, b"\x00" * 8, 2, Change(None, None))
    store.delete_stream("s")
    assert (store.load_stream("s"), store.logged_batches("s"), store.stream_names()) == (
        None,
        0,
        [],
    )
    store.close()


def _append(store: Store, name: str, step: int) -> None:
    store.append_batch(name, step, 1, b"\x00" * 8, 2, Change(None, None))


def test_concurrent_batches_share_one_commit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    names = [f"s{i}" for i in range(8)]
    for name in names:
        store.create_stream(name, {}, 2, "2026-11-25T15:00:00Z")
    held, release = threading.Event(), threading.Event()

    def blocking(db: sqlite3.Connection) -> None:  # a commit in progress (a slow fsync)
        held.set()
        release.wait(30)

    first: Future[None] = Future()
    store._committer.submit(blocking, lambda error: first.set_result(None))
    assert held.wait(30)
    commits = store.commits
    with ThreadPoolExecutor(len(names)) as pool:
        waiting = [pool.submit(_append, store, name, 1) for name in names]
        wait_until(lambda: store._committer._queue.qsize() == len(names))
        release.set()
        for future in waiting:
            future.result(30)
    first.result(30)
    assert store.commits == commits + 2  # the blocking write's, then one for all eight
    assert [store.logged_batches(name) for name in names] == [1] * len(names)
    store.close()


def test_failing_write_fails_alone_in_its_group(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.create_stream("s", {}, 2, "2026-11-25T15:00:00Z")
    _append(store, "s", 1)
    with pytest.raises(sqlite3.IntegrityError):  # a batch without its rows: NOT NULL
        store._write(lambda db: db.execute("INSERT INTO batches (stream, step) VALUES ('s', 2)"))
    _append(store, "s", 2)
    assert store.logged_batches("s") == 2
    store.close()


def test_snapshot_in_progress_does_not_hold_batch_commits(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.create_stream("s", {}, 2, "2026-11-25T15:00:00Z")
    store.create_stream("t", {}, 2, "2026-11-25T15:00:00Z")
    other = sqlite3.connect(tmp_path / SNAPSHOTS, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the snapshot file is busy, as during a large snapshot
    snapshot = threading.Thread(target=store.save_snapshot, args=("s", 0, b"state" * 1000))
    snapshot.start()
    wait_until(store._snap_lock.locked)  # save_snapshot is waiting on the snapshot file
    _append(store, "t", 1)  # commits meanwhile
    assert store.logged_batches("t") == 1
    other.execute("ROLLBACK")
    snapshot.join(30)
    assert not snapshot.is_alive()
    stored = store.load_stream("s")
    assert stored is not None and stored.snapshot == (0, b"state" * 1000)
    other.close()
    store.close()
