"""EmbeddingTap against real servers: every k-th call pushed from a background thread, torch
tensors of every width, refusals counted, and a frozen server (SIGSTOP) that makes the tap drop
instead of stalling the loop."""

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from clients import DimwatchClient
from clients.tap import EmbeddingTap
from tests.clients.conftest import rows
from tests.clients.processes import clean_env, free_port, serve

SETTINGS = {"latent_dims": [2, 4]}


def test_every_kth_call_is_pushed(live_url: str) -> None:
    with EmbeddingTap(live_url, "emb", every=3, settings=SETTINGS) as tap:
        taken = [tap(rows(16, seed=i)) for i in range(10)]
        assert tap.flush(60)

    assert taken == [i % 3 == 0 for i in range(10)]
    assert tap.stats == tap.stats.__class__(10, 4, 0, 4, 0, 64, None)
    with DimwatchClient(live_url) as client:
        stream = client.get_stream("emb")
    assert (stream.step, stream.rows_seen, stream.latent_dims) == (4, 64, (2, 4))


def test_torch_tensors_of_every_width_are_pushed(live_url: str) -> None:
    x = torch.from_numpy(np.round(rows(8) * 8) / 8)  # exact in float16 and bfloat16
    batches = [
        x.requires_grad_(True) * 1.0,  # part of a graph: detached by the tap
        x.to(torch.float16),
        x.to(torch.bfloat16),
        x.reshape(2, 4, 10),  # (B, T, D): flattened to (8, 10)
    ]
    with EmbeddingTap(live_url, "emb", settings=SETTINGS) as tap:
        for batch in batches:
            tap(batch)

    assert (tap.stats.sent, tap.stats.failed, tap.stats.rows_sent) == (4, 0, 32)


def test_a_refused_batch_is_counted_and_the_tap_goes_on(live_url: str) -> None:
    with EmbeddingTap(live_url, "emb", settings=SETTINGS) as tap:
        tap(rows(4, dim=10))
        tap(rows(4, dim=7))  # the stream's D is 10 now: 422
        tap(rows(4, dim=10))

    assert (tap.stats.sent, tap.stats.failed) == (2, 1)
    assert tap.stats.last_error == "ValidationError: 422 invalid_batch: expected 10 columns, got 7"


def test_a_frozen_server_makes_the_tap_drop_not_stall(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "served"
    flags = ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    with serve([*flags, "--device", "cpu"], clean_env(), port, data_dir) as served:
        with DimwatchClient(served.url) as client:
            client.create_stream("emb", latent_dims=[2, 4])
        tap = EmbeddingTap(served.url, "emb", queue_size=2, timeout=120)
        os.kill(served.process.pid, signal.SIGSTOP)
        try:
            # The server answers nothing now: the first push hangs in the tap's thread, two
            # batches wait in the queue, every other call returns at once, dropped.
            taken = sum(tap(rows(5, seed=i)) for i in range(30))
            stalled = tap.stats
        finally:
            os.kill(served.process.pid, signal.SIGCONT)
        assert tap.flush(120)
        tap.close()
        with DimwatchClient(served.url) as client:
            rows_seen = client.get_stream("emb").rows_seen

    assert stalled.offered == 30 and stalled.sent == 0
    assert stalled.queued == taken and stalled.dropped == 30 - taken
    assert 27 <= stalled.dropped <= 28  # 1 in flight (if it left the queue in time) + 2 queued
    assert (tap.stats.sent, tap.stats.failed) == (taken, 0)
    assert rows_seen == 5 * taken


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="every and queue_size: expected >= 1, got 0, 8"):
        EmbeddingTap("http://127.0.0.1:9", "emb", every=0)
