"""Speed of the numerical core (issue 20, item 4): microseconds per batch of one learner
against its arithmetic floor, the exact running covariance and IncrementalPCA, in one run.

Per configuration (D, B, candidates), single thread, CPU time per batch (process time: the
machine is shared), median over interleaved rounds after a warm-up of 60 batches:

  dimwatch   Learner.learn_many with the service's defaults (subspace rule, change detection):
             one step of every candidate and its report (scores, pick, collapse, flags)
  floor      the four products one step of every candidate cannot avoid (x W, nu W^T, r^T nu,
             W R), float32, into preallocated outputs: what any update of M linear VAEs costs
  exact      n, sum x, sum x x^T in float64, eigvalsh of the covariance and the closed-form
             p-PCA log-likelihood of every candidate after every batch (what a user would write)
  ipca       scikit-learn's IncrementalPCA(K = max H + 8).partial_fit (only where B >= K)

and, for many small streams (`--part many`): the CPU per stream-batch of S streams (D = 10,
B = 10) pushed one by one (learn_many) and together (learn_together, one stacked computation),
against S times the floor.

Through the server (`--part served`): a real `dimwatch serve` process fed binary batches by one
kept-alive client; per batch, the server's own `dimwatch_step_seconds` (the training step plus
the durable commit of the batch's rows) and `dimwatch_commit_seconds`, against a no-op FastAPI
app answering the same requests (its server CPU and its latency per request) and the exact
alternative's CPU per batch (above), in the same run.

    python -m bench.core_speed [--quick] [--part step many served] [--rounds 7] [--device cpu]
"""

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.common import progress, set_threads, write_json
from streaming.data import ppca_data
from streaming.learner import Learner, learn_together
from streaming.spec import StreamSpec

CONFIGS = (  # D, B, candidates: the table
    (10, 10, (2, 4, 6)),
    (256, 10, (8, 16, 32, 64)),
    (256, 256, (8, 16, 32, 64)),
    (784, 10, (8, 16, 32, 64)),
    (784, 256, (8, 16, 32, 64)),
)
QUICK = CONFIGS[:2]


def floor_step(dim: int, rows: int, dims: tuple[int, ...], device: str) -> Callable[[], None]:
    """The four unavoidable products of one step of every candidate, preallocated."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, dim, generator=gen).to(device)
    parts = []
    for h in dims:
        w = torch.randn(dim, h, generator=gen).to(device)
        r = torch.randn(h, h, generator=gen).to(device)
        outs = [torch.empty(s, device=device) for s in ((rows, h), (rows, dim), (dim, h), (dim, h))]
        parts.append((w, r, outs))

    def step() -> None:
        for w, r, (nu, back, grad, rot) in parts:
            torch.matmul(x, w, out=nu)  # x W
            torch.matmul(nu, w.T, out=back)  # nu W^T
            torch.matmul(back.T, nu, out=grad)  # r^T nu
            torch.matmul(w, r, out=rot)  # W R
        if device != "cpu":
            torch.cuda.synchronize()

    return step


class Exact:
    """The exact running covariance, and every candidate's closed-form p-PCA LL per batch."""

    def __init__(self, dim: int, dims: tuple[int, ...]) -> None:
        self.n, self.s, self.ss, self.dims = 0, np.zeros(dim), np.zeros((dim, dim)), dims

    def learn(self, x: np.ndarray) -> list[float]:
        x = x.astype(np.float64)
        self.n += x.shape[0]
        self.s += x.sum(0)
        self.ss += x.T @ x
        m = self.s / self.n
        lam = np.linalg.eigvalsh(self.ss / self.n - np.outer(m, m))[::-1]
        d, total = lam.shape[0], float(lam.sum())
        out = []
        for h in self.dims:
            s2 = max((total - lam[:h].sum()) / (d - h), 1e-300)
            logs = np.log(np.maximum(lam[:h], 1e-300)).sum()
            out.append(-0.5 * (logs + (d - h) * math.log(s2) + d * (1 + math.log(2 * math.pi))))
        return out


def stream_of(dim: int, rows: int, batches: int) -> list[np.ndarray]:
    x = ppca_data(rows * batches, dim, min(16, dim - 2), noise=0.5, seed=1,
                  mean=np.linspace(-50.0, 50.0, dim))  # fmt: skip
    return [x[i * rows : (i + 1) * rows] for i in range(batches)]


