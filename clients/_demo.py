"""`dimwatch demo`: replay the paper's non-stationary stream (docs/math.md, section 10) through a
server and report, per chunk, whether the entropy BIC picked the chunk's true dimension.
"""

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from clients import _requests as api
from clients import errors
from clients._progress import Upload
from clients._render import ChunkSummary
from clients.client import DimwatchClient
from clients.models import Stream

DEFAULT_URL = api.DEFAULT_URL  # where `dimwatch serve` and `make run` listen by default
PROBE = api.RetryPolicy(attempts=1)  # one try: a server either answers at once or is not there


@dataclass(frozen=True)
class DemoOptions:
    """The replayed stream and its stream settings. Defaults are the paper's stream shortened
    tenfold (3 x 10,000 rows in batches of 10: 3,000 requests) with the service's default
    training (the subspace rule, change detection on); `paper()` gives the paper's full settings
    (3 x 100,000 rows, Adam at 0.002, MC-100: 30,000 requests)."""

    intrinsic_dims: tuple[int, ...] = (6, 2, 4)  # true dimension of each chunk
    chunk_size: int = 10_000  # rows per chunk (paper: 100,000)
    dim: int = 10  # data dimension D
    noise: float = 0.1  # observation noise
    batch_size: int = 10  # rows per pushed batch (the paper's)
    learning_rate: float = 0.002  # Adam step size (the paper's; boosted after a change)
    estimator: str = "analytic"  # ELBO gradient (paper: "mc")
    optimizer: Literal["subspace", "adam", "sgd"] = "subspace"  # the online update (paper: adam)
    mc_samples: int = 100  # samples per row for "mc" (paper: 100)
    seed: int = 0  # seeds the data and the models

    @classmethod
    def paper(cls) -> "DemoOptions":
        return cls(
            chunk_size=100_000,
            batch_size=10,
            learning_rate=0.002,
            estimator="mc",
            mc_samples=100,
            optimizer="adam",
        )


def is_serving(url: str, token: str | None) -> bool:
    """Whether a dimwatch server answers /healthz at `url` (within a second)."""
    try:
        with DimwatchClient(url, token, timeout=1.0, retry=PROBE) as client:
            return client.health().status == "ok"
    except errors.DimwatchError:
        return False


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary data folder for a demo's own server, deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="dimwatch-demo-") as path:
        yield Path(path)


def create_demo_stream(client: DimwatchClient, name: str, options: DemoOptions) -> Stream:
    return client.create_stream(
        name,
        latent_dims=[2, 4, 6],
        learning_rate=options.learning_rate,
        estimator="mc" if options.estimator == "mc" else "analytic",
        optimizer=options.optimizer,
        mc_samples=options.mc_samples,
        bic_n=10,
        seed=options.seed,
        dim=options.dim,
    )


def replay(
    client: DimwatchClient, name: str, options: DemoOptions, progress: bool
) -> list[ChunkSummary]:
    """Push the whole stream batch by batch (with seq numbers) and summarise every chunk."""
    from streaming.data import paper_stream

    X, truth = paper_stream(
        intrinsic_dims=options.intrinsic_dims,
        chunk_size=options.chunk_size,
        dim=options.dim,
        noise=options.noise,
        seed=options.seed,
    )
    picks: list[int | None] = []
    with Upload(len(X), progress, name) as upload:
        for seq, batch in api.batches(X, options.batch_size, start_seq=0):
            result = client.push(name, batch, seq=seq)
            upload.record(result)
            picks.append(result.selection.best_latent_dim)
    return summarize(picks, options.batch_size, truth, options.chunk_size)


def summarize(
    picks: Sequence[int | None], batch_size: int, truth: np.ndarray, chunk_size: int
) -> list[ChunkSummary]:
    """Per chunk: the H picked after its last row, and how often the pick was right over its
    second half (each row counts with the pick made after the batch that carried it)."""
    chosen = np.array([-1 if p is None else p for p in picks], dtype=np.int64)
    per_row = np.repeat(chosen, batch_size)[: len(truth)]  # (N,) pick after each row's batch
    chunks = []
    for index, start in enumerate(range(0, len(truth), chunk_size)):
        end = min(start + chunk_size, len(truth))
        half = slice(start + (end - start) // 2, end)
        last = int(per_row[end - 1])
        chunks.append(
            ChunkSummary(
                index=index,
                true_dim=int(truth[start]),
                rows=end - start,
                selected_at_end=None if last < 0 else last,
                right_in_second_half=float(np.mean(per_row[half] == truth[half])),
            )
        )
    return chunks
