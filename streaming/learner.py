"""The learner: one stream's candidate linear VAEs, trained online and scored after every batch.

    learner = Learner(dim, StreamSpec(latent_dims=(2, 4, 6)))
    report = learner.learn_many(X)          # one update of every candidate with the batch X
    report.best_latent_dim, report.models   # the pick and every candidate's scores

A batch flows through the pipeline stage (standardize: the running z-scores, streaming/
preprocess.py), the update rule (streaming/rules.py: the subspace fit by default, or Adam/SGD),
the one scoring path (streaming/scores.py: entropy ELBO, BIC, collapse), the change detector
(streaming/control.py, which restarts the rule when the stream changes) and the convergence
test (streaming/convergence.py). Reads (report, encode, reconstruct, params) cost a read: the
report a step computed is kept, and the models are read from the rule. Bad input raises
InvalidBatchError and changes nothing.
"""

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from streaming import legacy, rules, scores, spread
from streaming.arrays import Array
from streaming.control import ChangeDetector
from streaming.convergence import Convergence
from streaming.errors import InvalidBatchError, InvalidConfigError
from streaming.gradient import GradientRule
from streaming.preprocess import Remap, Scaler, Standardizer
from streaming.report import ModelParams, StepReport, Training
from streaming.rules import Stepped, SubspaceRule, UpdateRule
from streaming.spec import StreamSpec

STATE_VERSION = 3  # 3: the learner; 1 and 2 (LinearVAEBank, AdaptiveBank) load by migration


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidConfigError(f"device: {name!r} requested but CUDA is not available here")
    return device


def make_rule(dim: int, spec: StreamSpec, device: torch.device) -> UpdateRule:
    return GradientRule(dim, spec, device) if spec.gradient else SubspaceRule(dim, spec, device)


@dataclass
class _Counters:
    step: int = 0  # batches learned
    rows_seen: int = 0
    last_rows: int = 0
    pick: int = -1  # index of the held pick (-1: none yet)
    restarts: int = 0


