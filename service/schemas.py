"""Request and response bodies of the REST API (docs/api.md), with OpenAPI examples."""

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from streaming.spec import DEVICE_PATTERN, StreamSpec

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
FLOAT32_MAX = 3.4028234663852886e38  # the largest finite float32: data are trained as float32

# Request models are strict: a JSON type other than the field's is refused (422), never coerced
# ("7" is not an int, 0 is not a bool, 2.0 is not an int; an int is a number), and non-finite
# numbers are refused. Unknown fields are refused too.
_REQUEST = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

# One value of a row: a JSON number that float32 can hold (larger values would train as inf).
Value = Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
# One row of D values; the schema's maxItems is the server's max_dim (service/openapi.py).
Row = Annotated[list[Value], Field(min_length=1)]

_SELECTION_EXAMPLE = {
    "step": 121,
    "rows_seen": 1210,
    "best_latent_dim": 4,
    "converged": False,
    "margin": 12.5,
    "path": [
        {"latent_dim": 4, "n_from": 3.0, "n_to": 41.2},
        {"latent_dim": 6, "n_from": 41.2, "n_to": None},
    ],
    "training": {
        "alarmed": False,
        "step_size": 0.04,
        "alarms": 1,
        "restarts": 1,
        "batches_since_restart": 121,
    },
    "models": [
        {
            "latent_dim": 4,
            "entropy_elbo": -14.1,
            "bic": 329.4,
            "batch_elbo": -14.5,
            "batch_bic": 337.0,
            "sigma2": 0.81,
            "active_latents": 4,
            "converged": False,
            "effective_rank": 6.9,
            "variance_share": 0.62,
        }
    ],
    "effective_rank": 6.9,
}


