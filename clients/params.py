"""A served model's parameters (`GET /v1/streams/{name}/models/{H}`) and the ways out of the
service: a fitted scikit-learn PCA, an ONNX encoder, an `.npz` file (docs/export.md).

scikit-learn and onnx are optional extras of the client (`pip install 'dimwatch[export]'`);
without them everything here but `to_sklearn` / `to_onnx` works, and those raise
MissingExtraError naming the extra.
"""

from dataclasses import dataclass
from os import PathLike
from typing import IO, Any, Self

import numpy as np

NPZ_FORMAT = "dimwatch.model/1"  # the `format` entry of an exported .npz (docs/export.md)


def _matrix(value: Any, rows: int, cols: int) -> np.ndarray:
    # An empty JSON list has no columns to infer, so the shape is fixed from the known sizes.
    return np.asarray(value, dtype=np.float64).reshape(rows, cols)


def _vector(value: Any, size: int) -> np.ndarray:
    return _matrix(value, 1, size)[0]


@dataclass(frozen=True, eq=False)
class ModelParams:
    """Parameters of one linear VAE (docs/math.md notation) as float64 numpy arrays.

    The model: x = W z + mu + noise, z ~ N(0, I_H), noise ~ N(0, sigma2 I_D), so x ~ N(mu,
    W W^T + sigma2 I) (probabilistic PCA); the encoder's mean nu = V x + b is what /transform
    answers. With `standardized`, x here is the z-score (raw - scaler_mean) / scaler_scale.
    """

    step: int  # the stream's step the parameters are from
    latent_dim: int  # H
    dim: int  # D
    W: np.ndarray  # (D, H) decoder weights
    mu: np.ndarray  # (D,) decoder bias
    sigma2: float  # decoder variance
    V: np.ndarray  # (H, D) encoder weights
    b: np.ndarray  # (H,) encoder bias
    tau2: np.ndarray  # (H,) encoder variances
    standardized: bool = False  # the model is of the z-scores of the columns
    scaler_mean: np.ndarray | None = None  # (D,) column means (standardized only)
    scaler_scale: np.ndarray | None = None  # (D,) column standard deviations (standardized only)

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        h, d = int(obj["latent_dim"]), int(obj["dim"])
        standardized = bool(obj.get("standardized") or False)
        return cls(
            step=int(obj["step"]),
            latent_dim=h,
            dim=d,
            W=_matrix(obj["W"], d, h),
            mu=_vector(obj["mu"], d),
            sigma2=float(obj["sigma2"]),
            V=_matrix(obj["V"], h, d),
            b=_vector(obj["b"], h),
            tau2=_vector(obj["tau2"], h),
            standardized=standardized,
            scaler_mean=_vector(obj["scaler_mean"], d) if standardized else None,
            scaler_scale=_vector(obj["scaler_scale"], d) if standardized else None,
        )

    def to_sklearn(self) -> Any:
        """A fitted `sklearn.decomposition.PCA` (a Pipeline after its StandardScaler when
        standardized): `score_samples` is the log-density under N(mu, W W^T + sigma2 I),
        `transform` the encoder mean V x + b (= /transform), `inverse_transform` W z + mu."""
        from clients import _export

        return _export.to_sklearn(self)

    def to_onnx(self) -> bytes:
        """An ONNX model (bytes) of the encoder mean: input `x` (N, D) float32, output `nu`
        (N, H) = V x + b, after the scaler when standardized (= /transform)."""
        from clients import _export

        return _export.to_onnx(self)

    def save_npz(self, file: str | PathLike[str] | IO[bytes]) -> None:
        """Every parameter in one `.npz` (layout: docs/export.md); `from_npz` reads it back."""
        arrays: dict[str, Any] = {
            "format": np.array(NPZ_FORMAT),
            "step": np.array(self.step, dtype=np.int64),
            "latent_dim": np.array(self.latent_dim, dtype=np.int64),
            "dim": np.array(self.dim, dtype=np.int64),
            "W": self.W,
            "mu": self.mu,
            "sigma2": np.array(self.sigma2, dtype=np.float64),
            "V": self.V,
            "b": self.b,
            "tau2": self.tau2,
            "standardized": np.array(self.standardized),
        }
        if self.standardized:
            arrays["scaler_mean"] = self.scaler_mean
            arrays["scaler_scale"] = self.scaler_scale
        np.savez(file, **arrays)

    @classmethod
    def from_npz(cls, file: str | PathLike[str] | IO[bytes]) -> Self:
        """The parameters saved by `save_npz`; ValueError for another file."""
        with np.load(file, allow_pickle=False) as npz:
            found = str(npz["format"]) if "format" in npz.files else None
            if found != NPZ_FORMAT:
                raise ValueError(f"expected an .npz of format {NPZ_FORMAT!r}, got {found!r}")
            obj = {key: npz[key].tolist() for key in npz.files}
        return cls.from_json(obj)
