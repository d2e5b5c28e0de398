"""Request and response bodies of the REST API (docs/api.md), with OpenAPI examples."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]{1,3})?)$"
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
        }
    ],
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


class StreamCreate(BaseModel):
    """A new stream: a name and, optionally, the bank's hyper-parameters."""

    model_config = ConfigDict(
        **_REQUEST,
        json_schema_extra={
            # the first fits the batch example (D = 3): examples are sent as they are by tools
            "examples": [{"name": "sensors", "latent_dims": [1, 2]}, {"name": "s2", "dim": 10}]
        },
    )

    name: str = Field(pattern=NAME_PATTERN, description="URL-safe, 1-64 characters")
    latent_dims: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [2, 4, 6], min_length=1, description="candidate latent sizes H"
    )
    learning_rate: float = Field(
        default=0.002,
        gt=0,
        le=1,
        description="step size of optimizer adam/sgd (the paper: adam at 0.002); the natural "
        "optimizer follows its own schedule (docs/math.md)",
    )
    estimator: Literal["analytic", "mc"] = Field(
        default="analytic", description="ELBO gradient estimator"
    )
    mc_samples: int = Field(default=100, ge=1, description="samples per row for estimator mc")
    bic_n: int = Field(default=10, ge=1, description="N in BIC = P log N - 2 N F")
    collapse_threshold: float = Field(
        default=1.0, description="encoder entropy above which h collapsed"
    )
    # At most 2**53 - 1: exact in every JSON parser (JavaScript's numbers are doubles), and a
    # bound a float comparison cannot misjudge (Schemathesis sent 2**63 + 190 as "< 2**63").
    seed: int = Field(
        default=0, ge=0, le=2**53 - 1, description="seeds initialisation and sampling"
    )
    dim: int | None = Field(
        default=None, ge=2, description="data dimension D; null: the first batch's"
    )
    device: str = Field(
        default="auto", pattern=DEVICE_PATTERN, description="auto, cpu, cuda or cuda:N"
    )
    optimizer: Literal["natural", "adam", "sgd"] = Field(
        default="natural",
        description="the online step: natural (Fisher-scaled steps in the data's units that "
        "reach the p-PCA optimum on raw data; docs/math.md), or adam/sgd on the ELBO's gradient "
        "at learning_rate (as in the paper: adam, estimator mc)",
    )
    standardize: bool = Field(
        default=False,
        description="model the running z-scores of the columns (p-PCA of the correlation "
        "matrix): for columns in different units; rows go in and come out in raw units",
    )
    adaptive: bool = Field(
        default=True,
        description="raise the learning rate to boost_learning_rate when the stream changes "
        "(a change detector on batch ELBO - entropy ELBO; bench/RESULTS.md section 2)",
    )
    boost_learning_rate: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="adam/sgd: learning rate right after a detected change (natural: its "
        "schedule restarts instead)",
    )


class StreamOut(BaseModel):
    """A stream: its settings and where its training stands."""

    model_config = _examples(
        {
            "name": "sensors",
            "latent_dims": [2, 4, 6],
            "learning_rate": 0.002,
            "estimator": "analytic",
            "mc_samples": 100,
            "bic_n": 10,
            "collapse_threshold": 1.0,
            "seed": 0,
            "dim": 10,
            "device": "cpu",
            "optimizer": "natural",
            "standardize": False,
            "adaptive": True,
            "boost_learning_rate": 0.05,
            "step": 120,
            "rows_seen": 1200,
            "best_latent_dim": 4,
            "created_at": "2026-11-25T15:00:00Z",
        }
    )

    name: str
    latent_dims: list[int]
    learning_rate: float
    estimator: str
    mc_samples: int
    bic_n: int
    collapse_threshold: float
    seed: int
    dim: int | None = Field(description="null until the first batch fixes it")
    device: str = Field(description="the device actually used, e.g. cpu or cuda:0")
    optimizer: str
    standardize: bool
    adaptive: bool
    boost_learning_rate: float
    step: int = Field(description="batches applied")
    rows_seen: int
    best_latent_dim: int | None = Field(description="null before the first batch")
    created_at: datetime
    available: bool = Field(
        default=True,
        description="false: the stream could not be restored or reloaded and answers 409 "
        "stream_unavailable until deleted; its settings are the stored ones",
    )
    unavailable_reason: str | None = Field(default=None, description="why it is unavailable")


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


