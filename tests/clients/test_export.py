"""The served model out of the service (ModelParams.to_sklearn / to_onnx / save_npz), against a
real server on a real socket: what the exports compute is what the server computes."""

import io
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline

from clients import DimwatchClient, errors
from clients.params import NPZ_FORMAT, ModelParams
from streaming.data import ppca_data

DIM = 8
MEAN = np.linspace(-3.0, 5.0, DIM)
# Columns in different units: the standardized stream's scaler has something to do.
UNITS = np.array([1.0, 10.0, 0.1, 3.0, 1.0, 50.0, 2.0, 0.5])


def _trained(client: DimwatchClient, name: str, standardize: bool) -> np.ndarray:
    """A stream trained on 3,000 rows of 3-dimensional p-PCA data; new rows of the same law."""
    data = ppca_data(3_200, DIM, 3, noise=0.3, mean=MEAN, seed=4) * UNITS.astype(np.float32)
    client.create_stream(name, latent_dims=[2, 3, 5], standardize=standardize)
    client.stream_array(name, data[:3_000], batch_size=100)
    return data[3_000:]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[DimwatchClient, np.ndarray]]:
    """One real server (uvicorn in a thread on 127.0.0.1) with a raw and a standardized stream."""
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from clients._local_server import local_server

    with (
        TemporaryDirectory() as tmp,
        local_server(Path(tmp)) as url,
        DimwatchClient(url) as client,
    ):
        fresh = _trained(client, "raw", standardize=False)
        _trained(client, "scaled", standardize=True)
        yield client, fresh


def _log_density(params: ModelParams, x: np.ndarray) -> np.ndarray:
    """log N(x; mu, W W^T + sigma2 I), computed directly (docs/math.md, Eq. 26)."""
    c = params.W @ params.W.T + params.sigma2 * np.eye(params.dim)
    r = x - params.mu
    _, logdet = np.linalg.slogdet(c)
    quad = np.einsum("nd,nd->n", r, np.linalg.solve(c, r.T).T)
    out: np.ndarray = -0.5 * (params.dim * np.log(2 * np.pi) + logdet + quad)
    return out


