"""High-dimensional streams (issue 23, item 1): dimwatch against what a user would write instead,
a running covariance + eigvalsh and an SVD of a window of rows, at D = 384, 1024 and 4096 with
candidates H = 8, 16, ..., 256 (powers of two below D), in one run.

The stream: stationary p-PCA rows x = U (s * g) + noise * e with U a random orthonormal D x K
(K = 32), s = linspace(6, 3, K), noise 1, g and e standard normal, in batches of 64, float32.
Its population covariance is known, so the yardstick is exact: LL*(H) = -1/2 [sum_{i<=H} log l_i
+ (D - H) log mean_{i>H} l_i + D + D log 2 pi] from the population eigenvalues l, and the exact
pick is the lowest BIC(H) = (H D + 1) log N - 2 N LL*(H) with N = bic_n = 10,000 (K = 32: an
interior pick; the default bic_n = 10 would make the penalty of a latent D log(10) / 10 per row,
which at these D picks the smallest candidate whatever the data).

Per D, three methods over the same rows:
- dimwatch: the learner the service runs for a new stream (bench.common.make_learner
  "default:"), its entropy ELBO F_ent(H) as the estimate of LL(H), its pick and effective rank.
- covariance: running n, sum x, sum x x^T in float64; eigvalsh of S_n at each look.
- window: the last WINDOW rows; the eigenvalues of their covariance (torch.linalg.svdvals).

Figures: memory per stream (RSS per instance, many instances in a fresh process; for dimwatch
also what W and V of every candidate need, 2 D sum(H) float32, and the service's memory-budget
estimate), cost per batch (dimwatch's step; the covariance's update plus one eigvalsh; the
window's SVD: a look per batch), rows to 1% (the first checkpoint from which, at every later one,
|LL(H) - LL*(H)| <= 1% |LL*(H)| for every candidate and the pick is right; checkpoints double
from 1,024 rows), and the effective rank at the end (docs/math.md, section 14) against the
population's and the exact pick's ML model's.

    python -m bench.high_dim [--quick] [--dims 384 1024 4096] [--rows 32768]
"""

import argparse
import ctypes
import gc
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.common import OUT, make_learner, progress, set_threads, write_json
from streaming.report import effective_rank

K = 32  # intrinsic dimension of the stream
NOISE = 1.0  # unit noise: |LL*| ~ 1.4 D, so "within 1% of |LL*|" is not an artefact of units
BATCH = 64
BIC_N = 10_000
WINDOW = 4_096  # rows of the windowed SVD
LIMIT = 256  # candidates: powers of two from 8 up to LIMIT, below D


def candidates(dim: int, limit: int = LIMIT) -> tuple[int, ...]:
    return tuple(2**p for p in range(3, 30) if 2**p <= limit and 2**p < dim)


class Stream:
    """The p-PCA stream of the module docstring; `population()` is its covariance's spectrum."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.u, _ = np.linalg.qr(rng.standard_normal((dim, K)))  # (D, K)
        self.scales = np.linspace(6.0, 3.0, K)
        self.dim, self.rng = dim, rng

    def batch(self, rows: int = BATCH) -> np.ndarray:
        g = self.rng.standard_normal((rows, K)) * self.scales
        e = self.rng.standard_normal((rows, self.dim))
        return (g @ self.u.T + NOISE * e).astype(np.float32)

    def population(self) -> np.ndarray:
        tail = np.full(self.dim - K, NOISE**2)
        return np.concatenate([self.scales**2 + NOISE**2, tail])


def exact_ll(eigenvalues: np.ndarray, dims: tuple[int, ...]) -> dict[int, float]:
    """Maximum p-PCA log-likelihood per row for each H from a covariance's eigenvalues."""
    lam = np.sort(np.clip(eigenvalues, 1e-30, None))[::-1]
    d = len(lam)
    logs = np.log(lam)
    constant = d * math.log(2 * math.pi * math.e)
    return {
        h: -0.5 * (logs[:h].sum() + (d - h) * math.log(lam[h:].mean()) + constant) for h in dims
    }


