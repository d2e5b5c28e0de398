"""Property-based tests of the batch and stream endpoints: no input produces a 5xx, and an
input that is rejected changes nothing (hypothesis; one server per test, modest examples)."""

import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.settings import Settings
from tests.service.helpers import serve

EXAMPLES = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
numbers = st.floats(width=32) | st.integers(-(10**40), 10**40) | st.floats(allow_nan=True)
rows = st.integers(0, 4).flatmap(
    lambda d: st.lists(st.lists(numbers, min_size=d, max_size=d), max_size=4)
)
json_batches = st.fixed_dictionaries(
    {"data": rows | st.lists(st.lists(numbers, max_size=5), max_size=3) | json_values},
    optional={"seq": st.integers(-2, 6) | json_values, "extra": json_values},
)


def _state(client: httpx.Client, name: str) -> dict[str, Any]:
    stream = client.get(f"/v1/streams/{name}").json()
    selection = client.get(f"/v1/streams/{name}/selection").json()
    history = client.get(f"/v1/streams/{name}/history").json()
    return {"stream": stream, "selection": selection, "history": history}


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


ODD_ARRAYS: list[np.ndarray] = [
    np.zeros((2, 5), np.int8),
    np.ones((1, 5), np.float16),
    np.zeros((2, 2, 5)),
    np.array([[1 + 2j, 0, 0]]),
]
binary_bodies = st.one_of(
    st.binary(max_size=200),
    st.integers(1, 5).flatmap(
        lambda d: st.lists(st.floats(width=32), min_size=0, max_size=3 * d).map(
            lambda v: np.asarray(v, dtype="<f4").tobytes()
        )
    ),
)
npy_bodies = st.one_of(
    st.binary(max_size=100),
    st.lists(st.lists(st.floats(), min_size=3, max_size=3), max_size=3).map(
        lambda r: _npy(np.asarray(r))
    ),
    st.sampled_from(ODD_ARRAYS).map(_npy),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "X-Dim": st.sampled_from(["0", "3", "5", "x", "", "5.0", "99999999999999999999"]),
        "X-Seq": st.sampled_from(["0", "1", "-1", "a", "7"]),
    },
)


def test_batch_endpoint_never_5xx_and_rejections_change_nothing(tmp_path: Path) -> None:
    with serve(Settings(data_dir=tmp_path / "data", max_rows_per_batch=3)) as server:
        client = server.client
        client.post("/v1/streams", json={"name": "s", "latent_dims": [1, 2]})

        @EXAMPLES
        @given(
            body=st.one_of(
                json_batches.map(lambda b: ("application/json", json.dumps(b).encode())),
                st.tuples(st.just("application/octet-stream"), binary_bodies),
                st.tuples(st.just("application/x-npy"), npy_bodies),
                st.tuples(
                    st.sampled_from(["text/plain", "", "application/json"]), st.binary(max_size=50)
                ),
            ),
            extra_headers=headers,
        )
        def check(body: tuple[str, bytes], extra_headers: dict[str, str]) -> None:
            content_type, content = body
            before = _state(client, "s")
            response = client.post(
                "/v1/streams/s/batches",
                content=content,
                headers={"Content-Type": content_type, **extra_headers},
            )
            assert response.status_code < 500, response.text
            if response.status_code != 200 or response.json()["duplicate"]:
                assert _state(client, "s") == before
                if response.status_code != 200:
                    assert sorted(response.json()) == ["details", "error", "message"]
            else:
                assert _state(client, "s")["stream"]["step"] == before["stream"]["step"] + 1

        check()


stream_fields = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["a", "b", "ok-1", "", "a b", "x" * 70]) | json_values,
        "latent_dims": st.lists(st.integers(-2, 30), max_size=4) | json_values,
        "learning_rate": st.floats() | json_values,
        "estimator": st.sampled_from(["analytic", "mc", "exact"]),
        "mc_samples": st.integers(-1, 5000),
        "bic_n": st.integers(-1, 20),
        "collapse_threshold": st.floats(),
        "seed": st.integers(-1, 2**64),
        "dim": st.none() | st.integers(-1, 2000),
        "device": st.sampled_from(["auto", "cpu", "cuda", "cuda:7", "gpu", ""]),
        "optimizer": st.sampled_from(["adam", "sgd", "lbfgs"]),
        "other": json_values,
    },
)


def test_stream_endpoint_never_5xx_and_rejections_change_nothing(tmp_path: Path) -> None:
    with serve(Settings(data_dir=tmp_path / "data", max_streams=3, max_dim=100)) as server:
        client = server.client

        @EXAMPLES
        @given(fields=stream_fields | json_values)
        def check(fields: Any) -> None:
            before = client.get("/v1/streams").json()
            content = json.dumps(fields).encode()  # NaN/Infinity tokens included
            response = client.post(
                "/v1/streams", content=content, headers={"Content-Type": "application/json"}
            )
            assert response.status_code < 500, response.text
            after = client.get("/v1/streams").json()
            if response.status_code == 201:
                assert after["count"] == before["count"] + 1
                client.delete(f"/v1/streams/{fields['name']}")
            else:
                assert after == before
                assert sorted(response.json()) == ["details", "error", "message"]

        check()
