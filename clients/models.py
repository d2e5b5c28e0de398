"""Typed results of the dimwatch API (docs/api.md), parsed from its JSON bodies.

Every class mirrors one JSON object of the contract and has a `from_json` that reads the fields
it needs and ignores any others, so a newer server with extra fields keeps working. A missing or
mistyped field raises KeyError/TypeError/ValueError, which the caller turns into ProtocolError.
Scores: higher ELBO is better, lower BIC is better.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self, TypedDict

import numpy as np

from clients.params import ModelParams as ModelParams  # re-exported: its home is clients.params


class StreamSettings(TypedDict, total=False):
    """Settings of a new stream; any key left out takes the server's default."""

    latent_dims: list[int]  # candidate latent sizes H (server default [2, 4, 6])
    learning_rate: float  # adam/sgd step size (default 0.002; subspace has none)
    estimator: Literal["analytic", "mc"]  # ELBO gradient: closed form or Monte Carlo
    mc_samples: int  # samples per row for estimator "mc" (default 100)
    bic_n: int  # N of the BIC (default 10)
    collapse_threshold: float  # encoder entropy above which a latent counts as collapsed
    seed: int  # seeds initialisation and sampling
    dim: int | None  # data dimension D, or None to take it from the first batch
    device: str  # "auto", "cpu", "cuda", "cuda:N"
    optimizer: Literal["subspace", "adam", "sgd"]  # the online update (default "subspace")
    standardize: bool  # model the running z-scores of the columns (default False)
    adaptive: bool  # detect changes and restart training on one (default True)
    boost_learning_rate: float  # adam/sgd: learning rate right after a detected change (0.05)
    switch_margin: float  # the pick moves only to an H better by more BIC than this (5.0)


def powers_of_two(limit: int, dim: int | None = None, start: int = 2) -> list[int]:
    """A grid of candidate latent sizes: start, 2 start, 4 start, ... up to `limit`, below `dim`
    when given (every H must be < D): `powers_of_two(256, dim=768)` is 2, 4, ..., 256."""
    if start < 1 or limit < start:
        raise ValueError(f"expected 1 <= start <= limit, got start {start}, limit {limit}")
    grid = [start]
    while grid[-1] * 2 <= limit:
        grid.append(grid[-1] * 2)
    return [h for h in grid if dim is None or h < dim]


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Stream:
    """One stream: its settings and where its training stands."""

    name: str
    latent_dims: tuple[int, ...]
    learning_rate: float
    estimator: str
    mc_samples: int
    bic_n: int
    collapse_threshold: float
    seed: int
    dim: int | None  # None until the first batch fixes it
    device: str  # the device actually used, e.g. "cpu"
    step: int  # batches applied
    rows_seen: int
    best_latent_dim: int | None  # None before the first batch
    created_at: datetime
    optimizer: str | None = None  # "subspace", "adam" or "sgd"; None from an older server
    standardize: bool | None = None  # z-scored columns; None from a server that does not say
    adaptive: bool | None = None  # change detection; None from a server that does not say
    boost_learning_rate: float | None = None  # rate right after a detected change
    switch_margin: float | None = None  # hysteresis of the pick in BIC units
    converged: bool | None = None  # the selection converged (False: provisional); None: not said

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            name=str(obj["name"]),
            latent_dims=tuple(int(h) for h in obj["latent_dims"]),
            learning_rate=float(obj["learning_rate"]),
            estimator=str(obj["estimator"]),
            mc_samples=int(obj["mc_samples"]),
            bic_n=int(obj["bic_n"]),
            collapse_threshold=float(obj["collapse_threshold"]),
            seed=int(obj["seed"]),
            dim=_opt_int(obj["dim"]),
            device=str(obj["device"]),
            step=int(obj["step"]),
            rows_seen=int(obj["rows_seen"]),
            best_latent_dim=_opt_int(obj["best_latent_dim"]),
            created_at=datetime.fromisoformat(obj["created_at"]),
            optimizer=None if obj.get("optimizer") is None else str(obj["optimizer"]),
            standardize=None if obj.get("standardize") is None else bool(obj["standardize"]),
            adaptive=None if obj.get("adaptive") is None else bool(obj["adaptive"]),
            boost_learning_rate=_opt_float(obj.get("boost_learning_rate")),
            switch_margin=_opt_float(obj.get("switch_margin")),
            converged=None if obj.get("converged") is None else bool(obj["converged"]),
        )


