"""Fixtures of the container tests: the image, built once per session from the repository's
Dockerfile on a Debian base made here (no image registry is reachable), under a real engine."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container import docker


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> str:
    missing = docker.engine_missing()
    if missing is not None:
        if os.environ.get("CI"):  # .ci/run starts the engine: its absence there is a failure
            pytest.fail(missing)
        pytest.skip(missing)
    tmp = tmp_path_factory.mktemp("image")
    base = docker.base_image()
    docker.download_wheels(tmp / "wheels")
    with docker.package_index(tmp / "wheels") as index:
        seconds = docker.build(base, index, tmp / "build.log")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown whatever the capture (CI's log keeps it)
        print(f"\n  container: {docker.IMAGE} built on {base} in {seconds:.0f} s", end="")
    return docker.IMAGE


@pytest.fixture
def volume() -> Iterator[str]:
    name = f"{docker.pid_tag()}-{os.urandom(3).hex()}"
    try:
        yield name
    finally:
        docker.remove_volume(name)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path
