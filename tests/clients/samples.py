"""JSON bodies exactly as docs/api.md draws them, shared by the mocked client tests."""

from typing import Any

STREAM: dict[str, Any] = {
    "name": "sensors",
    "latent_dims": [2, 4, 6],
    "learning_rate": 0.002,
    "estimator": "analytic",
    "mc_samples": 100,
    "bic_n": 10,
    "collapse_threshold": 1.0,
    "seed": 0,
    "dim": 10,
    "device": "cpu",
    "optimizer": "subspace",
    "standardize": False,
    "adaptive": True,
    "boost_learning_rate": 0.05,
    "switch_margin": 5.0,
    "step": 120,
    "rows_seen": 1200,
    "best_latent_dim": 4,
    "converged": False,
    "created_at": "2026-11-25T15:00:00Z",
    "available": True,
    "unavailable_reason": None,
}

SELECTION: dict[str, Any] = {
    "step": 121,
    "rows_seen": 1210,
    "best_latent_dim": 4,
    "models": [
        {
            "latent_dim": 2,
            "entropy_elbo": -14.1,
            "bic": 329.4,
            "batch_elbo": -14.5,
            "batch_bic": 337.0,
            "sigma2": 0.81,
            "active_latents": 2,
            "effective_rank": 7.25,
            "variance_share": 0.625,
        },
        {
            "latent_dim": 4,
            "entropy_elbo": -12.0,
            "bic": 300.5,
            "batch_elbo": None,
            "batch_bic": None,
            "sigma2": 0.5,
            "active_latents": 4,
        },
    ],
    "effective_rank": 6.5,
}

PUSH: dict[str, Any] = {"step": 121, "rows": 10, "duplicate": False, "selection": SELECTION}

COLLAPSE: dict[str, Any] = {
    "step": 121,
    "threshold": 1.0,
    "models": [
        {
            "latent_dim": 2,
            "encoder_entropies": [0.2, 1.3],
            "collapsed": [False, True],
            "tau2": [0.05, 0.9],
            "active_latents": 1,
            "s_reg": -3.2,
            "s_rec": -5.1,
        }
    ],
}

HISTORY: dict[str, Any] = {
    "data": [
        {
            "step": 1,
            "best_latent_dim": 6,
            "models": [{"latent_dim": 2, "bic": 1.0, "batch_bic": 2.0}],
        }
    ],
    "count": 1,
    "capacity": 10000,
}

MODEL: dict[str, Any] = {
    "step": 121,
    "latent_dim": 2,
    "dim": 3,
    "W": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
    "mu": [0.1, 0.2, 0.3],
    "sigma2": 0.25,
    "V": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    "b": [0.0, 0.5],
    "tau2": [0.1, 0.2],
}


def error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": code, "message": message, "details": details}