def pick(ll: dict[int, float], dim: int) -> int:
    return min(ll, key=lambda h: (h * dim + 1) * math.log(BIC_N) - 2 * BIC_N * ll[h])


def ml_rank(eigenvalues: np.ndarray, h: int) -> float:
    """Effective rank of the ML p-PCA model with H latents (top H eigenvalues, the rest's mean)."""
    lam = np.sort(eigenvalues)[::-1]
    model = np.concatenate([lam[:h], np.full(len(lam) - h, lam[h:].mean())])
    p = model / model.sum()
    return math.exp(-float(np.sum(p * np.log(p))))


class Covariance:
    """The running covariance a user would keep: n, sum x, sum x x^T in float64."""

    def __init__(self, dim: int) -> None:
        self.n, self.sum, self.outer = 0, np.zeros(dim), np.zeros((dim, dim))

    def learn(self, x: np.ndarray) -> None:
        xd = x.astype(np.float64)
        self.n += len(xd)
        self.sum += xd.sum(0)
        self.outer += xd.T @ xd

    def eigenvalues(self) -> np.ndarray:
        mean = self.sum / self.n
        return np.linalg.eigvalsh(self.outer / self.n - np.outer(mean, mean))


class Window:
    """The last WINDOW rows; eigenvalues of their 1/n covariance from an SVD."""

    def __init__(self, dim: int, size: int = WINDOW) -> None:
        self.rows = np.zeros((size, dim), dtype=np.float32)
        self.filled, self.at = 0, 0

    def learn(self, x: np.ndarray) -> None:
        for row in x:  # a ring buffer
            self.rows[self.at] = row
            self.at = (self.at + 1) % len(self.rows)
        self.filled = min(self.filled + len(x), len(self.rows))

    def eigenvalues(self) -> np.ndarray:
        rows = torch.from_numpy(self.rows[: self.filled]).double()
        centred = rows - rows.mean(0)
        s = torch.linalg.svdvals(centred).numpy()
        lam = np.zeros(rows.shape[1])
        lam[: len(s)] = s**2 / self.filled
        return lam


def first_holding(checks: list[dict[str, Any]], key: str = "ok") -> int | None:
    """The first checkpoint from which every later one has `key` true (rows to 1%: "ok")."""
    first = None
    for check in checks:
        first = (first or check["rows"]) if check[key] else None
    return first


def judge(
    n: int, ll: dict[int, float], chosen: int, truth: dict[int, float], right: int
) -> dict[str, Any]:
    gaps = {h: abs(ll[h] - truth[h]) / abs(truth[h]) for h in truth}
    worst = max(gaps, key=lambda h: gaps[h])
    ok = bool(gaps[worst] <= 0.01 and chosen == right)
    return {"rows": n, "pick": chosen, "worst_gap_pct": float(100 * gaps[worst]),
            "worst_h": worst, "right": bool(chosen == right), "ok": ok}  # fmt: skip


def timed(fn: Callable[[], Any], into: list[float]) -> Any:
    start = time.perf_counter()
    out = fn()
    into.append(time.perf_counter() - start)
    return out


