import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Reproducible float reductions and fair sharing of the test machine's cores."""
    torch.set_num_threads(1)