def cycling(learn: Callable[[np.ndarray], object], batches: list[np.ndarray]) -> Callable[[], None]:
    state = {"i": 0}

    def step() -> None:
        state["i"] += 1
        learn(batches[state["i"] % len(batches)])

    return step


def per_call(step: Callable[[], None], calls: int) -> float:
    """Microseconds of CPU time per call of `step`, over `calls` calls."""
    start = time.process_time()
    for _ in range(calls):
        step()
    return (time.process_time() - start) / calls * 1e6


def interleaved(methods: dict[str, Callable[[], None]], rounds: int, budget: float) -> dict:
    """Median microseconds per call of each method over interleaved rounds of ~budget s."""
    calls = {}
    for name, step in methods.items():  # warm-up and the number of calls a round makes
        us = per_call(step, 3)
        calls[name] = max(3, int(budget * 1e6 / max(us, 1.0)))
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, step in methods.items():
            times[name].append(per_call(step, calls[name]))
    return {name: statistics.median(t) for name, t in times.items()}


def part_step(configs: tuple, rounds: int, device: str) -> list[dict[str, Any]]:
    rows_out = []
    for dim, rows, dims in configs:
        progress(f"step: D={dim} B={rows} candidates {dims}")
        batches = stream_of(dim, rows, 120)
        learner = Learner(dim, StreamSpec(latent_dims=dims, device=device))
        for xb in batches[:60]:  # past the first rows' widening of the basis
            learner.learn_many(xb)
        exact = Exact(dim, dims)
        for xb in batches[:60]:
            exact.learn(xb)
        methods = {
            "dimwatch": cycling(learner.learn_many, batches[60:]),
            "floor": floor_step(dim, rows, dims, device),
            "exact": cycling(exact.learn, batches[60:]),
        }
        k = max(dims) + 8
        if rows >= k and device == "cpu":
            from sklearn.decomposition import IncrementalPCA

            ipca = IncrementalPCA(n_components=k)
            methods["ipca"] = cycling(lambda xb, p=ipca: p.partial_fit(xb.astype(np.float64)),
                                      batches[60:])  # fmt: skip
        budget = 0.05 if dim * rows < 10_000 else 0.3
        t = interleaved(methods, rounds, budget)
        row = {"D": dim, "B": rows, "candidates": list(dims), "device": device,
               **{f"{k}_us": v for k, v in t.items()}}  # fmt: skip
        row["dimwatch_over_floor"] = t["dimwatch"] / t["floor"]
        row["dimwatch_over_exact"] = t["dimwatch"] / t["exact"]
        rows_out.append(row)
        print_step(row)
    return rows_out


def print_step(r: dict[str, Any]) -> None:
    ipca = r.get("ipca_us")
    print(f"D={r['D']:>3} B={r['B']:>3} {r['candidates']}: dimwatch {r['dimwatch_us']:8.0f} us"
          f" | floor {r['floor_us']:7.0f} (x{r['dimwatch_over_floor']:.2f}) | exact "
          f"{r['exact_us']:8.0f} (x{r['dimwatch_over_exact']:.2f}) | ipca "
          f"{'-' if ipca is None else f'{ipca:.0f}'}", flush=True)  # fmt: skip


def part_many(streams: int, rounds: int) -> dict[str, Any]:
    progress(f"many: {streams} streams, D=10, B=10")
    data = [stream_of(10, 10, 60) for _ in range(streams)]
    one = [Learner(10, StreamSpec(device="cpu", seed=s)) for s in range(streams)]
    together = [Learner(10, StreamSpec(device="cpu", seed=s)) for s in range(streams)]
    state = {"one": 0, "together": 0}

    def by_one() -> None:
        i = state["one"] = (state["one"] + 1) % 60
        for learner, batches in zip(one, data, strict=True):
            learner.learn_many(batches[i])

    def stacked() -> None:
        i = state["together"] = (state["together"] + 1) % 60
        learn_together([(lr, b[i]) for lr, b in zip(together, data, strict=True)])

    floor = floor_step(10, 10, (2, 4, 6), "cpu")

    def floors() -> None:
        for _ in range(streams):
            floor()

    t = interleaved({"one_by_one": by_one, "together": stacked, "floor": floors}, rounds, 0.2)
    row = {"streams": streams, **{f"{k}_us_per_stream": v / streams for k, v in t.items()}}
    row["together_over_floor"] = t["together"] / t["floor"]
    row["one_by_one_over_floor"] = t["one_by_one"] / t["floor"]
    print(f"{streams} streams D=10 B=10, us per stream-batch: one by one "
          f"{row['one_by_one_us_per_stream']:.0f} (x{row['one_by_one_over_floor']:.2f} floor), "
          f"together {row['together_us_per_stream']:.0f} (x{row['together_over_floor']:.2f}), "
          f"floor {row['floor_us_per_stream']:.0f}", flush=True)  # fmt: skip
    return row