class Learner:
    """Online linear VAEs for every H in spec.latent_dims on data of dimension `dim`."""

    def __init__(self, dim: int, spec: StreamSpec | None = None) -> None:
        self.spec = spec if spec is not None else StreamSpec()
        self.spec.check_dim(dim)
        self.dim = dim
        self.device = resolve_device(self.spec.device)
        m, hmax = len(self.spec.latent_dims), max(self.spec.latent_dims)
        self._mask = (np.arange(hmax)[None, :] < np.array(self.spec.latent_dims)[:, None]) * 1.0
        self.rule = make_rule(dim, self.spec, self.device)
        self.arrays = self.rule.arrays
        self.stage = Standardizer.empty(self.arrays, dim) if self.spec.standardize else None
        learn_level = not self.spec.gradient
        self.detector = ChangeDetector(m, dim, learn_level) if self.spec.adaptive else None
        self.convergence = Convergence(m)
        self.spread = spread.SpreadCheck(self.spec.latent_dims)
        self.counters = _Counters()
        self._scores = self._score(None)  # of the current models
        self._f_ent = self._scores.f_ent.tolist()
        self._report = self._make_report()

    @property
    def config(self) -> StreamSpec:
        return self.spec

    @property
    def step(self) -> int:
        return self.counters.step

    @property
    def rows_seen(self) -> int:
        return self.counters.rows_seen

    # ----------------------------------------------------------------------------- learning

    def learn_many(self, X: np.ndarray | torch.Tensor) -> StepReport:
        """One update of every candidate with the batch X (B, D); returns the new report.

        Raises InvalidBatchError, leaving the learner untouched, unless X is a non-empty 2-D
        array of finite numbers with D columns whose update gives finite results. X is never
        modified."""
        x, remap, stage = self._prepare(X)
        before = self._before()
        return self._finish(x.shape[0], stage, self.rule.step(x, remap), before)

    def _prepare(
        self, X: np.ndarray | torch.Tensor
    ) -> tuple[Array, Remap | None, Standardizer | None]:
        """The batch as the rule takes it (validated, through the pipeline), the map that
        re-expresses the rule's state (None: none) and the stage after it (committed with the
        step)."""
        x = self.arrays.batch(X, self.dim)
        remap, stage = None, None
        if self.stage is not None:
            x, remap, stage = self.stage.step(x, self.rule.remaps)
        if not self.arrays.numpy and self.spec.gradient:
            x = x.float()  # the gradient rules train in float32
        return x, remap, stage

    @property
    def scaler(self) -> Scaler | None:
        """The scaler the models are expressed in (None: raw data)."""
        return None if self.stage is None else self.stage.ref

    def _before(self) -> tuple[list[float], list[float] | None, float]:
        """What the step's bookkeeping needs from before it: F_ent, the expected gap, rows."""
        return self._f_ent, self.rule.expected_gap(), self.rule.rows

    def _finish(
        self,
        rows: int,
        stage: Standardizer | None,
        stepped: Stepped,
        before: tuple[list[float], list[float] | None, float],
        given: scores.Scores | None = None,
    ) -> StepReport:
        """After the rule's step: commit the pipeline, score, detect, test convergence, report."""
        f_prev, expected, rows_before = before
        rule = self.rule
        self.stage = stage
        c = self.counters
        c.step, c.rows_seen, c.last_rows = c.step + 1, c.rows_seen + rows, rows
        self.spread.observe(stepped.squares if rows_before else None, self._scores.host, rows)
        s = self._scores = given or self._score(stepped.batch_elbo, stepped.row_var, stepped.host)
        (batch, row_var), self._f_ent = s.host[:, 1:3].T.tolist(), s.f_ent.tolist()
        gaps = [b - f for b, f in zip(batch, f_prev, strict=True)]
        alarmed = False
        row_var = None if stepped.row_var is None else row_var
        if self.detector is not None:
            armed = expected is not None
            gap = gaps if expected is None else [g - e for g, e in zip(gaps, expected, strict=True)]
            alarmed, _ = self.detector.observe(gap, row_var, rows, armed)
            if rule.adjust(self.detector.alarm_length):
                c.restarts += 1
                self.convergence.restart()
        self.convergence.update(
            gaps, row_var, rows, rows_before, rule.rows, self._f_ent, rule.trusted, not alarmed
        )
        self._report = self._make_report()
        return self._report

    def _score(
        self, batch: Array | None, row_var: Array | None = None, host: np.ndarray | None = None
    ) -> scores.Scores:
        """The scores of the rule's current models (host: their to_host array, if made)."""
        if host is None:
            tau2, sigma2 = self.rule.variances()
            host = scores.to_host(self.arrays, tau2, sigma2, batch, row_var)
        return scores.scored(self.spec, self.dim, host, self._mask)

    def _make_report(self) -> StepReport:
        s, flags = self._scores, self.spread.withheld(self.convergence.flags)
        models = scores.model_scores(self.spec, s, flags)
        c, d = self.counters, self.detector
        # hysteresis while the scores settle; once every candidate has converged, the lowest BIC
        margin = 0.0 if all(flags) else self.spec.switch_margin
        c.pick = scores.pick(s.bic, c.pick, margin)
        alarmed, alarms = (False, 0) if d is None else (d.alarmed, d.alarms)
        # by position: a third cheaper than by keyword, on every step
        training = Training(alarmed, self.rule.step_size, alarms, c.restarts,
                            self.convergence.batches)  # fmt: skip
        pick = models[c.pick].latent_dim
        return StepReport(c.step, c.last_rows, c.rows_seen, pick, models, self.dim, training)

    # ----------------------------------------------------------------------------- reading

    def report(self) -> StepReport:
        """The report of the last step (or of the initial models): no re-scoring."""
        return self._report

    @property
    def best_latent_dim(self) -> int:
        """The held pick: the lowest entropy BIC, switched to only once it beats the previous
        pick's BIC by more than spec.switch_margin."""
        return self._report.best_latent_dim

    def _index(self, latent_dim: int | None) -> tuple[int, int]:
        h = self.best_latent_dim if latent_dim is None else latent_dim
        try:
            return self.spec.latent_dims.index(h), h
        except ValueError:
            raise InvalidConfigError(
                f"latent_dim: expected one of {list(self.spec.latent_dims)}, got {h}"
            ) from None

    @torch.no_grad()
    def encode(self, X: np.ndarray | torch.Tensor, latent_dim: int | None = None) -> np.ndarray:
        """Posterior means nu = V x + b (B, H) of the named model (None: the pick) for raw rows
        X (standardized first when the learner standardizes)."""
        i, h = self._index(latent_dim)
        _, _, V, b = self._model(i, h)
        return self._finite_result(self._pre(X) @ V.T + b, "projection")

    @torch.no_grad()
    def reconstruct(
        self, X: np.ndarray | torch.Tensor, latent_dim: int | None = None
    ) -> np.ndarray:
        """Decoder means W nu + mu (B, D) of the posterior means of the named model, in the
        units of X (raw rows in, raw rows out when the learner standardizes)."""
        i, h = self._index(latent_dim)
        W, mu, V, b = self._model(i, h)
        out = (self._pre(X) @ V.T + b) @ W.T + mu
        if self.scaler is not None:
            out = self.scaler.inverse(out)
        return self._finite_result(out, "reconstruction")

    def _model(self, i: int, h: int) -> tuple[Array, ...]:
        """Candidate i's W, mu, V, b as float64 arrays of the rule's library."""
        parts = self.rule.model(i, h)
        return tuple(p.detach().double() if isinstance(p, torch.Tensor) else p for p in parts)

    def _pre(self, X: np.ndarray | torch.Tensor) -> Array:
        x = self.arrays.batch(X, self.dim)
        return x if self.scaler is None else self.scaler.transform(x)

    def _finite_result(self, out: Array, what: str) -> np.ndarray:
        """out (B, K) as float32 on the host, or InvalidBatchError naming the first row whose
        values overflow float32 (the data's own precision)."""
        with np.errstate(over="ignore"):
            host = self.arrays.host(out).astype(np.float32)
        finite = np.isfinite(host).all(1)
        if not finite.all():
            raise InvalidBatchError(
                f"row {int(np.argmin(finite))}: the {what} overflows float32; "
                "expected values of the scale the stream was trained on"
            )
        return host

    @torch.no_grad()
    def params(self, latent_dim: int | None = None) -> ModelParams:
        """The parameters (W, mu, sigma^2, V, b, tau^2) of the named model (None: the pick);
        with standardize, those of the model of the z-scores, with the scaler's mean and scale."""
        i, h = self._index(latent_dim)
        W, mu, V, b = (self.arrays.host(p) for p in self._model(i, h))
        scaler = self.scaler
        return ModelParams(
            latent_dim=h,
            dim=self.dim,
            W=W.tolist(),
            mu=mu.tolist(),
            sigma2=float(self._scores.host[i, 0]),
            V=V.tolist(),
            b=b.tolist(),
            tau2=self._scores.host[i, scores.TAU2 : scores.TAU2 + h].tolist(),
            standardized=scaler is not None,
            scaler_mean=None if scaler is None else self.arrays.host(scaler.mean).tolist(),
            scaler_scale=None if scaler is None else self.arrays.host(scaler.scale).tolist(),
        )

    def resident_bytes(self) -> int:
        """Bytes the learner's state holds (what the memory budget reserves per stream)."""
        return resident_bytes(self.spec, self.dim)

    # ----------------------------------------------------------------------------- persistence

    def state_bytes(self) -> bytes:
        """The whole state; from_bytes continues bit-identically."""
        c = self.counters
        state = {
            "version": STATE_VERSION,
            "dim": self.dim,
            "spec": self.spec.to_record(),
            "rule": self.rule.state_dict(),
            "scaler": None if self.stage is None else self.stage.state(),
            "detector": None if self.detector is None else self.detector.state(),
            "convergence": self.convergence.state(),
            "spread": self.spread.state(),
            "counters": [c.step, c.rows_seen, c.last_rows, c.pick, c.restarts],
            "batch_elbo": self._scores.host[:, 1].tolist(),
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, device: str | None = None) -> "Learner":
        """Rebuild a learner from state_bytes() (or a LinearVAEBank/AdaptiveBank state of
        earlier releases, migrated: streaming/legacy.py). device overrides the stored one."""
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        version = state.get("version")
        if "bank" in state or version in legacy.VERSIONS:
            state = legacy.migrate(state)
        elif version != STATE_VERSION:
            raise InvalidConfigError(
                f"state: expected version {STATE_VERSION} (or {legacy.VERSIONS}), got {version}"
            )
        spec = StreamSpec.from_record(state["spec"])
        if device is not None:
            spec = spec.replace(device=device)
        learner = cls(int(state["dim"]), spec)
        learner._load(state)
        return learner

    def _load(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state["rule"])
        if state["scaler"] is not None:
            self.stage = Standardizer.from_state(self.arrays, state["scaler"])
        if self.detector is not None and state["detector"] is not None:
            self.detector.load(state["detector"])
        self.convergence.load(state["convergence"])
        self.spread.load(state.get("spread"))
        c = self.counters
        c.step, c.rows_seen, c.last_rows, c.pick, c.restarts = (int(v) for v in state["counters"])
        self._scores = self._score(self.arrays.asarray(state["batch_elbo"]))
        self._f_ent = self._scores.f_ent.tolist()
        self._report = self._make_report()


