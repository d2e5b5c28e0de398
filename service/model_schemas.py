"""Bodies about the learnt models: collapse statistics, score history, parameters, transforms."""

from pydantic import BaseModel, ConfigDict, Field

from service.schemas import _REQUEST, Row, _examples

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
