"""Faster tracking of a changing stream: a bank that learns fast while its models disagree with
the data, and slowly (quietly) once they agree.

The signal is the gap between the two ELBOs the bank already computes (docs/math.md):

    g_t(H) = F_batch_t(H) - F_ent_{t-1}(H)

the batch ELBO of batch t (before its step) minus the entropy ELBO of the same parameters. At a
stationary point the expected ELBO equals the entropy ELBO (Corollary 1), so on a stationary
stream the gap averages to zero; when the stream changes (new subspace, more or fewer
directions, other scales) the data stop matching the models and the gap moves away from zero,
for some H in one direction or the other. A fast average of the gap, measured in standard errors
of its batch-to-batch noise, raises an alarm; while alarmed the learning rate is `boost_lr`, and
afterwards it returns to the bank's own rate with an e-folding time of `decay_batches`. When an
alarm starts, and every `reset_every` batches while it lasts, the optimizer's moment estimates
are dropped (see _forget_gradient_scale). The bank starts alarmed: a fast start on a new stream.
The defaults won bench/tracking.py's sweep (bench/RESULTS.md, section 2).

With the natural step (the default) an alarm restarts its step-size schedule once (eta back to
its start, see streaming/natural.py); a new restart needs the alarm to end first. An alarm ends
when the fast gap is back within the noise, or after `max_alarm_batches` alarmed batches, when
the noise estimate adopts the level the gap has kept meanwhile: a stream whose models cannot
match it (heavy tails, or a model far from its optimum) cannot hold the alarm forever. Each
batch's gap is winsorised at `winsor` standard deviations before it is averaged, so single
outlying batches of heavy-tailed data raise no alarm.

The pick has hysteresis: it moves to another H only when that H's BIC is lower than the current
pick's by more than `switch_margin`, so that a pick does not flicker while boosted models settle.
Optionally the entropy ELBO used for the BIC is averaged over recent steps (`score_rate` < 1):
F_ent is linear in log tau^2 and log sigma^2, so this averages the variance parameters.
"""

import io
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from streaming import entropy
from streaming.bank import LinearVAEBank
from streaming.config import BankConfig
from streaming.errors import InvalidConfigError
from streaming.report import ModelParams, ModelScore, StepReport

# float64 (M,) state besides the bank's
_ARRAYS = ("_f_ent", "_score", "_gap", "_row_var", "_alarm_var")


@dataclass(frozen=True)
class AdaptiveConfig:
    """How the learning rate follows the gap between batch ELBO and entropy ELBO."""

    boost_lr: float = 0.05  # learning rate while alarmed (the bank's own rate is the quiet one)
    decay_batches: float = 50.0  # e-folding time, in batches, of the return to the quiet rate
    gap_rate: float = 0.1  # weight of a new batch in the fast average of the gap
    noise_rate: float = 0.01  # weight of a new batch in the estimate of the gap's noise
    threshold: float = 5.0  # alarm when the fast gap exceeds this many standard errors
    score_rate: float = 1.0  # weight of a new entropy ELBO in the one the BIC uses (1: no average)
    reset_optimizer: bool = True  # forget Adam's moment estimates when an alarm starts
    reset_every: int = 25  # ... and every this many batches while it lasts (0: only at its start)
    switch_margin: float = 5.0  # the pick moves only to an H whose BIC is lower by more than this
    max_alarm_batches: int = 200  # an alarm lasting this long ends; the noise adopts its level
    winsor: float = 3.0  # a batch's gap is clipped to this many of its standard deviations

    def __post_init__(self) -> None:
        if not self.boost_lr > 0:
            raise InvalidConfigError(f"boost_lr: expected a positive number, got {self.boost_lr}")
        if not self.decay_batches > 0:
            raise InvalidConfigError(
                f"decay_batches: expected a positive number, got {self.decay_batches}"
            )
        for name in ("gap_rate", "noise_rate", "score_rate"):
            rate = getattr(self, name)
            if not 0 < rate <= 1:
                raise InvalidConfigError(f"{name}: expected a number in (0, 1], got {rate}")
        if not self.threshold > 0:
            raise InvalidConfigError(f"threshold: expected a positive number, got {self.threshold}")
        if self.reset_every < 0:
            raise InvalidConfigError(f"reset_every: expected >= 0, got {self.reset_every}")
        if not self.switch_margin >= 0:
            raise InvalidConfigError(f"switch_margin: expected >= 0, got {self.switch_margin}")
        if self.max_alarm_batches < 1:
            raise InvalidConfigError(
                f"max_alarm_batches: expected >= 1, got {self.max_alarm_batches}"
            )
        if not self.winsor > 0:
            raise InvalidConfigError(f"winsor: expected a positive number, got {self.winsor}")