@dataclass(frozen=True)
class StreamPage:
    """One page of GET /v1/streams; `next`: the `after` of the next page (None: the last)."""

    streams: list[Stream]
    next: str | None


@dataclass(frozen=True)
class ModelScoreView:
    """Scores of one candidate H after the last applied batch."""

    latent_dim: int  # H
    entropy_elbo: float  # data-free entropy ELBO per data point (higher is better)
    bic: float  # entropy BIC (lower is better)
    batch_elbo: float | None  # ELBO on the last batch
    batch_bic: float | None  # the paper's noisy batch-ELBO BIC
    sigma2: float  # decoder variance
    active_latents: int  # H minus collapsed latents
    converged: bool | None = None  # F_ent has settled; None from a server that does not say
    effective_rank: float | None = None  # of the fitted covariance W W^T + sigma2 I (1..D)
    variance_share: float | None = None  # share of that covariance's trace in the top H

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            latent_dim=int(obj["latent_dim"]),
            entropy_elbo=float(obj["entropy_elbo"]),
            bic=float(obj["bic"]),
            batch_elbo=_opt_float(obj.get("batch_elbo")),
            batch_bic=_opt_float(obj.get("batch_bic")),
            sigma2=float(obj["sigma2"]),
            active_latents=int(obj["active_latents"]),
            converged=None if obj.get("converged") is None else bool(obj["converged"]),
            effective_rank=_opt_float(obj.get("effective_rank")),
            variance_share=_opt_float(obj.get("variance_share")),
        )


@dataclass(frozen=True)
class PathPiece:
    """The H the BIC picks for bic_n = N in [n_from, n_to) (n_to None: every larger N)."""

    latent_dim: int
    n_from: float
    n_to: float | None

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(int(obj["latent_dim"]), float(obj["n_from"]), _opt_float(obj.get("n_to")))


@dataclass(frozen=True)
class Selection:
    """The choice of H after the last applied batch, with every candidate's scores."""

    step: int
    rows_seen: int
    best_latent_dim: int | None  # None before the first batch
    models: tuple[ModelScoreView, ...]  # empty before the first batch
    converged: bool | None = None  # every candidate converged (False: the pick is provisional)
    margin: float | None = None  # runner-up BIC minus the pick's
    path: tuple[PathPiece, ...] = ()  # the pick for each range of N = bic_n
    training: dict[str, Any] | None = None  # alarmed, step_size, alarms, restarts, ...
    effective_rank: float | None = None  # the pick's effective rank (None: not yet, or not said)

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            step=int(obj["step"]),
            rows_seen=int(obj["rows_seen"]),
            best_latent_dim=_opt_int(obj["best_latent_dim"]),
            models=tuple(ModelScoreView.from_json(m) for m in obj["models"]),
            converged=None if obj.get("converged") is None else bool(obj["converged"]),
            margin=_opt_float(obj.get("margin")),
            path=tuple(PathPiece.from_json(p) for p in obj.get("path") or ()),
            training=None if obj.get("training") is None else dict(obj["training"]),
            effective_rank=_opt_float(obj.get("effective_rank")),
        )


@dataclass(frozen=True)
class PushResult:
    """The answer to one pushed batch."""

    step: int  # the stream's step after this batch
    rows: int  # rows in the batch
    duplicate: bool  # True when the seq had been applied before: nothing was trained
    selection: Selection

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            step=int(obj["step"]),
            rows=int(obj["rows"]),
            duplicate=bool(obj["duplicate"]),
            selection=Selection.from_json(obj["selection"]),
        )


@dataclass(frozen=True)
class PushSummary:
    """What `stream_array` did: batches sent, rows, duplicates skipped, the last answer."""

    batches: int
    rows: int
    duplicates: int  # batches the server had applied already (a resumed upload)
    seconds: float  # wall time of the upload
    last: PushResult | None  # None when the array had no rows


@dataclass(frozen=True, eq=False)
class FitResult:
    """What `fit_array` did: the stream's selection and collapse when it stopped, and why it
    stopped: the selection converged, or the stream had learnt from `max_rows` rows (then the
    pick is provisional)."""

    stream: str
    rows: int  # rows in the array (one pass)
    rows_seen: int  # rows the stream has learnt from, every pass (and earlier fits) included
    pushed: int  # rows this call sent
    converged: bool  # False: stopped at max_rows, the pick is provisional
    max_rows: int
    seconds: float  # wall time of the call
    selection: "Selection"
    collapse: "Collapse"

    @property
    def best_latent_dim(self) -> int | None:
        return self.selection.best_latent_dim

    @property
    def passes(self) -> float:
        """Passes over the array the stream has learnt from."""
        return self.rows_seen / self.rows


