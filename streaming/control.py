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

import math
from typing import Any

GAP_RATE = 0.1  # weight of a new batch in the fast average of the gap
NOISE_RATE = 0.01  # weight of a new batch in the estimate of the gap's noise
THRESHOLD = 5.0  # alarm when the fast gap exceeds this many standard errors
MAX_ALARM_BATCHES = 200  # an alarm lasting this long ends; the noise adopts its level
WINSOR = 3.0  # a batch's gap is clipped to this many of its standard deviations

_LISTS = ("gap", "row_var", "alarm_var")


class ChangeDetector:
    """Per-candidate state of the detector (M floats each: a handful of candidates, where
    Python's arithmetic costs less than numpy's dispatch)."""

    def __init__(self, m: int, dim: int) -> None:
        self.gap = [0.0] * m  # fast average of the gap
        # per-row variance of the gap; starts at D/2, the variance of a Gaussian
        # log-likelihood of D dimensions under its own model (1/2 chi^2_D)
        self.row_var = [dim / 2.0] * m
        self.alarm_var = list(self.row_var)  # the same, learnt during the current alarm
        self.alarm_length = 0  # consecutive alarmed batches (0: quiet)
        self.alarms = 0  # alarms raised, counting runs of consecutive alarmed batches once

    @property
    def alarmed(self) -> bool:
        return self.alarm_length > 0

    def observe(self, gaps: list[float], rows: int, armed: bool) -> tuple[bool, bool]:
        """Fold in one batch's gaps (M) of `rows` rows; -> (alarmed, the alarm starts now).
        A gap that is not a number (no model before the first batch), or an unarmed detector,
        is quiet and teaches nothing."""
        if not armed or not all(math.isfinite(g) for g in gaps):
            self.alarm_length = 0
            self.gap = [0.0] * len(gaps)  # listening starts from a clean slate
            return False, False
        if self.alarm_length >= MAX_ALARM_BATCHES:
            self.row_var = [max(v, a) for v, a in zip(self.row_var, self.alarm_var, strict=True)]
        ended = self.alarm_length >= MAX_ALARM_BATCHES
        # standard error of the fast average of per-batch means of `rows` rows
        se_scale = GAP_RATE / (2 - GAP_RATE) / rows
        clipped, alarmed = [], False
        for i, raw in enumerate(gaps):
            var = self.row_var[i]
            spread = WINSOR * math.sqrt(var / rows)
            g = min(max(raw, -spread), spread)
            clipped.append(g)
            fast = 0.0 if ended else (1 - GAP_RATE) * self.gap[i] + GAP_RATE * g
            self.gap[i] = fast
            alarmed = alarmed or abs(fast) > THRESHOLD * math.sqrt(var * se_scale)
        if not alarmed:
            self.row_var = [(1 - NOISE_RATE) * v + NOISE_RATE * rows * g * g
                            for v, g in zip(self.row_var, clipped, strict=True)]  # fmt: skip
            self.alarm_var = list(self.row_var)
        else:
            # unclipped: a gap the models keep (not noise) must end up explained by the level
            self.alarm_var = [(1 - NOISE_RATE) * a + NOISE_RATE * rows * g * g
                              for a, g in zip(self.alarm_var, gaps, strict=True)]  # fmt: skip
        starts = alarmed and self.alarm_length == 0
        self.alarms += starts
        self.alarm_length = self.alarm_length + 1 if alarmed else 0
        return alarmed, starts

    def state(self) -> dict[str, Any]:
        return {
            **{k: list(getattr(self, k)) for k in _LISTS},
            "alarm_length": self.alarm_length,
            "alarms": self.alarms,
        }

    def load(self, state: dict[str, Any]) -> None:
        for k in _LISTS:
            setattr(self, k, [float(v) for v in state[k]])
        self.alarm_length = int(state["alarm_length"])
        self.alarms = int(state["alarms"])
