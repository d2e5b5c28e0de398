"""Rows to the right answer (issue 20, items 2 and 3): how many rows each method needs before
every candidate's log-likelihood stays within 1% of the exact optimum with the right pick, and
when dimwatch's `converged` flag speaks, against the exact running covariance on the same rows.

Streams: stationary p-PCA, x = mu + U_k (s * g) + noise * e, k = 16 true directions whose
scales s span two decades (10^2 .. 1), column offsets of a few hundred, D = 10 .. 784 (bic_n
chosen so that the exact pick is the true 16, not the smallest candidate; D = 10: k = 4 of
candidates 2, 4, 6); and any of bench/real_data.py's datasets, pushed as shuffled epochs (every
row once per epoch) or, with --sampling iid, as independent draws with replacement from the file
(a stream whose population is the file: the same optimum, the rows' noise of an unbounded
stream; docs/math.md section 11). The exact optimum LL*(H) is closed form from the population
covariance (synthetic) or the whole dataset's (real data).

Per case and seed, after every batch:
  - dimwatch: the Learner's entropy ELBO F_ent(H) (service defaults but the candidates and N);
  - exact: n, sum x, sum x x^T in float64, eigvalsh and the closed-form p-PCA LL of every H;
  - IncrementalPCA (scikit-learn, K = max H + 8 components) with the exact running trace for
    the tail's mean eigenvalue (only where a batch has at least K rows).
"Rows to 1%": the first n from which |LL(H) - LL*(H)| <= 1% |LL*(H)| for every H and the BIC
pick is LL*'s, to the end of the stream. "Flag": the first n from which dimwatch says converged
to the end; the ratio flag / dimwatch's rows to 1% should be <= 2, and the largest true gap while
converged below 5%.

    python -m bench.rows [--quick] [--seeds 0 1] [--cases d10 d64 d256 d784 wine-raw ...]
                         [--sampling epochs|iid]
"""

import argparse
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.common import progress, set_threads, write_json
from streaming.data import random_orthogonal


@dataclass(frozen=True)
class Synthetic:
    name: str
    dim: int
    latent_dims: tuple[int, ...]
    bic_n: int
    batch: int
    rows: int
    true_dim: int = 16
    noise: float = 1.0


SYNTHETIC = (
    Synthetic("d10", 10, (2, 4, 6), 10, 10, 20_000, true_dim=4, noise=0.5),
    Synthetic("d10-b256", 10, (2, 4, 6), 10, 256, 40_000, true_dim=4, noise=0.5),
    Synthetic("d64", 64, (8, 16, 32), 100, 256, 40_000),
    Synthetic("d256", 256, (8, 16, 32), 100, 256, 40_000),
    Synthetic("d784", 784, (8, 16, 32), 1000, 256, 40_000),
    Synthetic("d784-b10", 784, (8, 16, 32), 1000, 10, 20_000),
)
REAL = ("wine-raw", "breast_cancer-raw", "digits-raw", "diabetes-raw", "iris-raw",
        "wine-std", "breast_cancer-std", "digits-std")  # fmt: skip
QUICK = ("d10", "d64", "wine-raw")


