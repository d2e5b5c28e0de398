"""What every benchmark shares: running a learner over a stream, judging the run per chunk
(docs/math.md, Fig. 3a: second-half accuracy, detection delay, noise of both BICs), the machine, the
output folder, progress lines.

A learner is anything with `learn_many(X) -> StepReport` (streaming.learner.Learner, the
baselines in bench/baselines.py); its report gives the pick, the entropy BIC and the batch BIC of
every candidate after each batch.
"""

import itertools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from streaming.learner import Learner as Online
from streaming.report import StepReport
from streaming.tracking import accuracy, batch_noise, detection_delay

OUT = Path(__file__).resolve().parent / "out"


class Learner(Protocol):
    def learn_many(self, X: np.ndarray) -> StepReport: ...


@dataclass
class Trace:
    """One run over a stream, batch by batch (T batches, M candidates)."""

    latent_dims: tuple[int, ...]
    truth: np.ndarray  # (T,) true intrinsic dimension of each batch
    picks: np.ndarray  # (T,) selected H after each batch
    elbo: np.ndarray  # (T, M) entropy ELBO after each batch
    bic: np.ndarray  # (T, M) entropy BIC after each batch
    batch_bic: np.ndarray  # (T, M) batch-ELBO BIC of each batch
    seconds: float  # wall time of the whole run


