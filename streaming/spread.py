"""Whether a batch still spreads along the latents as the models say: a check the `converged`
flag waits on (docs/math.md, section 11, "At a change").

A change that removes directions from the stream (the paper's 6 -> 2: the four largest latents
fall to the noise) makes the new rows score only slightly better under the old models: the
batch ELBO cannot tell it from noise for the batches the change detector takes to alarm. The
rows' coordinates along the latents can, at once. For the first k latents of the largest
candidate (largest first, model variances ell_j) a batch of B rows gives

    R_k = (1 / B k) sum_b sum_{j <= k} y_bj^2 / ell_j

(y: the rows' coordinates along the latents around the running mean, which the rule computes for
the log-likelihood anyway): the batch's mean square in the top k latents, in units of the model.
Under a model fitted to many rows R_k has mean 1 and variance 2 / (B k) for Gaussian rows. A fit
to few rows in high dimension overstates its top variances (new rows spread less along them, by
an amount that fades as the rows grow); real data in raw units are heavy-tailed and their latents
move together (a small row is small along every latent). So both are learnt from the stream,
like the detector's level and noise: the level m_k and spread w_k, the means of R_k and of
B (R_k - m_k)^2 over the batches since the (re)start (weight 1 / batches, at least RATE), from
batches the check finds unsuspicious; the first LEARN_BATCHES measured batches only learn, and
w_k / m_k^2 is never taken below the Gaussian 2 / k. The lower tail of R_k is that of the gamma
law of the same mean and variance: P(R <= R_k) = P(a, a R_k / m_k), a = B m_k^2 / w_k, the
regularized lower incomplete gamma function, bounded above (its series against a geometric one)
by

    z^a e^-z / Gamma(a + 1) / (1 - z / (a + 1)),   z = a R_k / m_k < a + 1.

When the bound falls below ALPHA for some k, every candidate with at least k latents is suspect:
its flag is withheld for that batch (not reset: the convergence test's own state is untouched).
Only latents above the noise (tau^2 < 1 in the largest candidate) are counted: a latent at the
noise has the noise's variance, and in data of lower rank than H only rounding.
"""

import math
from functools import lru_cache
from typing import Any

import numpy as np

from streaming.scores import TAU2

ALPHA = 1e-9  # suspect when so narrow a batch is less likely than this
RATE = 0.01  # smallest weight of a new batch in the learnt level m and spread w
LEARN_BATCHES = 4  # measured batches after the (re)start that only learn m and w
GAUSSIAN = 2.0  # k w_k / m_k^2 of Gaussian rows (kurtosis 3, minus 1): the least it is taken as
_LOG_ALPHA = math.log(ALPHA)


def log_tail(r: float, a: float) -> float:
    """An upper bound on log P(a, a r): the log-probability that a batch's R_k is r times its
    level or less (a = B m_k^2 / w_k: the gamma law of that mean and variance)."""
    z = a * r
    if z >= a + 1.0:
        return 0.0
    if z <= 0.0:
        return -math.inf
    return a * math.log(z) - z - math.lgamma(a + 1.0) - math.log1p(-z / (a + 1.0))


@lru_cache(maxsize=1024)  # (batch size, Hmax) pairs: bounded, shared by every stream
def cutoffs(rows: int, kmax: int) -> tuple[float, ...]:
    """cutoff(rows, k) for k = 1..kmax."""
    return tuple(cutoff(rows, k) for k in range(1, kmax + 1))


def cutoff(rows: int, k: int) -> float:
    """The largest R_k / m_k that Gaussian latents (w_k / m_k^2 = 2 / k, the check at its most
    sensitive) find suspect in a batch of `rows` rows: below it the bound is worth computing."""
    a, lo, hi = rows * k / GAUSSIAN, 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if log_tail(mid, a) < _LOG_ALPHA else (lo, mid)
    return hi