def synthetic_stream(case: Synthetic, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows float32, population covariance eigenvalues descending)."""
    rng = np.random.default_rng(seed)
    u = random_orthogonal(case.dim, rng)[:, : case.true_dim]
    s = 10 ** np.linspace(2, 0, case.true_dim) if case.true_dim > 1 else np.ones(1)
    mean = rng.uniform(-300, 300, case.dim)
    g = rng.standard_normal((case.rows, case.true_dim))
    x = mean + (g * s) @ u.T + case.noise * rng.standard_normal((case.rows, case.dim))
    cov = (u * s**2) @ u.T + case.noise**2 * np.eye(case.dim)
    return x.astype(np.float32), np.sort(np.linalg.eigvalsh(cov))[::-1]


def loglik(lam: np.ndarray, trace: float, dim: int, h: int) -> float:
    """Closed-form p-PCA LL with H latents from the top eigenvalues and the exact trace."""
    s2 = max((trace - lam[:h].sum()) / (dim - h), 1e-300)
    return -0.5 * (np.log(np.maximum(lam[:h], 1e-300)).sum() + (dim - h) * math.log(s2)
                   + dim * (1 + math.log(2 * math.pi)))  # fmt: skip


class Exact:
    """The exact running covariance: n, sum x, sum x x^T in float64; eigvalsh every batch."""

    def __init__(self, dim: int) -> None:
        self.n, self.s, self.ss = 0, np.zeros(dim), np.zeros((dim, dim))

    def learn(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.n += x.shape[0]
        self.s += x.sum(0)
        self.ss += x.T @ x

    def lls(self, dims: tuple[int, ...]) -> list[float]:
        m = self.s / self.n
        lam = np.sort(np.linalg.eigvalsh(self.ss / self.n - np.outer(m, m)))[::-1]
        return [loglik(lam, float(lam.sum()), lam.shape[0], h) for h in dims]


class Incremental:
    """IncrementalPCA(K) + the exact running trace for the tail."""

    def __init__(self, dim: int, k: int) -> None:
        from sklearn.decomposition import IncrementalPCA

        self.ipca, self.k, self.dim = IncrementalPCA(n_components=k), k, dim
        self.n, self.s, self.sq = 0, np.zeros(dim), 0.0

    def learn(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.ipca.partial_fit(x)
        self.n += x.shape[0]
        self.s += x.sum(0)
        self.sq += float(np.square(x).sum())

    def lls(self, dims: tuple[int, ...]) -> list[float]:
        m = self.s / self.n
        trace = self.sq / self.n - float(m @ m)
        lam = self.ipca.explained_variance_ * (self.n - 1) / self.n  # ddof 1 -> 1/n
        return [loglik(lam, trace, self.dim, h) for h in dims]


def run_case(
    name: str, x: np.ndarray, ll_star: np.ndarray, dims: tuple[int, ...], bic_n: int,
    batch: int, seed: int, standardize: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Every method over the stream; rows to 1% and the flag's timing."""
    from streaming.learner import Learner
    from streaming.spec import StreamSpec

    dim = x.shape[1]
    spec = StreamSpec(latent_dims=dims, bic_n=bic_n, device="cpu", seed=seed,
                      standardize=standardize)  # fmt: skip
    methods: dict[str, Any] = {"exact": Exact(dim)}
    k = min(max(dims) + 8, dim)
    if batch >= k and not standardize:
        methods["ipca"] = Incremental(dim, k)
    learner = Learner(dim, spec)
    penalty = (np.array(dims) * dim + 1) * math.log(bic_n)
    star_pick = int(np.argmin(penalty - 2 * bic_n * ll_star))
    n = x.shape[0] // batch
    lls = {k: np.zeros((n, len(dims))) for k in ["dimwatch", *methods]}
    flags = np.zeros(n, dtype=bool)
    seconds = 0.0
    for t in range(n):
        xb = x[t * batch : (t + 1) * batch]
        start = time.perf_counter()
        rep = learner.learn_many(xb)
        seconds += time.perf_counter() - start
        lls["dimwatch"][t] = [m.entropy_elbo for m in rep.models]
        flags[t] = rep.converged
        for key, method in methods.items():
            method.learn(xb)
            lls[key][t] = method.lls(dims)
    out: dict[str, Any] = {"case": name, "seed": seed, "dim": dim, "batch": batch,
                           "latent_dims": dims, "bic_n": bic_n, "pick": dims[star_pick],
                           "restarts": rep.training.restarts,
                           "ms_per_batch": 1e3 * seconds / n}  # fmt: skip
    gaps = {}
    for key, ll in lls.items():
        gap = np.abs(ll - ll_star) / np.abs(ll_star)  # (T, M)
        picks = np.argmin(penalty - 2 * bic_n * ll, 1)
        ok = (gap <= 0.01).all(1) & (picks == star_pick)
        out[f"rows_{key}"] = _rows_from(ok, batch)
        gaps[key] = gap
    out["rows_flag"] = _rows_from(flags, batch)
    worst = gaps["dimwatch"].max(1)[flags]
    out["max_gap_while_converged_pct"] = float(100 * worst.max()) if worst.size else None
    out["final_gap_pct"] = (100 * gaps["dimwatch"][-1]).tolist()
    return out


def _rows_from(ok: np.ndarray, batch: int) -> int | None:
    """Rows after the first batch from which `ok` holds to the end (None: never)."""
    bad = np.flatnonzero(~ok)
    if bad.size == 0:
        return batch
    return None if bad[-1] + 1 >= ok.size else int((bad[-1] + 2) * batch)


def real_case(name: str, seed: int, rows: int, sampling: str = "epochs") -> dict[str, Any]:
    from bench.real_data import CASES, eigenvalues, load, stream_rows

    case = next(c for c in CASES if c.name == name)
    data = load(case.dataset)
    lam = np.sort(eigenvalues(data, case.standardize))[::-1]
    ll_star = np.array([loglik(lam, float(lam.sum()), lam.shape[0], h)
                        for h in case.latent_dims])  # fmt: skip
    if sampling == "iid":  # independent draws from the file: its rows' noise never averages out
        x = data[np.random.default_rng(seed).integers(0, data.shape[0], rows)]
        name = f"{name}/iid"
    else:
        x = stream_rows(data, rows, seed)
    if case.standardize:  # the exact reference sees what dimwatch models: z-scores
        sd = data.astype(np.float64).std(0)
        x_ref = (x - data.mean(0)) / np.where(sd > 0, sd, 1.0)
        out = run_case(name, x_ref.astype(np.float32), ll_star, case.latent_dims, case.bic_n,
                       10, seed)  # fmt: skip
        out["note"] = "standardized with the whole data's scale (dimwatch: its running scale)"
        return out
    return run_case(name, x, ll_star, case.latent_dims, case.bic_n, 10, seed)


