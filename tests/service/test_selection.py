"""Selection, collapse, history, model parameters, transform and reconstruct."""

from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import numpy as np

from tests.service.helpers import Server, batch, push


def _trained(client: httpx.Client, steps: int = 3) -> np.ndarray:
    client.post("/v1/streams", json={"name": "s"})
    for i in range(steps):
        push(client, "s", batch(seed=i), seq=i)
    return batch(rows=3, seed=99)


def test_selection_before_first_batch_is_empty(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s"})
    response = client.get("/v1/streams/s/selection")
    assert response.json() == {
        "step": 0,
        "rows_seen": 0,
        "best_latent_dim": None,
        "converged": False,
        "margin": None,
        "path": [],
        "training": None,
        "models": [],
        "effective_rank": None,
    }


def test_selection_matches_last_batch_answer(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s"})
    last = [push(client, "s", batch(seed=i), seq=i).json() for i in range(2)][-1]
    selection = client.get("/v1/streams/s/selection").json()
    assert selection == last["selection"]
    assert sorted(selection["models"][0]) == [
        "active_latents",
        "batch_bic",
        "batch_elbo",
        "bic",
        "converged",
        "effective_rank",
        "entropy_elbo",
        "latent_dim",
        "sigma2",
        "variance_share",
    ]
    assert (
        selection["best_latent_dim"]
        == min(selection["models"], key=lambda m: m["bic"])["latent_dim"]
    )


def test_collapse_reports_every_latent(client: httpx.Client) -> None:
    _trained(client)
    body = client.get("/v1/streams/s/collapse").json()
    assert (body["step"], body["threshold"]) == (3, 1.0)
    for model, h in zip(body["models"], (2, 4, 6), strict=True):
        assert model["latent_dim"] == h
        assert len(model["encoder_entropies"]) == len(model["collapsed"]) == len(model["tau2"]) == h
        assert model["collapsed"] == [e > 1.0 for e in model["encoder_entropies"]]
        assert model["active_latents"] == h - sum(model["collapsed"])


def test_history_pages_with_after_and_limit(client: httpx.Client) -> None:
    _trained(client, steps=5)
    page = client.get("/v1/streams/s/history", params={"after": 1, "limit": 2}).json()
    assert [p["step"] for p in page["data"]] == [2, 3]
    assert (page["count"], page["capacity"]) == (2, 10_000)
    assert [m["latent_dim"] for m in page["data"][0]["models"]] == [2, 4, 6]
    assert client.get("/v1/streams/s/history", params={"after": 5}).json()["data"] == []


def test_history_limit_over_max_rejected(client: httpx.Client) -> None:
    _trained(client, steps=1)
    response = client.get("/v1/streams/s/history", params={"limit": 10_001})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_history_thinned_at_capacity(
    make_server: Callable[..., AbstractContextManager[Server]],
) -> None:
    with make_server(history_limit=4) as server:
        _trained(server.client, steps=11)
        body = server.client.get("/v1/streams/s/history").json()
    assert [p["step"] for p in body["data"]] == [4, 8]
    assert body["capacity"] == 4


def test_models_best_and_named(client: httpx.Client) -> None:
    _trained(client)
    best = client.get("/v1/streams/s/selection").json()["best_latent_dim"]
    body = client.get("/v1/streams/s/models/best").json()
    assert body == client.get(f"/v1/streams/s/models/{best}").json()
    four = client.get("/v1/streams/s/models/4").json()
    assert (four["step"], four["latent_dim"], four["dim"]) == (3, 4, 8)
    assert np.shape(four["W"]) == (8, 4)
    assert np.shape(four["V"]) == (4, 8)
    assert (len(four["mu"]), len(four["b"]), len(four["tau2"])) == (8, 4, 4)


def test_models_unknown_latent_is_404(client: httpx.Client) -> None:
    _trained(client)
    for which in ("3", "x", "-2", "٣"):
        response = client.get(f"/v1/streams/s/models/{which}")
        assert response.status_code == 404, which
        assert response.json() == {
            "error": "not_found",
            "message": f"model {which!r} (latent_dims are [2, 4, 6], or best) not found",
            "details": None,
        }


def test_models_before_first_batch_conflict(client: httpx.Client) -> None:
    client.post("/v1/streams", json={"name": "s"})
    for response in (
        client.get("/v1/streams/s/models/best"),
        client.post("/v1/streams/s/transform", json={"data": [[0.0] * 8]}),
        client.post("/v1/streams/s/reconstruct", json={"data": [[0.0] * 8]}),
    ):
        assert response.status_code == 409
        assert response.json() == {
            "error": "no_data_yet",
            "message": "stream 's' has no batch yet; push one first",
            "details": None,
        }


def test_transform_gives_posterior_means(client: httpx.Client) -> None:
    x = _trained(client)
    params = client.get("/v1/streams/s/models/4").json()
    body = client.post("/v1/streams/s/transform", json={"data": x.tolist(), "latent_dim": 4}).json()
    expected = x.astype(np.float64) @ np.array(params["V"]).T + np.array(params["b"])
    assert body["latent_dim"] == 4
    np.testing.assert_allclose(body["data"], expected, rtol=1e-5, atol=1e-5)


def test_reconstruct_decodes_posterior_means(client: httpx.Client) -> None:
    x = _trained(client)
    best = client.get("/v1/streams/s/models/best").json()
    body = client.post("/v1/streams/s/reconstruct", json={"data": x.tolist()}).json()
    z = x.astype(np.float64) @ np.array(best["V"]).T + np.array(best["b"])
    expected = z @ np.array(best["W"]).T + np.array(best["mu"])
    assert body["latent_dim"] == best["latent_dim"]
    np.testing.assert_allclose(body["data"], expected, rtol=1e-5, atol=1e-5)


def test_transform_bad_input_rejected(client: httpx.Client) -> None:
    _trained(client)
    cases = {
        "expected 8 columns, got 3": ({"data": [[1.0, 2.0, 3.0]]}, "invalid_batch"),
        "body.data: List should have at least 1 item after validation, not 0": (
            {"data": []},
            "invalid_request",
        ),
        "latent_dim: expected one of [2, 4, 6] or null, got 3": (
            {"data": [[0.0] * 8], "latent_dim": 3},
            "invalid_request",
        ),
    }
    for message, (body, code) in cases.items():
        response = client.post("/v1/streams/s/transform", json=body)
        assert response.status_code == 422
        assert (response.json()["error"], response.json()["message"]) == (code, message)
