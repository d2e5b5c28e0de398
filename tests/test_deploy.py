"""What can be checked of the container deployment without a Docker engine (docs/deployment.md;
tests/container/ builds and runs the image under a real one).

The compose file and the Dockerfile are read as data and compared with the app itself: its
settings defaults, its routes, its CLI, the README's install steps. The image's command and health
check are run as plain processes against a real server.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from clients._local_server import local_server
from service.settings import Settings
from tests import children

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORT = Settings.model_fields["port"].default
CLIENT_VARIABLES = {"DIMWATCH_URL", "DIMWATCH_TOKEN"}  # read by the CLI, not by the server


# ---- reading the files ---------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions per stage name (FROM ... AS name), the FROM line included."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            current = []
            stages[rest.split()[-1]] = current
        current.append((keyword, rest))
    return stages


def final_stage() -> list[tuple[str, str]]:
    return list(dockerfile_stages().values())[-1]


def instruction(stage: list[tuple[str, str]], keyword: str) -> str:
    """Arguments of the last `keyword` instruction of a stage."""
    return [rest for kw, rest in stage if kw == keyword][-1]


def image_command() -> list[str]:
    return list(json.loads(instruction(final_stage(), "CMD")))


def image_healthcheck() -> list[str]:
    _options, _, command = instruction(final_stage(), "HEALTHCHECK").partition(" CMD ")
    return list(json.loads(command))


def pip_install_lines() -> list[str]:
    runs = [rest for kw, rest in dockerfile_instructions() if kw == "RUN"]
    commands = [part.strip() for run in runs for part in run.split("&&")]
    return [c for c in commands if c.startswith("pip install")]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    found = compose()["services"][name]
    assert isinstance(found, dict)
    return found


def image_env() -> dict[str, str]:
    """The final stage's ENV variables."""
    pairs = [p.split("=", 1) for kw, rest in final_stage() if kw == "ENV" for p in rest.split()]
    return dict(pairs)


# The URL the health check opens: the port is DIMWATCH_PORT's, as for `dimwatch serve`.
HEALTHCHECK_URL = (
    f"'http://127.0.0.1:' + os.environ.get('DIMWATCH_PORT', '{DEFAULT_PORT}') + '/healthz'"
)


