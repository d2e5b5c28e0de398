"""The worker threads that train and restore streams (both modes)."""

import gc
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


def freeze_heap() -> None:
    """Once a process is up (the server, a cluster worker): collect, then move every object
    alive now (the imports of torch, FastAPI and pydantic: about a million) out of the cyclic
    garbage collector's reach. A full collection traversed them all: a 110-220 ms pause of every
    thread about once per 1,000 batches. After the freeze it traverses only what the streams
    hold. Not for a process that builds and drops apps (tests): what is frozen stays."""
    gc.collect()
    gc.freeze()


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """`workers` threads: at most that many training steps run at once. No thread waits on a
    commit (the log calls back when a batch is durable), so no more are needed."""
    return ThreadPoolExecutor(workers, "dimwatch-worker", init_worker)
