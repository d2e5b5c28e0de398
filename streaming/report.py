"""Plain results of the core: what one step says about every candidate (no tensors)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, init=False)  # __init__ below
class ModelScore:
    """One candidate latent size after a step. Higher ELBO is better; lower BIC is better."""

    latent_dim: int  # H
    entropy_elbo: float  # F_ent, Corollary 1 (Eq. 20), per data point, from current parameters
    bic: float  # P log N - 2 N F_ent (Eq. 27)
    batch_elbo: float | None  # ELBO estimate on the last batch (before its step); None before any
    batch_bic: (
        float | None
    )  # the same BIC with batch_elbo in place of F_ent (the paper's noisy one)
    sigma2: float  # decoder variance sigma^2
    tau2: tuple[float, ...]  # encoder variances tau_h^2, h = 1..H
    encoder_entropies: tuple[float, ...]  # H_h = 1/2 log(2 pi e tau_h^2) (Eq. 24)
    collapsed: tuple[bool, ...]  # H_h > collapse threshold
    active_latents: int  # H - number collapsed
    s_reg: float  # sum_h log tau_h (Eq. 23), <= 0 at stationary points
    s_rec: float  # -(D/2) log(2 pi e sigma^2)
    converged: bool = False  # F_ent has settled (streaming/convergence.py says how it is decided)

    def __init__(
        self,
        latent_dim: int,
        entropy_elbo: float,
        bic: float,
        batch_elbo: float | None,
        batch_bic: float | None,
        sigma2: float,
        tau2: tuple[float, ...],
        encoder_entropies: tuple[float, ...],
        collapsed: tuple[bool, ...],
        active_latents: int,
        s_reg: float,
        s_rec: float,
        converged: bool = False,
    ) -> None:
        # every field at once: the generated __init__ of a frozen dataclass sets them one by
        # one through object.__setattr__, at twice the cost (M of these per step of a stream)
        object.__setattr__(self, "__dict__", {
            "latent_dim": latent_dim, "entropy_elbo": entropy_elbo, "bic": bic,
            "batch_elbo": batch_elbo, "batch_bic": batch_bic, "sigma2": sigma2, "tau2": tau2,
            "encoder_entropies": encoder_entropies, "collapsed": collapsed,
            "active_latents": active_latents, "s_reg": s_reg, "s_rec": s_rec,
            "converged": converged,
        })  # fmt: skip


@dataclass(frozen=True)
class Training:
    """Where the online training stands: the change detector and the step size."""

    alarmed: bool = False  # the detector sees a change right now
    step_size: float = 0.0  # step size of the next step (eta, or the optimizer's learning rate)
    alarms: int = 0  # alarms raised (each run of alarmed batches counts once)
    restarts: int = 0  # times training was restarted (step-size schedule, optimizer moments)
    batches_since_restart: int = 0  # batches since the start or the last restart


@dataclass(frozen=True)
class PathPiece:
    """The pick the BIC makes for N in [n_from, n_to) at the current F_ent (n_to None: no end)."""

    latent_dim: int
    n_from: float
    n_to: float | None


@dataclass(frozen=True)
class StepReport:
    """The bank's state after its last step: every candidate's scores and the selection."""

    step: int  # optimizer steps applied so far (= batches learned)
    rows: int  # rows in the last batch (0 before any)
    rows_seen: int  # rows learned so far
    best_latent_dim: int  # H with the lowest entropy BIC
    models: tuple[ModelScore, ...]  # in the order of BankConfig.latent_dims
    dim: int = 0  # D (0: unknown); the BIC's parameter count is H D + 1
    training: Training = field(default_factory=Training)

    @property
    def converged(self) -> bool:
        """Every candidate converged: the pick is final for the data seen, not provisional."""
        return all(s.converged for s in self.models)

    @property
    def margin(self) -> float | None:
        """The runner-up's BIC minus the pick's (None with one candidate). Below 0 while the
        pick's hysteresis holds it against an H that is better by less than switch_margin."""
        if len(self.models) < 2:
            return None
        pick = next(s for s in self.models if s.latent_dim == self.best_latent_dim)
        return min(s.bic for s in self.models if s is not pick) - pick.bic

    @property
    def path(self) -> tuple["PathPiece", ...]:
        """Which H the BIC would pick for each N >= 3 at the current entropy ELBOs.

        BIC(H; N) / N = (H D + 1) u - 2 F_ent(H) with u = log(N) / N, which falls as N grows
        (N >= 3): each H wins on one interval of u, the lower envelope of these lines, so on one
        interval of N. Exact, no data. Ties go to the smaller H.
        """
        lines = sorted((s.latent_dim * self.dim + 1, -2.0 * s.entropy_elbo, s.latent_dim)
                       for s in self.models)  # fmt: skip
        pieces: list[PathPiece] = []
        u = U_MAX  # walk from N = 3 (largest u) towards N = infinity (u -> 0)
        current = min(lines, key=lambda line: (line[0] * u + line[1], line[2]))
        while True:
            # the next line to take over as u decreases: a larger slope, crossing soonest
            crossings = [((current[1] - line[1]) / (line[0] - current[0]), line)
                         for line in lines if line[0] > current[0]]  # fmt: skip
            crossings = [(cu, line) for cu, line in crossings if cu < u]
            if not crossings:
                pieces.append(PathPiece(current[2], n_of_u(u), None))
                return tuple(pieces)
            cu, line = max(crossings, key=lambda c: (c[0], c[1][0]))
            if cu <= 0:  # the crossing is beyond N = infinity
                pieces.append(PathPiece(current[2], n_of_u(u), None))
                return tuple(pieces)
            pieces.append(PathPiece(current[2], n_of_u(u), n_of_u(cu)))
            current, u = line, cu


