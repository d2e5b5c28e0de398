"""Effective rank and top-H variance share as served (selection, /metrics) by a real server,
against numpy's eigenvalues of W W^T + sigma^2 I from the served parameters."""

import math
import re
from pathlib import Path

import httpx
import numpy as np
import yaml

from clients import DimwatchClient
from streaming.data import ppca_data

DIM = 16


def _rank_of(eigenvalues: np.ndarray) -> float:
    p = eigenvalues / eigenvalues.sum()
    return math.exp(-float(np.sum(p * np.log(p))))


def _gauge(metrics: str, name: str, stream: str) -> float | None:
    found = re.search(rf'^{name}{{stream="{stream}"}} (\S+)$', metrics, re.MULTILINE)
    return None if found is None else float(found.group(1))


def test_selection_serves_the_spectrum_of_each_fitted_covariance(
    live_client: DimwatchClient,
) -> None:
    data = ppca_data(3_000, DIM, 4, noise=0.3, seed=1)
    live_client.create_stream("emb", latent_dims=[2, 4, 8])
    live_client.stream_array("emb", data, batch_size=100)

    selection = live_client.selection("emb")

    for m in selection.models:
        params = live_client.model("emb", m.latent_dim)
        c = params.W @ params.W.T + params.sigma2 * np.eye(DIM)
        eigenvalues = np.sort(np.linalg.eigvalsh(c))[::-1]
        assert m.effective_rank is not None and m.variance_share is not None
        assert math.isclose(m.effective_rank, _rank_of(eigenvalues), rel_tol=1e-6)
        share = eigenvalues[: m.latent_dim].sum() / eigenvalues.sum()
        assert math.isclose(m.variance_share, share, rel_tol=1e-6)
    pick = next(m for m in selection.models if m.latent_dim == selection.best_latent_dim)
    assert selection.effective_rank == pick.effective_rank
    assert selection.best_latent_dim == 4 and 3.0 < pick.effective_rank < 6.0


def test_metrics_expose_the_pick_and_effective_rank_per_stream(
    live_client: DimwatchClient, live_url: str
) -> None:
    live_client.create_stream("emb", latent_dims=[2, 4])
    live_client.create_stream("empty", latent_dims=[2, 4])
    live_client.stream_array("emb", ppca_data(500, DIM, 4, seed=2), batch_size=100)
    selection = live_client.selection("emb")

    metrics = httpx.get(f"{live_url}/metrics").text
    live_client.delete_stream("emb")
    after = httpx.get(f"{live_url}/metrics").text

    assert _gauge(metrics, "dimwatch_stream_best_latent_dim", "emb") == selection.best_latent_dim
    assert _gauge(metrics, "dimwatch_stream_effective_rank", "emb") == selection.effective_rank
    assert _gauge(metrics, "dimwatch_stream_rows_seen", "emb") == 500
    assert _gauge(metrics, "dimwatch_stream_rows_seen", "empty") is None  # no batch yet
    assert _gauge(after, "dimwatch_stream_effective_rank", "emb") is None  # gone with it


def test_the_collapse_alert_rules_name_metrics_the_server_exposes(
    live_client: DimwatchClient, live_url: str
) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs/operations.md").read_text()
    block = text.split("### Alerting on dimensional collapse", 1)[1]
    rules = yaml.safe_load(block.split("```yaml\n", 1)[1].split("```", 1)[0])
    live_client.create_stream("emb", latent_dims=[2, 4])
    live_client.push("emb", ppca_data(100, DIM, 4, seed=3))

    exposed = set(re.findall(r"^(dimwatch_\w+)", httpx.get(f"{live_url}/metrics").text, re.M))

    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in expressions for name in re.findall(r"dimwatch_\w+", expr)}
    assert len(expressions) == 2
    assert named == {
        "dimwatch_stream_best_latent_dim",
        "dimwatch_stream_effective_rank",
        "dimwatch_stream_rows_seen",
    }
    assert named <= exposed
