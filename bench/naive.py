"""The naive way to run the paper's experiment, written like its Listing 1 (Appendix D.7): one
nn.Module per candidate H built from nn.Linear and torch.distributions, one Adam per module,
a Python loop over the candidates for every batch, the three-entropies BIC read with .item().

This is the baseline of bench/core_speed.py; it is not used by dimwatch.
"""

import math

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.nn.functional import softplus

LOG_2PI = math.log(2 * math.pi)


class LinearVAE(nn.Module):
    """Listing 1's LinearVAE; `num_samples=None` uses the closed-form expectation instead."""

    def __init__(self, H: int, D: int, num_samples: int | None = 100) -> None:
        super().__init__()
        self.H, self.D, self.num_samples = H, D, num_samples
        self.encoder = nn.Linear(D, H)
        self.decoder = nn.Linear(H, D)
        self.noise_std = nn.Parameter(torch.zeros(1))
        self.q_z_std = nn.Parameter(torch.zeros(H))
        self.p_z = Normal(torch.zeros(1), torch.ones(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lower bound summed over the batch, three entropies summed over the batch)."""
        sigma = softplus(self.noise_std)
        tau = softplus(self.q_z_std)
        N, D = x.shape
        z_params = self.encoder(x)
        q_z = Normal(z_params, tau)
        if self.num_samples is None:
            w = self.decoder.weight  # (D, H)
            resid = x - self.decoder(z_params)
            sq = resid.square().sum(-1) + (tau.square() * w.square().sum(0)).sum()
            rec = -0.5 * D * (LOG_2PI + 2 * torch.log(sigma)) - sq / (2 * sigma.square())
            lower_bound = rec.sum() - kl_divergence(q_z, self.p_z).sum()
        else:
            z_samples = q_z.rsample(torch.Size([self.num_samples]))
            p_x_z = Normal(self.decoder(z_samples), sigma)
            lower_bound = p_x_z.log_prob(x).mean(0).sum() - kl_divergence(q_z, self.p_z).sum()
        return lower_bound, self.three_entropies_linear(N, D, sigma, tau)

    @staticmethod
    def three_entropies_linear(
        N: int, D: int, sigma: torch.Tensor, tau: torch.Tensor
    ) -> torch.Tensor:
        """Corollary 1, accumulated over N points (Listing 1)."""
        return N * (
            -D / 2 * (math.log(2 * math.pi) + 1) - D * torch.log(sigma) + torch.log(tau).sum()
        )


class NaiveBank:
    """One LinearVAE and one Adam per H; a batch is a loop over them. Picks by entropy BIC."""

    def __init__(
        self,
        dim: int,
        latent_dims: tuple[int, ...] = (2, 4, 6),
        lr: float = 0.002,
        num_samples: int | None = 100,
        bic_n: int = 10,
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        self.models = [LinearVAE(h, dim, num_samples) for h in latent_dims]
        self.optimizers = [torch.optim.Adam(m.parameters(), lr=lr) for m in self.models]
        self.bic_n = bic_n

    def learn_many(self, X: np.ndarray) -> int:
        """One Adam step per model on the batch; returns the H with the lowest entropy BIC."""
        x = torch.as_tensor(X, dtype=torch.float32)
        bics = []
        for model, opt in zip(self.models, self.optimizers, strict=True):
            opt.zero_grad()
            lower_bound, _ = model(x)
            (-lower_bound / x.shape[0]).backward()
            opt.step()
            with torch.no_grad():
                sigma, tau = softplus(model.noise_std), softplus(model.q_z_std)
                f = model.three_entropies_linear(1, model.D, sigma, tau).item()
            params = model.H * model.D + 1
            bics.append(params * math.log(self.bic_n) - 2 * self.bic_n * f)
        return self.models[int(np.argmin(bics))].H
