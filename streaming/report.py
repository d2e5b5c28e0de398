"""Plain results of the core: what one step says about every candidate (no tensors)."""

from dataclasses import dataclass


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class StepReport:
    """The bank's state after its last step: every candidate's scores and the selection."""

    step: int  # optimizer steps applied so far (= batches learned)
    rows: int  # rows in the last batch (0 before any)
    rows_seen: int  # rows learned so far
    best_latent_dim: int  # H with the lowest entropy BIC
    models: tuple[ModelScore, ...]  # in the order of BankConfig.latent_dims


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
