"""Update rules: how a learner's candidates move with each batch (as torch.optim's optimizers
are to a module). The learner (streaming/learner.py) owns the data path, the scoring and the
selection; a rule owns its parameters and their update, and answers in a few numbers per
candidate. Two rules implement the protocol:

    SubspaceRule   (optimizer "subspace", the default): the exact p-PCA fit of every candidate
                   from one tracked principal subspace (streaming/subspace.py)
    GradientRule   (optimizer "adam" / "sgd", streaming/gradient.py): torch.optim steps on the
                   batch ELBO of stacked linear VAEs, the paper's recipe

A change detector (streaming/control.py) drives a rule through `adjust`, as a learning-rate
scheduler drives an optimizer: it does not wrap it.
"""

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from streaming import scores, subspace
from streaming.arrays import Array, Arrays
from streaming.errors import InvalidBatchError
from streaming.preprocess import Remap
from streaming.spec import StreamSpec

CONFIRM_BATCHES = 3  # alarmed batches before the subspace rule forgets what it learnt


@dataclass(slots=True)
class Stepped:
    """What a rule says about the batch it learned (before its step changed anything)."""

    batch_elbo: Array  # (M,) the batch's ELBO per row under each candidate; NaN before any
    row_var: Array | None  # (M,) variance over the batch's rows of their log-likelihood
    host: np.ndarray | None = None  # scores.to_host's array after the step, if the rule made it
    refused: InvalidBatchError | None = None  # (step_many) why this stream's step was refused
    squares: Array | None = None  # (Hmax,) sum over the batch's rows of their squared
    # coordinates along each latent of the models before (streaming/spread.py); None: none


class UpdateRule(Protocol):
    """One stream's candidates (M of them, padded to Hmax latents) and how they learn."""

    trusted: bool  # its entropy ELBO reaches the exact optimum: `converged` can be reported
    remaps: bool  # it re-expresses its state when a standardized stream's scaler moves
    arrays: Arrays  # the array library it computes with (numpy or torch, one device)

    def step(self, x: Array, remap: Remap | None = None) -> Stepped:
        """Learn the batch x (B, D) (validated, finite; float64 arrays of its library, or
        float32 tensors for the gradient rules); InvalidBatchError, with nothing changed, when
        the result would not be finite. remap (g, h) (only where `remaps`): after the batch's
        ELBO under the models before, the state and x are re-expressed as z g + h before the
        update (streaming/preprocess.py)."""
        ...

    def variances(self) -> tuple[Array, Array]:
        """(tau^2 (M, Hmax), sigma^2 (M,)): what the entropy ELBO reads; 1 on padded tau^2."""
        ...

    def model(self, i: int, h: int) -> tuple[Array, ...]:
        """Candidate i (H = h): decoder W (D, H), mu (D,), encoder V (H, D), b (H,)."""
        ...

    def adjust(self, alarm_length: int) -> bool:
        """The change detector's verdict after a step: the batches the current alarm has
        lasted (0: no change seen). True when the rule restarted its training."""
        ...

    @property
    def rows(self) -> float:
        """Rows the current estimate rests on (since the start or the last restart)."""
        ...

    @property
    def step_size(self) -> float:
        """The weight of the last batch (subspace), or the next step's learning rate."""
        ...

    def expected_gap(self) -> list[float] | None:
        """(M) the batch ELBO minus the entropy ELBO a batch of unchanged data gives on
        average (the detector's zero); None while the estimate is too young to tell a change
        from its own youth."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def resident_bytes(self) -> int:
        """Bytes its state holds."""
        ...


def resident_bytes(spec: StreamSpec, dim: int) -> int:
    """Bytes a rule's state holds for these settings on data of dimension `dim`."""
    m, hmax = len(spec.latent_dims), max(spec.latent_dims)
    if spec.gradient:  # parameters, gradients and, for Adam, two moments (float32)
        p = m * (2 * dim * hmax + dim + 2 * hmax + 1)
        return 4 * p * (4 if spec.optimizer == "adam" else 2)
    return subspace.resident_bytes(dim, subspace.directions(dim, spec.latent_dims))


def step_bytes(spec: StreamSpec, dim: int, rows: int) -> int:
    """Working memory of one step of `rows` rows, or of a snapshot (a copy of the state, then
    its bytes), whichever is larger, plus the decoded rows and the request body (bytes)."""
    m, hmax = len(spec.latent_dims), max(spec.latent_dims)
    body = 8 * rows * dim
    if spec.gradient:
        p = m * (2 * dim * hmax + dim + 2 * hmax + 1)
        need = 3 * m * rows * dim + 4 * m * rows * hmax + 4 * p + m * hmax * hmax
        if spec.estimator == "mc":
            need += 7 * spec.mc_samples * m * rows * hmax  # eps, d and autograd buffers
        return 4 * max(need, 6 * p) + body
    k = subspace.directions(dim, spec.latent_dims)
    state = subspace.resident_bytes(dim, k) // 8
    # rows in float64, x U and the centred copies, the new state, the widening's Gram, basis
    # and small eigenproblem, the rows' log-likelihoods
    need = 3 * (rows + 1) * (dim + k) + state + (rows + 1) ** 2 + 2 * dim * k + 4 * k * k
    need += 2 * m * rows + (rows + 1) * dim
    return 8 * max(need, 2 * state) + body


