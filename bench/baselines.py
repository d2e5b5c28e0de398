"""What users would pick instead of dimwatch, on the same streams (issue 6, item 3).

1. scikit-learn IncrementalPCA, one per H = 2, 4, 6, partial_fit on every batch; before it learns
   a batch, the batch is scored by the p-PCA log-likelihood of the current fit (from
   get_precision(), Eq. 26 per row) and BIC = P log N - 2 N F with N = 10 (Eq. 27) picks H.
2. PCA(n_components='mle') (Minka 2000) refitted on a sliding window of the last W rows after
   every batch; its pick is n_components_.
3. dimwatch itself (the paper's setting and the adaptive bank) on the same stream, same run.

Per chunk: detection delay, second-half accuracy; per method: microseconds per batch.

    python -m bench.baselines [--quick] [--windows 500 2000]
"""

import argparse
import math
import time
from typing import Any

import numpy as np
from sklearn.decomposition import PCA, IncrementalPCA

from bench.common import (
    batches,
    chunk_bounds,
    fmt,
    make_learner,
    pick_chunks,
    progress,
    run_stream,
    set_threads,
    write_json,
)
from streaming.data import paper_stream

LATENT_DIMS = (2, 4, 6)
LOG_2PI = math.log(2 * math.pi)
DIMWATCH = ["plain:lr=0.002", "adaptive:lr=0.002,boost_lr=0.05,reset_every=25"]


def batch_loglik(model: IncrementalPCA, x: np.ndarray) -> float:
    """Mean p-PCA log-likelihood per row of x under the fitted model (Eq. 26 per row)."""
    prec = model.get_precision()  # (D, D) = C^-1
    centred = x - model.mean_
    _, logdet = np.linalg.slogdet(prec)
    quad = np.einsum("nd,de,ne->n", centred, prec, centred)
    return float(np.mean(-0.5 * x.shape[1] * LOG_2PI + 0.5 * logdet - 0.5 * quad))


def run_ipca(X: np.ndarray, truth: np.ndarray, bic_n: int = 10) -> dict[str, Any]:
    dim = X.shape[1]
    models = [IncrementalPCA(n_components=h) for h in LATENT_DIMS]
    params = np.array([h * dim + 1 for h in LATENT_DIMS], dtype=np.float64)
    picks, true_dims, bics = [], [], []
    start = last = time.perf_counter()
    for t, (xb, k) in enumerate(batches(X, truth, 10)):
        x = xb.astype(np.float64)
        # nothing fitted before the first batch: no score
        f = np.array([batch_loglik(m, x) if t else 0.0 for m in models])
        for m in models:
            m.partial_fit(x)
        bic = params * math.log(bic_n) - 2.0 * bic_n * f
        bics.append(bic)
        picks.append(LATENT_DIMS[int(np.argmin(bic))])
        true_dims.append(k)
        last = _progress("IncrementalPCA", t, X.shape[0] // 10, start, last)
    seconds = time.perf_counter() - start
    return _judged("IncrementalPCA x3 + batch BIC", picks, true_dims, seconds, np.array(bics))


def run_minka(X: np.ndarray, truth: np.ndarray, window: int) -> dict[str, Any]:
    picks, true_dims = [], []
    start = last = time.perf_counter()
    for t, (_, k) in enumerate(batches(X, truth, 10)):
        end = (t + 1) * 10
        win = X[max(0, end - window) : end].astype(np.float64)
        if win.shape[0] < X.shape[1]:  # Minka's MLE needs at least D rows
            picks.append(0)
        else:
            picks.append(int(PCA(n_components="mle", svd_solver="full").fit(win).n_components_))
        true_dims.append(k)
        last = _progress(f"PCA mle window {window}", t, X.shape[0] // 10, start, last)
    seconds = time.perf_counter() - start
    return _judged(f"PCA(mle), window {window} rows", picks, true_dims, seconds, None)


def run_dimwatch(spec: str, X: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    trace = run_stream(make_learner(spec, X.shape[1]), X, truth, label=spec)
    return _judged(f"dimwatch {spec}", list(trace.picks), list(trace.truth), trace.seconds, None)


def _progress(label: str, t: int, n: int, start: float, last: float) -> float:
    now = time.perf_counter()
    if now - last > 10:
        r = (t + 1) / (now - start)
        progress(f"{label} batch {t + 1}/{n} ({r:.0f}/s, {(n - t - 1) / r:.0f} s left)")
        return now
    return last


def _judged(
    name: str, picks: list[int], truth: list[int], seconds: float, bics: np.ndarray | None
) -> dict[str, Any]:
    p, tr = np.array(picks), np.array(truth)
    chunks = pick_chunks(p, tr)
    for chunk, (a, b) in zip(chunks, chunk_bounds(tr), strict=True):
        chunk["bic_std_second_half"] = None if bics is None else bics[(a + b) // 2 : b].std(0)
    result = {"method": name, "seconds": seconds, "us_per_batch": 1e6 * seconds / len(picks)}
    result["chunks"] = chunks
    cells = [
        f"k={c['true_dim']} d={fmt(c['delay'], 0):>5} acc={c['second_half_accuracy']:.3f} "
        f"mode={c['second_half_mode']}"
        for c in chunks
    ]
    print(f"{name:<58} {result['us_per_batch']:8.0f} us/batch | " + " | ".join(cells), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per chunk")
    parser.add_argument("--windows", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--quick", action="store_true", help="chunks of 20,000 rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=10, help="D of the paper stream")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    chunk = 20_000 if args.quick else args.chunk
    X, truth = paper_stream(chunk_size=chunk, seed=args.seed, dim=args.dim)
    progress(f"paper stream, D={args.dim}, chunks of {chunk} rows, seed {args.seed}")
    results = [run_ipca(X, truth)]
    results += [run_minka(X, truth, w) for w in args.windows]
    results += [run_dimwatch(spec, X, truth) for spec in DIMWATCH]
    write_json(
        ("baselines_quick" if args.quick else "baselines")
        + ("" if args.dim == 10 else f"_d{args.dim}"),
        {"chunk_rows": chunk, "seed": args.seed, "dim": args.dim, "results": results},
    )


if __name__ == "__main__":
    main()
