"""The paper's Fig. 3(a) reproduced (issue 6, item 1): through the core (analytic and MC-100)
and through the HTTP service on a real uvicorn on 127.0.0.1.

The paper's stream (Appendix A): chunks of 100,000 points of intrinsic dimension 6, 2, 4, D = 10,
batches of 10, H = 2, 4, 6, Adam lr 0.002, BIC with N = 10. Per chunk: second-half accuracy of
the entropy-BIC pick, detection delay (100 consecutive right picks), and over the second half
the plain std and the batch-to-batch noise (residual from a centred 51-batch moving average) of
the entropy BIC and of the batch-ELBO BIC, with their ratios.

    python -m bench.paper_fig3 [--quick] [--runs analytic mc service] [--learner SPEC]

The default learner is the paper's recipe (plain Adam, lr 0.002). `--learner default:` runs what
the service now runs for a new stream, Learner(StreamSpec()) with the subspace rule; it has no
MC estimator, so its runs are analytic and service.
"""

import argparse
from typing import Any

import numpy as np

from bench.common import (
    OUT,
    Trace,
    fmt,
    judge,
    make_learner,
    progress,
    run_stream,
    set_threads,
    write_json,
)
from streaming.data import paper_stream

DEFAULT = "default:"  # the service's default stream (natural step, adaptive alarms)


def run_core(spec: str, estimator: str, X: np.ndarray, truth: np.ndarray, device: str) -> Trace:
    learner = make_learner(spec, X.shape[1], 0, estimator=estimator, device=device)
    return run_stream(learner, X, truth, label=f"core {estimator}")


def run_service(spec: str, X: np.ndarray, truth: np.ndarray, device: str) -> Trace:
    """The same stream through the HTTP service, with the stream settings matching `spec`."""
    from bench.served import ServedStream, running_service

    with running_service(device=device) as server:
        settings = service_settings(spec, X.shape[1])
        stream = ServedStream(server.url, "fig3", X.shape[1], device=device, **settings)
        try:
            return run_stream(stream, X, truth, label="service")
        finally:
            stream.close()


def service_settings(spec: str, dim: int) -> dict[str, Any]:
    """Stream settings of the service for a learner spec (its StreamSpec but the device)."""
    from streaming.learner import Learner

    if spec == DEFAULT:
        return {}  # the service's defaults for a new stream
    learner = make_learner(spec, dim)
    assert isinstance(learner, Learner)
    record = learner.spec.to_record()
    return {k: v for k, v in record.items() if k not in ("device", "spec_version")}


def print_table(name: str, chunks: list[dict[str, Any]]) -> None:
    print(f"\n{name}")
    print(
        "chunk k | delay | 2nd-half acc |  H | std ent | std batch | std ratio"
        " | noise ent | noise batch | noise ratio"
    )
    for i, c in enumerate(chunks):
        for h, v in c["per_h"].items():
            print(
                f"{i + 1:>5} {c['true_dim']} | {fmt(c['delay'], 0):>5} | "
                f"{c['second_half_accuracy']:>12.4f} | {h:>2} | {v['std_entropy']:>7.2f} | "
                f"{v['std_batch']:>9.2f} | {v['std_ratio']:>9.1f} | {v['noise_entropy']:>9.3f} | "
                f"{v['noise_batch']:>11.2f} | {v['noise_ratio']:>11.1f}"
            )


def plot(traces: dict[str, Trace], name: str) -> None:
    """Like Fig. 3(a): batch BIC translucent, entropy BIC solid, one colour per H; picks below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, len(traces), figsize=(7 * len(traces), 6), squeeze=False, height_ratios=[4, 1]
    )
    for col, (label, tr) in enumerate(traces.items()):
        ax, pick_ax = axes[0, col], axes[1, col]
        t = np.arange(tr.picks.shape[0])
        for i, h in enumerate(tr.latent_dims):
            color = plt.cm.tab10(i)
            ax.plot(t, tr.batch_bic[:, i], color=color, alpha=0.15, linewidth=0.5)
            ax.plot(t, tr.bic[:, i], color=color, linewidth=1.5, label=f"H={h}")
        lo = np.nanpercentile(tr.bic, 1)
        ax.set_ylim(lo - 100, np.nanpercentile(tr.batch_bic, 99) + 50)
        ax.set_title(f"{label}: entropy BIC (solid) vs batch-ELBO BIC (translucent)")
        ax.set_ylabel("BIC (lower is better)")
        ax.legend(loc="upper right")
        pick_ax.plot(t, tr.truth, color="black", label="true dimension")
        pick_ax.plot(t, tr.picks, color="tab:red", linestyle="--", label="pick")
        pick_ax.set_xlabel("batch")
        pick_ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / f"{name}.png", dpi=110)
    progress(f"wrote bench/out/{name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["analytic", "mc", "service"])
    parser.add_argument("--chunk", type=int, default=100_000, help="rows per chunk")
    parser.add_argument("--learner", default="plain:lr=0.002", help="spec (bench.common)")
    parser.add_argument("--quick", action="store_true", help="chunks of 20,000 rows")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    set_threads(args.threads)
    chunk = 20_000 if args.quick else args.chunk
    X, truth = paper_stream(chunk_size=chunk, seed=0)
    progress(f"paper stream: {X.shape[0]} rows, chunks of {chunk}, learner {args.learner}")
    traces: dict[str, Trace] = {}
    if args.learner == DEFAULT and "mc" in args.runs:
        progress("the subspace rule has no MC estimator: run mc skipped")
        args.runs = [r for r in args.runs if r != "mc"]
    for name in args.runs:
        if name == "service":
            traces[name] = run_service(args.learner, X, truth, args.device)
        else:
            traces[name] = run_core(args.learner, name, X, truth, args.device)
        progress(f"{name}: {traces[name].seconds:.1f} s")
    result: dict[str, Any] = {"chunk_rows": chunk, "learner": args.learner, "runs": {}}
    for name, tr in traces.items():
        chunks = judge(tr)
        print_table(
            f"{name} ({tr.seconds:.1f} s, {tr.picks.shape[0] / tr.seconds:.0f} batches/s)", chunks
        )
        result["runs"][name] = {"seconds": tr.seconds, "chunks": chunks}
    if "service" in traces and "analytic" in traces:
        same = traces["service"].picks == traces["analytic"].picks
        diff = np.abs(traces["service"].bic - traces["analytic"].bic).max()
        result["service_vs_core"] = {"same_picks": float(same.mean()), "max_bic_diff": diff}
        print(
            f"\nservice vs core analytic: picks equal in {same.mean():.4%} of batches, "
            f"max |BIC difference| {diff:.3g}"
        )
    tag = "fig3_quick" if args.quick else "fig3"
    if args.learner != "plain:lr=0.002":
        tag += "_" + args.learner.replace(":", "_").replace(",", "_").replace("=", "")
    write_json(tag, result)
    plot(traces, tag)


if __name__ == "__main__":
    main()
