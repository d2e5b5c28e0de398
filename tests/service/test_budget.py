"""The memory budget: streams and batches that would not fit are refused before allocating."""

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from service.budget import MB, Budget, bank_bytes, batch_bytes
from service.errors import ApiError
from service.settings import Settings, default_memory_budget_mb
from streaming import rules
from streaming.learner import Learner
from streaming.spec import StreamSpec
from tests.service.helpers import Server, batch, push

Make = Callable[..., AbstractContextManager[Server]]


def test_budget_uses_the_cores_own_figures() -> None:
    # the memory budget reserves what the learner says it holds and what a step says it needs
    for spec in (
        StreamSpec(latent_dims=(2, 4, 6), estimator="mc", mc_samples=100, optimizer="adam"),
        StreamSpec(latent_dims=(8, 16, 32, 64)),
    ):
        assert bank_bytes(spec, 784) == Learner(784, spec.replace(device="cpu")).resident_bytes()
        assert batch_bytes(spec, 784, 50) == rules.step_bytes(spec, 784, 50)
    p = 3 * (2 * 10 * 6 + 10 + 2 * 6 + 1)  # Adam: parameters, gradients, two moments
    assert bank_bytes(StreamSpec(latent_dims=(2, 4, 6), optimizer="adam"), 10) >= 16 * p


def test_default_budget_is_half_the_machine() -> None:
    assert Settings().memory_budget_mb == default_memory_budget_mb() >= 64


def test_batch_that_fits_only_later_is_rate_limited() -> None:
    budget = Budget(limit_mb=10)
    budget.admit_batch("s", bank=0, batch=6 * MB)
    with pytest.raises(ApiError) as raised:
        budget.admit_batch("t", bank=0, batch=6 * MB)
    assert (raised.value.status, raised.value.code) == (429, "rate_limited")
    assert raised.value.headers == {"Retry-After": "1"}
    budget.transient -= 6 * MB  # the first one is done
    budget.admit_batch("t", bank=0, batch=6 * MB)


def test_create_over_budget_refused_and_changes_nothing(make_server: Make) -> None:
    with make_server(memory_budget_mb=64) as server:
        spec = {
            "name": "big",
            "dim": 1000,
            "latent_dims": [100, 200, 400, 800],
            "optimizer": "adam",
        }
        response = server.client.post("/v1/streams", json=spec)
        need = bank_bytes(StreamSpec(latent_dims=(100, 200, 400, 800), optimizer="adam"), 1000)
        assert response.status_code == 422
        assert response.json() == {
            "error": "limit_exceeded",
            "message": f"stream 'big' needs about {need / MB:.1f} MB for its learner's state; "
            "0.0 MB is held by stream learners and 0.0 MB by batches "
            "in progress, of the memory budget 64.0 MB (DIMWATCH_MEMORY_BUDGET_MB); use fewer "
            "or smaller latent sizes, or delete streams",
            "details": None,
        }
        assert server.client.get("/v1/streams").json()["count"] == 0
        assert server.registry.budget.resident == 0


def test_mc_batch_over_budget_refused_before_allocating(make_server: Make) -> None:
    with make_server(memory_budget_mb=64) as server:
        client = server.client
        spec = {"name": "mc", "estimator": "mc", "mc_samples": 1000, "optimizer": "adam"}
        assert client.post("/v1/streams", json=spec).status_code == 201
        assert push(client, "mc", batch(rows=10, dim=8), seq=0).status_code == 200
        response = push(client, "mc", batch(rows=2000, dim=8), seq=1)  # eps: 1000 x 3 x 2000 x 6
        assert response.status_code == 413
        body = response.json()
        assert body["error"] == "limit_exceeded"
        assert body["message"].startswith("this batch of stream 'mc' needs about ")
        assert body["message"].endswith("(DIMWATCH_MEMORY_BUDGET_MB); send fewer rows")
        assert client.get("/v1/streams/mc").json()["step"] == 1
        assert server.registry.budget.transient == 0


def test_bank_reserved_by_first_batch_and_released_by_delete(make_server: Make) -> None:
    with make_server() as server:
        client = server.client
        client.post("/v1/streams", json={"name": "s"})
        assert server.registry.budget.resident == 0
        assert push(client, "s", batch(rows=4, dim=8, seed=0)).status_code == 200
        expected = bank_bytes(StreamSpec(), 8)
        assert server.registry.budget.resident == expected
        metrics = client.get("/metrics").text
        assert f'dimwatch_memory_reserved_bytes{{kind="resident"}} {float(expected)}' in metrics
        assert push(client, "s", batch(rows=4, dim=9)).status_code == 422  # wrong columns
        assert server.registry.budget.resident == expected
        assert (server.registry.budget.transient, client.delete("/v1/streams/s").status_code) == (
            0,
            204,
        )
        assert server.registry.budget.resident == 0


def test_failed_first_batch_releases_the_bank(make_server: Make) -> None:
    with make_server() as server:
        server.client.post("/v1/streams", json={"name": "s", "latent_dims": [2, 4]})
        assert push(server.client, "s", batch(rows=4, dim=3)).status_code == 422  # H=4 >= D
        assert server.registry.budget.resident == 0