class Run:
    """The three methods over the same rows of one D, looked at every checkpoint."""

    def __init__(self, dim: int) -> None:
        self.dim, self.dims = dim, candidates(dim)
        self.stream = Stream(dim)
        self.truth = exact_ll(self.stream.population(), self.dims)
        self.right = pick(self.truth, dim)
        self.learner = make_learner("default:", dim, latent_dims=self.dims, bic_n=BIC_N)
        self.cov, self.win = Covariance(dim), Window(dim)
        self.times: dict[str, list[float]] = {
            k: [] for k in ("step", "cov_update", "eigvalsh", "window_svd")
        }
        methods = ("dimwatch", "covariance", "window")
        self.checks: dict[str, list[dict[str, Any]]] = {k: [] for k in methods}
        self.last: dict[str, np.ndarray] = {}

    def learn(self, x: np.ndarray) -> Any:
        report = timed(lambda: self.learner.learn_many(x), self.times["step"])
        timed(lambda: self.cov.learn(x), self.times["cov_update"])
        self.win.learn(x)
        return report

    def look(self, n: int, report: Any) -> None:
        ll = {m.latent_dim: m.entropy_elbo for m in report.models}
        self.checks["dimwatch"].append(judge(n, ll, report.best_latent_dim, self.truth, self.right))
        for name, clock in (("covariance", "eigvalsh"), ("window", "window_svd")):
            source = self.cov if name == "covariance" else self.win
            lam = timed(source.eigenvalues, self.times[clock])
            ll = exact_ll(lam, self.dims)
            self.checks[name].append(judge(n, ll, pick(ll, self.dim), self.truth, self.right))
            self.last[name] = lam
        gaps = [
            f"{k} H={v[-1]['pick']} {v[-1]['worst_gap_pct']:.2f}%" for k, v in self.checks.items()
        ]
        progress(f"D={self.dim} rows={n}: " + ", ".join(gaps))

    def result(self, report: Any, rows: int) -> dict[str, Any]:
        best = next(m for m in report.models if m.latent_dim == report.best_latent_dim)
        population = self.stream.population()
        window = np.clip(self.last["window"], 1e-30, None)
        ranks = {
            "dimwatch_pick": effective_rank(best.sigma2, best.tau2, self.dim),
            "population_exact_pick": ml_rank(population, self.right),
            "population": ml_rank(population, self.dim - 1),
            "covariance_exact_pick": ml_rank(self.last["covariance"], self.right),
            "window_pick_model": ml_rank(window, self.checks["window"][-1]["pick"]),
            "window_covariance": ml_rank(window, self.dim - 1),
        }
        seconds = {k: float(np.median(v[3:] if len(v) > 6 else v)) for k, v in self.times.items()}
        return {
            "D": self.dim,
            "candidates": list(self.dims),
            "rows": rows,
            "exact_pick": self.right,
            "checks": self.checks,
            "rows_to_1pct": {k: first_holding(v) for k, v in self.checks.items()},
            "rows_to_pick": {k: first_holding(v, "right") for k, v in self.checks.items()},
            "converged": report.converged,
            "seconds": seconds,
            "effective_rank": ranks,
        }


def run_dim(dim: int, rows: int) -> dict[str, Any]:
    run = Run(dim)
    checkpoints = {1024 * 2**i for i in range(20) if 1024 * 2**i <= rows}
    n = 0
    while n < rows:
        report = run.learn(run.stream.batch())
        n += BATCH
        if n in checkpoints:
            run.look(n, report)
    return run.result(report, rows)


