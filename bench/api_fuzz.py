"""Schemathesis against a real dimwatch server: every check, every phase (examples, coverage,
fuzzing, stateful), with tokens on. Prints what it found, one line per failure class.

    python -m bench.api_fuzz [--max-examples N] [--max-time S] [--seed N] [--quick] [--cluster]

The server is the real app under uvicorn on 127.0.0.1 and a free port with a fresh data
directory; with --cluster, a cluster instead: a nats-server (the cluster extra's), one
`dimwatch worker` and one `dimwatch serve --nats` API node, each its own process. schemathesis
runs as its own CLI, its JSON report is read back and summarised. Exit status is
schemathesis's (0: nothing found). tests/service/test_api_fuzz.py runs a bounded version of the
same command in the test suite.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from clients._local_server import local_server

TOKEN = "fuzz-token"
CONFIG = Path(__file__).with_name("schemathesis.toml")
PHASES = "examples,coverage,fuzzing,stateful"


def command(url: str, report: Path, max_examples: int, seed: int, max_time: int | None) -> list:
    """The schemathesis CLI call: all checks, all phases, the bearer token on every request."""
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        PHASES,
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--suppress-health-check",
        "all",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--no-color",
        # The events stream stays open by design (until the stream is deleted or the server
        # stops): every generated GET of it would wait out the request timeout. tests/service/
        # test_events.py covers it over a real socket.
        "--exclude-path",
        "/v1/streams/{name}/events",
    ]
    return [*cmd, "--max-time", str(max_time)] if max_time else cmd


@contextmanager
def server() -> Iterator[str]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_server(Path(tmp) / "data", device="cpu", tokens=(TOKEN,)) as url,
    ):
        yield url


@contextmanager
def cluster_server() -> Iterator[str]:
    """A nats-server, a worker and an API node (processes, logs in the temp dir); the API's
    URL once /readyz answers 200."""
    from service.cluster import local  # the cluster extra

    with tempfile.TemporaryDirectory() as tmp:
        nats = local.start(Path(tmp) / "nats")
        port = local.free_port()
        env = {**os.environ, "DIMWATCH_NATS_URL": nats.url, "DIMWATCH_DEVICE": "cpu"}
        env |= {"DIMWATCH_API_TOKENS": TOKEN, "DIMWATCH_PORT": str(port)}
        dimwatch = str(Path(sys.executable).parent / "dimwatch")
        processes = []
        try:
            for role in ("worker", "serve"):
                with (Path(tmp) / f"{role}.log").open("wb") as log:
                    processes.append(
                        subprocess.Popen([dimwatch, role], env=env, stdout=log, stderr=log)
                    )
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while not _ready(url):
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    raise RuntimeError(f"the cluster did not become ready; logs in {tmp}")
                time.sleep(0.2)
            yield url
        finally:
            for process in processes:
                process.terminate()
                process.wait(30)
            nats.stop()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    except httpx.TransportError:
        return False


def failures(report: Path) -> Counter[str]:
    """'check on operation' -> failed checks, read from schemathesis's ndjson event log."""
    found: Counter[str] = Counter()
    for line in report.read_text().splitlines():
        scenario = json.loads(line).get("ScenarioFinished")
        if scenario is None:
            continue
        recorder = scenario["recorder"]
        for checks in recorder.get("checks", {}).values():
            for check in checks:
                if check["status"] != "success":
                    found[f"{check['name']} on {recorder['label']}"] += 1
    return found


def run(max_examples: int, seed: int, max_time: int | None, report: Path, cluster: bool) -> int:
    report.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, cluster_server() if cluster else server() as url:
        started = time.perf_counter()
        # cwd: schemathesis keeps a .schemathesis/ cache folder in its working directory
        result = subprocess.run(command(url, report, max_examples, seed, max_time), cwd=tmp)
        seconds = time.perf_counter() - started
        found = failures(report) if report.exists() else Counter()
    print(f"schemathesis exit {result.returncode} after {seconds:.0f} s; failed checks:")
    for what, count in sorted(found.items()):
        print(f"  {count:5d}  {what}")
    if not found:
        print("  none")
    return result.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100, help="cases per operation")
    parser.add_argument("--max-time", type=int, default=None, help="seconds for the whole run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 cases per operation")
    parser.add_argument("--cluster", action="store_true", help="against a cluster's API node")
    parser.add_argument(
        "--report", type=Path, default=Path("bench/out/api_fuzz.ndjson"), help="event log"
    )
    args = parser.parse_args()
    examples = 10 if args.quick else args.max_examples
    sys.exit(run(examples, args.seed, args.max_time, args.report.resolve(), args.cluster))


if __name__ == "__main__":
    main()
