"""scikit-learn estimators of a served model (imported by clients._export only when asked)."""

from typing import TYPE_CHECKING, Any, Self

import numpy as np
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

if TYPE_CHECKING:
    from clients.params import ModelParams


class ServedPCA(PCA):
    """A PCA fitted by the service: PCA's density (score_samples, score, get_covariance,
    get_precision) of N(mu, W W^T + sigma2 I), with the model's own encoder and decoder.

    transform(X) = X V^T + b (the served /transform), inverse_transform(Z) = Z W^T + mu.
    The fitted encoder_weights_ (V), encoder_bias_ (b), decoder_weights_ (W) are kept beside
    PCA's attributes. It is not refitted here: `fit` raises (fit a plain PCA on data instead).
    """

    @classmethod
    def from_params(cls, params: "ModelParams", axes: np.ndarray, variances: np.ndarray) -> Self:
        """The estimator of `params`, with principal axes (H, D) and variances (H,) of W W^T +
        sigma2 I (clients._export.principal_axes)."""
        pca = cls(n_components=params.latent_dim)
        total = float(variances.sum() + (params.dim - params.latent_dim) * params.sigma2)
        pca.components_ = axes
        pca.explained_variance_ = variances
        pca.explained_variance_ratio_ = variances / total
        pca.noise_variance_ = float(params.sigma2)
        pca.mean_ = params.mu.copy()
        pca.n_components_ = params.latent_dim
        pca.n_features_in_ = params.dim
        pca.encoder_weights_ = params.V.copy()  # (H, D)
        pca.encoder_bias_ = params.b.copy()  # (H,)
        pca.decoder_weights_ = params.W.copy()  # (D, H)
        return pca

    def fit(self, X: Any, y: Any = None) -> Self:
        raise NotImplementedError(
            "a ServedPCA holds a model fitted by dimwatch; fit sklearn.decomposition.PCA on data"
        )

    def transform(self, X: Any) -> np.ndarray:
        """The encoder's posterior means nu = V x + b (N, H), as /transform answers them."""
        x = np.asarray(self._validate_rows(X))
        out: np.ndarray = x @ self.encoder_weights_.T + self.encoder_bias_
        return out

    def inverse_transform(self, X: Any) -> np.ndarray:
        """The decoder's means W z + mu (N, D)."""
        z = np.asarray(X, dtype=np.float64)
        out: np.ndarray = z @ self.decoder_weights_.T + self.mean_
        return out

    def _validate_rows(self, X: Any) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"expected rows of {self.n_features_in_} columns, got shape {list(x.shape)}"
            )
        return x


def scaler_of(params: "ModelParams") -> StandardScaler:
    """The stream's running scaler as a fitted StandardScaler: (x - scaler_mean) / scaler_scale."""
    assert params.scaler_mean is not None and params.scaler_scale is not None
    scaler = StandardScaler()
    scaler.mean_ = params.scaler_mean.copy()
    scaler.scale_ = params.scaler_scale.copy()
    scaler.var_ = params.scaler_scale**2
    scaler.n_features_in_ = params.dim
    return scaler