def paper_case(seed: int, chunk: int, dims: tuple[int, ...] = (2, 4, 6)) -> dict[str, Any]:
    """The paper's stream (D = 10, chunks of intrinsic dimension 6, 2, 4, batches of 10), each
    batch's F_ent against the optimum of the chunk it comes from: when the flag speaks in each
    chunk, when it drops after each change, and the largest gap while converged."""
    from streaming.data import paper_stream
    from streaming.learner import Learner
    from streaming.spec import StreamSpec

    ks = (6, 2, 4)
    x, _ = paper_stream(ks, chunk_size=chunk, seed=seed)
    u = random_orthogonal(10, np.random.default_rng(seed))  # paper_stream's U (its first draw)
    stars = []
    for k in ks:
        s = np.linspace(1.0, 5.0, 10)
        s[k:] = 0.0
        lam = np.sort(np.linalg.eigvalsh((u * s**2) @ u.T + 0.01 * np.eye(10)))[::-1]
        stars.append([loglik(lam, float(lam.sum()), 10, h) for h in dims])
    learner = Learner(10, StreamSpec(latent_dims=dims, device="cpu", seed=seed))
    per_chunk = chunk // 10
    flags, gaps = np.zeros(len(x) // 10, dtype=bool), np.zeros(len(x) // 10)
    for t in range(len(flags)):
        rep = learner.learn_many(x[t * 10 : (t + 1) * 10])
        star = np.array(stars[t // per_chunk])
        gaps[t] = np.max(np.abs([m.entropy_elbo for m in rep.models] - star) / np.abs(star))
        flags[t] = rep.converged
    chunks = [slice(i * per_chunk, (i + 1) * per_chunk) for i in range(len(ks))]
    worst = gaps[flags]
    return {"case": "paper", "seed": seed, "chunk": chunk,
            "flag_rows": [_rows_from(flags[c], 10) for c in chunks],
            "rows_to_1pct": [_rows_from(gaps[c] <= 0.01, 10) for c in chunks],
            "drop_batches": [int(np.argmin(flags[c])) if not flags[c].all() else None
                             for c in chunks[1:]],
            "max_gap_while_converged_pct": float(100 * worst.max()) if worst.size else None,
            "restarts": rep.training.restarts}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cases", nargs="+")
    parser.add_argument("--real-rows", type=int, default=20_000)
    parser.add_argument(
        "--sampling",
        choices=("epochs", "iid"),
        default="epochs",
        help="real data: shuffled epochs of the file, or draws with replacement",
    )
    parser.add_argument(
        "--paper-chunk",
        type=int,
        default=0,
        help="instead: the paper's changing stream, chunks of this many rows",
    )
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    set_threads(1)
    if args.paper_chunk:
        paper = [paper_case(seed, args.paper_chunk) for seed in args.seeds]
        for r in paper:
            print(r, flush=True)
        write_json("rows_paper" + (f"_{args.tag}" if args.tag else ""), {"runs": paper})
        return
    names = args.cases or (QUICK if args.quick else [c.name for c in SYNTHETIC] + list(REAL))
    results = []
    for name in names:
        for seed in args.seeds:
            progress(f"{name} seed {seed}")
            syn = next((c for c in SYNTHETIC if c.name == name), None)
            if syn is not None:
                x, lam = synthetic_stream(syn, seed)
                ll_star = np.array([loglik(lam, float(lam.sum()), syn.dim, h)
                                    for h in syn.latent_dims])  # fmt: skip
                r = run_case(name, x, ll_star, syn.latent_dims, syn.bic_n, syn.batch, seed)
            else:
                r = real_case(name, seed, args.real_rows, args.sampling)
            results.append(r)
            print_row(r)
            write_json("rows" + (f"_{args.tag}" if args.tag else ""), {"runs": results})


def print_row(r: dict[str, Any]) -> None:
    def ratio(a: int | None, b: int | None) -> str:
        return "-" if a is None or b is None else f"{a / b:.2f}"

    gap = r["max_gap_while_converged_pct"]
    print(f"{r['case']:>18} s{r['seed']} D={r['dim']:>3} B={r['batch']:>3} pick {r['pick']:>2} | "
          f"rows to 1%: exact {r['rows_exact']} dimwatch {r['rows_dimwatch']} "
          f"(x{ratio(r['rows_dimwatch'], r['rows_exact'])}) ipca {r.get('rows_ipca', '-')} | "
          f"flag {r['rows_flag']} (x{ratio(r['rows_flag'], r['rows_dimwatch'])}), max gap "
          f"while converged {'-' if gap is None else f'{gap:.2f}%'} | restarts {r['restarts']} "
          f"| {r['ms_per_batch']:.2f} ms/batch", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
