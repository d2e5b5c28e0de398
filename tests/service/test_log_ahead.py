"""The batch is logged while the core trains it (service/runtime/batch.py): the commit and the
step overlap; a batch the core refuses is taken out of the log again; the replay skips one whose
drop a crash cut short and rebuilds the history points a crash lost (service/live.py)."""

import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.history import Change
from service.runtime import runtime
from service.store import FILENAME
from tests.service.helpers import Server, batch, push, wait_until

Make = Callable[..., AbstractContextManager[Server]]
ADAM = {"name": "s", "latent_dims": [1, 2], "optimizer": "adam"}  # float32: 1e20 overflows


def _overflowing(seed: int) -> np.ndarray:
    x = batch(seed=seed)
    x[4, 1] = 1e20  # finite in float32; its square is not
    return x


def _history_steps(client: Any) -> list[int]:
    points = client.get("/v1/streams/s/history").json()["points"]
    return [p["step"] for p in points]


def test_batch_is_durable_before_its_step_ends(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = server.client, server.registry.store
    client.post("/v1/streams", json={"name": "s"})
    stepping, release = threading.Event(), threading.Event()
    real = runtime.learn_together

    def held(pairs: Any) -> Any:  # a long step
        stepping.set()
        assert release.wait(30)
        return real(pairs)

    monkeypatch.setattr(runtime, "learn_together", held)
    pushing = threading.Thread(target=push, args=(client, "s", batch(seed=0), 0))
    pushing.start()
    try:
        assert stepping.wait(30)
        wait_until(lambda: store.logged_batches("s") == 1, 30)  # committed while it trains
        assert client.get("/v1/streams/s").json()["step"] == 0  # not applied before the step
    finally:
        release.set()
        pushing.join(30)
    assert client.get("/v1/streams/s").json()["step"] == 1


def test_refused_batch_leaves_the_log_and_the_next_takes_its_step(server: Server) -> None:
    client, store = server.client, server.registry.store
    client.post("/v1/streams", json=ADAM)
    for seq in range(2):
        push(client, "s", batch(seed=seq), seq)
    assert push(client, "s", _overflowing(2), 2).status_code == 422
    assert store.logged_batches("s") == 2  # dropped again before the refusal was answered
    assert push(client, "s", batch(seed=2), 2).json()["step"] == 3
    assert store.logged_batches("s") == 3


def test_replay_skips_a_refused_batch_a_crash_left_in_the_log(make_server: Make) -> None:
    with make_server(snapshot_every=100) as server:
        server.client.post("/v1/streams", json=ADAM)
        for seq in range(2):
            push(server.client, "s", batch(seed=seq), seq)
        expected = server.client.get("/v1/streams/s/models/2").json()
        x = _overflowing(2)  # logged, refused, and its drop lost: as after a kill -9
        server.registry.store.append_batch("s", 3, len(x), x.tobytes(), 8, Change(None, None))
    with make_server(snapshot_every=100) as server:
        assert server.client.get("/v1/streams/s/models/2").json() == expected
        assert push(server.client, "s", batch(seed=2), 2).json()["step"] == 3  # replaces it
        after = server.client.get("/v1/streams/s/models/2").json()
    with make_server(snapshot_every=100) as server:
        assert server.client.get("/v1/streams/s/models/2").json() == after


def test_replay_rebuilds_history_points_a_crash_lost(make_server: Make, tmp_path: Path) -> None:
    xs = [batch(seed=seq) for seq in range(5)]
    with make_server(data_dir=tmp_path / "pushed") as server:  # the history as it should be
        server.client.post("/v1/streams", json={"name": "s"})
        for seq, x in enumerate(xs):
            push(server.client, "s", x, seq)
        history = server.client.get("/v1/streams/s/history").json()
    with make_server() as server:  # the batches logged, their lazy history writes lost
        server.client.post("/v1/streams", json={"name": "s"})
        store = server.registry.store
        for step, x in enumerate(xs, 1):
            store.append_batch("s", step, len(x), x.tobytes(), 8, Change(None, None))
    with make_server() as server:
        assert server.client.get("/v1/streams/s/history").json() == history
    db = sqlite3.connect(tmp_path / "data" / FILENAME)
    assert [s for (s,) in db.execute("SELECT step FROM history ORDER BY step")] == [1, 2, 3, 4, 5]
    db.close()
