"""Server settings, read from DIMWATCH_* environment variables (pydantic-settings)."""

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_memory_budget_mb() -> int:
    """Half of this machine's memory (or of the container's limit, when that is lower)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            total = min(total, int(limit))
    except (OSError, ValueError):
        pass
    return max(64, total // 2 // 2**20)


class Settings(BaseSettings):
    """Everything the server can be told; `Settings()` reads the environment."""

    model_config = SettingsConfigDict(env_prefix="DIMWATCH_", frozen=True)

    # Interface uvicorn binds.
    host: str = "127.0.0.1"
    # TCP port (0: any free port).
    port: int = Field(default=8000, ge=0, le=65535)
    # Folder of the SQLite store (dimwatch.sqlite3), created on start.
    data_dir: Path = Path("data")
    # Torch device of streams created with device "auto" ("auto" here: cuda when available).
    device: str = "auto"
    # Bearer tokens, comma-separated in DIMWATCH_API_TOKENS; empty turns auth off. Never logged.
    api_tokens: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)
    # Rows in one batch or transform body (413 limit_exceeded past it).
    max_rows_per_batch: int = Field(default=10_000, ge=1)
    # Data dimension D of a stream (422 limit_exceeded past it).
    max_dim: int = Field(default=1_000, ge=2)
    # Bytes in one request body (413 payload_too_large past it).
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Streams at once (422 limit_exceeded past it).
    max_streams: int = Field(default=100, ge=1)
    # Candidate latent sizes in one stream's latent_dims (422 limit_exceeded past it).
    max_latent_dims: int = Field(default=16, ge=1)
    # mc_samples of a stream: Monte Carlo cost grows with it (422 limit_exceeded past it).
    max_mc_samples: int = Field(default=1_000, ge=1)
    # MB that stream banks and batches in progress may take together (service/budget.py says
    # how they are estimated); past it: 422 at creation, 413 or 429 for a batch. Default: half
    # of the machine's (or the container's) memory.
    memory_budget_mb: int = Field(default_factory=default_memory_budget_mb, ge=1)
    # Batches queued or running per stream; past it: 429 rate_limited with Retry-After.
    queue_depth: int = Field(default=64, ge=1)
    # History points kept per stream; older points are thinned to keep memory constant.
    history_limit: int = Field(default=10_000, ge=2)
    # Batches between snapshots of a stream's full state (restart replays at most this many).
    snapshot_every: int = Field(default=100, ge=1)
    # Training threads shared by all streams (one stream trains on one thread at a time).
    workers: int = Field(default=2, ge=1)
    # Seconds of silence before an events stream sends a keep-alive comment.
    keepalive_seconds: float = Field(default=15.0, gt=0)
    # Seconds requests in flight get to finish on SIGTERM before they are cancelled.
    shutdown_timeout: int = Field(default=10, ge=1)
    # Folder of the dashboard's files; None: clients/dashboard of the installed package.
    dashboard_dir: Path | None = None
    # Cluster mode: NATS server URL(s), comma-separated; None: this process holds every stream
    # (the embedded mode, SQLite in data_dir). docs/deployment.md.
    nats_url: str | None = None
    # Cluster: partitions of the streams among workers (fixed when the cluster is first started).
    partitions: int = Field(default=16, ge=1, le=4096)
    # Cluster: seconds a worker's lease on a partition lasts unrenewed (the takeover time).
    lease_seconds: float = Field(default=10.0, ge=1.0)
    # Cluster: JetStream replicas of the log, buckets and snapshots (3 on a 3-server cluster).
    nats_replicas: int = Field(default=1, ge=1, le=5)
    # Cluster: port of a worker's Prometheus /metrics on `host` (None: no HTTP port at all).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Cluster: seconds an API node waits for the owning worker before answering 503.
    answer_timeout: float = Field(default=30.0, gt=0)
    # Log verbosity of the server and uvicorn.
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

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
