"""Helpers of the container tests: a Docker engine, a base image made without a registry, a
local package index on loopback, the image built, containers run on the host's network."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from packaging.utils import canonicalize_name, parse_wheel_filename

from tests import children

ROOT = Path(__file__).resolve().parents[2]
BASE = "dimwatch-base:bookworm"  # deploy/debian-base.sh; kept by the engine between runs
IMAGE = "dimwatch:test"
INDEX_PORT = 47613  # the local index's port when free (a build argument: part of the cache key)
START_SECONDS = 240.0  # a container imports torch and restores its streams on a busy machine


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run the docker CLI; its stdout (stripped). A failure shows the command's output."""
    result = children.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stdout}{result.stderr}")
    return result.stdout.strip()


def engine_missing() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "no docker CLI (apt-get install docker.io; .ci/run does)"
    if children.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        return "no Docker engine answers (.ci/run starts dockerd --iptables=false --bridge=none)"
    return None


def base_image() -> str:
    """The Debian base, made by deploy/debian-base.sh unless the engine has it from a last run."""
    if children.run(["docker", "image", "inspect", BASE], capture_output=True).returncode:
        script = ROOT / "deploy" / "debian-base.sh"
        made = children.run([str(script), BASE], timeout=900, capture_output=True, text=True)
        assert made.returncode == 0, made.stdout + made.stderr
    return BASE


def download_wheels(into: Path) -> None:
    """Every wheel the image installs (torch, the server and cluster extras, the build backend),
    fetched by this machine's pip as it is configured here."""
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    command = [sys.executable, "-m", "pip", "download", "-q", "-d", str(into)]
    result = children.run(
        [*command, f"{ROOT}[server,cluster]", *build], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


@contextmanager
def package_index(wheels: Path) -> Iterator[str]:
    """A PEP 503 index of the wheels (one folder per project) over HTTP on 127.0.0.1."""
    simple = wheels.parent / "simple"
    for wheel in wheels.glob("*.whl"):
        project = simple / canonicalize_name(parse_wheel_filename(wheel.name)[0])
        project.mkdir(parents=True, exist_ok=True)
        (project / wheel.name).hardlink_to(wheel)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = partial(Quiet, directory=str(simple))
    try:  # the same URL run after run: the build's layers after it stay cached
        server = ThreadingHTTPServer(("127.0.0.1", INDEX_PORT), handler)
    except OSError:  # taken: any free port (a cold build)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def build(base: str, index: str, log: Path) -> float:
    """docker build of the repository's Dockerfile on `base` from `index`; seconds taken.
    --network=host: the build's pip reaches the index on this machine's loopback."""
    arguments = {"BASE_IMAGE": base, "TORCH_INDEX_URL": index, "PIP_INDEX_URL": index}
    flags = [f"--build-arg={key}={value}" for key, value in arguments.items()]
    before = docker("image", "ls", "--quiet", IMAGE)  # the image the tag names now, if any
    started = time.monotonic()
    with log.open("w") as out:
        result = children.run(
            ["docker", "build", "--network=host", *flags, "-t", IMAGE, str(ROOT)],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1500,
        )
    assert result.returncode == 0, log.read_text()[-4000:]
    seconds = time.monotonic() - started
    if before and before != docker("image", "ls", "--quiet", IMAGE):
        docker("rmi", before, check=False)  # untagged now; the layers the new one shares stay
    return seconds


@dataclass
class Container:
    """A running container of the image and a client of its API."""

    id: str
    client: httpx.Client
    started: float = 0.0  # seconds from `docker run` to healthy and ready

    def health(self) -> str:
        return docker("inspect", "-f", "{{.State.Health.Status}}", self.id)

    def kill(self) -> None:
        """SIGKILL to the container's processes (docker kill's default signal)."""
        docker("kill", "--signal=KILL", self.id)


@contextmanager
def container(volume: str, port: int, log: Path) -> Iterator[Container]:
    """The image's own command and health check, on the host's network with DIMWATCH_HOST and
    DIMWATCH_PORT set to 127.0.0.1 and `port`, /data on the named volume; yielded once the
    engine reports it healthy and /readyz answers 200. Removed (its log kept) on the way out.
    The check runs every second instead of every 30 s: its command is the image's."""
    # This machine's OpenBLAS settings (OPENBLAS_CORETYPE, ...) go in too: the same kernels as
    # the reference run in the test process, whose floats the container's must equal to the bit.
    blas = [f"--env={k}={v}" for k, v in os.environ.items() if k.startswith("OPENBLAS_")]
    began = time.monotonic()
    cid = docker(
        "run", "--detach", "--network=host", "--health-interval=1s",
        "--env=DIMWATCH_HOST=127.0.0.1", f"--env=DIMWATCH_PORT={port}", *blas,
        f"--volume={volume}:/data", IMAGE,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            running = Container(cid, client)
            deadline = time.monotonic() + START_SECONDS
            while running.health() != "healthy" or not _ready(client):
                state = json.loads(docker("inspect", "-f", "{{json .State}}", cid))
                assert state["Running"], docker("logs", cid)
                assert time.monotonic() < deadline, f"not healthy: {state['Health']}"
                time.sleep(0.5)
            running.started = time.monotonic() - began
            yield running
    finally:
        log.write_text(docker("logs", cid, check=False))
        docker("rm", "--force", cid, check=False)


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def remove_volume(volume: str) -> None:
    docker("volume", "rm", "--force", volume, check=False)


def stand_in_nats_image(tag: str, tmp: Path) -> str:
    """An image laid out like the official nats one (/nats-server as its entrypoint), made of
    the test image and the nats-server binary its cluster extra installs: no registry here."""
    folder = tmp / "nats-image"
    folder.mkdir()
    (folder / "Dockerfile").write_text(
        f"FROM {IMAGE}\nUSER root\nRUN ln -s /opt/venv/bin/nats-server /nats-server\n"
        'USER dimwatch\nENTRYPOINT ["/nats-server"]\n'
    )
    docker("build", "-t", tag, str(folder), timeout=300)
    return tag


def pid_tag() -> str:
    """A name part unique to this test process (two runs on one engine do not collide)."""
    return f"dwtest{os.getpid()}"
