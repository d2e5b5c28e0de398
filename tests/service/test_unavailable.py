"""Streams that cannot be restored or reloaded: served as unavailable, the others serve.

Each test stores streams with a real server, damages one in the SQLite file (or makes the store
fail under a live server), then checks what every route, /readyz and /metrics say.
"""

import io
import json
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from service.store import FILENAME, SNAPSHOTS, Store
from tests.service.helpers import Server, batch, push

Make = Callable[..., AbstractContextManager[Server]]
DIM = 8


def _fill(make_server: Make, names: tuple[str, ...], batches: int, **config: Any) -> None:
    """Streams `names`, `batches` batches each, snapshot every 3 (so some are logged after it)."""
    with make_server(snapshot_every=3) as server:
        for name in names:
            assert server.client.post("/v1/streams", json={"name": name, **config}).is_success
            for i in range(batches):
                assert push(server.client, name, batch(rows=5, dim=DIM, seed=i), seq=i).is_success


def _sql(tmp_path: Path, statement: str, *args: Any, file: str = FILENAME) -> None:
    with sqlite3.connect(tmp_path / "data" / file) as db:
        assert db.execute(statement, args).rowcount == 1


def _set_snapshot(tmp_path: Path, name: str, state: bytes) -> None:
    sql = "UPDATE snapshots SET state = ? WHERE stream = ?"
    _sql(tmp_path, sql, state, name, file=SNAPSHOTS)


def _snapshot_state(tmp_path: Path, name: str) -> dict[str, Any]:
    with sqlite3.connect(tmp_path / "data" / SNAPSHOTS) as db:
        (blob,) = db.execute("SELECT state FROM snapshots WHERE stream = ?", (name,)).fetchone()
    state: dict[str, Any] = torch.load(io.BytesIO(blob), weights_only=True)
    return state


