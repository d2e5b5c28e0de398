"""The array library a learner computes with: numpy on the CPU, torch on an accelerator.

A step of a small stream is a few dozen operations on tiny arrays, where the cost is each
operation's dispatch, not its arithmetic: numpy's is about a fifth of torch's on the CPU
(bench/core_speed.py measures both). On a GPU, torch keeps every array on the device. The
subspace rule (streaming/subspace.py) is written once against the few functions both libraries
spell the same way (`xp.linalg.eigh`, `xp.cumsum(a, 0)`, `xp.where`, `xp.maximum`, `xp.log`,
`a @ b`, `a.sum(0)`, ...) plus the helpers below for the ones they spell differently.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Array = Any  # numpy.ndarray or torch.Tensor, per Arrays.xp


@dataclass(frozen=True)
class Arrays:
    """The library of one device: xp is numpy (numpy=True, CPU only) or torch."""

    device: torch.device
    numpy: bool

    @classmethod
    def fastest(cls, device: torch.device) -> "Arrays":
        """numpy on the CPU, torch elsewhere."""
        return cls(device, device.type == "cpu")

    @property
    def xp(self) -> Any:
        return np if self.numpy else torch

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

    def zeros(self, *shape: int) -> Array:
        if self.numpy:
            return np.zeros(shape)
        return torch.zeros(shape, dtype=torch.float64, device=self.device)

    def eye(self, n: int) -> Array:
        return np.eye(n) if self.numpy else torch.eye(n, dtype=torch.float64, device=self.device)

    def cat(self, parts: list[Array], axis: int = 0) -> Array:
        return np.concatenate(parts, axis) if self.numpy else torch.cat(parts, axis)

    def flip(self, a: Array, axis: int) -> Array:
        """a reversed along axis 0 or 1 (a view with numpy)."""
        if not self.numpy:
            return torch.flip(a, (axis,))
        return a[::-1] if axis == 0 else a[:, ::-1]

    def mean0(self, a: Array) -> Array:
        """The mean over axis 0 (numpy's ufunc reduce: a fifth of ndarray.mean's overhead)."""
        return np.add.reduce(a, 0) / a.shape[0] if self.numpy else a.mean(0)

    def clip0(self, a: Array) -> Array:
        """max(a, 0) elementwise."""
        return np.maximum(a, 0.0) if self.numpy else a.clamp_min(0.0)

    def var_mean(self, a: Array) -> tuple[Array, Array]:
        """(variance, mean) over axis 0 (the variance with 1 / n)."""
        mean = self.mean0(a)
        d = a - mean
        return self.mean0(d * d), mean

    def host(self, a: Array) -> np.ndarray:
        """a as a float64 numpy array on the host (one device-to-host copy)."""
        if self.numpy:
            return np.asarray(a, dtype=np.float64)
        return a.detach().double().cpu().numpy()

    def tensor(self, a: Array) -> torch.Tensor:
        """a as a CPU tensor (what a snapshot stores, on any device)."""
        return torch.from_numpy(np.array(a)) if self.numpy else a.detach().cpu()

    def finite(self, a: Array) -> bool:
        return bool(self.xp.isfinite(a).all())