class SubspaceRule:
    """Optimizer "subspace": see streaming/subspace.py. Trusted for convergence."""

    trusted = True
    remaps = True

    def __init__(self, dim: int, spec: StreamSpec, device: torch.device) -> None:
        self.arrays = ar = Arrays.fastest(device)
        dims = spec.latent_dims
        self.dim, self.latent_dims = dim, dims
        hmax = max(dims)
        mask = (np.arange(hmax)[None, :] < np.array(dims)[:, None]) * 1.0  # (M, Hmax)
        self._top_of = ar.asarray(np.array(dims) - 1, "int64")
        # (1, M): the shape of one stream's (S, M), which numpy divides without broadcasting
        self._noise_dims, self._mask = ar.asarray(dim - np.array(dims))[None], ar.asarray(mask)
        # P of each candidate, the largest last
        self._params = [h * dim - h * (h - 1) / 2 + dim + 1 for h in dims]
        self._params.append(max(self._params))
        self.state = subspace.new(ar, dim, subspace.directions(dim, dims), spec.seed)
        self._fit = self._fitted(self.state)
        self._last_rows = 0

    def _fitted(self, s: subspace.Subspace) -> subspace.Fit:
        return subspace.fit(self.arrays, s, self._top_of, self._noise_dims, self._mask)

    @property
    def stackable(self) -> bool:
        """Whether step_many may step it with others (the whole covariance, numpy)."""
        return self.state.full and self.arrays.numpy

    def step(self, x: Array, remap: Remap | None = None) -> Stepped:
        return self.step_many([self], [x], [remap])[0]

    @staticmethod
    def step_many(
        rules: "list[SubspaceRule]", xs: list[Array], remaps: list[Remap | None] | None = None
    ) -> list[Stepped]:
        """One step of each rule with its batch (and remap, as `step`), in one computation: the
        rules share their settings and D and (more than one) are stackable; the batches have as
        many rows. A rule whose result would not be finite is left unchanged and gets
        InvalidBatchError (raised when there is one rule)."""
        first, one = rules[0], len(rules) == 1
        ar = first.arrays
        s = first.state if one else subspace.stacked(ar, [r.state for r in rules])
        fit = first._fit if one else _stacked_fit(ar, [r._fit for r in rules])
        x = xs[0][None] if one else ar.xp.stack(xs)  # (S, B, D)
        rows = x.shape[1]
        # a row infinitely unlikely under a model (see _measured), an eigen-decomposition that
        # does not converge (NaN): checked below
        with np.errstate(all="ignore"):
            xu = subspace.project(s, x)
            ll, squares = subspace.loglik(ar, s, fit, x, xu)  # (S, B, M) under the models before
            row_var, elbo = ar.var_mean(ll) if rows > 1 else (None, ll[:, 0])  # (S, M)
            if remaps is not None and any(m is not None for m in remaps):
                g, h = _stacked_remap(ar, remaps, x.shape[2])
                s = subspace.reexpressed(ar, s, g, h)
                x = x * g[:, None] + h[:, None]
                xu = subspace.project(s, x)
            try:
                new = subspace.updated(ar, s, x, xu)
            except (np.linalg.LinAlgError, torch.linalg.LinAlgError) as exc:  # overflowed entries
                raise not_finite(xs[0]) from exc
            squares = ar.sum_rows(squares)  # (S, Hmax)
            fitted = first._fitted(new)
            # one copy to the host: the scores, and log det C (every eigenvalue and T) to check
            host = scores.to_host(ar, fitted.tau2, fitted.sigma2, elbo, row_var, fitted.const)
        # one sum of every batch ELBO, row variance and log det C, finite when every term is;
        # else (or before a stream's first batch) the terms one by one: a batch not measured, a
        # step refused (log det C)
        checked = host[:, :, 1:4] if row_var is not None else host[:, :, 1:4:2]
        finite = [True] * len(rules)
        if not math.isfinite(np.add.reduce(checked, None)) or min(s.n.tolist()) == 0:
            elbo, row_var = _measured(ar, s.n, elbo, row_var)
            host = scores.to_host(ar, fitted.tau2, fitted.sigma2, elbo, row_var, fitted.const)
            finite = np.isfinite(np.add.reduce(host[:, :, scores.TAU2 - 1], 1)).tolist()
        out = []
        states = [new] if one else subspace.split(new)
        for i, (rule, state) in enumerate(zip(rules, states, strict=True)):
            if not finite[i]:
                if one:
                    raise not_finite(xs[0])
                out.append(Stepped(elbo[i], None, host[i], not_finite(xs[i])))
                continue
            rule.state, rule._fit, rule._last_rows = state, _one_fit(fitted, i), rows
            variance = None if row_var is None else row_var[i]
            out.append(Stepped(elbo[i], variance, host[i], None, squares[i]))
        return out

    def variances(self) -> tuple[Array, Array]:
        return self._fit.tau2[0], self._fit.sigma2[0]

    def model(self, i: int, h: int) -> tuple[Array, ...]:
        return subspace.decoder(self.arrays, self.state, self._fit, i, h)

    def adjust(self, alarm_length: int) -> bool:
        """Restart the fit once an alarm has lasted CONFIRM_BATCHES batches: a change keeps the
        gap away from its level, a burst of outlying rows of a heavy-tailed stream does not
        (an alarm of one batch, then quiet: raw and standardized real data)."""
        if alarm_length == CONFIRM_BATCHES:
            self.state = subspace.restarted(self.state)
            return True
        return False

    @property
    def rows(self) -> float:
        return float(self.state.n[0])

    @property
    def step_size(self) -> float:
        n = self.rows
        return self._last_rows / n if n > 0 else 1.0

    def expected_gap(self) -> list[float] | None:
        """Out of sample, a row's log-likelihood under a fit to n rows falls short of the fit's
        in-sample value by about P / n (P = H D - H (H - 1) / 2 + D + 1 parameters: half for
        the fit's optimism, half for its error on new rows). None until n reaches the largest
        candidate's P: before, the fit's youth dominates the gap."""
        n = self.rows
        if n < self._params[-1]:
            return None
        return [-p / n for p in self._params[:-1]]

    def state_dict(self) -> dict[str, Any]:
        s, tensor = self.state, self.arrays.tensor
        return {
            "U": tensor(s.U[0]),
            "M": tensor(s.M[0]),
            "G": None if s.G is None else tensor(s.G[0]),
            "c": tensor(s.c[0]),
            "T": tensor(s.T[0]),
            "d": None if s.d is None else tensor(s.d[0]),
            "n": self.rows,
            "since": float(s.since[0]),
            "last_rows": self._last_rows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ar = self.arrays
        G = state["G"]
        s = subspace.Subspace(
            ar.asarray(state["U"])[None],
            ar.asarray(state["M"])[None],
            None if G is None else ar.asarray(G, "float32")[None],
            ar.asarray(state["c"])[None],
            ar.asarray(state["T"]).reshape(1),
            np.array([float(state["n"])]),
            np.array([float(state["since"])]),
            self.state.evals,
            self.state.R,
            None,
        )
        if G is not None:  # C's diagonal (saved before it was kept: spread as the fit has it)
            d = state.get("d")
            s.d = subspace.diagonal_of(ar, s) if d is None else ar.asarray(d)[None]
        self.state = subspace._eig(ar, s)
        self._fit = self._fitted(self.state)
        self._last_rows = int(state["last_rows"])

    def resident_bytes(self) -> int:
        return subspace.resident_bytes(*self.state.U.shape[1:])


def _measured(
    ar: Arrays, n: np.ndarray, elbo: Array, row_var: Array | None
) -> tuple[Array, Array | None]:
    """The batch ELBOs and row variances (S, M) of the streams with n rows before the batch,
    NaN where not measured: before a stream's first batch, or where a row's log-likelihood
    passes float64 (a fit to rows that were all alike)."""
    if min(n.tolist()) > 0 and ar.finite(elbo if row_var is None else elbo + row_var):
        return elbo, row_var
    unmeasured = ar.asarray(n == 0, "bool")[:, None] | ~ar.xp.isfinite(elbo)
    elbo = ar.xp.where(unmeasured, np.nan, elbo)
    row_var = None if row_var is None else ar.xp.where(unmeasured, np.nan, row_var)
    return elbo, row_var


def _stacked_remap(ar: Arrays, remaps: list[Remap | None], dim: int) -> tuple[Array, Array]:
    """(g, h) (S, D) of every stream's remap (none: the identity, g = 1 and h = 0)."""
    zero = ar.zeros(dim)
    one = zero + 1.0
    pairs = [(one, zero) if m is None else m for m in remaps]
    return ar.xp.stack([g for g, _ in pairs]), ar.xp.stack([h for _, h in pairs])


def _stacked_fit(ar: Arrays, fits: list[subspace.Fit]) -> subspace.Fit:
    return subspace.Fit(*(ar.cat([getattr(f, k) for f in fits]) for k in subspace.FIT_FIELDS))


def _one_fit(f: subspace.Fit, i: int) -> subspace.Fit:
    if f.ell.shape[0] == 1:
        return f
    return subspace.Fit(*(getattr(f, k)[i : i + 1] for k in subspace.FIT_FIELDS))


def not_finite(x: Array) -> InvalidBatchError:
    peak = float(abs(x).max())
    return InvalidBatchError(
        f"this batch would make the model non-finite (largest |value| {peak:.3g}: its squares "
        "overflow the arithmetic, or the step size is too large); nothing was applied, "
        "rescale the data (or lower learning_rate)"
    )
