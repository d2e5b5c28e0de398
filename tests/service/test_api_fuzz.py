"""Schemathesis against the real server over a real socket: every check, every phase (stateful
included), a bounded number of cases (bench/api_fuzz.py runs the same command with more)."""

import tempfile
from pathlib import Path

from bench.api_fuzz import command, failures, server
from tests import children

CASES = 10  # per operation and phase: about a minute on a busy 2-core machine


def test_schemathesis_finds_nothing() -> None:
    with tempfile.TemporaryDirectory() as tmp, server() as url:
        report = Path(tmp) / "events.ndjson"
        result = children.run(
            command(url, report, CASES, seed=0, max_time=None),
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
        )
        found = failures(report)
    assert (result.returncode, dict(found)) == (0, {}), result.stdout[-5000:]
