"""The subspace tracker against the exact running covariance it stands in for."""

import numpy as np
import pytest
import torch

from streaming import subspace
from streaming.arrays import Arrays
from streaming.data import ppca_data
from tests.streaming.helpers import WINE

CPU = Arrays(torch.device("cpu"), numpy=True)


def _tracked(x: np.ndarray, k: int, rows: int) -> subspace.Subspace:
    return _tracked_from(subspace.new(CPU, x.shape[1], k, seed=0), x, rows)


def _tracked_from(s: subspace.Subspace, x: np.ndarray, rows: int = 20) -> subspace.Subspace:
    for i in range(0, len(x), rows):
        xb = x[None, i : i + rows].astype(np.float64)
        s = subspace.updated(CPU, s, xb, subspace.project(s, xb))
    return s


def _eigenvalues(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False, bias=True)))[::-1]


def test_whole_covariance_is_the_exact_running_covariance() -> None:
    x = WINE  # raw units: variances from 1e5 down to 1e-2
    s = _tracked(x, 13, rows=7)
    assert s.full and s.n[0] == len(x)
    np.testing.assert_allclose(s.evals[0], _eigenvalues(x), rtol=1e-9)
    np.testing.assert_allclose(s.c[0], x.astype(np.float64).mean(0), rtol=1e-12)
    assert float(s.T[0]) == pytest.approx(_eigenvalues(x).sum(), rel=1e-12)


@pytest.mark.parametrize("rows", [10, 256], ids=["B10", "B256"])
def test_tracked_subspace_finds_the_top_eigenvalues(rows: int) -> None:
    x = ppca_data(8000, 60, 5, noise=0.5, seed=1, mean=np.linspace(0.0, 100.0, 60))
    s = _tracked(x, 13, rows)
    assert not s.full
    exact = _eigenvalues(x)
    np.testing.assert_allclose(s.evals[0, :5], exact[:5], rtol=1e-3)
    np.testing.assert_allclose(s.U[0].T @ s.U[0], np.eye(13), atol=1e-10)
    assert float(s.T[0]) == pytest.approx(exact.sum(), rel=1e-12)  # the trace is exact
    assert float(s.T[0]) >= np.trace(s.M[0])


def test_restart_forgets_the_rows_seen() -> None:
    x = ppca_data(400, 10, 2, seed=2)
    s = subspace.restarted(_tracked(x, 10, rows=20))
    y = ppca_data(200, 10, 5, seed=3) * 3.0
    s = _tracked_from(s, y)
    np.testing.assert_allclose(s.evals[0], _eigenvalues(y), rtol=1e-9)


def test_directions_keep_the_whole_covariance_only_for_small_d() -> None:
    assert subspace.directions(10, (2, 4, 6)) == 10
    assert subspace.directions(30, (4, 8, 12, 16)) == 30  # D <= K + 8
    assert subspace.directions(784, (8, 16, 32, 64)) == 72
