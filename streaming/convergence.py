"""When a candidate's entropy ELBO can be trusted: an error bound from the stream itself
(docs/math.md, "Converged").

With the subspace rule, F_ent(H) is the maximum p-PCA log-likelihood of the rows seen (the
in-sample optimum, up to the tracked subspace). It differs from the optimum of the stream it
comes from (LL*) for two reasons, both measured as the stream goes:

  - the fit's optimism: F_ent of a fit to n rows exceeds LL* by what the fit learnt of those
    rows' noise. Every batch measures it before it is learnt: its rows' mean log-likelihood under
    the fit falls short of F_ent by the optimism plus the fit's error on new rows, about twice
    the optimism. The optimism falls as 1 / n, so the gap (the batch ELBO minus F_ent) times
    the rows it was measured at, averaged over a recent window, over 2 n, estimates it, whatever
    the dimension (with D comparable to n the classical P / 2n underestimates it severalfold);
  - the noise of n rows: sqrt(v / n), v the variance of a row's log-likelihood (measured on
    every batch's rows).

Both averages run over the batches since n last doubled and the window before it (rows from
about n / 4 on): what the first, wildly overfit fits measured drops out after two doublings.

A candidate is `converged` when the optimism plus Z standard errors of the noise are within
TOLERANCE of |F_ent| (at least 1 nat), after at least MIN_BATCHES measured batches since the
start or the last restart, and while no change is being detected; it stays converged while
that bound is within twice the tolerance. Z and TOLERANCE were set on synthetic p-PCA streams
(bench/rows.py) so that the flag comes within 2x of the rows at which every candidate is in fact
within 1%, and checked on other streams and on real data never to be set while a candidate is 5%
off (bench/RESULTS.md). Only rules whose F_ent reaches the optimum (trusted: the subspace rule) ever
report converged: Adam's and SGD's F_ent can sit still far from it.
"""

import math
from typing import Any

TOLERANCE = 0.01  # largest certified |F_ent - LL*| / max(1, |F_ent|)
Z = 0.8  # standard errors of the noise of n rows in the bound
MIN_BATCHES = 1  # measured batches since the (re)start before any flag

_LISTS = ("gap", "row_var", "old_gap", "old_row_var", "error")


class Convergence:
    """Per-candidate state (M floats each: Python's arithmetic, cheaper than numpy's dispatch
    for a handful of candidates)."""

    def __init__(self, m: int) -> None:
        self.batches = 0  # since the (re)start
        self.mark = 0.0  # rows at the start of the current window
        self.counts = [0, 0]  # batches in the current and the previous window
        self.gap = [0.0] * m  # sums over the current window of the gap times n
        self.row_var = [0.0] * m  # ... and of the variance of a row's log-likelihood
        self.old_gap = [0.0] * m  # the same over the previous window
        self.old_row_var = [0.0] * m
        self.error = [math.inf] * m  # the bound on |F_ent - LL*|
        self.flags = [False] * m

    def restart(self) -> None:
        """Training restarted (a change of the stream): nothing is converged any more."""
        self.__init__(len(self.flags))  # type: ignore[misc]

    def update(
        self,
        gaps: list[float],
        row_var: list[float] | None,
        rows: int,
        before: float,
        n: float,
        f_ent: list[float],
        trusted: bool,
        quiet: bool,
    ) -> list[bool]:
        """Fold in one batch: its gaps (M) (NaN before any model), the variances of its rows'
        log-likelihoods (M) (None: one row), its `rows`, the rows the fit rested on before it
        and rests on now (n), the new F_ent (M). -> the flags."""
        if not all(map(math.isfinite, gaps)):
            return self.flags
        # a batch's variance is taken over its own rows (1 / B): B / (B - 1) unbiases it (one
        # row: its squared gap)
        variances = [g * g * rows for g in gaps] if row_var is None else row_var
        unbias = 1.0 if row_var is None else rows / (rows - 1)
        if n >= 2 * self.mark:  # a new window; the one before the last drops out
            self.old_gap, self.old_row_var = self.gap, self.row_var
            self.gap, self.row_var = [0.0] * len(gaps), [0.0] * len(gaps)
            self.counts, self.mark = [0, self.counts[0]], n
        self.counts[0] += 1
        self.batches += 1
        count = self.counts[0] + self.counts[1]
        n = max(n, 1.0)
        may = trusted and quiet and self.batches >= MIN_BATCHES
        gap, row_var, old_gap, old_row_var = self.gap, self.row_var, self.old_gap, self.old_row_var
        error, flags = self.error, self.flags
        for i, (g, v, f) in enumerate(zip(gaps, variances, f_ent, strict=True)):
            gap[i] += g * before
            row_var[i] += v * unbias
            optimism = abs(gap[i] + old_gap[i]) / count / (2 * n)
            noise = math.sqrt((row_var[i] + old_row_var[i]) / count / n)
            error[i] = optimism + Z * noise
            # once converged, a candidate stays so while its bound is within twice the tolerance
            limit = (2.0 if flags[i] else 1.0) * TOLERANCE * max(1.0, abs(f))
            flags[i] = may and error[i] <= limit
        return self.flags

    def state(self) -> dict[str, Any]:
        lists = {k: list(getattr(self, k)) for k in _LISTS}
        return {"batches": self.batches, "mark": self.mark, "counts": list(self.counts),
                "flags": list(self.flags), **lists}  # fmt: skip

    def load(self, state: dict[str, Any]) -> None:
        self.batches = int(state["batches"])
        self.mark, self.counts = float(state["mark"]), [int(c) for c in state["counts"]]
        for k in _LISTS:
            setattr(self, k, [float(v) for v in state[k]])
        self.flags = [bool(v) for v in state["flags"]]
