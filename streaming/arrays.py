"""The array library a learner computes with: numpy on the CPU, torch on an accelerator.

A step of a small stream is a few dozen operations on tiny arrays, where the cost is each
operation's dispatch, not its arithmetic: numpy's is about a fifth of torch's on the CPU
(bench/core_speed.py measures both). On a GPU, torch keeps every array on the device. The
subspace rule (streaming/subspace.py) is written once against the few functions both libraries
spell the same way (`xp.linalg.eigh`, `xp.cumsum(a, 0)`, `xp.where`, `xp.maximum`, `xp.log`,
`a @ b`, `a.sum(0)`, ...) plus the helpers below for the ones they spell differently.
"""

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from streaming.errors import InvalidBatchError

Array = Any  # numpy.ndarray or torch.Tensor, per Arrays.xp
# the LAPACK routine numpy.linalg.eigh calls (UPLO "L"); absent: numpy.linalg.eigh itself
_EIGH_LO: Any = getattr(getattr(np.linalg, "_umath_linalg", None), "eigh_lo", None)


@dataclass(frozen=True)
class Arrays:
    """The library of one device: xp is numpy (numpy=True, CPU only) or torch."""

    device: torch.device
    numpy: bool
    xp: Any = field(init=False, repr=False, compare=False)  # the module: numpy or torch

    def __post_init__(self) -> None:
        object.__setattr__(self, "xp", np if self.numpy else torch)

    @classmethod
    def fastest(cls, device: torch.device) -> "Arrays":
        """numpy on the CPU, torch elsewhere."""
        return cls(device, device.type == "cpu")

    @property
    def float64(self) -> Any:
        return np.float64 if self.numpy else torch.float64

    def asarray(self, x: Any, dtype: str = "float64") -> Array:
        """x (numpy, torch or nested lists) as an array of this device, copied only if needed."""
        if self.numpy:
            if isinstance(x, torch.Tensor):
                x = x.detach().cpu().numpy()
            return np.asarray(x, dtype=dtype)
        return torch.as_tensor(x, dtype=getattr(torch, dtype), device=self.device)

    def single(self, a: Array) -> Array:
        """a in float32 (what is kept only to find directions, at half the memory)."""
        return a.astype(np.float32) if self.numpy else a.float()

    def zeros(self, *shape: int) -> Array:
        if self.numpy:
            return np.zeros(shape)
        return torch.zeros(shape, dtype=torch.float64, device=self.device)

    def arange(self, n: int) -> Array:
        return np.arange(n) if self.numpy else torch.arange(n, device=self.device)

    def eye(self, n: int) -> Array:
        return np.eye(n) if self.numpy else torch.eye(n, dtype=torch.float64, device=self.device)

    def eigh(self, a: Array) -> tuple[Array, Array]:
        """(eigenvalues ascending, eigenvectors) of each symmetric a (..., n, n), from its lower
        triangle. numpy: the very routine numpy.linalg.eigh calls, without its checks and error
        state (a quarter of a 10 x 10 one's cost): one that does not converge gives NaN, which
        warns under the caller's np.errstate, where numpy.linalg.eigh raises LinAlgError."""
        if self.numpy and _EIGH_LO is not None:
            w, v = _EIGH_LO(a, signature="d->dd")
            return w, v
        return self.xp.linalg.eigh(a)

    def cat(self, parts: list[Array], axis: int = 0) -> Array:
        return np.concatenate(parts, axis) if self.numpy else torch.cat(parts, axis)

    def cumsum(self, a: Array) -> Array:
        """The running sums along axis 1 (numpy: the ufunc's accumulate, as cumsum calls it)."""
        return np.add.accumulate(a, 1) if self.numpy else a.cumsum(1)

    def take(self, a: Array, index: Array) -> Array:
        """a's entries at `index` (ints) along axis 1 (numpy: take, a quarter of the cost of
        a[:, index])."""
        return a.take(index, 1) if self.numpy else a.index_select(1, index)

    def flip(self, a: Array) -> Array:
        """a reversed along its last axis (a view with numpy)."""
        return a[..., ::-1] if self.numpy else torch.flip(a, (-1,))

    def mean_rows(self, a: Array) -> Array:
        """(S, B, X) -> (S, 1, X): the mean over the rows of each stream."""
        total = np.add.reduce(a, 1, keepdims=True) if self.numpy else a.sum(1, keepdim=True)
        return total / float(a.shape[1])  # a float: numpy converts an int scalar more slowly

    def sum_rows(self, a: Array) -> Array:
        """(S, B, X) -> (S, X): the sum over the rows of each stream."""
        return np.add.reduce(a, 1) if self.numpy else a.sum(1)

    def sum_last(self, a: Array) -> Array:
        """The sum over the last axis (numpy's ufunc reduce: a third of ndarray.sum's cost)."""
        return np.add.reduce(a, -1) if self.numpy else a.sum(-1)

    def per_stream(self, v: np.ndarray, ndim: int = 3) -> Any:
        """Host numbers (S,) shaped (S, 1, ...) to scale arrays of `ndim` axes per stream; one
        stream's as a Python number (the same float64 product; on torch nothing is copied to
        the device)."""
        return float(v[0]) if v.shape[0] == 1 else v.reshape((-1,) + (1,) * (ndim - 1))

    def clip0(self, a: Array) -> Array:
        """max(a, 0) elementwise."""
        return np.maximum(a, 0.0) if self.numpy else a.clamp_min(0.0)

    def var_mean(self, a: Array) -> tuple[Array, Array]:
        """(S, B, X) -> (variance, mean) (S, X) over the rows of each stream (1 / B)."""
        mean = self.mean_rows(a)
        d = a - mean
        return self.sum_rows(d * d) / float(a.shape[1]), mean[:, 0]

    def host(self, a: Array) -> np.ndarray:
        """a as a float64 numpy array on the host (one device-to-host copy)."""
        if self.numpy:
            return np.asarray(a, dtype=np.float64)
        return a.detach().double().cpu().numpy()

    def tensor(self, a: Array) -> torch.Tensor:
        """a as a CPU tensor (what a snapshot stores, on any device)."""
        return torch.from_numpy(np.array(a)) if self.numpy else a.detach().cpu()

    def finite(self, a: Array) -> bool:
        """Every element of a (float64) finite (numpy: through one sum, which NaN and inf
        survive)."""
        if self.numpy:
            return math.isfinite(np.add.reduce(a, None))
        return bool(torch.isfinite(a).all())

    def batch(self, X: Any, dim: int) -> Array:
        """X as float64 rows of this library, after the checks every batch passes: 2-D, at
        least one row, `dim` columns, numbers that are finite as float32 (the data's precision:
        the service stores float32). Raises InvalidBatchError."""
        if not isinstance(X, (np.ndarray, torch.Tensor)):  # a tuple: half a union's cost
            raise InvalidBatchError(
                f"expected a 2-D numpy array or torch tensor, got {type(X).__name__}"
            )
        if X.ndim != 2:
            shape = tuple(X.shape)
            raise InvalidBatchError(f"expected a 2-D batch (rows, {dim}), got shape {shape}")
        if X.shape[0] < 1:
            raise InvalidBatchError("expected at least one row, got an empty batch")
        if X.shape[1] != dim:
            raise InvalidBatchError(f"expected {dim} columns, got {X.shape[1]}")
        try:
            if X.dtype == (np.float32 if isinstance(X, np.ndarray) else torch.float32):
                x = self.asarray(X, "float32")
            else:
                with np.errstate(over="ignore"):  # beyond float32: inf, refused below
                    x = self.asarray(X, "float32")
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InvalidBatchError(f"expected numbers, got dtype {X.dtype}") from exc
        x = x.astype(np.float64) if self.numpy else x.double()
        if not self.finite(x):
            raise InvalidBatchError("expected finite numbers, got NaN or Inf")
        return x
