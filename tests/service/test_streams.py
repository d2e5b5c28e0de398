"""Streams: create, list, read, delete; names, settings and limits."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, cast

import httpx
import torch

from service.live import LiveStream
from tests.service.helpers import Server, batch, push

DEFAULTS = {
    "latent_dims": [2, 4, 6],
    "learning_rate": 0.002,
    "estimator": "analytic",
    "mc_samples": 100,
    "bic_n": 10,
    "collapse_threshold": 1.0,
    "seed": 0,
    "optimizer": "subspace",
    "switch_margin": 5.0,
    "standardize": False,
    "adaptive": True,
    "boost_learning_rate": 0.05,
}


def test_create_stream_returns_defaults(client: httpx.Client) -> None:
    response = client.post("/v1/streams", json={"name": "sensors"})
    assert response.status_code == 201
    body = response.json()
    created_at = body.pop("created_at")
    assert created_at.endswith("Z")
    assert body == {
        "name": "sensors",
        **DEFAULTS,
        "dim": None,
        "device": "cpu",
        "step": 0,
        "rows_seen": 0,
        "best_latent_dim": None,
        "converged": False,
        "available": True,
        "unavailable_reason": None,
    }


def test_create_stream_keeps_given_settings(client: httpx.Client) -> None:
    settings = {
        "latent_dims": [1, 3],
        "learning_rate": 0.01,
        "estimator": "mc",
        "mc_samples": 7,
        "bic_n": 20,
        "collapse_threshold": 0.5,
        "seed": 3,
        "dim": 5,
        "device": "cpu",
        "optimizer": "sgd",
    }
    body = client.post("/v1/streams", json={"name": "s.1-a_b", **settings}).json()
    assert {k: body[k] for k in settings} == settings


def test_create_stream_existing_name_conflicts(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "a"})
    response = client.post("/v1/streams", json={"name": "a", "seed": 1})
    assert response.status_code == 409
    assert response.json() == {
        "error": "stream_exists",
        "message": "stream 'a' already exists; pick another name",
        "details": None,
    }


def test_create_stream_bad_names_rejected(client: httpx.Client) -> None:
    for name in ["", "-a", "a b", "a/b", "x" * 65, "é"]:
        response = client.post("/v1/streams", json={"name": name})
        assert response.status_code == 422, name
        assert response.json()["error"] == "invalid_request"
    assert client.get("/v1/streams").json() == {"data": [], "count": 0, "next": None}


def test_create_stream_name_with_a_space_is_explained_in_words(client: httpx.Client) -> None:
    response = client.post("/v1/streams", json={"name": "my stream"})

    assert response.status_code == 422
    assert response.json()["message"] == (
        "body.name: expected a stream name of 1-64 letters, digits, '.', '_' or '-', starting "
        'with a letter or digit, got "my stream"'
    )


def test_create_stream_invalid_config_rejected(client: httpx.Client) -> None:
    cases = {
        "latent_dims: expected distinct sizes, got [2, 2]": {"latent_dims": [2, 2]},
        "latent_dims: expected every H < D = 4, got [4, 6] >= 4; use latent_dims below 4 "
        "(e.g. [1, 2, 3]) or rows of more than 6 columns": {"dim": 4},
    }
    for message, config in cases.items():
        response = client.post("/v1/streams", json={"name": "a", **cast(dict[str, Any], config)})
        assert response.status_code == 422
        assert response.json() == {"error": "invalid_config", "message": message, "details": None}
    assert client.get("/v1/streams").json()["count"] == 0


def test_create_stream_invalid_fields_rejected(client: httpx.Client) -> None:
    for config in [
        {"learning_rate": 0},
        {"learning_rate": "fast"},
        {"estimator": "exact"},
        {"mc_samples": 0},
        {"bic_n": 0},
        {"seed": -1},
        {"dim": 1},
        {"unknown": 1},
        {"latent_dims": []},
        {"latent_dims": [0, 2]},
        {"device": "tpu"},
    ]:
        response = client.post("/v1/streams", json={"name": "a", **cast(dict[str, Any], config)})
        assert response.status_code == 422, config
        assert response.json()["error"] == "invalid_request", config


def test_create_stream_unavailable_device_rejected(client: httpx.Client) -> None:
    response = client.post("/v1/streams", json={"name": "a", "device": "cuda"})
    if torch.cuda.is_available():  # the GPU machine: the device is there
        assert response.status_code == 201
    else:
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_config"


def test_list_streams_sorted_by_name(client: httpx.Client) -> None:
    for name in ["b", "a", "c"]:
        client.post("/v1/streams", json={"name": name})
    body = client.get("/v1/streams").json()
    assert [s["name"] for s in body["data"]] == ["a", "b", "c"]
    assert body["count"] == 3


def test_list_streams_pages_by_name(client: httpx.Client) -> None:
    for name in ["e", "b", "a", "d", "c"]:
        client.post("/v1/streams", json={"name": name})
    pages, after = [], None
    while True:
        params = {"limit": 2} if after is None else {"limit": 2, "after": after}
        body = client.get("/v1/streams", params=params).json()
        pages.append(([s["name"] for s in body["data"]], body["count"], body["next"]))
        if (after := body["next"]) is None:
            break
    assert pages == [(["a", "b"], 2, "b"), (["c", "d"], 2, "d"), (["e"], 1, None)]
    assert client.get("/v1/streams", params={"after": "bb"}).json()["count"] == 3


def test_list_streams_limit_out_of_range_is_422(client: httpx.Client) -> None:
    response = client.get("/v1/streams", params={"limit": 10_001})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_get_stream_reports_progress(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "a"})
    for seq in range(3):
        push(client, "a", batch(rows=5, seed=seq), seq)
    body = client.get("/v1/streams/a").json()
    assert (body["dim"], body["step"], body["rows_seen"]) == (8, 3, 15)
    assert body["best_latent_dim"] in (2, 4, 6)


def test_get_stream_says_whether_the_selection_converged(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "a"})
    before = client.get("/v1/streams/a").json()["converged"]
    push(client, "a", batch(rows=5), 0)

    body = client.get("/v1/streams/a").json()
    selection = client.get("/v1/streams/a/selection").json()
    assert (before, body["converged"]) == (False, selection["converged"])


def test_get_stream_unknown_is_404(client: httpx.Client) -> None:
    response = client.get("/v1/streams/nope")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": "stream 'nope' not found",
        "details": None,
    }


def test_delete_stream_removes_it(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "a"})
    push(client, "a", batch(), 0)
    assert client.delete("/v1/streams/a").status_code == 204
    assert client.get("/v1/streams/a").status_code == 404
    assert push(client, "a", batch(), 1).status_code == 404
    assert client.delete("/v1/streams/a").status_code == 404


def test_delete_stream_name_reusable_from_scratch(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "a"})
    push(client, "a", batch(), 0)
    client.delete("/v1/streams/a")
    assert client.post("/v1/streams", json={"name": "a"}).status_code == 201
    assert push(client, "a", batch(), 0).json()["step"] == 1


def test_create_stream_over_max_streams_rejected(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(max_streams=2) as server:
        c = server.client
        assert c.post("/v1/streams", json={"name": "a"}).status_code == 201
        assert c.post("/v1/streams", json={"name": "b"}).status_code == 201
        response = c.post("/v1/streams", json={"name": "c"})
        assert response.status_code == 422
        assert response.json() == {
            "error": "limit_exceeded",
            "message": "2 streams exist; the limit max_streams is 2",
            "details": None,
        }


def test_create_stream_over_latent_limits_rejected(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(max_latent_dims=2, max_dim=10, max_mc_samples=50) as server:
        c = server.client
        cases = {
            "3 latent sizes given; the limit max_latent_dims is 2": {"latent_dims": [1, 2, 3]},
            "latent size 10 needs D > 10; the limit max_dim is 10": {"latent_dims": [1, 10]},
            "dim is 11; the limit max_dim is 10": {"latent_dims": [1], "dim": 11},
            "mc_samples is 51; the limit max_mc_samples is 50": {
                "latent_dims": [1],
                "mc_samples": 51,
            },
        }
        for message, config in cases.items():
            response = c.post("/v1/streams", json={"name": "a", **cast(dict[str, Any], config)})
            assert response.status_code == 422
            assert response.json() == {
                "error": "limit_exceeded",
                "message": message,
                "details": None,
            }


def test_stream_stored_before_spec_versions_is_migrated(tmp_path: Path) -> None:
    # A record of the first releases (no spec_version, no adaptive/standardize/switch_margin,
    # optimizer "natural") keeps a constant rate, no hysteresis, and trains with subspace.
    new = ("adaptive", "boost_learning_rate", "standardize", "switch_margin")
    old = {k: v for k, v in DEFAULTS.items() if k not in new} | {"optimizer": "natural"}
    live = LiveStream("old", {**old, "device": "cpu"}, 10, "2026-11-25T00:00:00Z", "cpu", 10)
    assert (live.spec.adaptive, live.spec.switch_margin, live.spec.optimizer) == (
        False,
        0.0,
        "subspace",
    )
    assert live.record == {**DEFAULTS, "adaptive": False, "switch_margin": 0.0, "device": "cpu",
                           "spec_version": 2}  # fmt: skip