def test_to_sklearn_scores_the_served_ppca_density(
    served: tuple[DimwatchClient, np.ndarray],
) -> None:
    client, fresh = served
    params = client.model("raw", 3)

    pca = params.to_sklearn()

    assert isinstance(pca, PCA)
    assert pca.components_.shape == (3, DIM)
    np.testing.assert_allclose(pca.components_ @ pca.components_.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(pca.score_samples(fresh), _log_density(params, fresh), rtol=1e-10)
    c = params.W @ params.W.T + params.sigma2 * np.eye(DIM)
    np.testing.assert_allclose(pca.get_covariance(), c, rtol=1e-10, atol=1e-12)
    assert pca.noise_variance_ == params.sigma2


def test_to_sklearn_transform_is_the_served_transform(
    served: tuple[DimwatchClient, np.ndarray],
) -> None:
    client, fresh = served
    pca = client.model("raw", 3).to_sklearn()

    served_nu = client.transform("raw", fresh[:50], latent_dim=3).data
    served_x = client.reconstruct("raw", fresh[:50], latent_dim=3).data

    np.testing.assert_allclose(pca.transform(fresh[:50]), served_nu, rtol=1e-4, atol=1e-4)
    reconstructed = pca.inverse_transform(pca.transform(fresh[:50]))
    np.testing.assert_allclose(reconstructed, served_x, rtol=1e-4, atol=1e-3)


def test_to_sklearn_of_a_standardized_stream_is_a_pipeline_with_its_scaler(
    served: tuple[DimwatchClient, np.ndarray],
) -> None:
    client, fresh = served
    params = client.model("scaled", 3)

    pipeline = params.to_sklearn()

    assert isinstance(pipeline, Pipeline)
    assert [name for name, _ in pipeline.steps] == ["scaler", "pca"]
    assert params.standardized and params.scaler_scale is not None
    x = fresh.astype(np.float64)  # StandardScaler keeps float32 input in float32
    z = (x - params.scaler_mean) / params.scaler_scale
    np.testing.assert_allclose(pipeline.score_samples(x), _log_density(params, z), rtol=1e-10)
    served_nu = client.transform("scaled", fresh[:50], latent_dim=3).data
    np.testing.assert_allclose(pipeline.transform(fresh[:50]), served_nu, rtol=1e-4, atol=1e-4)
    served_x = client.reconstruct("scaled", fresh[:50], latent_dim=3).data
    back = pipeline.inverse_transform(pipeline.transform(fresh[:50]))
    np.testing.assert_allclose(back, served_x, rtol=1e-4, atol=1e-3 * float(UNITS.max()))


def test_to_onnx_runs_in_onnxruntime_to_the_served_transform(
    served: tuple[DimwatchClient, np.ndarray],
) -> None:
    import onnxruntime

    client, fresh = served
    for name in ("raw", "scaled"):
        session = onnxruntime.InferenceSession(
            client.model(name, 5).to_onnx(), providers=["CPUExecutionProvider"]
        )

        (nu,) = session.run(["nu"], {"x": fresh[:50]})

        served_nu = client.transform(name, fresh[:50], latent_dim=5).data
        assert nu.shape == (50, 5)
        np.testing.assert_allclose(nu, served_nu, rtol=1e-4, atol=1e-4)


def test_save_npz_round_trips_every_parameter_in_the_documented_layout(
    served: tuple[DimwatchClient, np.ndarray],
) -> None:
    client, _ = served
    params = client.model("scaled", 2)
    buffer = io.BytesIO()

    params.save_npz(buffer)
    buffer.seek(0)
    with np.load(buffer) as npz:
        layout = {key: npz[key].shape for key in npz.files}
        assert str(npz["format"]) == NPZ_FORMAT
    buffer.seek(0)
    back = ModelParams.from_npz(buffer)

    assert layout == {
        "format": (),
        "step": (),
        "latent_dim": (),
        "dim": (),
        "W": (DIM, 2),
        "mu": (DIM,),
        "sigma2": (),
        "V": (2, DIM),
        "b": (2,),
        "tau2": (2,),
        "standardized": (),
        "scaler_mean": (DIM,),
        "scaler_scale": (DIM,),
    }
    for field in ("W", "mu", "V", "b", "tau2", "scaler_mean", "scaler_scale"):
        np.testing.assert_array_equal(getattr(back, field), getattr(params, field))
    assert (back.step, back.latent_dim, back.dim, back.sigma2, back.standardized) == (
        params.step,
        2,
        DIM,
        params.sigma2,
        True,
    )


def test_from_npz_refuses_another_file() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, W=np.zeros((2, 2)))
    buffer.seek(0)

    with pytest.raises(ValueError) as info:
        ModelParams.from_npz(buffer)

    assert str(info.value) == "expected an .npz of format 'dimwatch.model/1', got None"


@pytest.mark.parametrize(("method", "module", "extra"), [("to_sklearn", "sklearn", "sklearn"),
                                                          ("to_onnx", "onnx", "onnx")])  # fmt: skip
def test_a_missing_extra_says_what_to_install(
    method: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = ModelParams.from_json(
        {"step": 1, "latent_dim": 1, "dim": 2, "W": [[1.0], [0.0]], "mu": [0.0, 0.0],
         "sigma2": 0.1, "V": [[1.0, 0.0]], "b": [0.0], "tau2": [0.5]}
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError

    with pytest.raises(errors.MissingExtraError) as info:
        getattr(params, method)()

    assert str(info.value) == (
        f"{module} is not installed: pip install 'dimwatch[{extra}]' (or 'dimwatch[export]')"
    )
