"""The convergence bound's terms (streaming/convergence.py), fed batches whose statistics are
known."""

import math

import numpy as np
import pytest

from streaming.convergence import Convergence, Z


@pytest.mark.parametrize("rows", [2, 10, 256])
def test_noise_term_is_unbiased_whatever_the_batch_size(rows: int) -> None:
    # rows' log-likelihoods of variance 4, each batch's variance taken over its own rows (1 / B,
    # as the rule measures it) and no optimism (every batch scores F_ent): the bound must be Z
    # standard errors of n rows, sqrt(4 / n), at batches of 2 as at batches of 256
    rng = np.random.default_rng(0)
    convergence, n = Convergence(1), 0
    for _ in range(40_000 // rows):
        ll = rng.normal(0.0, 2.0, rows)
        convergence.update([0.0], [float(ll.var())], rows, n, n + rows, [0.0], True, True)
        n += rows
    assert convergence.error[0] / (Z * math.sqrt(4.0 / n)) == pytest.approx(1.0, abs=0.03)
