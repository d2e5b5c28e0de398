"""Server settings, read from DIMWATCH_* environment variables (pydantic-settings)."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the server can be told; `Settings()` reads the environment."""

    model_config = SettingsConfigDict(env_prefix="DIMWATCH_", frozen=True)

    host: str = "127.0.0.1"  # interface uvicorn binds
    port: int = Field(default=8000, ge=0, le=65535)  # TCP port (0: any free port)
    data_dir: Path = Path("data")  # folder of the SQLite store (dimwatch.sqlite3), created on start
    device: str = "auto"  # torch device of streams created with device "auto" (auto: cuda if any)
    # Bearer tokens, comma-separated in DIMWATCH_API_TOKENS; empty turns auth off. Never logged.
    api_tokens: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)
    max_rows_per_batch: int = Field(
        default=10_000, ge=1
    )  # rows in one batch or transform body (413 past)
    max_dim: int = Field(default=1_000, ge=2)  # data dimension D of a stream (422 past)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)  # request body size (413 past)
    max_streams: int = Field(default=100, ge=1)  # live streams at once (422 past)
    max_latent_dims: int = Field(default=16, ge=1)  # candidate latent sizes per stream (422 past)
    max_mc_samples: int = Field(default=1_000, ge=1)  # mc_samples of a stream (422 past)
    queue_depth: int = Field(
        default=64, ge=1
    )  # batches waiting per stream; past it: 429 + Retry-After
    history_limit: int = Field(
        default=10_000, ge=2
    )  # history points kept per stream (older ones thinned)
    snapshot_every: int = Field(
        default=100, ge=1
    )  # batches between snapshots of a stream's full state
    workers: int = Field(default=2, ge=1)  # training threads shared by all streams
    keepalive_seconds: float = Field(
        default=15.0, gt=0
    )  # silence before an events stream sends a comment
    shutdown_timeout: float = Field(default=10.0, gt=0)  # seconds open connections get on SIGTERM
    dashboard_dir: Path | None = None  # dashboard files; None: the installed clients/dashboard
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"  # log verbosity

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        """'a, b' -> ('a', 'b'); blanks dropped so that DIMWATCH_API_TOKENS= means auth off."""
        if isinstance(value, str):
            return tuple(t.strip() for t in value.split(",") if t.strip())
        return value

    @property
    def auth_enabled(self) -> bool:
        """True when at least one token is configured."""
        return bool(self.api_tokens)