SERVED = ((10, 10, (2, 4, 6)), (256, 256, (8, 16, 32, 64)))


def part_served(batches: int) -> list[dict[str, Any]]:
    import httpx

    from bench.line_rate import _mean_ms
    from bench.served import running_service

    rows_out = []
    for dim, rows, dims in SERVED:
        progress(f"served: D={dim} B={rows} candidates {dims}")
        data = stream_of(dim, rows, 60)
        bodies = [np.ascontiguousarray(x, dtype="<f4").tobytes() for x in data]
        headers = {"Content-Type": "application/octet-stream", "X-Dim": str(dim)}
        row: dict[str, Any] = {"D": dim, "B": rows, "candidates": list(dims)}
        for target in ("noop", "dimwatch"):
            with (
                running_service(noop=target == "noop", real=True) as server,
                httpx.Client(base_url=server.url, timeout=60) as client,
            ):
                if target == "dimwatch":
                    spec = {"name": "s", "dim": dim, "latent_dims": list(dims)}
                    client.post("/v1/streams", json=spec).raise_for_status()
                for body in bodies[:20]:  # warm-up, past the basis's first widening
                    client.post("/v1/streams/s/batches", content=body, headers=headers)
                before = client.get("/metrics").text if target == "dimwatch" else ""
                cpu, latencies = server.cpu_seconds(), []
                for i in range(batches):
                    start = time.perf_counter()
                    r = client.post("/v1/streams/s/batches", content=bodies[i % 60],
                                    headers=headers)  # fmt: skip
                    latencies.append(time.perf_counter() - start)
                    r.raise_for_status()
                row[f"{target}_cpu_ms"] = 1e3 * (server.cpu_seconds() - cpu) / batches
                row[f"{target}_p50_ms"] = 1e3 * statistics.median(latencies)
                if target == "dimwatch":
                    after = client.get("/metrics").text
                    row["step_ms"] = _mean_ms(before, after, "dimwatch_step_seconds")
                    row["commit_ms"] = _mean_ms(before, after, "dimwatch_commit_seconds")
        exact = Exact(dim, dims)
        row["exact_ms"] = per_call(cycling(exact.learn, data), 200) / 1e3
        row["step_over_noop_cpu"] = row["step_ms"] / row["noop_cpu_ms"]
        row["step_over_exact"] = row["step_ms"] / row["exact_ms"]
        rows_out.append(row)
        print(f"served D={dim:>3} B={rows:>3}: step + commit {row['step_ms']:.2f} ms (commit "
              f"{row['commit_ms']:.2f}) | no-op app per request: CPU {row['noop_cpu_ms']:.2f} ms, "
              f"p50 {row['noop_p50_ms']:.2f} ms | exact {row['exact_ms']:.2f} ms | step / no-op "
              f"CPU x{row['step_over_noop_cpu']:.2f}, / exact x{row['step_over_exact']:.2f}",
              flush=True)  # fmt: skip
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--part", nargs="+", default=["step", "many", "served"], choices=["step", "many", "served"]
    )
    parser.add_argument("--batches", type=int, default=500, help="batches per served target")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    set_threads(1)
    result: dict[str, Any] = {}
    if "step" in args.part:
        result["step"] = part_step(QUICK if args.quick else CONFIGS, args.rounds, args.device)
    if "many" in args.part and args.device == "cpu":
        result["many"] = part_many(8 if args.quick else args.streams, args.rounds)
    if "served" in args.part and args.device == "cpu":
        result["served"] = part_served(100 if args.quick else args.batches)
    write_json("core_speed" + (f"_{args.tag}" if args.tag else ""), result)


if __name__ == "__main__":
    main()