def _examples(*examples: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


# ------------------------------------------------------------------------------------ errors


class ErrorOut(BaseModel):
    """The body of every 4xx/5xx answer."""

    model_config = _examples(
        {"error": "invalid_batch", "message": "expected 10 columns, got 9", "details": None}
    )

    error: str = Field(description="stable machine code, e.g. invalid_batch")
    message: str = Field(description="what was wrong and what was expected")
    details: object = Field(default=None, description="extra structure, e.g. field errors")


class StatusOut(BaseModel):
    """Liveness or readiness."""

    model_config = _examples({"status": "ok"})

    status: str


# ------------------------------------------------------------------------------------ streams


def _setting_fields(request: bool) -> dict[str, Any]:
    """StreamSpec's settings as pydantic fields: type, default, help text and, for requests,
    the bounds (streaming/spec.py is their one source)."""
    hints = get_type_hints(StreamSpec)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(StreamSpec):
        meta = dict(f.metadata)
        doc = meta.pop("doc")
        kind: Any = hints[f.name]
        if f.name == "latent_dims":
            item: Any = Annotated[int, Field(**meta)] if request else int
            default: Any = f.default
            out[f.name] = (list[item], Field(default_factory=lambda d=default: list(d),
                                             min_length=1, description=doc))  # fmt: skip
            continue
        if not request:
            kind = str if get_origin(kind) is Literal else kind
            meta = {}
        if request and f.name == "device":
            meta["pattern"] = DEVICE_PATTERN
        out[f.name] = (kind, Field(default=f.default, description=doc, **meta))
    return out


class StreamCreateBase(BaseModel):
    """A new stream: a name and, optionally, its settings (every StreamSpec field)."""

    model_config = ConfigDict(
        **_REQUEST,
        json_schema_extra={
            # the first fits the batch example (D = 3): examples are sent as they are by tools
            "examples": [{"name": "sensors", "latent_dims": [1, 2]}, {"name": "s2", "dim": 10}]
        },
    )

    name: str = Field(pattern=NAME_PATTERN, description="URL-safe, 1-64 characters")
    dim: int | None = Field(
        default=None, ge=2, description="data dimension D; null: the first batch's"
    )

    def to_spec(self) -> StreamSpec:
        """The settings as the core's StreamSpec (checked there: InvalidConfigError)."""
        return StreamSpec(**self.model_dump(exclude={"name", "dim"}))


class StreamOutBase(BaseModel):
    """A stream: its settings and where its training stands."""

    model_config = _examples(
        {
            "name": "sensors",
            "latent_dims": [2, 4, 6],
            "optimizer": "subspace",
            "learning_rate": 0.002,
            "estimator": "analytic",
            "mc_samples": 100,
            "bic_n": 10,
            "collapse_threshold": 1.0,
            "seed": 0,
            "dim": 10,
            "device": "cpu",
            "standardize": False,
            "adaptive": True,
            "boost_learning_rate": 0.05,
            "switch_margin": 5.0,
            "step": 120,
            "rows_seen": 1200,
            "best_latent_dim": 4,
            "converged": False,
            "created_at": "2026-11-25T15:00:00Z",
        }
    )

    name: str
    dim: int | None = Field(description="null until the first batch fixes it")
    step: int = Field(description="batches applied")
    rows_seen: int
    best_latent_dim: int | None = Field(description="null before the first batch")
    converged: bool = Field(
        default=False,
        description="the selection's converged flag: false while the pick is provisional "
        "(and before the first batch)",
    )
    created_at: datetime
    available: bool = Field(
        default=True,
        description="false: the stream could not be restored or reloaded and answers 409 "
        "stream_unavailable until deleted; its settings are the stored ones",
    )
    unavailable_reason: str | None = Field(default=None, description="why it is unavailable")


_OUT_SETTINGS = _setting_fields(request=False)
_OUT_SETTINGS["device"] = (str, Field(description="the device actually used, e.g. cpu or cuda:0"))

# The models FastAPI validates and documents: the static bases with every setting of StreamSpec
# added at import. Type checkers see the bases (the settings are read through to_spec() or
# model_dump()).
if TYPE_CHECKING:
    StreamCreate = StreamCreateBase
    StreamOut = StreamOutBase
else:
    StreamCreate = create_model(
        "StreamCreate", __base__=StreamCreateBase, __doc__=StreamCreateBase.__doc__,
        **_setting_fields(request=True),
    )  # fmt: skip
    StreamOut = create_model(
        "StreamOut", __base__=StreamOutBase, __doc__=StreamOutBase.__doc__, **_OUT_SETTINGS
    )


class StreamList(BaseModel):
    """One page of the streams, sorted by name."""

    data: list[StreamOut]
    count: int = Field(description="streams in this page")
    next: str | None = Field(
        default=None,
        description="pass as `after` for the next page; null: this page is the last",
    )


# ------------------------------------------------------------------------------------ batches


class BatchIn(BaseModel):
    """A JSON batch: rows of D numbers; seq makes retries safe."""

    model_config = ConfigDict(
        **_REQUEST,
        json_schema_extra={"examples": [{"data": [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], "seq": 0}]},
    )

    data: list[Row] = Field(min_length=1, description="rows x D numbers")
    seq: int | None = Field(
        default=None, ge=0, description="index of this batch in the stream, from 0"
    )


class ModelSelectionOut(BaseModel):
    """Scores of one candidate H. Higher ELBO is better; lower BIC is better."""

    latent_dim: int
    entropy_elbo: float
    bic: float
    batch_elbo: float | None
    batch_bic: float | None
    sigma2: float
    active_latents: int
    converged: bool = Field(
        description="F_ent has settled (docs/math.md, 'Convergence'); never for adam/sgd"
    )
    effective_rank: float = Field(
        description="exp of the entropy of the normalised eigenvalues of W W^T + sigma2 I"
    )
    variance_share: float = Field(description="share of that covariance's trace in the top H")


class PathPieceOut(BaseModel):
    """The H the BIC picks for bic_n = N in [n_from, n_to) at the current entropy ELBOs."""

    latent_dim: int
    n_from: float
    n_to: float | None = Field(description="null: every larger N")


class TrainingOut(BaseModel):
    """Where the online training stands."""

    alarmed: bool = Field(description="the change detector sees a change now")
    step_size: float = Field(description="step size of the next step")
    alarms: int = Field(description="alarms raised (each run of alarmed batches once)")
    restarts: int = Field(description="training restarts (schedule or optimizer moments)")
    batches_since_restart: int


class SelectionOut(BaseModel):
    """The selection after the last applied batch."""

    model_config = _examples(_SELECTION_EXAMPLE)

    step: int
    rows_seen: int
    best_latent_dim: int | None
    converged: bool = Field(description="every candidate converged; false: the pick is provisional")
    margin: float | None = Field(
        description="runner-up BIC minus the pick's (null with one candidate or no batch)"
    )
    path: list[PathPieceOut] = Field(
        description="which H the BIC would pick for which range of N = bic_n (N >= 3)"
    )
    training: TrainingOut | None = Field(description="null before the first batch")
    models: list[ModelSelectionOut]
    effective_rank: float | None = Field(
        default=None, description="the pick's effective_rank (null before the first batch)"
    )


class BatchOut(BaseModel):
    """The answer to one batch, sent once it is applied and durable."""

    model_config = _examples(
        {"step": 121, "rows": 10, "duplicate": False, "selection": _SELECTION_EXAMPLE}
    )

    step: int = Field(description="the stream's step after this batch")
    rows: int = Field(description="rows in this batch")
    duplicate: bool = Field(description="true: seq was applied before, nothing trained")
    selection: SelectionOut
