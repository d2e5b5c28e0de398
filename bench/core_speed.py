"""Speed of the numerical core (issue 6, item 4).

1. Batches per second of LinearVAEBank (one stacked step for H = 2, 4, 6 plus its report)
   against the naive per-model loop of bench/naive.py (Listing 1 of the paper), in the same run,
   for D = 10, 100, 1000, B = 10, 100, analytic and MC-100. The analytic step's closed-form
   gradients (streaming.objectives.analytic_elbo_and_grads) are checked against autograd first.
2. Cost of scoring three candidates: the data-free entropy BIC (Corollary 1) against the exact
   p-PCA log-likelihood (Eq. 26) of a window of 1,000 rows and an MC ELBO (100 samples) of a
   batch of 100 rows.
3. The default natural step against the paper's Adam analytic step (issue 9), at D = 10 and 64,
   B = 10, H = 2, 4, 6, for the plain bank and for the adaptive bank the service runs; the
   measurements are interleaved in rounds (the machine is shared) and the median kept.

    python -m bench.core_speed [--quick] [--device cpu] [--threads 1] [--only optimizers]
"""

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.common import progress, set_threads, write_json
from bench.naive import NaiveBank
from streaming import entropy, objectives, ppca
from streaming.adaptive import AdaptiveBank
from streaming.bank import LinearVAEBank
from streaming.config import BankConfig, Estimator
from streaming.data import ppca_data

DIMS = (10, 100, 1000)
ROWS = (10, 100)
ESTIMATORS: tuple[Estimator, ...] = ("analytic", "mc")


def rate(step: Callable[[], object], seconds: float, min_calls: int = 3) -> float:
    """Calls per second of `step` over about `seconds` (after two warm-up calls)."""
    step()
    step()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        step()
        calls += 1
    return calls / (time.perf_counter() - start)


def cycling(learn: Callable[[Any], object], batches: list[Any]) -> Callable[[], object]:
    """A step that learns the next batch of the list, round and round."""
    state = {"i": 0}

    def step() -> object:
        state["i"] += 1
        return learn(batches[state["i"] % len(batches)])

    return step


def bank_vs_naive(seconds: float, device: str) -> list[dict[str, Any]]:
    rows = []
    for estimator in ESTIMATORS:
        for dim in DIMS:
            for b in ROWS:
                x = ppca_data(50 * b, dim, 4, seed=0)
                batches = [x[i * b : (i + 1) * b] for i in range(50)]
                bank = LinearVAEBank(dim, BankConfig(estimator=estimator, device=device))
                naive = NaiveBank(dim, num_samples=100 if estimator == "mc" else None)
                r_bank = rate(cycling(bank.learn_many, batches), seconds)
                r_naive = rate(cycling(naive.learn_many, batches), seconds)
                rows.append(
                    {
                        "estimator": estimator,
                        "D": dim,
                        "B": b,
                        "bank_batches_per_s": r_bank,
                        "naive_batches_per_s": r_naive,
                        "speedup": r_bank / r_naive,
                    }
                )
                print(
                    f"{estimator:<8} D={dim:<5} B={b:<4} bank {r_bank:9.1f}/s  "
                    f"naive {r_naive:9.1f}/s  x{r_bank / r_naive:5.2f}",
                    flush=True,
                )
    return rows