def env_example_keys() -> list[str]:
    """Every DIMWATCH_* key of the example env file, commented-out ones included."""
    text = (ROOT / "deploy" / "dimwatch.env.example").read_text()
    return re.findall(r"^#?\s*(DIMWATCH_[A-Z0-9_]+)=", text, flags=re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


CLI = "import sys; from clients.cli import main; sys.argv[0] = 'dimwatch'; sys.exit(main())"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return children.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def env_example_values() -> dict[str, str]:
    """The uncommented KEY=VALUE lines of the example env file, as compose would read them."""
    text = (ROOT / "deploy" / "dimwatch.env.example").read_text()
    pairs = re.findall(r"^([A-Z0-9_]+)=(.*)$", text, flags=re.MULTILINE)
    return dict(pairs)


def run_healthcheck(port: int) -> int:
    """The image's HEALTHCHECK command run by this interpreter with DIMWATCH_PORT=port."""
    command = [sys.executable, *image_healthcheck()[1:]]
    env = {**os.environ, "DIMWATCH_PORT": str(port)}
    return children.run(command, env=env, capture_output=True, timeout=30).returncode


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def image_server(tmp_path: Path, tokens: str) -> Iterator[int]:
    """The image's CMD and ENV as a plain process, but DIMWATCH_HOST=127.0.0.1 and a free
    DIMWATCH_PORT instead of 0.0.0.0:8000; yields the port once the image's HEALTHCHECK command
    passes against it."""
    port = free_port()
    command = image_command()
    env = {
        **os.environ,
        **image_env(),
        "DIMWATCH_HOST": "127.0.0.1",
        "DIMWATCH_PORT": str(port),
        "DIMWATCH_DATA_DIR": str(tmp_path / "data"),
        "DIMWATCH_API_TOKENS": tokens,
    }
    env["PATH"] = os.environ["PATH"]  # this interpreter, not the image's /opt/venv
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = children.popen(
            [sys.executable, "-c", CLI, *command[1:]], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
        try:
            # torch's import, the store's start and the warm-up step: generous on a busy machine
            deadline = time.monotonic() + 180
            while run_healthcheck(port):
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the health check never passed"
                time.sleep(0.2)
            # Alive is not ready: /healthz passes while stored streams are still restored.
            while not _ready(port):
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "/readyz never answered 200"
                time.sleep(0.2)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=30)


# ---- docker-compose.yml --------------------------------------------------------------------


def test_compose_parse_lists_the_services() -> None:
    expected = ["demo", "dimwatch", "dimwatch-api", "dimwatch-gpu", "dimwatch-worker", "nats"]
    assert sorted(compose()["services"]) == expected


def test_compose_command_equals_image_command() -> None:
    assert service("dimwatch")["command"] == image_command()
    assert service("dimwatch-gpu")["command"] == image_command()


def test_image_command_listens_on_settings_default_port() -> None:
    assert image_command() == ["dimwatch", "serve"]  # host and port from the image's ENV
    env = image_env()
    assert (env["DIMWATCH_HOST"], env["DIMWATCH_PORT"]) == ("0.0.0.0", str(DEFAULT_PORT))
    assert instruction(final_stage(), "EXPOSE") == str(DEFAULT_PORT)


def test_compose_ports_publish_settings_default_port() -> None:
    expected = [f"${{DIMWATCH_PUBLISH:-{DEFAULT_PORT}}}:{DEFAULT_PORT}"]
    assert service("dimwatch")["ports"] == expected
    assert service("dimwatch-gpu")["ports"] == expected


def test_healthchecks_target_healthz_route_on_service_port(tmp_path: Path) -> None:
    compose_test = service("dimwatch")["healthcheck"]["test"]
    assert compose_test[0] == "CMD"
    assert compose_test[1:] == image_healthcheck()
    assert HEALTHCHECK_URL in " ".join(image_healthcheck())
    with local_server(tmp_path / "data") as base_url:
        response = httpx.get(f"{base_url}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_compose_volume_holds_data_dir() -> None:
    for name in ("dimwatch", "dimwatch-gpu"):
        assert service(name)["volumes"] == ["dimwatch-data:/data"]
        assert service(name)["environment"]["DIMWATCH_DATA_DIR"] == "/data"
    assert compose()["volumes"] == {"dimwatch-data": None, "nats-data": None}
    assert instruction(final_stage(), "VOLUME") == '["/data"]'
    assert "DIMWATCH_DATA_DIR=/data" in instruction(final_stage(), "ENV").split()


def test_compose_services_restart_unless_stopped() -> None:
    assert service("dimwatch")["restart"] == "unless-stopped"
    assert service("dimwatch-gpu")["restart"] == "unless-stopped"
    assert service("demo")["restart"] == "no"


def test_compose_grace_period_exceeds_shutdown_timeout() -> None:
    grace = int(service("dimwatch")["stop_grace_period"].removesuffix("s"))
    assert grace > Settings.model_fields["shutdown_timeout"].default


def test_compose_tokens_come_from_env_file_only() -> None:
    for name, spec in compose()["services"].items():
        if name == "nats":
            continue  # NATS's own image; it reads no DIMWATCH_* setting
        assert spec["env_file"] == ["deploy/dimwatch.env"], name
        assert "DIMWATCH_API_TOKENS" not in spec.get("environment", {}), name
        assert "DIMWATCH_TOKEN" not in spec.get("environment", {}), name
    assert "DIMWATCH_API_TOKENS" in env_example_keys()


def test_env_example_names_only_known_variables() -> None:
    known = {f"DIMWATCH_{field.upper()}" for field in Settings.model_fields} | CLIENT_VARIABLES
    keys = env_example_keys()
    assert keys
    assert [key for key in keys if key not in known] == []


def test_env_file_is_git_ignored() -> None:
    result = children.run(
        ["git", "check-ignore", "--quiet", "deploy/dimwatch.env"], cwd=ROOT, check=False
    )
    assert result.returncode == 0, "deploy/.gitignore must list dimwatch.env"


def test_gpu_service_reserves_nvidia_gpus_behind_profile() -> None:
    gpu = service("dimwatch-gpu")
    assert gpu["profiles"] == ["gpu"]
    args = {
        "BASE_IMAGE": "nvidia/cuda:12.8.1-base-ubuntu24.04",
        "TORCH_INDEX_URL": "https://download.pytorch.org/whl/cu128",
    }
    assert gpu["build"] == {"context": ".", "args": args}
    assert gpu["environment"]["DIMWATCH_DEVICE"] == "cuda"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "profiles" not in service("dimwatch")


def test_demo_service_replays_against_healthy_service() -> None:
    demo = service("demo")
    assert demo["profiles"] == ["demo"]
    assert demo["image"] == service("dimwatch")["image"]
    assert demo["build"] == service("dimwatch")["build"]
    assert demo["command"] == ["dimwatch", "demo", "--url", f"http://dimwatch:{DEFAULT_PORT}"]
    assert demo["depends_on"] == {"dimwatch": {"condition": "service_healthy"}}


def test_cluster_profile_runs_official_nats_with_jetstream_on_a_volume() -> None:
    nats = service("nats")
    assert nats["profiles"] == ["cluster"]
    assert nats["image"] == "${NATS_IMAGE:-nats:2}"  # by default the official image
    assert nats["command"] == ["--config", "/etc/nats/dimwatch.conf"]
    assert nats["volumes"] == ["./deploy/nats.conf:/etc/nats/dimwatch.conf:ro", "nats-data:/data"]
    assert "nats-data" in compose()["volumes"]
    conf = (ROOT / "deploy" / "nats.conf").read_text()
    jetstream = conf[conf.index("jetstream {") :]
    assert "store_dir: /data" in jetstream and "sync_interval: always" in jetstream


def test_cluster_profile_api_node_and_workers_use_the_image_on_nats() -> None:
    api, worker = service("dimwatch-api"), service("dimwatch-worker")
    url = "nats://nats:4222"
    assert api["command"] == [*image_command(), "--nats", url]
    assert worker["command"] == ["dimwatch", "worker", "--nats", url]
    for spec in (api, worker):
        assert spec["profiles"] == ["cluster"]
        assert (spec["image"], spec["build"]) == (service("dimwatch")["image"], {"context": "."})
        assert spec["depends_on"] == ["nats"]
        assert "volumes" not in spec  # the state lives in NATS
    assert api["ports"] == service("dimwatch")["ports"]
    assert api["healthcheck"] == service("dimwatch")["healthcheck"]
    assert worker["deploy"]["replicas"] >= 2


def test_cli_worker_and_serve_accept_nats_flag() -> None:
    for command in (["worker", "--help"], ["serve", "--help"]):
        result = run_cli(*command)
        assert result.returncode == 0, result.stderr
        assert "--nats" in result.stdout


# ---- the CLI the containers run --------------------------------------------------------------


def test_cli_serve_accepts_image_flags() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "--host" in result.stdout
    assert "--port" in result.stdout


def test_cli_demo_accepts_url_flag() -> None:
    result = run_cli("demo", "--help")
    assert result.returncode == 0, result.stderr
    assert "--url" in result.stdout


def test_image_healthcheck_passes_against_image_command(tmp_path: Path) -> None:
    with image_server(tmp_path, tokens="") as port:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        assert run_healthcheck(port) == 0


@pytest.mark.slow
def test_demo_command_replays_with_env_example_tokens(tmp_path: Path) -> None:
    env_file = env_example_values()
    with image_server(tmp_path, tokens=env_file["DIMWATCH_API_TOKENS"]) as port:
        command = service("demo")["command"]
        url = f"http://dimwatch:{DEFAULT_PORT}"
        command = [arg.replace(url, f"http://127.0.0.1:{port}") for arg in command]
        result = children.run(
            [sys.executable, "-c", CLI, *command[1:]],
            env={**os.environ, "DIMWATCH_TOKEN": env_file["DIMWATCH_TOKEN"]},
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert result.returncode == 0, result.stderr
    assert "selected latent dimension per chunk" in result.stdout


# ---- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_default_base_is_python_slim() -> None:
    assert dockerfile_instructions()[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    assert dockerfile_stages()["python"][0] == ("FROM", "${BASE_IMAGE} AS python")


def test_dockerfile_fetches_no_image_but_its_base() -> None:
    # The classic builder builds every stage (an unused stage's image would be pulled), and a
    # "syntax" directive makes BuildKit pull its frontend: neither may be needed.
    assert not re.search(r"^#\s*syntax\s*=", (ROOT / "Dockerfile").read_text(), re.I | re.M)
    stages = list(dockerfile_stages())
    for i, instructions in enumerate(dockerfile_stages().values()):
        source = instructions[0][1].split()[0]
        assert source == "${BASE_IMAGE}" or source in stages[:i], source


def test_dockerfile_runs_as_non_root_user() -> None:
    user = instruction(final_stage(), "USER")
    assert user == "dimwatch"
    assert "--uid 10001" in instruction(final_stage(), "RUN")


def test_dockerfile_final_stage_installs_nothing() -> None:
    runs = " ".join(rest for kw, rest in final_stage() if kw == "RUN")
    for tool in ("pip install", "apt-get", "gcc", "build-essential"):
        assert tool not in runs
    copies = [rest for kw, rest in final_stage() if kw == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]


def test_dockerfile_pip_installs_skip_cache() -> None:
    lines = pip_install_lines()
    assert len(lines) == 2
    assert all("--no-cache-dir" in line for line in lines)


def test_dockerfile_torch_pin_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [dep for dep in project["optional-dependencies"]["server"] if dep.startswith("torch")]
    torch_line = pip_install_lines()[0]
    assert shlex.split(torch_line)[3] == pins[0]


def test_dockerfile_install_lines_are_documented() -> None:
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    assert [line for line in pip_install_lines() if line not in deployment] == []
    # The development installs the page contrasts with are the ones make really runs.
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -e '.[$*]'" in makefile
    for target, extra in (("run", "server"), ("test", "test")):
        assert f"make {target}` (`pip install -e '.[{extra}]'`)" in deployment


def test_image_installs_the_server_and_cluster_extras_only() -> None:
    project = pip_install_lines()[1]
    assert shlex.split(project)[3:] == [".[server,cluster]"]


def test_make_run_installs_the_server_and_make_test_the_test_extra() -> None:
    makefile = (ROOT / "Makefile").read_text()
    rules = dict(re.findall(r"^(\w+): (.*)$", makefile, flags=re.MULTILINE))
    assert rules["run"] == "$(VENV)/.installed-server"
    assert rules["lint"] == "$(VENV)/.installed-test" and rules["test"] == "lint"


def test_readme_links_deployment_doc() -> None:
    assert "docs/deployment.md" in (ROOT / "README.md").read_text()


def test_dockerignore_excludes_secrets_and_keeps_sources() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "data", "deploy", "tests", "artifacts"):
        assert path in ignored
    copied = [rest.split()[0] for kw, rest in dockerfile_instructions() if kw == "COPY"]
    sources = [p for p in copied if not p.startswith("--")]
    assert sources == ["pyproject.toml", "streaming", "service", "clients"]
    assert [p for p in sources if p in ignored] == []


@dataclass(frozen=True)
class Wheel:
    path: Path
    build_log: str  # pip's verbose output, the build backend's warnings included


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v"]
    built = children.run(
        [*pip, "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    (path,) = out.glob("dimwatch-*.whl")
    return Wheel(path, built.stdout + built.stderr)


def wheel_metadata(wheel: Wheel) -> list[tuple[str, str]]:
    with zipfile.ZipFile(wheel.path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(name).decode()
    header = text.split("\n\n", 1)[0]
    return [(k, v) for k, _, v in (line.partition(": ") for line in header.splitlines())]


def test_wheel_builds_without_deprecation_warnings(wheel: Wheel) -> None:
    assert "deprecated" not in wheel.build_log.lower()
    assert ("License-Expression", "MIT") in wheel_metadata(wheel)


def test_wheel_requires_only_the_client_without_extras(wheel: Wheel) -> None:
    requires = [v for k, v in wheel_metadata(wheel) if k == "Requires-Dist"]
    plain = sorted(re.split(r"[<>=~ ;]", r)[0] for r in requires if "extra ==" not in r)
    server = sorted(re.split(r"[<>=~ ;]", r)[0] for r in requires if 'extra == "server"' in r)
    assert plain == ["httpx", "numpy", "rich"]
    assert {"torch", "fastapi", "uvicorn"} <= set(server)
    assert 'dimwatch[cluster,export,server]; extra == "test"' in requires
    # the exports are optional extras of the client, never needed by the server
    assert 'scikit-learn>=1.4; extra == "sklearn"' in requires
    assert 'onnx>=1.14; extra == "onnx"' in requires
    assert 'dimwatch[onnx,sklearn]; extra == "export"' in requires
    assert not {"scikit-learn", "onnx"} & set(server)


def test_wheel_includes_dashboard_files(wheel: Wheel) -> None:
    names = set(zipfile.ZipFile(wheel.path).namelist())
    dashboard = sorted(p.name for p in (ROOT / "clients" / "dashboard").iterdir())
    assert [n for n in dashboard if f"clients/dashboard/{n}" not in names] == []