U_MAX = math.log(3.0) / 3.0  # u = log(N) / N at N = 3


def n_of_u(u: float) -> float:
    """The N >= 3 with log(N) / N = u, for 0 < u <= log(3) / 3.

    L = log N solves g(L) = log(L) - L - log(u) = 0 on L > 1 (the lower branch of Lambert's W).
    g is concave and decreasing there, so Newton's method from a point right of the root walks
    down to it monotonically, quadratically at the end: a handful of steps to double precision.
    The root lies left of -2 log(u), since log(L) < L / 2 for every L."""
    if u >= U_MAX:
        return 3.0
    target = math.log(u)
    L = -2.0 * target
    for _ in range(100):
        step = (math.log(L) - L - target) / (1.0 / L - 1.0)
        if not step > 0.0:  # at the root to rounding (the walk only goes down)
            break
        L -= step
        if step <= 4e-16 * L:
            break
    return math.exp(min(L, 700.0))


@dataclass(frozen=True)
class ModelParams:
    """Parameters of one linear VAE (docs/math.md notation), as nested float lists."""

    latent_dim: int  # H
    dim: int  # D
    W: list[list[float]]  # decoder weights, D x H
    mu: list[float]  # decoder bias, D
    sigma2: float  # decoder variance
    V: list[list[float]]  # encoder weights, H x D
    b: list[float]  # encoder bias, H
    tau2: list[float]  # encoder variances, H
    standardized: bool = False  # True: the model of the z-scores (x - scaler_mean) / scaler_scale
    scaler_mean: list[float] | None = None  # D, the running column means (standardize only)
    scaler_scale: list[float] | None = None  # D, the running column standard deviations


# --- what embedding users look at: the fitted covariance's spectrum, from the variances alone --


def effective_rank(sigma2: float, tau2: Sequence[float], dim: int) -> float:
    """exp of the entropy of the normalised eigenvalues p_i = l_i / sum l of C = W W^T +
    sigma^2 I (Roy and Vetterli's effective rank; RankMe's formula applied to the fitted
    covariance), between 1 and D. The eigenvalues come from the model's own variances:
    sigma^2 / tau_h^2 for h <= H and sigma^2 for the other D - H, exact where the variances are
    stationary (tau_h^2 = sigma^2 / l_h, docs/math.md, Corollary 2); no data, no W. O(H): the
    D - H equal tail eigenvalues enter as one term."""
    top = [sigma2 / t for t in tau2]
    tail = dim - len(top)
    total = sum(top) + tail * sigma2
    entropy = -sum(p * math.log(p) for p in (lam / total for lam in top) if p > 0)
    if tail > 0 and sigma2 > 0:
        p = sigma2 / total
        entropy -= tail * p * math.log(p)
    return math.exp(entropy)


def variance_share(sigma2: float, tau2: Sequence[float], dim: int) -> float:
    """The share of C's total variance (its trace) in the top H directions, between 0 and 1."""
    top = sum(sigma2 / t for t in tau2)
    return top / (top + (dim - len(tau2)) * sigma2)
