"""States of earlier releases (LinearVAEBank versions 1 and 2, AdaptiveBank around them),
migrated to the learner's (version 3), so that stored streams load and go on.

- Adam/SGD banks keep their parameters, moments, generator and schedule exactly: they continue
  as they would have.
- Natural-step banks (the previous default) become the subspace rule: its covariance model is
  that of the largest candidate, C = W W^T + sigma^2 I around the running mean, resting on the
  rows the running mean had seen. The candidates are then refitted from it, and the first
  batches after the move adjust it; the convergence test starts over.
"""

import io
from typing import Any

import numpy as np
import torch

from streaming import subspace
from streaming.arrays import Arrays
from streaming.control import LEARN_BATCHES, ChangeDetector
from streaming.convergence import Convergence
from streaming.spec import StreamSpec

DEFAULT_BOOST = 0.05
VERSIONS = (1, 2)  # LinearVAEBank's state versions


def migrate(state: dict[str, Any]) -> dict[str, Any]:
    """A version-1/2 bank state (or an AdaptiveBank's) as a version-3 learner state."""
    adaptive = None
    if "bank" in state:  # AdaptiveBank: the bank's own bytes inside
        adaptive = state
        state = torch.load(io.BytesIO(state["bank"]), map_location="cpu", weights_only=True)
    config = dict(state["config"])
    optimizer = config.get("optimizer", "adam")  # version 1 had Adam/SGD only
    spec = StreamSpec(
        latent_dims=tuple(config["latent_dims"]),
        optimizer=optimizer,
        learning_rate=config["learning_rate"],
        estimator=config["estimator"],
        mc_samples=config["mc_samples"],
        bic_n=config["bic_n"],
        collapse_threshold=config["collapse_threshold"],
        seed=config["seed"],
        device=config["device"],
        standardize=config.get("standardize", False),
        adaptive=adaptive is not None,
        boost_learning_rate=DEFAULT_BOOST if adaptive is None else adaptive["adaptive"]["boost_lr"],
        switch_margin=0.0 if adaptive is None else adaptive["adaptive"]["switch_margin"],
    )
    dim = int(state["dim"])
    m = len(spec.latent_dims)
    counters = [0, 0, 0, -1, 0] if adaptive is None else list(adaptive["counters"])
    since_alarm, _, resets, since_reset, pick = (int(v) for v in counters[:5])
    if spec.gradient:
        rule = {
            "params": state["params"],
            "optimizer": state["optimizer"],
            "rng": state["rng"],
            "schedule": [since_alarm, since_reset],
            "rows": 0.0,
        }
    else:
        rule = _subspace_state(state, spec, dim)
    last = state.get("last_batch_elbo")
    return {
        "version": 3,
        "dim": dim,
        "spec": spec.to_record(),
        "rule": rule,
        "scaler": state.get("scaler"),
        "detector": None if adaptive is None else _detector(adaptive, m, dim, spec.gradient),
        "convergence": Convergence(m).state(),
        "counters": [
            int(state["step"]),
            int(state["rows_seen"]),
            int(state["last_rows"]),
            pick,
            resets,
        ],
        "batch_elbo": [float("nan")] * m if last is None else last.double().tolist(),
    }


def _detector(adaptive: dict[str, Any], m: int, dim: int, gradient: bool) -> dict[str, Any]:
    """The old detector's state where its gap meant the same (Adam/SGD: its fast average and
    noise, listening), else a fresh one that keeps the count of alarms."""
    counters = adaptive["counters"]
    alarms = int(counters[1])
    fresh = ChangeDetector(m, dim, learn_level=not gradient).state()
    if not gradient:
        return {**fresh, "alarms": alarms}
    arrays = adaptive["arrays"]
    row_var = arrays["_row_var"].tolist()
    alarm_var = arrays["_alarm_var"].tolist() if "_alarm_var" in arrays else row_var
    length = int(counters[5]) if len(counters) > 5 else int(int(counters[0]) == 0)
    return {**fresh, "fast": arrays["_gap"].tolist(), "row_var": row_var,
            "alarm_var": alarm_var, "listened": LEARN_BATCHES + 1, "alarm_length": length,
            "alarms": alarms}  # fmt: skip


def _subspace_state(state: dict[str, Any], spec: StreamSpec, dim: int) -> dict[str, Any]:
    """The subspace rule's state of a natural-step bank: the covariance model of its largest
    candidate, expressed in a basis whose first columns span that candidate's W."""
    k = subspace.directions(dim, spec.latent_dims)
    natural = state.get("natural")
    if natural is None:  # no batch yet
        s = subspace.new(Arrays(torch.device("cpu"), numpy=False), dim, k, spec.seed)
        return _as_dict(s.U[0], s.M[0], None if s.G is None else s.G[0], s.c[0], s.T[0], 0.0,
                        int(state["last_rows"]))  # fmt: skip
    i = int(np.argmax(spec.latent_dims))
    W = state["params"]["W"][i].double()  # (D, Hmax)
    sigma2 = float(natural["sigma2"][i])
    if k == dim:
        U = torch.eye(dim, dtype=torch.float64)
    else:
        gen = torch.Generator().manual_seed(spec.seed)
        fill = torch.randn(dim, k, generator=gen, dtype=torch.float64)
        U = torch.linalg.qr(torch.cat([W, fill], 1))[0][:, :k]
    wu = W.T @ U  # (Hmax, K)
    M = wu.T @ wu + sigma2 * torch.eye(k, dtype=torch.float64)
    G = None if k == dim else W @ wu + sigma2 * U
    T = W.square().sum() + dim * sigma2
    c = natural["mean"].double()
    return _as_dict(U, M, G, c, T, float(natural["rows"]), int(state["last_rows"]))


def _as_dict(
    U: torch.Tensor, M: torch.Tensor, G: torch.Tensor | None, c: torch.Tensor, T: torch.Tensor,
    n: float, last_rows: int,
) -> dict[str, Any]:  # fmt: skip
    return {"U": U, "M": M, "G": G, "c": c, "T": T, "n": n, "since": 0.0,
            "last_rows": last_rows}  # fmt: skip
