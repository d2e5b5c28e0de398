"""The dimwatch service (and a no-op FastAPI app) on a real uvicorn on 127.0.0.1, in a child
process so that client and server do not share one interpreter's lock; and a stream of the
service seen as a learner (learn_many -> StepReport) for bench.common.run_stream.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from streaming.report import ModelScore, StepReport

SERVE = """
import sys, uvicorn
from pathlib import Path
from service.app import create_app
from service.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]), max_streams=int(sys.argv[3]),
                    workers=int(sys.argv[4]), device=sys.argv[5], log_level="warning")
uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", access_log=False)
"""
# The server as `dimwatch serve` runs it (service.server: its own socket, uvicorn's access log at
# the default level "info"), and the no-op app under the same uvicorn settings.
SERVE_REAL = """
import sys
from pathlib import Path
from service.server import bind, build_server
from service.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]), port=int(sys.argv[2]), max_streams=int(sys.argv[3]),
                    workers=int(sys.argv[4]), device=sys.argv[5])
build_server(settings).run(sockets=[bind(settings)])
"""
SERVE_NOOP_REAL = """
import sys, uvicorn
from bench.noop_app import create_noop_app
uvicorn.run(create_noop_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="info")
"""
SERVE_NOOP = """
import sys, uvicorn
from bench.noop_app import create_noop_app
uvicorn.run(create_noop_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
            access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:PORT
    pid: int  # the child process (for its memory: /proc/PID/status)

    def rss_bytes(self) -> int:
        """Resident memory of the server process now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_service(
    noop: bool = False,
    max_streams: int = 100,
    workers: int = 2,
    device: str = "cpu",
    source: Path | None = None,
    env: dict[str, str] | None = None,
    real: bool = False,
) -> Iterator[Server]:
    """Start the service (or the no-op app) on a free port; yield it; stop it. source: a
    checkout of another revision to run instead of this one (a baseline); env: more DIMWATCH_*
    settings; real: as `dimwatch serve` runs (access log on, written to a file)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="dimwatch-bench-") as data_dir:
        argv = [str(a) for a in (data_dir, port, max_streams, workers, device)]
        child_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        if source is not None:
            child_env["PYTHONPATH"] = str(source)
        script = {
            (False, False): SERVE,
            (True, False): SERVE_NOOP,
            (False, True): SERVE_REAL,
            (True, True): SERVE_NOOP_REAL,
        }[noop, real]
        with (Path(data_dir) / "server.log").open("ab") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [sys.executable, "-c", script, *argv],
                env=child_env,
                cwd=source,
                stdout=log if real else None,
                stderr=log if real else None,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, "/healthz" if noop else "/readyz", proc)
            yield Server(base, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(base: str, path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(base + path, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {base} not ready after 60 s")


class ServedStream:
    """One stream of the service, fed binary float32 batches; answers like a bank."""

    def __init__(self, base: str, name: str, dim: int, **settings: Any) -> None:
        self.client = httpx.Client(base_url=base, timeout=60)
        self.name = name
        self.dim = dim
        r = self.client.post("/v1/streams", json={"name": name, "dim": dim, **settings})
        r.raise_for_status()

    def learn_many(self, X: np.ndarray) -> StepReport:
        r = self.client.post(
            f"/v1/streams/{self.name}/batches",
            content=np.ascontiguousarray(X, dtype="<f4").tobytes(),
            headers={"Content-Type": "application/octet-stream", "X-Dim": str(self.dim)},
        )
        r.raise_for_status()
        return as_report(r.json())

    def close(self) -> None:
        self.client.close()


def as_report(body: dict[str, Any]) -> StepReport:
    """A batch answer's selection as a StepReport (fields the API does not carry left empty)."""
    sel = body["selection"]
    models = tuple(
        ModelScore(
            latent_dim=m["latent_dim"],
            entropy_elbo=m["entropy_elbo"],
            bic=m["bic"],
            batch_elbo=m["batch_elbo"],
            batch_bic=m["batch_bic"],
            sigma2=m["sigma2"],
            tau2=(),
            encoder_entropies=(),
            collapsed=(),
            active_latents=m["active_latents"],
            s_reg=float("nan"),
            s_rec=float("nan"),
        )
        for m in sel["models"]
    )
    return StepReport(
        step=sel["step"],
        rows=body["rows"],
        rows_seen=sel["rows_seen"],
        best_latent_dim=sel["best_latent_dim"],
        models=models,
    )
