"""No process a test starts outlives the test run, however pytest ends (tests/children.py).

A pytest run of the suite's own cluster fixtures (a nats-server, a `dimwatch worker`) is
interrupted with Ctrl-C (SIGINT to its process group, as a terminal sends it), terminated
(SIGTERM) or killed (SIGKILL); afterwards none of its processes runs. After SIGINT and SIGTERM
the run has also reaped them (no defunct entries left behind)."""

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests import children

ROOT = Path(__file__).resolve().parents[1]
START_SECONDS = 180.0  # the inner run imports torch and starts nats-server on a busy machine
EXIT_SECONDS = 60.0  # for the inner run to stop, and its processes with it

INNER = """
import os
import time
from pathlib import Path

from service.cluster import local
from tests.cluster.conftest import cluster, nats_server  # noqa: F401 (the suite's fixtures)
from tests.cluster.helpers import Cluster


def test_holds_processes(cluster: Cluster, nats_server: local.NatsServer) -> None:
    worker = cluster.worker()
    Path(os.environ["PIDS_FILE"]).write_text(f"{nats_server.process.pid} {worker.pid}")
    time.sleep(600)  # until the run is stopped
"""


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks after boot), None if it has exited (or is a
    zombie, which has exited too): /proc/PID/stat, field 22."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return None if fields[0] == "Z" else fields[19]


def _reaped(pid: int, started: str) -> bool:
    """Gone from the process table (or the pid now another process's)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[19] != started


@pytest.mark.cluster
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_no_process_outlives_the_test_run(how: str, tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    pids_file, log = tmp_path / "pids", tmp_path / "inner.log"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "tests.conftest",
    ]
    command += ["-c", str(ROOT / "pyproject.toml"), str(tmp_path / "test_inner.py")]
    env = {**os.environ, "PIDS_FILE": str(pids_file)}
    with log.open("wb") as out:  # its own session: a Ctrl-C to it does not reach this run
        inner = children.popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_SECONDS
        while not pids_file.exists() or not pids_file.read_text():
            assert inner.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        started = {int(p): _start_time(int(p)) for p in pids_file.read_text().split()}
        if how == "SIGINT":
            os.killpg(inner.pid, signal.SIGINT)
        else:
            inner.send_signal(getattr(signal, how))
        inner.wait(EXIT_SECONDS)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()

    assert None not in started.values()  # both were running when the run was stopped
    deadline = time.monotonic() + EXIT_SECONDS
    while any(_start_time(pid) == s for pid, s in started.items()):
        assert time.monotonic() < deadline, f"still running after the run: {started}"
        time.sleep(0.05)
    if how != "SIGKILL":  # the run stopped them itself and waited for them
        assert all(_reaped(pid, s) for pid, s in started.items() if s is not None)


def test_tests_start_processes_only_through_children() -> None:
    """So that every child of the run is tied to it (tests/children.py)."""
    spawn = re.compile(r"\bsubprocess\.(Popen|run|call|check_call|check_output)\(|os\.system\(")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name != "children.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if spawn.search(line)
    ]

    assert found == []
