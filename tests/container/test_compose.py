"""docker-compose.yml's cluster profile under a real engine and Debian's docker-compose: a NATS
server, an API node and two workers come up from the file as written and serve the API."""

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.cluster import local
from tests import children
from tests.cluster.helpers import batches
from tests.container import docker
from tests.service.helpers import push, wait_until

pytestmark = [pytest.mark.container, pytest.mark.timeout(1800)]

TOKEN = "compose-test-token"
# The test's own settings over the file: the project's network in 198.18.0.0/15 (the range kept
# for network tests; nothing else uses it here), health checked every 2 s instead of 30 s.
OVERRIDE = """
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
services:
  dimwatch-api:
    healthcheck:
      interval: 2s
"""


@pytest.fixture
def project(image: str, tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str], str]]:
    """A copy of the compose file, deploy/nats.conf and an env file (tokens on) in tmp; the
    command prefix, its environment and the API's URL; the project is taken down after."""
    folder = tmp_path / "project"
    (folder / "deploy").mkdir(parents=True)
    shutil.copy(docker.ROOT / "docker-compose.yml", folder)
    shutil.copy(docker.ROOT / "deploy" / "nats.conf", folder / "deploy")
    env_file = f"DIMWATCH_API_TOKENS={TOKEN}\nDIMWATCH_PARTITIONS=4\nDIMWATCH_LEASE_SECONDS=2\n"
    (folder / "deploy" / "dimwatch.env").write_text(env_file)
    octet = os.getpid() % 250
    (folder / "test.yml").write_text(OVERRIDE.format(subnet=f"198.19.{octet}.0/24"))
    port = local.free_port()
    env = {
        **os.environ,
        "DIMWATCH_IMAGE": image,
        "NATS_IMAGE": docker.stand_in_nats_image(f"{docker.pid_tag()}-nats:2", tmp_path),
        "DIMWATCH_PUBLISH": f"127.0.0.1:{port}",
    }
    name = docker.pid_tag()
    command = ["docker-compose", "-p", name, "-f", "docker-compose.yml", "-f", "test.yml"]
    try:
        yield [*command, "--profile", "cluster"], env, f"http://127.0.0.1:{port}"
    finally:
        _compose([*command, "--profile", "cluster", "logs", "--no-color"], env, folder, tmp_path)
        _compose([*command, "--profile", "cluster", "down", "--volumes"], env, folder, None)
        docker.docker("rmi", "--force", env["NATS_IMAGE"], check=False)


def _compose(
    command: list[str], env: dict[str, str], cwd: Path, log_dir: Path | None
) -> subprocess.CompletedProcess[str]:
    result = children.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if log_dir is not None:
        (log_dir / "compose.log").write_text(result.stdout + result.stderr)
    return result


def test_compose_cluster_profile_comes_up_and_serves(
    project: tuple[list[str], dict[str, str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command, env, url = project
    cwd = tmp_path / "project"
    # docker-compose 1.x ignores deploy.replicas (compose v2 reads it): --scale says the same
    up = [*command, "up", "--detach", "--scale", "dimwatch-worker=2"]
    result = _compose([*up, "nats", "dimwatch-api", "dimwatch-worker"], env, cwd, None)
    assert result.returncode == 0, result.stdout + result.stderr
    workers = _compose([*command, "ps", "-q", "dimwatch-worker"], env, cwd, None).stdout.split()
    assert len(workers) == 2
    api = _compose([*command, "ps", "-q", "dimwatch-api"], env, cwd, None).stdout.strip()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    began = time.monotonic()
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        wait_until(lambda: _ready(client), docker.START_SECONDS)  # every partition has an owner
        with capsys.disabled():
            print(f"\n  compose: cluster ready {time.monotonic() - began:.1f} s after up", end="")
        wait_until(lambda: docker.docker("inspect", "-f", "{{.State.Health.Status}}", api)
                   == "healthy", 60)  # fmt: skip
        assert client.post("/v1/streams", json={"name": "c"}).status_code == 201
        for seq, x in enumerate(batches("c", 5)):
            answer = push(client, "c", x, seq)
            assert (answer.status_code, answer.json()["step"]) == (200, seq + 1), answer.text
        selection = client.get("/v1/streams/c/selection")
        assert (selection.status_code, selection.json()["step"]) == (200, 5)
        assert client.get("/v1/streams/c").status_code == 200
        assert httpx.get(f"{url}/v1/streams").status_code == 401  # the env file's token is on


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False