def scorers(dim: int, device: str) -> dict[str, Callable[[], object]]:
    """The four ways to score the three candidates of a bank trained a little on D-dim data."""
    x = ppca_data(1_000, dim, 4, seed=1)
    bank = LinearVAEBank(dim, BankConfig(device=device))
    for i in range(20):
        bank.learn_many(x[i * 10 : (i + 1) * 10])
    # read-only use of the bank's stacked parameters
    p = {k: v.detach() for k, v in bank._params.items()}
    with torch.no_grad():
        tau2, sigma2 = bank._variances()
    mask = bank._mask
    mask_np = mask.double().cpu().numpy()
    dims = np.array(bank.config.latent_dims)
    xt = torch.as_tensor(x[:100], device=bank.device)
    gen = torch.Generator(device=bank.device).manual_seed(0)

    def entropy_bic() -> object:  # Corollary 1 + Eq. 27: M x (Hmax + 1) numbers to the host
        t2, s2 = tau2.double().cpu().numpy(), sigma2.double().cpu().numpy()
        f = entropy.entropy_elbo(t2, s2, mask_np, dim)
        return entropy.bic(f, dims, dim, 10).tolist()

    def eq26() -> object:  # exact p-PCA log-likelihood of a window of 1,000 rows
        out = []
        for i, h in enumerate(bank.config.latent_dims):
            w = p["W"][i, :, :h].double().cpu().numpy()
            mu = p["mu"][i].double().cpu().numpy()
            out.append(ppca.loglik(w, float(sigma2[i]), ppca.covariance(x, mean=mu)))
        return out

    def mc_elbo() -> object:  # the paper's estimator: 100 samples per row, 100 rows
        return objectives.batch_elbo(
            xt, p["W"], p["mu"], sigma2, p["V"], p["b"], tau2, mask, samples=100, generator=gen
        ).tolist()

    return {
        "entropy_bic": entropy_bic,
        "eq26_window_1000": eq26,
        "mc_elbo_100x100": mc_elbo,
        "bank_report": bank.report,
    }


def scoring(seconds: float, device: str) -> list[dict[str, Any]]:
    """Microseconds per scoring of the three candidates, for every D."""
    rows = []
    for dim in DIMS:
        row: dict[str, Any] = {"D": dim}
        for name, fn in scorers(dim, device).items():
            row[f"{name}_us"] = 1e6 / rate(fn, seconds / 4)
        rows.append(row)
        print(
            f"D={dim:<5} entropy BIC {row['entropy_bic_us']:9.1f} us | Eq. 26, 1000 rows "
            f"{row['eq26_window_1000_us']:10.1f} us | MC ELBO 100x100 "
            f"{row['mc_elbo_100x100_us']:10.1f} us | bank.report() {row['bank_report_us']:8.1f} us",
            flush=True,
        )
    return rows


def check_closed_form(device: str) -> list[dict[str, Any]]:
    """The bank's closed-form gradients against autograd on the same objective, in float32."""
    rows = []
    for dim in DIMS:
        x = ppca_data(200, dim, 4, seed=2)
        bank = LinearVAEBank(dim, BankConfig(device=device))
        for i in range(10):
            bank.learn_many(x[i * 10 : (i + 1) * 10])
        xt = torch.as_tensor(x[100:110], device=bank.device)
        for v in bank._params.values():
            v.grad = None
        elbo = autograd_elbo(bank, xt)
        (-elbo.sum()).backward()
        closed_elbo, grads = objectives.analytic_elbo_and_grads(
            xt, **{k: v.detach() for k, v in bank._params.items()}, mask=bank._mask
        )
        rel = max(
            float((v.grad - grads[k]).abs().max() / v.grad.abs().max().clamp_min(1e-30))
            for k, v in bank._params.items()
            if v.grad is not None
        )
        rows.append(
            {
                "D": dim,
                "max_rel_grad_diff": rel,
                "max_elbo_diff": float((elbo.detach() - closed_elbo).abs().max()),
            }
        )
        print(
            f"closed form D={dim}: max relative gradient difference {rel:.2e}, "
            f"ELBO difference {rows[-1]['max_elbo_diff']:.2e}",
            flush=True,
        )
    return rows


def autograd_elbo(bank: LinearVAEBank, x: torch.Tensor) -> torch.Tensor:
    """The bank's analytic batch ELBO (M,) through autograd-tracked ops (objectives.batch_elbo)."""
    p = bank._params
    tau2, sigma2 = bank._variances()
    return objectives.batch_elbo(x, p["W"], p["mu"], sigma2, p["V"], p["b"], tau2, bank._mask)


