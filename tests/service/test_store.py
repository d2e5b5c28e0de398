"""The SQLite store on its own: one owner per data directory, schema, log and snapshots."""

from pathlib import Path

import pytest

from service.history import Change, Point
from service.store import Store


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