class SpreadCheck:
    """The check's state: m_k and w_k for k = 1..Hmax (Python's arithmetic on a handful of
    floats, as the detector's)."""

    def __init__(self, latent_dims: tuple[int, ...]) -> None:
        self.latent_dims = latent_dims
        self.largest = latent_dims.index(max(latent_dims))
        self.floor = [GAUSSIAN / k for k in range(1, max(latent_dims) + 1)]
        self.level = [1.0] * len(self.floor)  # m_k
        self.spread = list(self.floor)  # w_k
        self.batches = 0  # batches learnt from since the (re)start
        self._none = [False] * len(latent_dims)
        self.suspect = self._none  # per candidate, after the last batch (never modified)
        self._per_k = [1.0 / k for k in range(1, len(self.floor) + 1)]

    def observe(self, squares: Any, before: np.ndarray, rows: int) -> list[bool]:
        """Fold in one batch of `rows` rows: squares (Hmax) its sum over rows of y_bj^2 (an
        array of the rule's library; None: no model before the batch, a start or a restart,
        where level and spread are learnt anew, or a rule that gives none), `before` the
        scores' host array of the models it was measured under ((M, Hmax + 4): sigma^2 in
        column 0, tau^2 from column TAU2). -> whether each candidate is suspect (none in a
        batch of one row, nor in the first LEARN_BATCHES measured ones)."""
        if squares is None:
            self.level, self.spread = [1.0] * len(self.floor), list(self.floor)
            self.batches = 0
        if squares is None or rows < 2:
            self.suspect = self._none
            return self.suspect
        row = before[self.largest].tolist()
        tau2, scale = row[TAU2:], 1.0 / (row[0] * rows)
        # R_k = sum_{j <= k} squares_j / ell_j / (B k), with ell_j = sigma^2 / tau2_j
        means, total = [], 0.0
        for q, t, f in zip(squares.tolist(), tau2, self._per_k, strict=True):
            total += q * t
            means.append(total * scale * f)
        first = None if self.batches < LEARN_BATCHES else self._first_suspect(means, tau2, rows)
        if first is not None:
            self.suspect = [h >= first for h in self.latent_dims]
            return self.suspect
        self.batches += 1
        weight = max(1.0 / self.batches, RATE)
        m, w = self.level, self.spread
        for k, r in enumerate(means):
            dev = r - m[k]
            m[k] += dev * weight
            w[k] += (rows * dev * dev - w[k]) * weight
        self.suspect = self._none
        return self.suspect

    def _first_suspect(self, means: list[float], tau2: list[float], rows: int) -> int | None:
        """The smallest k whose R_k this batch finds suspect, or None."""
        edges = cutoffs(rows, len(means))
        for k, (r, m, edge, t) in enumerate(zip(means, self.level, edges, tau2, strict=True), 1):
            if t >= 1.0:  # this latent and the next are at the noise
                return None
            if r < edge * m:  # the gamma law of mean m and variance w / B, at R_k / m
                a = rows / max(self.spread[k - 1] / (m * m), self.floor[k - 1])
                if log_tail(r / m, a) < _LOG_ALPHA:
                    return k
        return None

    def withheld(self, flags: list[bool]) -> list[bool]:
        """The convergence flags to report: off where the last batch was suspect."""
        if self.suspect is self._none:
            return flags
        return [f and not s for f, s in zip(flags, self.suspect, strict=True)]

    def state(self) -> dict[str, Any]:
        return {"level": list(self.level), "spread": list(self.spread), "batches": self.batches,
                "suspect": list(self.suspect)}  # fmt: skip

    def load(self, state: dict[str, Any] | None) -> None:
        if state is None:  # saved before the spread check: learnt anew
            return
        self.level = [float(v) for v in state["level"]]
        self.spread = [float(v) for v in state["spread"]]
        self.batches = int(state["batches"])
        suspect = [bool(v) for v in state["suspect"]]
        self.suspect = suspect if any(suspect) else self._none
