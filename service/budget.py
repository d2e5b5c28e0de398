"""The memory budget (DIMWATCH_MEMORY_BUDGET_MB): every stream's learner and every admitted
batch is counted against it before anything is allocated, so that no request can take the
process (and every stream in it) down.

The figures are the core's own (streaming/learner.py resident_bytes, streaming/rules.py
step_bytes): a stream's resident bytes (its update rule's state: the tracked subspace, or the
stacked parameters with their gradients and moments) are reserved when its dimension is known (at
creation with `dim`, else by its first batch) and released when it is deleted; a batch's bytes
(its step's working memory, its decoded rows and the request body) from its admission to the end
of its step. Everything runs on the event loop: no lock.
"""

from service.errors import ApiError
from streaming import learner, rules
from streaming.spec import StreamSpec

MB = 2**20


def bank_bytes(spec: StreamSpec, dim: int) -> int:
    """A stream's resident bytes on data of dimension `dim`."""
    return learner.resident_bytes(spec, dim)


def batch_bytes(spec: StreamSpec, dim: int, rows: int) -> int:
    """Memory a batch of `rows` rows holds from its admission to the end of its step."""
    return rules.step_bytes(spec, dim, rows)


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
            f"{_mb(self.resident)} is held by stream learners and {_mb(self.transient)} by batches "
            f"in progress, of the memory budget {_mb(self.limit)} (DIMWATCH_MEMORY_BUDGET_MB)"
        )

    def reserve_stream(self, name: str, need: int) -> None:
        """Reserve a new bank's bytes; 422 limit_exceeded when they do not fit."""
        if self.resident + self.transient + need > self.limit:
            raise ApiError(
                422,
                "limit_exceeded",
                f"stream {name!r} needs about {_mb(need)} for its learner's state; "
                f"{self._held()}; use fewer or smaller latent sizes, or delete streams",
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
                f"memory{' and the learner' if bank else ''}); {self._held()}; send fewer rows",
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
