"""How well a selection tracks a stream: accuracy, detection delay, noise of a score series.

Used by the tests and the benchmarks to judge runs against the paper's claims (Fig. 3a;
docs/math.md, section 10).
"""

import numpy as np
from numpy.typing import ArrayLike


def centred_moving_average(series: ArrayLike, window: int = 51) -> np.ndarray:
    """Mean over a centred window (odd length), on the points where the window fits."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window: expected an odd positive length, got {window}")
    s = np.asarray(series, dtype=np.float64)
    if s.shape[0] < window:
        raise ValueError(f"series: expected at least {window} points, got {s.shape[0]}")
    kernel = np.full(window, 1.0 / window)
    return np.convolve(s, kernel, mode="valid")  # (len - window + 1,)


def batch_noise(series: ArrayLike, window: int = 51) -> float:
    """Batch-to-batch noise: std of the residual from a centred moving average of `window`
    points, which removes the slow drift of a model that is still converging."""
    s = np.asarray(series, dtype=np.float64)
    half = window // 2
    resid = s[half : s.shape[0] - half] - centred_moving_average(s, window)
    return float(resid.std())


def detection_delay(picks: ArrayLike, truth: int, run: int = 100) -> int | None:
    """Batches from the start of `picks` until the pick equals `truth` for `run` consecutive
    batches (the index where that run starts); None if it never does."""
    p = np.asarray(picks) == truth
    count = 0
    for i, ok in enumerate(p):
        count = count + 1 if ok else 0
        if count == run:
            return i - run + 1
    return None


def accuracy(picks: ArrayLike, truth: int) -> float:
    """Fraction of picks equal to the true dimension."""
    p = np.asarray(picks)
    return float((p == truth).mean()) if p.size else 0.0
