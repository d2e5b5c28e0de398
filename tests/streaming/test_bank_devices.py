"""Snapshots load on any device: a generator state from another device type is not fatal."""

import io

import numpy as np
import torch

from streaming.bank import LinearVAEBank
from streaming.config import BankConfig
from streaming.data import ppca_data

CONFIG = BankConfig(
    latent_dims=(1, 3), estimator="mc", mc_samples=5, optimizer="adam", device="cpu"
)
X = ppca_data(60, 6, 2, seed=0)


def _snapshot_with_rng(rng: torch.Tensor) -> bytes:
    """A CPU bank's snapshot after two steps, its generator state replaced by `rng`."""
    bank = LinearVAEBank(6, CONFIG)
    for i in range(2):
        bank.learn_many(X[i * 10 : i * 10 + 10])
    state = torch.load(io.BytesIO(bank.state_bytes()), weights_only=True)
    state["rng"] = rng
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def test_from_bytes_with_cuda_rng_state_loads_on_cpu() -> None:
    # A CUDA generator's state is 16 bytes (Philox seed and offset); a CPU one refuses it.
    data = _snapshot_with_rng(torch.arange(16, dtype=torch.uint8))
    bank = LinearVAEBank.from_bytes(data, device="cpu")
    assert bank.step == 2
    report = bank.learn_many(X[20:30])
    assert report.step == 3
    assert all(np.isfinite(m.bic) for m in report.models)


def test_from_bytes_with_foreign_rng_state_reseeds_deterministically() -> None:
    data = _snapshot_with_rng(torch.arange(16, dtype=torch.uint8))
    a, b = LinearVAEBank.from_bytes(data), LinearVAEBank.from_bytes(data)
    for i in range(3, 6):
        xb = X[i * 10 : i * 10 + 10]
        assert a.learn_many(xb) == b.learn_many(xb)
    assert a.params(3) == b.params(3)
