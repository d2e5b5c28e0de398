"""Change detection: the controller that tells an update rule when the stream has changed
(as a learning-rate scheduler tells an optimizer), from numbers the learner computes anyway.

The signal is the gap between the two ELBOs of each candidate (docs/math.md, section 8):

    g_t(H) = F_batch_t(H) - F_ent_{t-1}(H) - e_t(H)

the batch ELBO of batch t under the model before its step, minus the entropy ELBO of that
model, minus what the rule expects it to be on unchanged data (e_t: a fit to n rows scores new
rows about P / n lower than its own; 0 for the gradient rules). At a stationary point the
expected ELBO equals the entropy ELBO (Corollary 1), so on an unchanged stream g keeps a steady
level (zero for Gaussian data; heavy tails skew a batch's mean log-likelihood, and a level of
their own); when the stream changes the data stop matching the models and g moves away from it.

With Adam/SGD the level is Corollary 1's zero, not learnt: their misfit while they converge is
what keeps their rate boosted. With the exact fit of the subspace rule the level is learnt:
the detector listens once the fit rests on enough rows (`armed`; before, the gap is dominated by
the fit's own youth), and first learns the gap's level and noise over
LEARN_BATCHES batches, then watches a fast average of the gap's departures from that level,
measured in standard errors: an alarm when it passes THRESHOLD. The noise of a batch's gap is
the larger of the variance of its rows' log-likelihoods (measured within every batch) and the
learnt batch-to-batch variance (rows of one batch may be alike), so that a heavy-tailed stream
is judged by its own noise from the first batch on. Each departure is clipped to WINSOR
standard deviations, so single outlying batches raise no alarm. Level and noise learn slowly,
and only from quiet batches (a change cannot move its own yardstick); an alarm that outlasts
MAX_ALARM_BATCHES adopts the level and noise seen meanwhile and ends, so that a stream its
models cannot match (a model far from its optimum) cannot hold the alarm forever.
"""

import math
from typing import Any

GAP_RATE = 0.1  # weight of a new batch in the fast average of the departures
LEVEL_RATE = 0.01  # weight of a new quiet batch in the level and the noise
LEARN_BATCHES = 20  # batches after arming that only learn the level and the noise
THRESHOLD = 5.0  # alarm when the fast average passes this many standard errors
MAX_ALARM_BATCHES = 200  # an alarm lasting this long ends; level and noise adopt what it saw
WINSOR = 3.0  # a batch's departure is clipped to this many of its standard deviations

_LISTS = ("level", "fast", "row_var", "alarm_level", "alarm_var")


class ChangeDetector:
    """Per-candidate state of the detector (M floats each: a handful of candidates, where
    Python's arithmetic costs less than numpy's dispatch)."""

    def __init__(self, m: int, dim: int, learn_level: bool = True) -> None:
        # whether the gap's level is learnt (an exact fit: heavy tails set it), or zero
        # (Adam/SGD: Corollary 1's zero; their misfit while they converge is what should alarm)
        self.learn_level = learn_level
        self.level = [0.0] * m  # the gap's steady level
        self.fast = [0.0] * m  # fast average of the departures from it
        # batch-to-batch variance of the gap, per row; starts at D/2, the variance of a
        # Gaussian log-likelihood of D dimensions under its own model (1/2 chi^2_D)
        self.row_var = [dim / 2.0] * m
        self.alarm_level = [0.0] * m  # level and variance seen during the current alarm
        self.alarm_var = [dim / 2.0] * m
        self.listened = 0  # batches since the detector was armed
        self.alarm_length = 0  # consecutive alarmed batches (0: quiet)
        self.alarms = 0  # alarms raised, counting runs of consecutive alarmed batches once

    @property
    def alarmed(self) -> bool:
        return self.alarm_length > 0

    def observe(
        self, gaps: list[float], within: list[float] | None, rows: int, armed: bool
    ) -> tuple[bool, bool]:
        """Fold in one batch's gaps (M) of `rows` rows, with the variance of its rows'
        log-likelihoods (M; None: one row); -> (alarmed, the alarm starts now). A gap that is
        not a number (no model before the first batch), or an unarmed detector, is quiet and
        teaches nothing."""
        if not armed or not all(map(math.isfinite, gaps)):
            self.listened = self.alarm_length = 0
            return False, False
        self.listened += 1
        m = len(gaps)
        if self.learn_level and self.listened <= LEARN_BATCHES:  # plain means at first
            w = 1.0 / self.listened
            for i, g in enumerate(gaps):
                self.level[i] += (g - self.level[i]) * w
                dev = g - self.level[i]
                self.row_var[i] += (rows * dev * dev - self.row_var[i]) * w
            self.fast, self.alarm_level, self.alarm_var = [0.0] * m, [0.0] * m, [0.0] * m
            return False, False
        if self.alarm_length >= MAX_ALARM_BATCHES:  # adopt what the alarm saw, and end it
            self.level, self.row_var = list(self.alarm_level), list(self.alarm_var)
            self.fast = [0.0] * m
        se_scale = GAP_RATE / (2 - GAP_RATE) / rows
        clipped, alarmed = [], False
        level, fast, row_var = self.level, self.fast, self.row_var
        for i, g in enumerate(gaps):
            var = row_var[i] if within is None else max(row_var[i], within[i])
            spread = WINSOR * math.sqrt(var / rows)
            dev = min(max(g - level[i], -spread), spread)
            clipped.append(dev)
            fast[i] += (dev - fast[i]) * GAP_RATE
            alarmed = alarmed or abs(fast[i]) > THRESHOLD * math.sqrt(var * se_scale)
        if not alarmed:
            for i, dev in enumerate(clipped):
                level[i] += dev * LEVEL_RATE if self.learn_level else 0.0
                row_var[i] += (rows * dev * dev - row_var[i]) * LEVEL_RATE
            self.alarm_level, self.alarm_var = list(level), list(row_var)
        else:  # unclipped: a level the models keep (not noise) must end up explained
            for i, g in enumerate(gaps):
                self.alarm_level[i] += (g - self.alarm_level[i]) * LEVEL_RATE * self.learn_level
                dev = g - self.alarm_level[i]
                self.alarm_var[i] += (rows * dev * dev - self.alarm_var[i]) * LEVEL_RATE
        starts = alarmed and self.alarm_length == 0
        self.alarms += starts
        self.alarm_length = self.alarm_length + 1 if alarmed else 0
        return alarmed, starts

    def state(self) -> dict[str, Any]:
        counts = {"listened": self.listened, "alarm_length": self.alarm_length}
        return {**{k: list(getattr(self, k)) for k in _LISTS}, **counts, "alarms": self.alarms}

    def load(self, state: dict[str, Any]) -> None:
        for k in _LISTS:
            setattr(self, k, [float(v) for v in state[k]])
        self.listened = int(state["listened"])
        self.alarm_length = int(state["alarm_length"])
        self.alarms = int(state["alarms"])