def _saved(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _unavailable_body(name: str, reason: str) -> dict[str, Any]:
    return {
        "error": "stream_unavailable",
        "message": f"stream {name!r} is unavailable: {reason}; delete it (DELETE "
        f"/v1/streams/{name}) or restore its data and restart the server",
        "details": {"reason": reason},
    }


def _reason(client: httpx.Client, name: str) -> str:
    listed = {s["name"]: s for s in client.get("/v1/streams").json()["data"]}
    assert listed[name]["available"] is False
    reason: str = listed[name]["unavailable_reason"]
    return reason


def test_corrupt_snapshot_leaves_other_streams_serving(tmp_path: Path, make_server: Make) -> None:
    _fill(make_server, ("bad", "good"), batches=4)
    _set_snapshot(tmp_path, "bad", b"\x00")
    with make_server(snapshot_every=3) as server:
        client = server.client
        assert client.get("/readyz").json() == {
            "status": "ready",
            "streams": 2,
            "unavailable": 1,
        }
        assert push(client, "good", batch(rows=5, dim=DIM, seed=4), seq=4).json()["step"] == 5
        reason = _reason(client, "bad")
        assert reason.startswith("could not restore it (")
        listed = client.get("/v1/streams").json()["data"]
        assert [(s["name"], s["available"], s["step"]) for s in listed] == [
            ("bad", False, 4),
            ("good", True, 5),
        ]
        for path in ("", "/selection", "/collapse", "/history", "/models/best"):
            response = client.get(f"/v1/streams/bad{path}")
            assert (response.status_code, response.json()) == (
                409,
                _unavailable_body("bad", reason),
            )
        assert push(client, "bad", batch(rows=5, dim=DIM), seq=4).status_code == 409
        assert "dimwatch_streams_unavailable 1.0" in client.get("/metrics").text
        assert client.post("/v1/streams", json={"name": "bad"}).json()["error"] == "stream_exists"
        assert client.delete("/v1/streams/bad").status_code == 204
        assert client.get("/v1/streams/bad").status_code == 404
        assert client.get("/readyz").json()["unavailable"] == 0
        assert "dimwatch_streams_unavailable 0.0" in client.get("/metrics").text
        assert client.post("/v1/streams", json={"name": "bad"}).status_code == 201
    with make_server(snapshot_every=3) as server:
        assert server.client.get("/readyz").json()["unavailable"] == 0
        assert server.client.get("/v1/streams/bad").json()["step"] == 0


def test_unknown_state_version_is_unavailable_with_cause(tmp_path: Path, make_server: Make) -> None:
    _fill(make_server, ("s",), batches=3, adaptive=False)
    state = _snapshot_state(tmp_path, "s")
    state["version"] = 999
    _set_snapshot(tmp_path, "s", _saved(state))
    with make_server(snapshot_every=3) as server:
        assert "expected version" in _reason(server.client, "s")
        assert "got 999" in _reason(server.client, "s")


def test_device_missing_here_is_unavailable(tmp_path: Path, make_server: Make) -> None:
    _fill(make_server, ("s", "t"), batches=2)
    _sql(
        tmp_path,
        "UPDATE streams SET config = json_set(config, '$.device', 'cuda:99') WHERE name = 's'",
    )
    with make_server(snapshot_every=3) as server:
        assert "cuda" in _reason(server.client, "s")
        assert server.client.get("/v1/streams/t").json()["step"] == 2


def test_row_of_another_schema_is_unavailable(tmp_path: Path, make_server: Make) -> None:
    _fill(make_server, ("s",), batches=2)
    sql = "UPDATE streams SET config = json_remove(config, '$.latent_dims') WHERE name = 's'"
    _sql(tmp_path, sql)
    with make_server(snapshot_every=3) as server:
        reason = "could not restore it (stored setting 'latent_dims' missing)"
        assert _reason(server.client, "s") == reason
        assert server.client.get("/v1/streams/s").json() == _unavailable_body("s", reason)


def test_replay_failing_part_way_is_unavailable_not_empty(
    tmp_path: Path, make_server: Make
) -> None:
    _fill(make_server, ("s",), batches=5)  # snapshotted at 5 on shutdown
    sql = "INSERT INTO batches (stream, step, rows, data) VALUES ('s', ?, 5, ?)"
    _sql(tmp_path, sql, 6, batch(rows=5, dim=DIM, seed=5).tobytes())
    _sql(tmp_path, sql, 7, bytes(4))  # a corrupt row (one value) after a good one
    with make_server(snapshot_every=3) as server:
        assert "reshape" in _reason(server.client, "s")
        listed = server.client.get("/v1/streams").json()["data"]
        assert [(s["name"], s["step"]) for s in listed] == [("s", 7)]


def test_snapshot_with_foreign_device_rng_state_restores(tmp_path: Path, make_server: Make) -> None:
    _fill(make_server, ("s",), batches=3, estimator="mc", mc_samples=3, optimizer="adam")
    state = _snapshot_state(tmp_path, "s")
    state["rule"]["rng"] = torch.arange(16, dtype=torch.uint8)  # a CUDA generator's state
    _set_snapshot(tmp_path, "s", _saved(state))
    with make_server(snapshot_every=3) as server:
        assert server.client.get("/readyz").json()["unavailable"] == 0
        assert push(server.client, "s", batch(rows=5, dim=DIM, seed=3), seq=3).json()["step"] == 4


# ------------------------------------------------------------------ failures under a live server


def _fail(store: Store, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    def failing(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, method, failing)


def test_failed_commit_and_failed_reload_keep_no_trained_ahead_state(
    tmp_path: Path, make_server: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_server() as server:
        client = server.client
        client.post("/v1/streams", json={"name": "s"})
        client.post("/v1/streams", json={"name": "other"})
        for i in range(2):
            push(client, "s", batch(rows=5, dim=DIM, seed=i), seq=i)
        durable = client.get("/v1/streams/s/models/2").json()
        _fail(server.registry.store, monkeypatch, "log_batch")
        _fail(server.registry.store, monkeypatch, "load_stream")
        response = push(client, "s", batch(rows=5, dim=DIM, seed=2), seq=2)
        assert (response.status_code, response.json()["error"]) == (503, "storage_error")
        reason = _reason(client, "s")
        assert reason == (
            "could not store step 3 (disk I/O error), then could not reload it from the store "
            "(disk I/O error)"
        )
        response = client.get("/v1/streams/s/models/2")
        assert (response.status_code, response.json()) == (409, _unavailable_body("s", reason))
        assert client.get("/readyz").json()["unavailable"] == 1
        assert client.get("/v1/streams/other").status_code == 200
        monkeypatch.undo()
    with make_server() as server:
        assert server.client.get("/v1/streams/s/models/2").json() == durable


def test_failed_commit_then_reload_failing_part_way_is_unavailable(
    make_server: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_server() as server:
        client = server.client
        client.post("/v1/streams", json={"name": "s"})
        for i in range(2):
            push(client, "s", batch(rows=5, dim=DIM, seed=i), seq=i)
        store = server.registry.store
        real_load = store.load_stream

        def truncated(name: str) -> Any:
            stored = real_load(name)
            assert stored is not None
            step, data = stored.batches[-1]
            stored.batches[-1] = (step, data[:-4])  # the last logged batch lost a value
            return stored

        _fail(store, monkeypatch, "log_batch")
        monkeypatch.setattr(store, "load_stream", truncated)
        assert push(client, "s", batch(rows=5, dim=DIM, seed=2), seq=2).status_code == 503
        assert "then could not reload it from the store" in _reason(client, "s")
        listed = json.loads(client.get("/v1/streams").text)["data"]
        assert [(s["name"], s["step"]) for s in listed] == [("s", 2)]
