"""Beating the paper at tracking (issue 6, item 2): delays, noise and accuracy of many settings.

Parts (all by default; pick with --part):
  baseline  the paper's setting (Adam, lr 0.002) on full chunks of 100,000 rows: the delays to beat
  curve     every setting in SETTINGS on the paper stream (shorter chunks), several seeds: the
            trade-off between delay and noise; a setting passes when every delay is at most a
            quarter of the baseline's (same seed), every second half is 100% right and the entropy
            BIC is >= 10x less noisy (batch-to-batch, every H) than the batch BIC
  full      the best settings on the full paper stream
  streams   baseline and best settings on other streams (other D, other sequences of dimensions,
            other noise levels)
  bic_n     how BIC's N changes the picks: one run per stream, picks recomputed for every N from
            the recorded entropy ELBOs (N does not change training)

    python -m bench.tracking [--quick] [--part curve] [--seeds 0 1 2] [--settings SPEC ...]

`--part full --settings default:` runs the service's new default (AdaptiveBank(BankConfig()),
natural step) on the full paper stream against the paper's Adam baseline of the same seeds.
"""

import argparse
import math
from typing import Any

import numpy as np

from bench.common import (
    Trace,
    fmt,
    judge,
    make_learner,
    passes,
    pick_chunks,
    progress,
    run_stream,
    set_threads,
    write_json,
)
from streaming.data import paper_stream

PAPER = "plain:lr=0.002"
SETTINGS = [
    *(f"plain:lr={lr}" for lr in (0.002, 0.005, 0.01, 0.02, 0.05)),
    "plain:lr=0.002,opt=sgd",
    *(f"adaptive:lr={q},boost_lr={b}" for q in (0.002, 0.005) for b in (0.02, 0.05, 0.1)),
    "default:",
]
BEST = [
    "default:",  # the service's default: the subspace rule with change detection
    "adaptive:lr=0.002,boost_lr=0.05,margin=5",  # the previous default's Adam recipe
]
STREAMS: dict[str, dict[str, Any]] = {
    "D10 (6,2,4)": {"dim": 10, "intrinsic_dims": (6, 2, 4)},
    "D10 (2,6,4,2)": {"dim": 10, "intrinsic_dims": (2, 6, 4, 2)},
    "D10 (4,6,2) noise 0.3": {"dim": 10, "intrinsic_dims": (4, 6, 2), "noise": 0.3},
    "D20 (6,2,4)": {"dim": 20, "intrinsic_dims": (6, 2, 4)},
    "D50 (2,4,6)": {"dim": 50, "intrinsic_dims": (2, 4, 6)},
}
BIC_NS = (1, 2, 3, 10, 100, 1000)


def run(spec: str, stream: dict[str, Any], chunk: int, seed: int) -> tuple[Trace, list[dict]]:
    X, truth = paper_stream(chunk_size=chunk, seed=seed, **stream)
    trace = run_stream(make_learner(spec, X.shape[1], seed), X, truth, label=f"{spec} s{seed}")
    return trace, judge(trace)


def row(spec: str, name: str, seed: int, chunk: int, trace: Trace, chunks: list[dict]) -> dict:
    return {
        "setting": spec,
        "stream": name,
        "seed": seed,
        "chunk_rows": chunk,
        "seconds": trace.seconds,
        "chunks": [{k: v for k, v in c.items() if k != "per_h"} for c in chunks],
        "per_h": [c["per_h"] for c in chunks],
    }


def limits_from(baseline: dict) -> list[float]:
    """A quarter of every baseline delay (a chunk it never detected counts as its length)."""
    return [(c["batches"] if c["delay"] is None else c["delay"]) / 4 for c in baseline["chunks"]]


def part_baseline(seeds: list[int], chunk: int) -> dict[int, dict]:
    out = {}
    for seed in seeds:
        trace, chunks = run(PAPER, STREAMS["D10 (6,2,4)"], chunk, seed)
        out[seed] = row(PAPER, "D10 (6,2,4)", seed, chunk, trace, chunks)
        print_row(out[seed])
    return out


def part_grid(
    settings: list[str], streams: list[str], seeds: list[int], chunk: int, base: dict[int, dict]
) -> list[dict]:
    rows = []
    for name in streams:
        for spec in settings:
            for seed in seeds:
                trace, chunks = run(spec, STREAMS[name], chunk, seed)
                r = row(spec, name, seed, chunk, trace, chunks)
                if name == "D10 (6,2,4)" and seed in base:
                    r["limits"] = limits_from(base[seed])
                    r["passes"] = passes(chunks, r["limits"], 10.0)
                rows.append(r)
                print_row(r)
    return rows


def print_row(r: dict) -> None:
    cells = [
        f"k={c['true_dim']} d={fmt(c['delay'], 0)} acc={c['second_half_accuracy']:.3f} "
        f"noise×{c['min_noise_ratio']:.1f} std×{c['min_std_ratio']:.1f}"
        for c in r["chunks"]
    ]
    verdict = "" if "passes" not in r else (" PASS" if r["passes"] else " fail")
    print(f"{r['stream']:<22} {r['setting']:<55} s{r['seed']} | " + " | ".join(cells) + verdict)