class AdaptiveBank:
    """A LinearVAEBank whose learning rate jumps to boost_lr when the stream changes."""

    def __init__(
        self, dim: int, config: BankConfig | None = None, adaptive: AdaptiveConfig | None = None
    ) -> None:
        self.bank = LinearVAEBank(dim, config)
        self.adaptive = adaptive if adaptive is not None else AdaptiveConfig()
        self.quiet_lr = self.bank.config.learning_rate
        self.since_alarm = 0  # batches since the last alarm (0: alarmed now; the bank starts so)
        self.alarms = 0  # alarms raised, counting runs of consecutive alarmed batches once
        self.resets = 0  # restarts: natural schedule restarted, or the optimizer's moments dropped
        self._since_reset = 0  # alarmed batches since the optimizer's moments were dropped
        self.alarm_length = 0  # consecutive alarmed batches (0: quiet)
        self._pick = -1  # index of the held pick (-1: none yet)
        first = self.bank.report()
        m = len(first.models)
        self._f_ent = np.array([s.entropy_elbo for s in first.models])  # (M,) before the step
        self._score = self._f_ent.copy()  # (M,) averaged entropy ELBO the BIC uses
        self._gap = np.zeros(m)  # (M,) fast average of the gap
        # Per-row variance of the gap; starts at D/2, the variance of a Gaussian log-likelihood
        # of D dimensions under its own model (1/2 chi^2_D).
        self._row_var = np.full(m, dim / 2.0)
        self._alarm_var = self._row_var.copy()  # the same, learnt during the current alarm
        self._set_lr()

    @property
    def learning_rate(self) -> float:
        """The rate of the next step: boost_lr decaying to the quiet rate since the last alarm."""
        a = self.adaptive
        return self.quiet_lr + (a.boost_lr - self.quiet_lr) * math.exp(
            -self.since_alarm / a.decay_batches
        )

    def learn_many(self, X: np.ndarray | torch.Tensor) -> StepReport:
        """One step of the bank at the current rate; then update the alarm and the rate."""
        rep = self.bank.learn_many(X)
        batch = np.array([s.batch_elbo for s in rep.models], dtype=np.float64)
        alarmed = self._update_alarm(batch - self._f_ent, rep.rows)
        resets = self.resets
        if alarmed:
            self._on_alarm(starts=self.alarm_length == 0)
            self.alarm_length += 1
            self.since_alarm = 0
        else:
            self.alarm_length = 0
            self.since_alarm += 1
        self._set_lr()
        self._f_ent = np.array([s.entropy_elbo for s in rep.models])
        r = self.adaptive.score_rate
        self._score = (1 - r) * self._score + r * self._f_ent
        # a restart reset the convergence flags and counters: score anew only then
        rep = self._scored(self.bank.report() if self.resets != resets else rep)
        bic = np.array([s.bic for s in rep.models])
        if self._pick < 0 or bic.min() < bic[self._pick] - self.adaptive.switch_margin:
            self._pick = int(bic.argmin())
        return self._held(rep)

    def report(self) -> StepReport:
        """The bank's current report with the (averaged) entropy BIC and the held pick."""
        return self._held(self._scored(self.bank.report()))

    @property
    def best_latent_dim(self) -> int:
        """The held pick: the lowest (averaged) entropy BIC, switched to only once it beats the
        previous pick's BIC by more than switch_margin."""
        return self.report().best_latent_dim

    @property
    def dim(self) -> int:
        return self.bank.dim

    @property
    def config(self) -> BankConfig:
        return self.bank.config

    @property
    def device(self) -> torch.device:
        return self.bank.device

    def encode(self, X: np.ndarray | torch.Tensor, latent_dim: int | None = None) -> np.ndarray:
        """Posterior means of the named model (None: the held pick)."""
        return self.bank.encode(X, self._named(latent_dim))

    def reconstruct(
        self, X: np.ndarray | torch.Tensor, latent_dim: int | None = None
    ) -> np.ndarray:
        """Reconstructions through the named model (None: the held pick)."""
        return self.bank.reconstruct(X, self._named(latent_dim))

    def params(self, latent_dim: int | None = None) -> ModelParams:
        """Parameters of the named model (None: the held pick)."""
        return self.bank.params(self._named(latent_dim))

    def _named(self, latent_dim: int | None) -> int:
        return self.best_latent_dim if latent_dim is None else latent_dim

    @property
    def step(self) -> int:
        return self.bank.step

    @property
    def rows_seen(self) -> int:
        return self.bank.rows_seen

    def state_bytes(self) -> bytes:
        """The bank's full state and the alarm's; from_bytes continues bit-identically."""
        state = {
            "bank": self.bank.state_bytes(),
            "adaptive": asdict(self.adaptive),
            "counters": [
                self.since_alarm,
                self.alarms,
                self.resets,
                self._since_reset,
                self._pick,
                self.alarm_length,
            ],
            "quiet_lr": self.quiet_lr,
            "arrays": {k: torch.from_numpy(getattr(self, k).copy()) for k in _ARRAYS},
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str | None = None) -> "AdaptiveBank":
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        bank = LinearVAEBank.from_bytes(state["bank"], device=device)
        new = cls(bank.dim, bank.config, AdaptiveConfig(**state["adaptive"]))
        new.bank = bank
        new.quiet_lr = float(state["quiet_lr"])
        counters = list(state["counters"])
        new.since_alarm, new.alarms, new.resets, new._since_reset, new._pick = counters[:5]
        new.alarm_length = counters[5] if len(counters) > 5 else int(new.since_alarm == 0)
        for k in _ARRAYS:
            if k in state["arrays"]:  # _alarm_var: not in states saved before it existed
                setattr(new, k, state["arrays"][k].numpy().copy())
        return new

    def _update_alarm(self, gap: np.ndarray, rows: int) -> bool:
        """Fold one batch's gap (M,), winsorised, into the fast average; alarm past the
        threshold. The noise estimate learns from batches that raise no alarm, so a change
        cannot inflate it; an alarm that outlasts max_alarm_batches adopts the level learnt
        meanwhile (_alarm_var) and ends."""
        a = self.adaptive
        raw = gap
        spread = a.winsor * np.sqrt(self._row_var / rows)
        gap = np.clip(gap, -spread, spread)
        self._gap = (1 - a.gap_rate) * self._gap + a.gap_rate * gap
        if self.alarm_length >= a.max_alarm_batches:
            self._row_var = np.maximum(self._row_var, self._alarm_var)
            self._gap[:] = 0.0
        # standard error of the fast average of per-batch means of `rows` rows
        se = np.sqrt(self._row_var / rows * a.gap_rate / (2 - a.gap_rate))
        alarmed = bool((np.abs(self._gap) > a.threshold * se).any())
        if not alarmed:
            self._row_var = (1 - a.noise_rate) * self._row_var + a.noise_rate * rows * gap**2
            self._alarm_var = self._row_var.copy()
        else:
            # unclipped: a gap the models keep (not noise) must end up explained by the level
            self._alarm_var = (1 - a.noise_rate) * self._alarm_var + a.noise_rate * rows * raw**2
        return alarmed

    def _on_alarm(self, starts: bool) -> None:
        """Natural step: restart it once per alarm. Adam/SGD: drop the moments when the alarm
        starts and every reset_every alarmed batches while it lasts (_forget_gradient_scale)."""
        a = self.adaptive
        self.alarms += starts
        if self.bank.config.optimizer == "natural":
            if starts:
                self.bank.restart()
                self.resets += 1
            return
        self._since_reset += 1
        periodic = a.reset_every > 0 and self._since_reset >= a.reset_every
        if a.reset_optimizer and (starts or periodic):
            self._forget_gradient_scale()
            self.resets += 1
            self._since_reset = 0

    def _forget_gradient_scale(self) -> None:
        """Drop the optimizer's running moments. A change brings a burst of large gradients
        that fills Adam's second moment (memory ~1/(1 - beta2) = 1000 steps) and then shrinks
        every later step far below the learning rate, just when the models must move (e.g.
        revive collapsed latents). Fresh moments give steps of the full rate again."""
        self.bank.reset_optimizer_state()

    def _set_lr(self) -> None:
        if self.bank.config.optimizer != "natural":
            self.bank.set_learning_rate(self.learning_rate)

    def _held(self, rep: StepReport) -> StepReport:
        training = replace(
            rep.training,
            alarmed=self.alarm_length > 0,
            step_size=self.bank.step_size,  # after _set_lr: the rate of the next step
            alarms=self.alarms,
            restarts=self.resets,
        )
        if self._pick < 0:
            return replace(rep, training=training)
        return replace(rep, best_latent_dim=rep.models[self._pick].latent_dim, training=training)

    def _scored(self, rep: StepReport) -> StepReport:
        """rep with the BIC (Eq. 27) of the averaged entropy ELBO, and the pick it makes."""
        if self.adaptive.score_rate == 1.0:
            return rep
        dims = np.array(self.bank.config.latent_dims)
        bic = entropy.bic(self._score, dims, self.bank.dim, self.bank.config.bic_n)
        models: tuple[ModelScore, ...] = tuple(
            replace(s, entropy_elbo=float(f), bic=float(b))
            for s, f, b in zip(rep.models, self._score, bic, strict=True)
        )
        best = min(models, key=lambda s: s.bic).latent_dim
        return replace(rep, models=models, best_latent_dim=best)
