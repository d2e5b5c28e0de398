"""examples/torch_training_loop.py, run against a real server: the tap feeds a real PyTorch
training loop's embeddings to a stream; what it drops when the server falls behind is counted."""

import importlib.util
from pathlib import Path

from clients import DimwatchClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "torch_training_loop.py"


def test_training_loop_example_feeds_its_embeddings(live_url: str) -> None:
    spec = importlib.util.spec_from_file_location("torch_training_loop", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    stats = example.train(live_url, steps=60, every=5)

    # 12 of the 60 steps are taken; a server slower than the loop makes the tap drop some
    assert (stats.offered, stats.queued + stats.dropped, stats.failed) == (60, 12, 0)
    assert stats.sent == stats.queued >= 1
    with DimwatchClient(live_url) as client:
        stream = client.get_stream("encoder-embeddings")
        selection = client.selection("encoder-embeddings")
    assert (stream.dim, stream.latent_dims) == (32, (2, 4, 8, 16))
    assert stream.rows_seen == stats.rows_sent == 128 * stats.sent
    assert selection.effective_rank is not None and 1 <= selection.effective_rank <= 32
