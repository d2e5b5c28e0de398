"""Configuration of a bank of linear VAEs (one per candidate latent size)."""

from dataclasses import dataclass
from typing import Literal

from streaming.errors import InvalidConfigError

Estimator = Literal["analytic", "mc"]
OptimizerName = Literal["natural", "adam", "sgd"]
MAX_LEARNING_RATE = 1.0  # larger Adam/SGD steps overflow float32 within a few batches


@dataclass(frozen=True)
class BankConfig:
    """Hyper-parameters of one stream's bank. Stored unchanged; validated on construction."""

    latent_dims: tuple[int, ...] = (2, 4, 6)  # candidate latent sizes H, distinct, 1 <= H < D
    learning_rate: float = 0.002  # adam/sgd step size (the paper's Adam lr); natural: unused
    estimator: Estimator = "analytic"  # gradient of the ELBO: closed form or Monte Carlo
    mc_samples: int = 100  # reparameterised samples per row for estimator="mc" (paper: 100)
    bic_n: int = 10  # N in BIC = P log N - 2 N F (docs/math.md: a stream setting, paper: 10)
    collapse_threshold: float = 1.0  # latent h is collapsed when its encoder entropy exceeds this
    seed: int = 0  # seeds initialisation and Monte Carlo sampling
    device: str = "auto"  # "cpu", "cuda", "cuda:N" or "auto" (cuda when available)
    optimizer: OptimizerName = "natural"  # the online step: natural (streaming/natural.py),
    # or "adam" / "sgd" on the ELBO's gradient at learning_rate (the paper: adam, 0.002)
    standardize: bool = False  # model the running z-scores of the columns (streaming/preprocess)

    def __post_init__(self) -> None:
        dims = tuple(int(h) for h in self.latent_dims)
        object.__setattr__(self, "latent_dims", dims)
        if not dims:
            raise InvalidConfigError("latent_dims: expected at least one latent size, got none")
        if any(h < 1 for h in dims):
            raise InvalidConfigError(f"latent_dims: expected sizes >= 1, got {list(dims)}")
        if len(set(dims)) != len(dims):
            raise InvalidConfigError(f"latent_dims: expected distinct sizes, got {list(dims)}")
        if not 0 < self.learning_rate <= MAX_LEARNING_RATE:
            raise InvalidConfigError(
                f"learning_rate: expected a number in (0, {MAX_LEARNING_RATE}], "
                f"got {self.learning_rate}"
            )
        if self.estimator not in ("analytic", "mc"):
            raise InvalidConfigError(
                f"estimator: expected 'analytic' or 'mc', got {self.estimator!r}"
            )
        if self.mc_samples < 1:
            raise InvalidConfigError(f"mc_samples: expected >= 1, got {self.mc_samples}")
        if self.bic_n < 1:
            raise InvalidConfigError(f"bic_n: expected >= 1, got {self.bic_n}")
        if self.optimizer not in ("natural", "adam", "sgd"):
            raise InvalidConfigError(
                f"optimizer: expected 'natural', 'adam' or 'sgd', got {self.optimizer!r}"
            )
        if self.optimizer == "natural" and self.estimator != "analytic":
            raise InvalidConfigError(
                "estimator: the natural optimizer uses the exact posterior (estimator "
                f"'analytic'); got {self.estimator!r}: use optimizer 'adam' for 'mc'"
            )

    def check_dim(self, dim: int) -> None:
        """Raise InvalidConfigError unless every candidate satisfies H < D = dim."""
        if dim < 2:
            raise InvalidConfigError(f"dim: expected a data dimension >= 2, got {dim}")
        too_big = [h for h in self.latent_dims if h >= dim]
        if too_big:
            fits = list(range(1, min(dim, 4)))
            raise InvalidConfigError(
                f"latent_dims: expected every H < D = {dim}, got {too_big} >= {dim}; use "
                f"latent_dims below {dim} (e.g. {fits}) or rows of more than {max(too_big)} "
                "columns"
            )
