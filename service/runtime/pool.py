"""The worker threads that train and restore streams (both modes)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from streaming.learner import Learner
from streaming.spec import StreamSpec


def init_worker() -> None:
    """One intra-op thread per worker: results do not depend on scheduling, so a replay after a
    crash reproduces the original run bit for bit; parallelism comes from many streams."""
    torch.set_num_threads(1)


def warm_up() -> None:
    """Build and step a tiny learner of each rule once: torch's first optimizer costs seconds of
    lazy imports, paid here before /readyz rather than by the first batch of a stream."""
    for optimizer in ("subspace", "adam"):
        spec = StreamSpec(latent_dims=(1,), device="cpu", optimizer=optimizer)
        Learner(2, spec).learn_many(np.ones((2, 2), np.float32))


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """`workers` threads: at most that many training steps run at once. No thread waits on a
    commit (the log calls back when a batch is durable), so no more are needed."""
    return ThreadPoolExecutor(workers, "dimwatch-worker", init_worker)
