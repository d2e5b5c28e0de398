"""A served model as a fitted scikit-learn estimator and as an ONNX encoder (docs/export.md).

p-PCA as scikit-learn writes it: with components_ = U^T (orthonormal rows), explained_variance_
= l and noise_variance_ = s2, PCA's covariance is U diag(l - s2) U^T + s2 I. The served model's
is W W^T + sigma2 I (docs/math.md, Eq. 26); with the thin SVD W = U S R^T that is the same
matrix for l = S^2 + sigma2, s2 = sigma2. So PCA's own score_samples / score / get_covariance /
get_precision are those of the served model, exactly, whatever rotation R the model holds.
PCA's transform would be U^T (x - mu); the served encoder is V x + b, so `ServedPCA` (a PCA)
overrides transform with it, and inverse_transform with the decoder mean W z + mu.

scikit-learn and onnx are imported here only, on first use: the client needs neither.
"""

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from clients.errors import MissingExtraError

if TYPE_CHECKING:
    from clients.params import ModelParams

ONNX_OPSET = 13  # Sub, Div and Gemm as used here exist unchanged since opset 13
ONNX_IR_VERSION = 7  # the IR of opset 13; runtimes read older IRs, not always newer ones


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise MissingExtraError saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed: pip install 'dimwatch[{extra}]' (or 'dimwatch[export]')"
        ) from exc


def principal_axes(params: "ModelParams") -> tuple[np.ndarray, np.ndarray]:
    """U^T (H, D) with orthonormal rows and the variances S^2 + sigma2 (H,) of W W^T + sigma2 I
    along them, largest first; each axis signed so that its largest coordinate is positive."""
    u, s, _ = np.linalg.svd(params.W, full_matrices=False)  # (D, H), (H,)
    order = np.argsort(-s, kind="stable")
    u, s = u[:, order], s[order]
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
    u = u * np.where(signs == 0, 1.0, signs)
    # scikit-learn divides by l - s2 (= S^2): an exactly zero column of W (a collapsed latent)
    # would give 1/0. A floor of 1e-12 sigma2 changes the density by a relative 1e-12 at most.
    spread = np.maximum(s**2, 1e-12 * params.sigma2)
    return u.T, spread + params.sigma2


def to_sklearn(params: "ModelParams") -> Any:
    """A fitted ServedPCA, after a fitted StandardScaler in a Pipeline when standardized."""
    require("sklearn", "sklearn")
    from clients._sklearn import ServedPCA, scaler_of

    pca = ServedPCA.from_params(params, *principal_axes(params))
    if not params.standardized:
        return pca
    pipeline = importlib.import_module("sklearn.pipeline")
    return pipeline.Pipeline([("scaler", scaler_of(params)), ("pca", pca)])


def to_onnx(params: "ModelParams") -> bytes:
    """The encoder mean as an ONNX graph: x (N, D) -> [(x - m) / s ->] nu = x V^T + b (N, H)."""
    onnx = require("onnx", "onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    f32 = onnx.TensorProto.FLOAT
    inits = [
        numpy_helper.from_array(params.V.astype(np.float32), "V"),  # (H, D)
        numpy_helper.from_array(params.b.astype(np.float32), "b"),  # (H,)
    ]
    nodes = []
    source = "x"
    if params.standardized:
        for name in ("scaler_mean", "scaler_scale"):
            inits.append(numpy_helper.from_array(getattr(params, name).astype(np.float32), name))
        nodes.append(helper.make_node("Sub", ["x", "scaler_mean"], ["centred"]))
        nodes.append(helper.make_node("Div", ["centred", "scaler_scale"], ["z"]))
        source = "z"
    nodes.append(helper.make_node("Gemm", [source, "V", "b"], ["nu"], transB=1))
    graph = helper.make_graph(
        nodes,
        "dimwatch_encoder",
        [helper.make_tensor_value_info("x", f32, ["N", params.dim])],
        [helper.make_tensor_value_info("nu", f32, ["N", params.latent_dim])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        producer_name="dimwatch",
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        doc_string="dimwatch encoder mean nu = V x + b of one served linear VAE",
    )
    model.ir_version = ONNX_IR_VERSION
    helper.set_model_props(
        model,
        {"latent_dim": str(params.latent_dim), "dim": str(params.dim), "step": str(params.step)},
    )
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
