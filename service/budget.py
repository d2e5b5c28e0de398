"""The memory budget (DIMWATCH_MEMORY_BUDGET_MB): every stream's bank and every admitted batch
is counted against it before anything is allocated, so that no request can take the process (and
every stream in it) down.

Estimates, in bytes of float32 (shapes as in streaming/bank.py: M candidates padded to Hmax
latents, data dimension D, batches of B rows, S Monte Carlo samples):

    P          = M (2 D Hmax + D + 2 Hmax + 1)       parameters W, V, mu, b, tau, sigma
    resident   = 4 P with Adam (parameters, gradients, two moments), 2 P with SGD, P + D with the
                 natural step (parameters, running mean)                     held while it lives
    step       = 3 M B D + 4 M B Hmax + 4 P          the step's temporaries (the natural step's
               + M Hmax^2                            new W, rotation and balance; Adam's grads)
               + 7 S M B Hmax (estimator mc)          eps, d and their autograd buffers (~6x
                                                      measured, one more for margin)
    snapshot   = 6 P                                  state_bytes(): a copy, then its bytes
    batch      = max(step, snapshot) + 2 B D          held from admission until it is applied:
                                                      the decoded rows and the request body

A stream's resident bytes are reserved when its dimension is known (at creation with `dim`, else
by its first batch) and released when it is deleted; a batch's bytes from its admission to the
end of its step. Everything runs on the event loop: no lock.
"""

from service.errors import ApiError
from streaming.config import BankConfig

MB = 2**20
FLOAT = 4


def parameters(config: BankConfig, dim: int) -> int:
    """P: the numbers of a bank's stacked parameters."""
    m, hmax = len(config.latent_dims), max(config.latent_dims)
    return m * (2 * dim * hmax + dim + 2 * hmax + 1)


def bank_bytes(config: BankConfig, dim: int) -> int:
    """Parameters, gradients and optimizer state of a bank on data of dimension `dim`."""
    p = parameters(config, dim)
    resident = {"adam": 4 * p, "sgd": 2 * p}.get(config.optimizer, p + dim)
    return resident * FLOAT


def batch_bytes(config: BankConfig, dim: int, rows: int) -> int:
    """Memory a batch of `rows` rows holds from its admission to the end of its step."""
    m, hmax, p = len(config.latent_dims), max(config.latent_dims), parameters(config, dim)
    step = 3 * m * rows * dim + 4 * m * rows * hmax + 4 * p + m * hmax * hmax
    if config.estimator == "mc":
        step += 7 * config.mc_samples * m * rows * hmax
    return (max(step, 6 * p) + 2 * rows * dim) * FLOAT


def _mb(n: int) -> str:
    return f"{n / MB:.1f} MB"


class Budget:
    """Bytes reserved by streams (resident) and by admitted batches (transient)."""

    def __init__(self, limit_mb: int) -> None:
        self.limit = limit_mb * MB
        self.resident = 0
        self.transient = 0

    def _held(self) -> str:
        return (
            f"{_mb(self.resident)} is held by stream banks and {_mb(self.transient)} by batches "
            f"in progress, of the memory budget {_mb(self.limit)} (DIMWATCH_MEMORY_BUDGET_MB)"
        )

    def reserve_stream(self, name: str, need: int) -> None:
        """Reserve a new bank's bytes; 422 limit_exceeded when they do not fit."""
        if self.resident + self.transient + need > self.limit:
            raise ApiError(
                422,
                "limit_exceeded",
                f"stream {name!r} needs about {_mb(need)} for its bank (parameters, gradients, "
                f"optimizer state); {self._held()}; use fewer or smaller latent sizes, or delete "
                "streams",
            )
        self.resident += need

    def admit_batch(self, name: str, bank: int, batch: int) -> None:
        """Reserve a batch's bytes (and its stream's first bank's): 413 limit_exceeded when it
        could never fit, 429 rate_limited (with Retry-After) when it fits once others finish."""
        need = bank + batch
        if self.resident + need > self.limit:
            raise ApiError(
                413,
                "limit_exceeded",
                f"this batch of stream {name!r} needs about {_mb(need)} (its step's working "
                f"memory{' and the bank' if bank else ''}); {self._held()}; send fewer rows",
            )
        if self.resident + self.transient + need > self.limit:
            raise ApiError(
                429,
                "rate_limited",
                f"this batch of stream {name!r} needs about {_mb(need)}; {self._held()}; retry "
                "when queued batches are done",
                headers={"Retry-After": "1"},
            )
        self.resident += bank
        self.transient += batch
