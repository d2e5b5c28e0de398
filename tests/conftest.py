"""What the whole test run shares: SIGTERM stops it as Ctrl-C does (tests/children.py)."""

import signal
from types import FrameType

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (`timeout`, a cancelled CI job) raises KeyboardInterrupt, as SIGINT does: the
    run stops, and its fixtures stop and reap the processes they started (without this, pytest
    would end at once and leave them to the parent-death signal, unreaped)."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
