"""Durability: restarts keep everything, snapshots bound the log, kill -9 loses no acked batch.

The crash tests run `python -m service` in a subprocess, push batches with seq, kill it with
SIGKILL and restart the service (in this process) on the same data directory. Training is
deterministic (one torch thread), so the restarted stream must equal, parameter for parameter,
a bank that learned the same batches in this process without interruption.
"""

import signal
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from service.settings import Settings
from streaming.learner import Learner
from streaming.spec import StreamSpec
from tests.service.helpers import Server, batch, push, serve, server_process, wait_until

DIM = 8
SNAPSHOT_EVERY = {"DIMWATCH_SNAPSHOT_EVERY": "7"}
PATHS = [f"/v1/streams/s{p}" for p in ("", "/selection", "/collapse", "/history")]
# Adam + Monte Carlo: the path with optimizer moments and a sampling RNG to carry over restarts
CONFIG = {
    "latent_dims": [2, 4, 6],
    "learning_rate": 0.01,
    "estimator": "mc",
    "mc_samples": 3,
    "optimizer": "adam",
}


def _batches(n: int) -> list[np.ndarray]:
    return [batch(rows=5, dim=DIM, seed=i) for i in range(n)]


def _reference(batches: list[np.ndarray]) -> Learner:
    """The same stream trained in this process without interruption (the service's default
    adaptive learning rate, whose controller state must survive restarts too)."""
    torch.set_num_threads(1)
    bank = Learner(
        DIM,
        StreamSpec(
            latent_dims=(2, 4, 6),
            learning_rate=0.01,
            estimator="mc",
            mc_samples=3,
            optimizer="adam",
            device="cpu",
        ),
    )
    for x in batches:
        bank.learn_many(x)
    return bank


def _assert_same_models(client: httpx.Client, name: str, bank: Learner) -> None:
    for h in (2, 4, 6):
        served = client.get(f"/v1/streams/{name}/models/{h}").json()
        expected = bank.params(h)
        assert served["step"] == bank.step
        for key in ("W", "mu", "sigma2", "V", "b", "tau2"):
            assert served[key] == getattr(expected, key), (h, key)


# ------------------------------------------------------------------------------ in-process


