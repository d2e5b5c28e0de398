"""The same learner on a CUDA device (skipped without one: no GPU on the CI machines; run where
one is lent). The subspace rule then computes with torch on the device."""

import numpy as np
import pytest
import torch

from streaming.arrays import Arrays
from streaming.data import ppca_data
from streaming.learner import Learner
from streaming.spec import StreamSpec

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@cuda
@pytest.mark.parametrize("dim", [10, 64], ids=["full", "tracked"])
def test_cuda_learner_gives_the_cpu_learners_answers(dim: int) -> None:
    x = ppca_data(3000, dim, 4, noise=0.3, seed=1)
    cpu = Learner(dim, StreamSpec(latent_dims=(2, 4, 6), device="cpu"))
    gpu = Learner(dim, StreamSpec(latent_dims=(2, 4, 6), device="cuda"))
    for i in range(0, len(x), 50):
        a, b = cpu.learn_many(x[i : i + 50]), gpu.learn_many(x[i : i + 50])
    assert a.best_latent_dim == b.best_latent_dim
    for m, n in zip(a.models, b.models, strict=True):
        assert m.entropy_elbo == pytest.approx(n.entropy_elbo, rel=1e-9)
    np.testing.assert_allclose(cpu.encode(x[:5]), gpu.encode(x[:5]), rtol=1e-5, atol=1e-5)


@cuda
def test_snapshot_moves_between_cpu_and_cuda() -> None:
    x = ppca_data(600, 10, 4, noise=0.3, seed=2)
    cpu = Learner(10, StreamSpec(device="cpu"))
    for i in range(0, 300, 10):
        cpu.learn_many(x[i : i + 10])
    gpu = Learner.from_bytes(cpu.state_bytes(), device="cuda")
    back = Learner.from_bytes(gpu.state_bytes(), device="cpu")
    for i in range(300, 600, 10):
        a, b = cpu.learn_many(x[i : i + 10]), back.learn_many(x[i : i + 10])
        assert a.best_latent_dim == b.best_latent_dim


@pytest.mark.parametrize("dim", [10, 64], ids=["full", "tracked"])
def test_torch_arrays_give_the_numpy_answers(dim: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # the code a GPU runs (torch arrays, one stream at a time), here on the CPU: the same
    # reports, models and snapshots as numpy's
    x = ppca_data(3000, dim, 4, noise=0.3, seed=3, mean=np.linspace(0.0, 9.0, dim))
    spec = StreamSpec(latent_dims=(2, 4, 6), device="cpu", standardize=dim == 10)
    numpy_learner = Learner(dim, spec)
    monkeypatch.setattr(Arrays, "fastest", classmethod(lambda cls, device: cls(device, False)))
    torch_learner = Learner(dim, spec)
    assert not torch_learner.arrays.numpy and numpy_learner.arrays.numpy
    for i in range(0, len(x), 50):
        a, b = numpy_learner.learn_many(x[i : i + 50]), torch_learner.learn_many(x[i : i + 50])
        assert a.best_latent_dim == b.best_latent_dim
        for m, n in zip(a.models, b.models, strict=True):
            assert m.entropy_elbo == pytest.approx(n.entropy_elbo, rel=1e-9, abs=1e-9)
            assert m.converged == n.converged
    np.testing.assert_allclose(numpy_learner.encode(x[:5]), torch_learner.encode(x[:5]),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    moved = Learner.from_bytes(torch_learner.state_bytes())  # a torch snapshot loads on numpy
    assert moved.arrays.numpy is False or moved.report() == torch_learner.report()
    assert moved.learn_many(x[:50]).step == torch_learner.step + 1
