"""Exact probabilistic-PCA references (Tipping & Bishop 1999; docs/math.md, section 7).

Plain numpy in float64: these are the ground truth the trained bank is checked against, and
the costly data-dependent alternatives the entropy ELBO replaces.
"""

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

LOG_2PI = math.log(2 * math.pi)


def covariance(x: ArrayLike, mean: ArrayLike | None = None) -> NDArray[np.float64]:
    """S = (1/N) sum_n (x_n - mu)(x_n - mu)^T, around the sample mean unless mean is given."""
    xs = np.asarray(x, dtype=np.float64)
    mu = xs.mean(0) if mean is None else np.asarray(mean, dtype=np.float64)
    centred = xs - mu
    return centred.T @ centred / xs.shape[0]


def ml_sigma2(eigvals: ArrayLike, latent_dim: int) -> float:
    """sigma^2_ML = mean of the D - H smallest covariance eigenvalues."""
    lam = np.sort(np.asarray(eigvals, dtype=np.float64))[::-1]
    return float(lam[latent_dim:].mean())


def ml_loglik(eigvals: ArrayLike, latent_dim: int) -> float:
    """Maximum p-PCA log-likelihood per data point (docs/math.md):

    L_ML = -(D/2)(log 2 pi + 1) - 1/2 sum_{j<=H} log l_j - ((D-H)/2) log sigma^2_ML
    """
    lam = np.sort(np.asarray(eigvals, dtype=np.float64))[::-1]
    dim = lam.shape[0]
    s2 = ml_sigma2(lam, latent_dim)
    return float(
        -0.5 * dim * (LOG_2PI + 1)
        - 0.5 * np.log(lam[:latent_dim]).sum()
        - 0.5 * (dim - latent_dim) * math.log(s2)
    )


def ml_loglik_of_data(x: ArrayLike, latent_dim: int) -> float:
    """L_ML of a data set: the eigenvalues of its covariance around its mean."""
    return ml_loglik(np.linalg.eigvalsh(covariance(x)), latent_dim)


def loglik(w: ArrayLike, sigma2: float, cov: ArrayLike) -> float:
    """p-PCA log-likelihood per data point of (W, sigma^2) on data with covariance S (Eq. 26):

    C = W W^T + sigma^2 I,  L = -(D/2) log 2 pi - 1/2 log det C - 1/2 tr(C^-1 S)
    (S taken around the model's mu; see covariance(x, mean=mu)).
    """
    wm = np.asarray(w, dtype=np.float64)
    s = np.asarray(cov, dtype=np.float64)
    dim = s.shape[0]
    c = wm @ wm.T + sigma2 * np.eye(dim)
    _, logdet = np.linalg.slogdet(c)
    return float(-0.5 * dim * LOG_2PI - 0.5 * logdet - 0.5 * np.trace(np.linalg.solve(c, s)))