def batches(X: np.ndarray, truth: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Consecutive batches of `size` rows and the true dimension of their first row."""
    for start in range(0, X.shape[0] - size + 1, size):
        yield X[start : start + size], int(truth[start])


def run_stream(
    learner: Learner,
    X: np.ndarray,
    truth: np.ndarray,
    batch_size: int = 10,
    label: str = "",
    progress_every: float = 10.0,
) -> Trace:
    """Feed X batch by batch; record picks and both BICs; print a progress line now and then."""
    n = X.shape[0] // batch_size
    picks = np.zeros(n, dtype=np.int64)
    true_dims = np.zeros(n, dtype=np.int64)
    elbo = bic = batch_bic = np.zeros((0, 0))
    dims: tuple[int, ...] = ()
    start = last = time.perf_counter()
    for t, (xb, k) in enumerate(batches(X, truth, batch_size)):
        rep = learner.learn_many(xb)
        if t == 0:
            dims = tuple(m.latent_dim for m in rep.models)
            elbo, bic, batch_bic = (np.zeros((n, len(dims))) for _ in range(3))
        picks[t] = rep.best_latent_dim
        true_dims[t] = k
        elbo[t] = [m.entropy_elbo for m in rep.models]
        bic[t] = [m.bic for m in rep.models]
        batch_bic[t] = [np.nan if m.batch_bic is None else m.batch_bic for m in rep.models]
        now = time.perf_counter()
        if now - last > progress_every:
            last = now
            rate = (t + 1) / (now - start)
            progress(f"{label} batch {t + 1}/{n} ({rate:.0f}/s, {(n - t - 1) / rate:.0f} s left)")
    return Trace(dims, true_dims, picks, elbo, bic, batch_bic, time.perf_counter() - start)


def chunk_bounds(truth: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of equal true dimension."""
    cuts = [0, *(np.flatnonzero(np.diff(truth)) + 1).tolist(), truth.shape[0]]
    return list(itertools.pairwise(cuts))


def pick_chunks(picks: np.ndarray, truth: np.ndarray) -> list[dict[str, Any]]:
    """Per chunk of constant true dimension: the detection delay of `picks`, and its accuracy
    and most frequent value over the chunk's second half."""
    chunks = []
    for a, b in chunk_bounds(truth):
        k = int(truth[a])
        half = picks[(a + b) // 2 : b]
        values, counts = np.unique(half, return_counts=True)
        chunks.append(
            {
                "true_dim": k,
                "delay": detection_delay(picks[a:b], k),
                "second_half_accuracy": accuracy(half, k),
                "second_half_mode": int(values[counts.argmax()]),
            }
        )
    return chunks


def judge(trace: Trace, run: int = 100, window: int = 51) -> list[dict[str, Any]]:
    """Per chunk: second-half accuracy, detection delay, and for every H the plain std and the
    batch-to-batch noise of the entropy BIC and of the batch BIC over the second half, with the
    ratios batch/entropy. `min_*_ratio` is the smallest ratio over the candidates."""
    rows = []
    for a, b in chunk_bounds(trace.truth):
        k = int(trace.truth[a])
        half = slice((a + b) // 2, b)
        per_h = {}
        for i, h in enumerate(trace.latent_dims):
            ent, bat = trace.bic[half, i], trace.batch_bic[half, i]
            per_h[h] = {
                "std_entropy": float(ent.std()),
                "std_batch": float(bat.std()),
                "noise_entropy": batch_noise(ent, window),
                "noise_batch": batch_noise(bat, window),
            }
            per_h[h]["std_ratio"] = per_h[h]["std_batch"] / per_h[h]["std_entropy"]
            per_h[h]["noise_ratio"] = per_h[h]["noise_batch"] / per_h[h]["noise_entropy"]
        rows.append(
            {
                "true_dim": k,
                "batches": b - a,
                "delay": detection_delay(trace.picks[a:b], k, run),
                "second_half_accuracy": accuracy(trace.picks[half], k),
                "min_std_ratio": min(v["std_ratio"] for v in per_h.values()),
                "min_noise_ratio": min(v["noise_ratio"] for v in per_h.values()),
                "per_h": per_h,
            }
        )
    return rows


def passes(chunks: list[dict[str, Any]], max_delays: list[float], min_ratio: float) -> bool:
    """The issue's bar: every delay within its limit, every second half 100% right, the entropy
    BIC at least `min_ratio` times less noisy (batch-to-batch) than the batch BIC for every H."""
    return all(
        c["delay"] is not None
        and c["delay"] <= limit
        and c["second_half_accuracy"] == 1.0
        and c["min_noise_ratio"] >= min_ratio
        for c, limit in zip(chunks, max_delays, strict=True)
    )


def machine() -> dict[str, Any]:
    """Where a figure was measured."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "streaming", "service"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
    except OSError:
        commit, dirty = "", []
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg": os.getloadavg(),
        "commit": commit,
        "uncommitted": [line[3:] for line in dirty if line.strip()],  # the shared tree moves
        "command": " ".join(["python -m bench." + Path(sys.argv[0]).stem, *sys.argv[1:]]),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """bench/out/<name>.json with the machine added; returns the path."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=1, default=_plain))
    progress(f"wrote {path.relative_to(OUT.parent.parent)}")
    return path


def _plain(value: object) -> object:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fmt(value: float | None, digits: int = 1) -> str:
    """A table cell: '-' for None (e.g. a delay that never came)."""
    return "-" if value is None else f"{value:.{digits}f}"


def set_threads(n: int) -> None:
    """Pin torch's and BLAS's threads (the machine is shared; default 1)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)


def make_learner(spec: str, dim: int, seed: int = 0, **settings: Any) -> Online:
    """A learner from a short spec: 'default:' (what the service runs for a new stream:
    Learner(StreamSpec()), the subspace rule with change detection), 'plain:lr=0.002'
    (Adam at a constant rate, no detection; opt=sgd for SGD) or 'adaptive:lr=0.002,boost_lr=0.05'
    (Adam with change detection and the boosted rate after a change; the paper's recipe plus
    detection). `margin=` sets switch_margin (default 0 for plain/adaptive, the spec's for
    default). Extra keyword arguments go to StreamSpec (estimator, bic_n, latent_dims, ...)."""
    from streaming.spec import StreamSpec

    kind, _, rest = spec.partition(":")
    kv = dict(item.split("=") for item in rest.split(",") if item)
    base: dict[str, Any] = {"device": "cpu", "seed": seed, **settings}
    if kind == "default":
        if "margin" in kv:
            base["switch_margin"] = float(kv.pop("margin"))
        config = StreamSpec(**base)
    elif kind in ("plain", "adaptive"):
        config = StreamSpec(
            optimizer=kv.pop("opt", "adam"),  # type: ignore[arg-type]
            learning_rate=float(kv.pop("lr", 0.002)),
            boost_learning_rate=float(kv.pop("boost_lr", 0.05)),
            adaptive=kind == "adaptive",
            switch_margin=float(kv.pop("margin", 0)),
            **base,
        )
    else:
        raise ValueError(f"learner spec: unknown kind {kind!r}")
    if kv:
        raise ValueError(f"learner spec: cannot read {spec!r} (left over: {kv})")
    return Online(dim, config)