def resident_bytes(spec: StreamSpec, dim: int) -> int:
    """Bytes a learner with these settings holds on data of dimension `dim`: its rule's state,
    the scaler's and the kept report's numbers (the memory budget reserves this per stream)."""
    m, hmax = len(spec.latent_dims), max(spec.latent_dims)
    scaler = 32 * dim if spec.standardize else 0  # two scalers: the running one, the rule's
    return rules.resident_bytes(spec, dim) + scaler + 8 * m * (hmax + 3) + 2048


def learn_together(
    pairs: Sequence[tuple[Learner, np.ndarray | torch.Tensor]],
) -> list[StepReport | InvalidBatchError]:
    """One batch for each of several learners: the same as learn_many on each in turn (to the
    bit: the same operations on a stacked axis), with the steps of the learners that allow it
    taken in one computation: the subspace rule keeping the whole covariance (D <= K + 8) on
    the CPU, the same D and candidates, batches of as many rows. For many small streams this
    pays numpy's per-operation cost once for all. -> each pair's report, or the
    InvalidBatchError learn_many would have raised (its learner unchanged)."""
    out: list[StepReport | InvalidBatchError | None] = [None] * len(pairs)
    groups: dict[tuple[Any, ...], list[tuple[int, Array, Remap | None, Standardizer | None]]] = {}
    seen: set[int] = set()
    later = []  # a learner's second batch waits for this round
    for i, (learner, X) in enumerate(pairs):
        if id(learner) in seen:
            later.append(i)
            continue
        seen.add(id(learner))
        rule = learner.rule
        if not (isinstance(rule, SubspaceRule) and rule.stackable):
            out[i] = _learned(learner, X)
            continue
        try:
            x, remap, stage = learner._prepare(X)
        except InvalidBatchError as exc:
            out[i] = exc
            continue
        key = (learner.dim, learner.spec.latent_dims, x.shape[0])
        groups.setdefault(key, []).append((i, x, remap, stage))
    for members in groups.values():
        learners = [pairs[i][0] for i, *_ in members]
        befores = [learner._before() for learner in learners]
        rules = [cast(SubspaceRule, learner.rule) for learner in learners]
        steps = SubspaceRule.step_many(rules, [m[1] for m in members], [m[2] for m in members])
        hosts = np.stack([cast(np.ndarray, stepped.host) for stepped in steps])
        together = scores.scored(learners[0].spec, learners[0].dim, hosts, learners[0]._mask)
        for j, ((i, x, _, stage), learner, stepped, before) in enumerate(
            zip(members, learners, steps, befores, strict=True)
        ):
            given = scores.one(together, j)
            out[i] = stepped.refused or learner._finish(x.shape[0], stage, stepped, before, given)
    if later:
        for i, result in zip(later, learn_together([pairs[i] for i in later]), strict=True):
            out[i] = result
    return [r for r in out if r is not None]


def _learned(learner: Learner, X: np.ndarray | torch.Tensor) -> StepReport | InvalidBatchError:
    try:
        return learner.learn_many(X)
    except InvalidBatchError as exc:
        return exc
