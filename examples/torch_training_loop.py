"""A PyTorch training loop that lets dimwatch watch its embeddings (docs/embeddings.md).

A small encoder learns, with a contrastive loss (two noisy views of each row should embed close
together), to embed 64-dimensional rows that really vary along 6 directions into 32 dimensions.
Every `every`-th step the tap pushes the batch's embeddings to the stream from a background
thread: the loop never waits on the server, and a slow or absent server costs dropped samples
(counted in tap.stats), not training time.

    dimwatch serve &                                   # or any running server
    python examples/torch_training_loop.py --url http://127.0.0.1:8000 --steps 300
    dimwatch status encoder-embeddings                 # the pick and the effective rank
"""

import argparse

import torch
from torch import nn

from clients.models import StreamSettings, powers_of_two
from clients.tap import EmbeddingTap, TapStats

DIM_IN, DIM_OUT, TRUE_DIM = 64, 32, 6


def batches(steps: int, size: int = 128, seed: int = 0) -> list[torch.Tensor]:
    """Rows of dimension 64 that vary along 6 directions, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(DIM_IN, TRUE_DIM, generator=g))[0]  # (64, 6)
    out = []
    for _ in range(steps):
        signal = torch.randn(size, TRUE_DIM, generator=g) @ basis.T
        out.append(signal + 0.05 * torch.randn(size, DIM_IN, generator=g))
    return out


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """InfoNCE: each row's two views are each other's positive, every other row a negative."""
    a, b = nn.functional.normalize(a, dim=1), nn.functional.normalize(b, dim=1)
    logits = a @ b.T / temperature  # (B, B)
    return nn.functional.cross_entropy(logits, torch.arange(len(a)))


def train(url: str, steps: int, every: int = 5, stream: str = "encoder-embeddings") -> TapStats:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(DIM_IN, 128), nn.ReLU(), nn.Linear(128, DIM_OUT))
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    settings: StreamSettings = {"latent_dims": powers_of_two(16, dim=DIM_OUT), "bic_n": 1000}
    with EmbeddingTap(url, stream, every=every, settings=settings) as tap:
        for x in batches(steps):
            z = encoder(x + 0.05 * torch.randn_like(x))  # (B, 32): the embeddings to watch
            loss = contrastive_loss(z, encoder(x + 0.05 * torch.randn_like(x)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tap(z)  # every `every`-th call: detached, cloned, queued; never blocks
    return tap.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    print(train(args.url, args.steps))


if __name__ == "__main__":
    main()