def part_bic_n(seed: int, chunk: int, spec: str) -> list[dict]:
    """Picks for every N from one run per noise level (training does not depend on N)."""
    out: list[dict[str, Any]] = []
    for noise in (0.1, 0.5, 1.0):
        X, truth = paper_stream(chunk_size=chunk, seed=seed, noise=noise)
        trace = run_stream(make_learner(spec, 10, seed), X, truth, label=f"bic_n noise {noise}")
        for n in BIC_NS:
            chunks = picks_for_n(trace, 10, n)
            out.append({"noise": noise, "bic_n": n, "chunks": chunks})
            cells = [
                f"k={c['true_dim']} d={fmt(c['delay'], 0)} acc={c['second_half_accuracy']:.2f} "
                f"mode={c['second_half_mode']}"
                for c in chunks
            ]
            print(f"noise {noise} N={n:<5} | " + " | ".join(cells))
    return out


def picks_for_n(trace: Trace, dim: int, n: int) -> list[dict]:
    """Per chunk: delay, second-half accuracy and most frequent pick under BIC with this N."""
    dims = np.array(trace.latent_dims, dtype=np.float64)
    bic = (dims * dim + 1)[None, :] * math.log(n) - 2.0 * n * trace.elbo  # (T, M), Eq. 27
    picks = np.array(trace.latent_dims)[bic.argmin(1)]
    return pick_chunks(picks, trace.truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        choices=["baseline", "curve", "full", "streams", "bic_n"],
        action="append",
        help="what to run (default: all)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chunk", type=int, default=20_000, help="rows per chunk for curve")
    parser.add_argument(
        "--settings", nargs="+", help="learner specs for curve and full (default: SETTINGS, BEST)"
    )
    parser.add_argument("--quick", action="store_true", help="one seed, short chunks, few settings")
    parser.add_argument(
        "--no-baseline", action="store_true", help="full/curve without the paper's baseline"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    parts = args.part or ["baseline", "curve", "full", "streams", "bic_n"]
    full_chunk = 100_000
    settings = args.settings or SETTINGS
    if args.quick:
        args.seeds, args.chunk, full_chunk = [0], 10_000, 20_000
        settings = args.settings or [PAPER, "plain:lr=0.02", *BEST[:1]]
    result: dict[str, Any] = {"seeds": args.seeds, "chunk_rows": args.chunk}
    base: dict[int, dict] = {}
    if "baseline" in parts or ({"curve", "full"} & set(parts) and not args.no_baseline):
        progress("baseline: the paper's setting on full chunks")
        base = part_baseline(args.seeds, full_chunk)
        result["baseline"] = list(base.values())
    if "curve" in parts:
        progress(f"curve: {len(settings)} settings x {len(args.seeds)} seeds")
        result["curve"] = part_grid(settings, ["D10 (6,2,4)"], args.seeds, args.chunk, base)
    if "full" in parts:
        progress("full: the best settings on the full paper stream")
        best = args.settings or BEST
        result["full"] = part_grid(best, ["D10 (6,2,4)"], args.seeds, full_chunk, base)
    if "streams" in parts:
        progress("streams: paper setting and best settings on other streams")
        names = [n for n in STREAMS if n != "D10 (6,2,4)"]
        specs = [PAPER, *(args.settings or BEST)]
        result["streams"] = part_grid(specs, names, args.seeds, args.chunk, {})
    if "bic_n" in parts:
        progress("bic_n: picks for every N")
        result["bic_n"] = part_bic_n(args.seeds[0], args.chunk, BEST[0])
    name = "tracking_quick" if args.quick else "tracking"
    if args.part:  # a partial run does not overwrite the whole sweep's results
        name += "_" + "_".join(args.part)
    if args.settings:  # nor does a run of other settings
        name += "_" + "_".join(s.strip(":").replace(":", "_").replace(",", "_").replace("=", "")
                               for s in args.settings)  # fmt: skip
    write_json(name, result)
    if "curve" in result:
        plot_curve(result["curve"], name)


def plot_curve(rows: list[dict], name: str) -> None:
    """Delay after the changes against noise ratio, one point per setting and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.common import OUT

    fig, ax = plt.subplots(figsize=(13, 6))
    specs = list(dict.fromkeys(r["setting"] for r in rows))
    for i, spec in enumerate(specs):
        pts = [r for r in rows if r["setting"] == spec]
        x = [
            max(c["batches"] if c["delay"] is None else c["delay"] for c in r["chunks"])
            for r in pts
        ]
        y = [min(c["min_noise_ratio"] for c in r["chunks"]) for r in pts]
        marker = "o" if spec.startswith("plain") else ("s" if i < 20 else "^")
        ax.scatter(x, y, label=spec, marker=marker, color=plt.cm.tab20(i % 20))
    ax.axhline(10, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("worst detection delay over the chunks (batches)")
    ax.set_ylabel("smallest noise ratio batch BIC / entropy BIC (second halves)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / f"{name}_curve.png", dpi=120)
    progress(f"wrote bench/out/{name}_curve.png")


if __name__ == "__main__":
    main()