def memory_child(kind: str, dim: int, count: int) -> dict[str, Any]:
    """Runs in a fresh process: RSS per instance of `kind` after one batch (the window full),
    the slope between `count` / 2 and `count` instances (what one more stream costs; the
    process's fixed costs and the first steps' allocator growth cancel out)."""
    set_threads(1)
    dims = candidates(dim)
    x = Stream(dim).batch()
    make = {
        "dimwatch": lambda: make_learner("default:", dim, latent_dims=dims, bic_n=BIC_N),
        "covariance": lambda: Covariance(dim),
        "window": lambda: Window(dim),
    }[kind]
    held: list[Any] = []
    rss = []
    for target in (count // 2, count):
        while len(held) < target:
            instance = make()
            if kind == "dimwatch":
                instance.learn_many(x)
            else:
                for _ in range(WINDOW // BATCH if kind == "window" else 1):
                    instance.learn(x)
            held.append(instance)
        rss.append(_rss())
    per_instance = (rss[1] - rss[0]) / (count - count // 2)
    out: dict[str, Any] = {"per_instance": per_instance}
    if kind == "dimwatch":
        out["resident_bytes"] = held[0].resident_bytes()  # what the memory budget reserves
        out["need_w_v"] = 2 * dim * sum(dims) * 4
    return out


def _rss() -> int:
    """Resident bytes of this process after glibc has returned freed heap to the system (the
    steps' temporaries are freed but kept by malloc otherwise, a noise of several MB)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def memory(dim: int) -> dict[str, Any]:
    """RSS per instance of each method, each in its own fresh process."""
    out: dict[str, Any] = {}
    for kind, count in (("dimwatch", 16), ("covariance", 6), ("window", 6)):
        args = [
            sys.executable,
            "-m",
            "bench.high_dim",
            "--memory-child",
            kind,
            str(dim),
            str(count),
        ]
        done = subprocess.run(args, capture_output=True, text=True, check=True)
        out[kind] = json.loads(done.stdout.strip().splitlines()[-1])
        progress(f"D={dim} memory {kind}: {out[kind]['per_instance'] / 2**20:.1f} MB per instance")
    return out


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def _rows(value: int | None) -> str:
    return "never" if value is None else f"{value:,}"


def table(results: list[dict[str, Any]]) -> str:
    """The markdown tables of bench/RESULTS.md from the results."""
    lines = [
        "| D | candidates | method | memory/stream (MB) | per batch of 64 (ms) | rows to the pick "
        "| rows to 1% | effective rank at end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mem, sec, rank = r["memory"], r["seconds"], r["effective_rank"]
        cands = f"{r['candidates'][0]}..{r['candidates'][-1]} ({len(r['candidates'])})"
        look = {"covariance": sec["cov_update"] + sec["eigvalsh"], "window": sec["window_svd"]}
        rows = {
            "dimwatch": (mem["dimwatch"]["per_instance"], sec["step"], rank["dimwatch_pick"]),
            "covariance": (mem["covariance"]["per_instance"], look["covariance"],
                           rank["covariance_exact_pick"]),
            "window": (mem["window"]["per_instance"], look["window"], rank["window_pick_model"]),
        }  # fmt: skip
        for method, (memory_bytes, seconds, eff) in rows.items():
            checks = [{**c, "right": c["pick"] == r["exact_pick"]} for c in r["checks"][method]]
            to_pick = first_holding(checks, "right")
            lines.append(
                f"| {r['D']} | {cands} | {method} | {_mb(memory_bytes)} | {1000 * seconds:.1f} | "
                f"{_rows(to_pick)} | {_rows(r['rows_to_1pct'][method])} | {eff:.1f} |"
            )
    lines += [
        "",
        "| D | W and V need (MB) | dimwatch RSS (MB) | ratio | budget/resident estimate (MB) "
        "| exact pick | population effective rank (pick's ML model) | window's own effective rank "
        "| converged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        dw = r["memory"]["dimwatch"]
        lines.append(
            f"| {r['D']} | {_mb(dw['need_w_v'])} | {_mb(dw['per_instance'])} | "
            f"{dw['per_instance'] / dw['need_w_v']:.1f}x | {_mb(dw['resident_bytes'])} | "
            f"{r['exact_pick']} | {r['effective_rank']['population_exact_pick']:.1f} | "
            f"{r['effective_rank']['window_covariance']:.1f} | {r['converged']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 1024, 4096])
    parser.add_argument("--rows", type=int, default=32_768)
    parser.add_argument("--quick", action="store_true", help="8,192 rows, D = 384 and 1024")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--table", action="store_true", help="print the tables of the last run")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads((OUT / "high_dim.json").read_text())["results"]))
        return
    if args.memory_child:
        kind, dim, count = args.memory_child
        print(json.dumps(memory_child(kind, int(dim), int(count))))
        return
    set_threads(1)
    dims, rows = ([384, 1024], 8_192) if args.quick else (args.dims, args.rows)
    results = []
    for dim in dims:
        result = run_dim(dim, rows)
        result["memory"] = memory(dim)
        results.append(result)
        write_json("high_dim", {"results": results, "argv": sys.argv[1:]})
    print(table(results))


if __name__ == "__main__":
    main()