@dataclass(frozen=True)
class CollapseModel:
    """Posterior-collapse statistics of one candidate H (docs/math.md, Eq. 23-24)."""

    latent_dim: int
    encoder_entropies: tuple[float, ...]  # H_h per latent
    collapsed: tuple[bool, ...]  # H_h > threshold
    tau2: tuple[float, ...]  # encoder variances
    active_latents: int
    s_reg: float
    s_rec: float

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            latent_dim=int(obj["latent_dim"]),
            encoder_entropies=tuple(float(x) for x in obj["encoder_entropies"]),
            collapsed=tuple(bool(x) for x in obj["collapsed"]),
            tau2=tuple(float(x) for x in obj["tau2"]),
            active_latents=int(obj["active_latents"]),
            s_reg=float(obj["s_reg"]),
            s_rec=float(obj["s_rec"]),
        )


@dataclass(frozen=True)
class Collapse:
    step: int
    threshold: float
    models: tuple[CollapseModel, ...]

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            step=int(obj["step"]),
            threshold=float(obj["threshold"]),
            models=tuple(CollapseModel.from_json(m) for m in obj["models"]),
        )


@dataclass(frozen=True)
class HistoryModel:
    latent_dim: int
    bic: float
    batch_bic: float | None

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            latent_dim=int(obj["latent_dim"]),
            bic=float(obj["bic"]),
            batch_bic=_opt_float(obj.get("batch_bic")),
        )


@dataclass(frozen=True)
class HistoryPoint:
    step: int
    best_latent_dim: int
    models: tuple[HistoryModel, ...]

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            step=int(obj["step"]),
            best_latent_dim=int(obj["best_latent_dim"]),
            models=tuple(HistoryModel.from_json(m) for m in obj["models"]),
        )


@dataclass(frozen=True)
class History:
    """Score history, oldest first; the server thins old points beyond `capacity`."""

    data: tuple[HistoryPoint, ...]
    count: int
    capacity: int

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            data=tuple(HistoryPoint.from_json(p) for p in obj["data"]),
            count=int(obj["count"]),
            capacity=int(obj["capacity"]),
        )


@dataclass(frozen=True, eq=False)
class Projection:
    """Rows mapped through one model: latent means (transform) or reconstructions."""

    latent_dim: int  # the H that was used
    data: np.ndarray  # (B, H) for transform, (B, D) for reconstruct

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        rows = obj["data"]
        data = np.asarray(rows, dtype=np.float64) if rows else np.empty((0, 0))
        if data.ndim != 2:
            raise ValueError(f"data: expected a list of rows, got shape {data.shape}")
        return cls(latent_dim=int(obj["latent_dim"]), data=data)


@dataclass(frozen=True)
class Health:
    status: str  # "ok"

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(status=str(obj["status"]))


@dataclass(frozen=True)
class StepEvent:
    """`event: step`: a batch was applied; `selection` is the state after it."""

    step: int
    selection: Selection


@dataclass(frozen=True)
class SelectionChangeEvent:
    """`event: selection_change`: the best H moved from `previous` to `best_latent_dim`."""

    step: int
    previous: int | None
    best_latent_dim: int

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            step=int(obj["step"]),
            previous=_opt_int(obj["previous"]),
            best_latent_dim=int(obj["best_latent_dim"]),
        )


@dataclass(frozen=True)
class ResetEvent:
    """`event: reset`: on a reconnect, events after `last_event_id` were lost (`reason`
    too_old, ahead or unknown_id); what was kept follows. Re-read the selection and history."""

    reason: str
    last_event_id: str
    step: int  # the stream's step when the listener reconnected
    replayed_from: int | None  # the first step replayed, None when none is
    message: str

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        return cls(
            reason=str(obj["reason"]),
            last_event_id=str(obj["last_event_id"]),
            step=int(obj["step"]),
            replayed_from=_opt_int(obj["replayed_from"]),
            message=str(obj["message"]),
        )


Event = StepEvent | SelectionChangeEvent | ResetEvent
