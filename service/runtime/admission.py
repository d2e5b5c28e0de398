"""Admission: the limits a batch meets before it is queued, written once for both modes.

- Queue depth: a stream holds at most `settings.queue_depth` batches admitted and not yet
  answered; past it, 429 rate_limited with Retry-After. In the cluster, the owning worker admits
  every batch of its streams (the API nodes ask it before they append to the log), so the depth
  is the stream's across every API node.
- Limits of a new stream (`check_limits`): the server's max_* settings, checked by whichever
  process creates it (the embedded server, or a cluster API node).
- Memory budget (service/budget.py): a stream's bank is reserved when its dimension is known,
  a batch's working memory from its admission to its answer; 413 when it could never fit, 429
  when it fits once others finish, 422 for a new stream's bank.

Everything runs on the event loop: no lock.
"""

from dataclasses import dataclass

from service.budget import Budget, bank_bytes, batch_bytes
from service.errors import ApiError
from service.metrics import Metrics
from service.schemas import StreamCreate
from service.settings import Settings
from streaming.learner import resolve_device
from streaming.spec import StreamSpec


@dataclass
class Slot:
    """What one stream holds: batches admitted and not answered, bytes reserved for its bank."""

    name: str
    spec: StreamSpec
    pending: int = 0
    resident: int = 0


@dataclass(frozen=True)
class Ticket:
    """One admitted batch: release it once, when it is answered."""

    slot: Slot
    reserved: int  # the batch's working memory


class Admission:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.queue_depth = settings.queue_depth
        self.budget = Budget(settings.memory_budget_mb)
        metrics.memory_budget.set(self.budget.limit)
        metrics.memory.labels("resident").set_function(lambda: self.budget.resident)
        metrics.memory.labels("transient").set_function(lambda: self.budget.transient)

    def new_stream(self, name: str, spec: StreamSpec, dim: int | None) -> Slot:
        """A new stream's slot, its learner reserved when dim is known; 422 when it does not
        fit."""
        need = 0 if dim is None else bank_bytes(spec, dim)
        self.budget.reserve_stream(name, need)
        return Slot(name, spec, resident=need)

    def restored(self, name: str, spec: StreamSpec, dim: int | None) -> Slot:
        """A stored stream's slot: its learner comes back, over budget or not."""
        need = 0 if dim is None else bank_bytes(spec, dim)
        self.budget.resident += need
        return Slot(name, spec, resident=need)

    def admit(self, slot: Slot, rows: int, dim: int) -> Ticket:
        """Admit a batch of `rows` x `dim`: 429 past the queue depth, 413/429 past the budget
        (its stream's first batch also reserves the bank)."""
        if slot.pending >= self.queue_depth:
            raise ApiError(
                429,
                "rate_limited",
                f"stream {slot.name!r} has {slot.pending} batches queued; the limit queue_depth "
                f"is {self.queue_depth}; retry later",
                headers={"Retry-After": "1"},
            )
        bank = 0 if slot.resident else bank_bytes(slot.spec, dim)
        reserved = batch_bytes(slot.spec, dim, rows)
        self.budget.admit_batch(slot.name, bank, reserved)
        slot.resident += bank
        slot.pending += 1
        return Ticket(slot, reserved)

    def release(self, ticket: Ticket, dim: int | None) -> None:
        """The batch is answered. dim: its stream's dimension now (None: its first batch failed,
        so the bank reserved for it is given back too)."""
        ticket.slot.pending -= 1
        self.budget.transient -= ticket.reserved
        if dim is None:
            self.drop(ticket.slot)

    def drop(self, slot: Slot) -> None:
        """Give back the bytes reserved for a stream's bank (deleted, or never trained)."""
        self.budget.resident -= slot.resident
        slot.resident = 0


def check_limits(spec: StreamCreate, s: Settings, streams: int) -> None:
    """422 limit_exceeded when a new stream would pass a limit (`streams`: how many exist)."""
    settings = spec.model_dump()
    latent_dims, mc_samples = settings["latent_dims"], settings["mc_samples"]
    if streams >= s.max_streams:
        raise _limit(f"{streams} streams exist; the limit max_streams is {s.max_streams}")
    if len(latent_dims) > s.max_latent_dims:
        raise _limit(
            f"{len(latent_dims)} latent sizes given; "
            f"the limit max_latent_dims is {s.max_latent_dims}"
        )
    if max(latent_dims) >= s.max_dim:
        raise _limit(
            f"latent size {max(latent_dims)} needs D > {max(latent_dims)}; "
            f"the limit max_dim is {s.max_dim}"
        )
    if spec.dim is not None and spec.dim > s.max_dim:
        raise _limit(f"dim is {spec.dim}; the limit max_dim is {s.max_dim}")
    if mc_samples > s.max_mc_samples:
        raise _limit(f"mc_samples is {mc_samples}; the limit max_mc_samples is {s.max_mc_samples}")
    device = settings["device"]
    resolve_device(device if device != "auto" else s.device)


def _limit(message: str) -> ApiError:
    return ApiError(422, "limit_exceeded", message)
