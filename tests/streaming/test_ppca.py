"""The exact p-PCA references against an independent oracle (scikit-learn's PCA.score)."""

import itertools

import numpy as np
import pytest
from sklearn.decomposition import PCA

from streaming import ppca
from streaming.data import ppca_data

X = ppca_data(5000, 8, 3, noise=0.2, mean=np.linspace(-1.0, 2.0, 8), seed=3).astype(np.float64)


@pytest.mark.parametrize("h", range(1, 8), ids=lambda h: f"H{h}")
def test_ml_loglik_matches_sklearn_score(h: int) -> None:
    # scikit-learn fits its model to the covariance with ddof=1 but scores the data with the
    # 1/N covariance: tr(C^-1 S_N) = (N-1)/N * D at the ML solution, which shifts its score by
    # exactly +D/(2N) from L_ML of the ddof=1 eigenvalues.
    n, d = X.shape
    eig_ddof1 = np.linalg.eigvalsh(np.cov(X, rowvar=False))
    expected = ppca.ml_loglik(eig_ddof1, h) + d / (2 * n)
    assert PCA(n_components=h).fit(X).score(X) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("h", [1, 3, 6], ids=lambda h: f"H{h}")
def test_eq26_at_sklearn_parameters_matches_sklearn_score(h: int) -> None:
    pca = PCA(n_components=h).fit(X)
    w = pca.components_.T * np.sqrt(pca.explained_variance_ - pca.noise_variance_)
    cov = ppca.covariance(X, mean=pca.mean_)
    assert ppca.loglik(w, pca.noise_variance_, cov) == pytest.approx(pca.score(X), abs=1e-8)


@pytest.mark.parametrize("h", [1, 3, 6], ids=lambda h: f"H{h}")
def test_eq26_at_ml_parameters_equals_closed_form(h: int) -> None:
    cov = ppca.covariance(X)
    lam, u = np.linalg.eigh(cov)
    lam, u = lam[::-1], u[:, ::-1]
    s2 = ppca.ml_sigma2(lam, h)
    w_ml = u[:, :h] * np.sqrt(lam[:h] - s2)
    assert ppca.loglik(w_ml, s2, cov) == pytest.approx(ppca.ml_loglik(lam, h), abs=1e-10)


def test_ml_loglik_of_data_increases_with_latent_dim() -> None:
    values = [ppca.ml_loglik_of_data(X, h) for h in range(1, 8)]
    assert all(b >= a for a, b in itertools.pairwise(values))