def test_restart_keeps_streams_config_and_history(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(snapshot_every=4) as server:
        server.client.post("/v1/streams", json={"name": "s", **CONFIG})
        for i, x in enumerate(_batches(10)):
            push(server.client, "s", x, seq=i)
        before = [server.client.get(path).json() for path in PATHS]
    with make_server(snapshot_every=4) as server:
        after = [server.client.get(path).json() for path in PATHS]
        _assert_same_models(server.client, "s", _reference(_batches(10)))
    assert after == before


def test_snapshot_prunes_batch_log(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    # The snapshot a batch makes due runs after its answer, before the stream's next batch.
    with make_server(snapshot_every=4) as server:
        server.client.post("/v1/streams", json={"name": "s", **CONFIG})
        store = server.registry.store
        for i, x in enumerate(_batches(10)):
            push(server.client, "s", x, seq=i)
            wait_until(lambda n=(i + 1) % 4: store.logged_batches("s") == n)


def test_graceful_shutdown_snapshots_every_stream(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(snapshot_every=100) as server:
        server.client.post("/v1/streams", json={"name": "s", **CONFIG})
        for i, x in enumerate(_batches(5)):
            push(server.client, "s", x, seq=i)
    with make_server(snapshot_every=100) as server:
        assert server.registry.store.logged_batches("s") == 0
        assert server.client.get("/v1/streams/s").json()["step"] == 5


def test_restart_continues_training_identically(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    data = _batches(12)
    with make_server(snapshot_every=5) as server:
        server.client.post("/v1/streams", json={"name": "s", **CONFIG})
        for i in range(7):
            push(server.client, "s", data[i], seq=i)
    with make_server(snapshot_every=5) as server:
        for i in range(7, 12):
            assert push(server.client, "s", data[i], seq=i).json()["step"] == i + 1
        _assert_same_models(server.client, "s", _reference(data))


def test_deleted_stream_stays_deleted_after_restart(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server() as server:
        server.client.post("/v1/streams", json={"name": "a"})
        server.client.post("/v1/streams", json={"name": "b"})
        push(server.client, "a", batch(), seq=0)
        server.client.delete("/v1/streams/a")
    with make_server() as server:
        assert [s["name"] for s in server.client.get("/v1/streams").json()["data"]] == ["b"]


# ------------------------------------------------------------------------------ subprocess


def _restarted(data_dir: Path) -> AbstractContextManager[Server]:
    """The restart, in this process (same settings as the killed server, same SQLite file)."""
    return serve(Settings(data_dir=data_dir, snapshot_every=7))


def test_sigterm_shuts_down_cleanly_with_snapshot(tmp_path: Path) -> None:
    data, log = _batches(5), tmp_path / "server.log"
    with server_process(tmp_path / "data", log, SNAPSHOT_EVERY) as (proc, client):
        client.post("/v1/streams", json={"name": "s", **CONFIG})
        for i, x in enumerate(data):
            push(client, "s", x, seq=i)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM  # uvicorn re-raises it after a clean shutdown
    assert "Application shutdown complete" in log.read_text()
    with _restarted(tmp_path / "data") as server:
        assert server.registry.store.logged_batches("s") == 0  # snapshotted on the way out
        assert server.client.get("/v1/streams/s").json()["step"] == 5
        _assert_same_models(server.client, "s", _reference(data))


def test_sigkill_between_batches_loses_nothing(tmp_path: Path) -> None:
    data, log = _batches(30), tmp_path / "server.log"
    with server_process(tmp_path / "data", log, SNAPSHOT_EVERY) as (proc, client):
        client.post("/v1/streams", json={"name": "s", **CONFIG})
        acked = sum(push(client, "s", x, seq=i).status_code == 200 for i, x in enumerate(data))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert acked == 30
    with _restarted(tmp_path / "data") as server:
        assert server.client.get("/v1/streams/s").json()["step"] == acked
        _assert_same_models(server.client, "s", _reference(data))


def test_reused_seq_still_refused_after_sigkill(tmp_path: Path) -> None:
    # snapshot_every 7: seqs 0-6 come back with the snapshot, seqs 7-9 from the replayed log
    data, log = _batches(10), tmp_path / "server.log"
    with server_process(tmp_path / "data", log, SNAPSHOT_EVERY) as (proc, client):
        client.post("/v1/streams", json={"name": "s", **CONFIG})
        for i, x in enumerate(data):
            push(client, "s", x, seq=i)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    with _restarted(tmp_path / "data") as server:
        for seq in (2, 8):
            assert push(server.client, "s", data[seq], seq=seq).json()["duplicate"] is True
            reused = push(server.client, "s", data[seq] + 1, seq=seq)
            assert (reused.status_code, reused.json()["error"]) == (409, "seq_reused")
        assert server.client.get("/v1/streams/s").json()["step"] == 10


def test_sigkill_mid_stream_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    data, log = _batches(60), tmp_path / "server.log"
    acked: list[int] = []
    with server_process(tmp_path / "data", log, SNAPSHOT_EVERY) as (proc, client):
        client.post("/v1/streams", json={"name": "s", **CONFIG})

        def pusher() -> None:
            try:
                for i, x in enumerate(data):
                    if push(client, "s", x, seq=i).status_code == 200:
                        acked.append(i)
            except httpx.HTTPError:
                return  # the server died under us: that is the point

        thread = threading.Thread(target=pusher)
        thread.start()
        wait_until(lambda: len(acked) >= 20)
        proc.send_signal(signal.SIGKILL)
        thread.join(30)
        proc.wait(30)
    assert acked == list(range(len(acked)))
    with _restarted(tmp_path / "data") as server:
        client = server.client
        step = client.get("/v1/streams/s").json()["step"]
        assert step in (len(acked), len(acked) + 1)  # the batch in flight may have been committed
        _assert_same_models(client, "s", _reference(data[:step]))
        resumed = [push(client, "s", data[i], seq=i).json() for i in range(len(acked), len(data))]
        assert [r["duplicate"] for r in resumed] == [i < step for i in range(len(acked), len(data))]
        _assert_same_models(client, "s", _reference(data))


def test_sigkill_with_streams_committing_together_loses_nothing(tmp_path: Path) -> None:
    # Four streams push at once, so their batches share group commits and their snapshots
    # (every 7 batches, in the snapshot file) interleave with other streams' commits.
    names, data, log = ["a", "b", "c", "d"], _batches(40), tmp_path / "server.log"
    acked: dict[str, list[int]] = {name: [] for name in names}
    with server_process(tmp_path / "data", log, SNAPSHOT_EVERY) as (proc, client):
        for name in names:
            client.post("/v1/streams", json={"name": name, **CONFIG})

        def pusher(name: str) -> None:
            with httpx.Client(base_url=client.base_url, timeout=30) as own:
                try:
                    for i, x in enumerate(data):
                        if push(own, name, x, seq=i).status_code == 200:
                            acked[name].append(i)
                except httpx.HTTPError:
                    return  # the server died under us: that is the point

        threads = [threading.Thread(target=pusher, args=(name,)) for name in names]
        for thread in threads:
            thread.start()
        wait_until(lambda: min(len(a) for a in acked.values()) >= 10, timeout=60)
        proc.send_signal(signal.SIGKILL)
        for thread in threads:
            thread.join(30)
        proc.wait(30)
    with _restarted(tmp_path / "data") as server:
        for name in names:
            assert acked[name] == list(range(len(acked[name])))
            step = server.client.get(f"/v1/streams/{name}").json()["step"]
            assert step in (len(acked[name]), len(acked[name]) + 1)
            _assert_same_models(server.client, name, _reference(data[:step]))


def test_failed_commit_leaves_stream_as_on_disk(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _batches(4)
    server.client.post("/v1/streams", json={"name": "s", **CONFIG})
    for i in range(2):
        push(server.client, "s", data[i], seq=i)
    before = [server.client.get(path).json() for path in PATHS]
    store = server.registry.store
    real_append = store.log_batch

    def failing_append(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(store, "log_batch", real_append)  # fail once: a full disk
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "log_batch", failing_append)
    response = push(server.client, "s", data[2], seq=2)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "error": "storage_error",
        "message": "could not store the batch (database or disk is full); nothing was applied, "
        "retry later",
        "details": None,
    }
    assert [server.client.get(path).json() for path in PATHS] == before
    for i in (2, 3):
        assert push(server.client, "s", data[i], seq=i).json()["step"] == i + 1
    _assert_same_models(server.client, "s", _reference(data))


def test_unexpected_error_answers_500_and_changes_nothing(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _batches(2)
    server.client.post("/v1/streams", json={"name": "s", **CONFIG})
    push(server.client, "s", data[0], seq=0)
    before = [server.client.get(path).json() for path in PATHS]
    store = server.registry.store
    real_append = store.log_batch

    def broken_append(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(store, "log_batch", real_append)
        raise RuntimeError("a bug")

    monkeypatch.setattr(store, "log_batch", broken_append)
    response = push(server.client, "s", data[1], seq=1)
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal",
        "message": "internal server error; see the server log",
        "details": None,
    }
    assert [server.client.get(path).json() for path in PATHS] == before
    assert push(server.client, "s", data[1], seq=1).json()["step"] == 2
    _assert_same_models(server.client, "s", _reference(data))