def breakdown(seconds: float, device: str) -> dict[str, float]:
    """Microseconds of the parts of one step at D = 10, B = 10: the bank as it is, its
    closed-form gradients, and the autograd forward/backward of the analytic ELBO (how the
    first bank computed its gradients)."""
    x_np = ppca_data(10, 10, 4, seed=3)
    bank = LinearVAEBank(10, BankConfig(device=device))
    x = torch.as_tensor(x_np, device=bank.device)
    params = {k: v.detach() for k, v in bank._params.items()}

    def forward() -> object:
        with torch.no_grad():
            return autograd_elbo(bank, x)

    def forward_backward() -> object:
        (-autograd_elbo(bank, x).sum()).backward()
        return None

    parts: dict[str, Callable[[], object]] = {
        "bank_learn_many": lambda: bank.learn_many(x_np),
        "input_validation": lambda: bank._as_batch(x_np),
        "autograd_forward_no_grad": forward,
        "autograd_forward_backward": forward_backward,
        "closed_form_grads": lambda: objectives.analytic_elbo_and_grads(
            x, **params, mask=bank._mask
        ),
        "bank_fused_adam_step": bank._optimizer.step,
        "bank_report": bank.report,
    }
    out = {name: 1e6 / rate(fn, seconds / 2) for name, fn in parts.items()}
    print(
        "step breakdown at D=10, B=10 (us): " + ", ".join(f"{k} {v:.0f}" for k, v in out.items()),
        flush=True,
    )
    return out


def optimizers(seconds: float, device: str, rounds: int = 20) -> list[dict[str, Any]]:
    """Microseconds per batch of the natural step and the Adam analytic step, same run: the
    four measurements take turns in `rounds` short rounds; the median and the fastest round
    (the least disturbed by other work on a shared machine) are kept."""
    rows = []
    for dim in (10, 64):
        x = ppca_data(5_000, dim, 4, seed=4)
        batches = [x[i * 10 : (i + 1) * 10] for i in range(500)]
        steps = {}
        for kind in (LinearVAEBank, AdaptiveBank):
            for opt in ("natural", "adam"):
                bank = kind(dim, BankConfig(optimizer=opt, device=device))  # type: ignore[arg-type]
                steps[(kind.__name__, opt)] = cycling(bank.learn_many, batches)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in steps}
        for _ in range(rounds):
            for key, step in steps.items():
                times[key].append(1e6 / rate(step, seconds / rounds))
        for kind_name in ("LinearVAEBank", "AdaptiveBank"):
            nat, adam = times[(kind_name, "natural")], times[(kind_name, "adam")]
            row = {"D": dim, "bank": kind_name, "rounds": rounds,
                   "natural_us": float(np.median(nat)), "adam_us": float(np.median(adam)),
                   "natural_min_us": min(nat), "adam_min_us": min(adam)}  # fmt: skip
            row["natural_over_adam"] = row["natural_us"] / row["adam_us"]
            row["natural_over_adam_min"] = row["natural_min_us"] / row["adam_min_us"]
            rows.append(row)
            print(
                f"D={dim:<3} {kind_name:<13} us/batch median (fastest round): natural "
                f"{row['natural_us']:6.0f} ({row['natural_min_us']:5.0f})  adam "
                f"{row['adam_us']:6.0f} ({row['adam_min_us']:5.0f})  natural/adam "
                f"{row['natural_over_adam']:4.2f} ({row['natural_over_adam_min']:4.2f})",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.3 s per measurement")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=["optimizers"], help="run only this part")
    args = parser.parse_args()
    set_threads(args.threads)
    seconds = 0.3 if args.quick else args.seconds
    progress("natural step vs Adam analytic step")
    steps = optimizers(4 * seconds, args.device)
    if args.only:
        write_json(f"core_speed_optimizers_{args.device}", {"optimizers": steps})
        return
    check = check_closed_form(args.device)
    parts = breakdown(seconds, args.device)
    progress(f"bank vs naive loop, {seconds} s per measurement, device {args.device}")
    speed = bank_vs_naive(seconds, args.device)
    progress("scoring cost")
    score = scoring(seconds, args.device)
    write_json(
        "core_speed_quick" if args.quick else f"core_speed_{args.device}",
        {
            "device": args.device,
            "closed_form_check": check,
            "breakdown_us": parts,
            "speed": speed,
            "scoring": score,
            "optimizers": steps,
        },
    )


if __name__ == "__main__":
    main()
