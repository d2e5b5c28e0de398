"""When a candidate's entropy ELBO can be trusted: a drift test on F_ent (docs/math.md).

The Corollary-1 gap (batch ELBO minus entropy ELBO) only says that the variance parameters are
stationary; slow directions of W can leave F_ent far from the p-PCA optimum while that gap reads
zero. What the natural step shows instead while it is still converging is a drift of F_ent
itself. So a candidate is `converged` once

  - it has trained for at least `min_batches` batches and `rows_per_parameter` rows per
    parameter (H D + 1) since the start or the last restart, and
  - F_ent's fast average (about `fast` batches) and slow average (about `slow` batches) differ
    by at most `tolerance` of |F_ent| (at least 1 nat): no drift left, and
  - F_ent's mean absolute deviation from its slow average (over about `fast` batches) is within
    the same tolerance: the step size has decayed enough that the noise of the online estimate
    is small too; and this step's F_ent is within twice the tolerance of the slow average.

It stays converged until the drift exceeds twice the tolerance or training restarts. The
thresholds are calibrated on real data by bench/real_data.py (bench/RESULTS.md): no case there
reports converged with F_ent more than 5% from the exact optimum. The test is calibrated for
the natural step only: streams trained with Adam or SGD (kept to reproduce the paper) never
report converged, since their F_ent can sit still far from the optimum.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvergenceTest:
    """Thresholds of the drift test."""

    min_batches: int = 1000  # batches since the (re)start before any candidate can converge
    rows_per_parameter: float = 10.0  # ... and rows per parameter of the candidate (H D + 1)
    fast: float = 20.0  # batches in the fast average of F_ent
    slow: float = 200.0  # batches in the slow average of F_ent
    tolerance: float = 0.005  # largest |fast - slow| / max(1, |F_ent|) that counts as settled


class Convergence:
    """Per-candidate state of the drift test (float64 arrays (M,))."""

    def __init__(self, params: np.ndarray, test: ConvergenceTest | None = None) -> None:
        self.test = test if test is not None else ConvergenceTest()
        self.params = params.astype(np.float64)  # (M,) H D + 1
        self.batches = 0  # since the (re)start
        self.rows = 0
        self.fast = np.zeros_like(self.params)
        self.slow = np.zeros_like(self.params)
        self.spread = np.zeros_like(self.params)  # mean |F_ent - slow|
        self.flags = np.zeros(self.params.shape, dtype=bool)

    def restart(self) -> None:
        """Training restarted (a change of the stream): nothing is converged any more."""
        self.batches = self.rows = 0
        self.flags[:] = False

    def update(self, f_ent: np.ndarray, rows: int) -> np.ndarray:
        """Fold in the entropy ELBOs (M,) after a step on `rows` rows; returns the flags."""
        t = self.test
        if self.batches == 0:
            self.fast[:] = f_ent
            self.slow[:] = f_ent
            self.spread[:] = np.abs(f_ent)  # unknown: as large as F_ent itself
        else:
            self.fast += (f_ent - self.fast) / t.fast
            self.slow += (f_ent - self.slow) / t.slow
            self.spread += (np.abs(f_ent - self.slow) - self.spread) / t.fast
        self.batches += 1
        self.rows += rows
        scale = np.maximum(1.0, np.abs(self.slow))
        drift = np.maximum(np.abs(self.fast - self.slow), self.spread) / scale
        trained = (self.batches >= t.min_batches) & (
            self.rows >= t.rows_per_parameter * self.params
        )
        limit = np.where(self.flags, 2.0 * t.tolerance, t.tolerance)
        # and this step's F_ent itself near the settled value (a noise spike is not converged)
        here = np.abs(f_ent - self.slow) / scale <= 2.0 * t.tolerance
        self.flags = trained & (drift <= limit) & here
        return self.flags

    def state(self) -> dict[str, object]:
        return {
            "batches": self.batches,
            "rows": self.rows,
            "fast": self.fast.tolist(),
            "slow": self.slow.tolist(),
            "spread": self.spread.tolist(),
            "flags": self.flags.tolist(),
        }

    def load(self, state: dict[str, object]) -> None:
        self.batches = int(state["batches"])  # type: ignore[call-overload]
        self.rows = int(state["rows"])  # type: ignore[call-overload]
        self.fast = np.array(state["fast"], dtype=np.float64)
        self.slow = np.array(state["slow"], dtype=np.float64)
        spread = state.get("spread", np.abs(self.slow).tolist())  # not in the first v2 states
        self.spread = np.array(spread, dtype=np.float64)
        self.flags = np.array(state["flags"], dtype=bool)