class BatchOut(BaseModel):
    """The answer to one batch, sent once it is applied and durable."""

    model_config = _examples(
        {"step": 121, "rows": 10, "duplicate": False, "selection": _SELECTION_EXAMPLE}
    )

    step: int = Field(description="the stream's step after this batch")
    rows: int = Field(description="rows in this batch")
    duplicate: bool = Field(description="true: seq was applied before, nothing trained")
    selection: SelectionOut


# ------------------------------------------------------------------------------------ collapse


class ModelCollapseOut(BaseModel):
    """Posterior-collapse statistics of one candidate (docs/math.md, Eq. 23-24)."""

    latent_dim: int
    encoder_entropies: list[float]
    collapsed: list[bool]
    tau2: list[float]
    active_latents: int
    s_reg: float
    s_rec: float


class CollapseOut(BaseModel):
    """Per-latent encoder entropies and collapse flags of every candidate."""

    model_config = _examples(
        {
            "step": 121,
            "threshold": 1.0,
            "models": [
                {
                    "latent_dim": 2,
                    "encoder_entropies": [-0.9, 1.4],
                    "collapsed": [False, True],
                    "tau2": [0.01, 0.99],
                    "active_latents": 1,
                    "s_reg": -2.3,
                    "s_rec": -5.1,
                }
            ],
        }
    )

    step: int
    threshold: float
    models: list[ModelCollapseOut]


# ------------------------------------------------------------------------------------ history


class HistoryModelOut(BaseModel):
    latent_dim: int
    bic: float
    batch_bic: float | None


class HistoryPointOut(BaseModel):
    step: int
    best_latent_dim: int
    models: list[HistoryModelOut]


class HistoryOut(BaseModel):
    """Per-step BIC series, oldest first; capacity is the most points kept per stream."""

    model_config = _examples(
        {
            "data": [
                {
                    "step": 1,
                    "best_latent_dim": 6,
                    "models": [{"latent_dim": 2, "bic": 1.0, "batch_bic": 2.0}],
                }
            ],
            "count": 1,
            "capacity": 10000,
        }
    )

    data: list[HistoryPointOut]
    count: int
    capacity: int


# ------------------------------------------------------------------------------------ models


class ModelParamsOut(BaseModel):
    """Parameters of one linear VAE (docs/math.md notation)."""

    model_config = _examples(
        {
            "step": 121,
            "latent_dim": 1,
            "dim": 2,
            "W": [[0.5], [0.1]],
            "mu": [0.0, 0.1],
            "sigma2": 0.04,
            "V": [[1.2, 0.2]],
            "b": [0.0],
            "tau2": [0.03],
            "standardized": False,
            "scaler_mean": None,
            "scaler_scale": None,
        }
    )

    step: int
    latent_dim: int
    dim: int
    W: list[list[float]] = Field(description="decoder weights, D x H")
    mu: list[float] = Field(description="decoder bias, D")
    sigma2: float = Field(description="decoder variance")
    V: list[list[float]] = Field(description="encoder weights, H x D")
    b: list[float] = Field(description="encoder bias, H")
    tau2: list[float] = Field(description="encoder variances, H")
    standardized: bool = Field(
        description="true: the model of the z-scores (x - scaler_mean) / scaler_scale; "
        "transform and reconstruct still take and give raw rows"
    )
    scaler_mean: list[float] | None = Field(description="D running column means (standardize)")
    scaler_scale: list[float] | None = Field(description="D running column standard deviations")


class TransformIn(BaseModel):
    """Rows to project (transform) or reconstruct with one model (null: the best)."""

    model_config = ConfigDict(
        **_REQUEST,
        json_schema_extra={"examples": [{"data": [[0.1, 0.2, 0.3]], "latent_dim": None}]},
    )

    data: list[Row] = Field(min_length=1, description="rows x D numbers, D as the stream's")
    latent_dim: int | None = Field(
        default=None, ge=1, description="one of the stream's latent sizes H; null: the best"
    )


class TransformOut(BaseModel):
    """Latent means (transform) or reconstructions, row by row."""

    model_config = _examples({"latent_dim": 2, "data": [[0.3, -1.2]]})

    latent_dim: int
    data: list[list[float]]
