"""Change detection: the controller that tells an update rule when the stream has changed
(as a learning-rate scheduler tells an optimizer), from numbers the learner computes anyway.

The signal is the gap between the two ELBOs of each candidate (docs/math.md):

    g_t(H) = F_batch_t(H) - F_ent_{t-1}(H) - e_t(H)

the batch ELBO of batch t under the model before its step, minus the entropy ELBO of that
model, minus what the rule expects it to be on unchanged data (e_t: a fit to n rows scores new
rows about P / n lower than its own; 0 for the gradient rules). At a stationary point the
expected ELBO equals the entropy ELBO (Corollary 1), so on an unchanged stream g averages zero;
when the stream changes the data stop matching the models and g moves away from zero. A fast
average of g, measured in standard errors of its batch-to-batch noise, raises an alarm. Each
batch's gap is winsorised at WINSOR standard deviations first, so that single outlying batches of
heavy-tailed data raise none. The noise is learnt from batches that raise no alarm (a change
cannot inflate it); an alarm that outlasts MAX_ALARM_BATCHES adopts the level learnt meanwhile
and ends, so a stream its models cannot match (heavy tails, a model far from its optimum) cannot
hold the alarm forever. The detector listens only once the rule's estimate rests on enough rows
(`armed`), before which the gap is dominated by the fit's own youth, not by the stream.
"""

from typing import Any

import numpy as np

GAP_RATE = 0.1  # weight of a new batch in the fast average of the gap
NOISE_RATE = 0.01  # weight of a new batch in the estimate of the gap's noise
THRESHOLD = 5.0  # alarm when the fast gap exceeds this many standard errors
MAX_ALARM_BATCHES = 200  # an alarm lasting this long ends; the noise adopts its level
WINSOR = 3.0  # a batch's gap is clipped to this many of its standard deviations

_ARRAYS = ("gap", "row_var", "alarm_var")


class ChangeDetector:
    """Per-candidate state of the detector (float64 arrays (M,))."""

    def __init__(self, m: int, dim: int) -> None:
        self.gap = np.zeros(m)  # fast average of the gap
        # per-row variance of the gap; starts at D/2, the variance of a Gaussian
        # log-likelihood of D dimensions under its own model (1/2 chi^2_D)
        self.row_var = np.full(m, dim / 2.0)
        self.alarm_var = self.row_var.copy()  # the same, learnt during the current alarm
        self.alarm_length = 0  # consecutive alarmed batches (0: quiet)
        self.alarms = 0  # alarms raised, counting runs of consecutive alarmed batches once

    @property
    def alarmed(self) -> bool:
        return self.alarm_length > 0

    def observe(self, gap: np.ndarray, rows: int, armed: bool) -> tuple[bool, bool]:
        """Fold in one batch's gaps (M,) of `rows` rows; -> (alarmed, the alarm starts now).
        A gap that is not a number (no model before the first batch), or an unarmed detector,
        is quiet and teaches nothing."""
        if not armed or not np.isfinite(gap).all():
            self.alarm_length = 0
            self.gap[:] = 0.0  # listening starts from a clean slate
            return False, False
        raw = gap
        spread = WINSOR * np.sqrt(self.row_var / rows)
        gap = np.minimum(np.maximum(gap, -spread), spread)
        self.gap = (1 - GAP_RATE) * self.gap + GAP_RATE * gap
        if self.alarm_length >= MAX_ALARM_BATCHES:
            self.row_var = np.maximum(self.row_var, self.alarm_var)
            self.gap[:] = 0.0
        # standard error of the fast average of per-batch means of `rows` rows
        se = np.sqrt(self.row_var / rows * GAP_RATE / (2 - GAP_RATE))
        alarmed = bool((np.abs(self.gap) > THRESHOLD * se).any())
        if not alarmed:
            self.row_var = (1 - NOISE_RATE) * self.row_var + NOISE_RATE * rows * gap**2
            self.alarm_var = self.row_var.copy()
        else:
            # unclipped: a gap the models keep (not noise) must end up explained by the level
            self.alarm_var = (1 - NOISE_RATE) * self.alarm_var + NOISE_RATE * rows * raw**2
        starts = alarmed and self.alarm_length == 0
        self.alarms += starts
        self.alarm_length = self.alarm_length + 1 if alarmed else 0
        return alarmed, starts

    def state(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k).tolist() for k in _ARRAYS},
            "alarm_length": self.alarm_length,
            "alarms": self.alarms,
        }

    def load(self, state: dict[str, Any]) -> None:
        for k in _ARRAYS:
            setattr(self, k, np.array(state[k], dtype=np.float64))
        self.alarm_length = int(state["alarm_length"])
        self.alarms = int(state["alarms"])
