"""`dimwatch serve` when it cannot start, and what it logs; `dimwatch demo` finding a server."""

import http.client
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx

from clients import DimwatchClient
from tests import children
from tests.clients.processes import clean_env, dimwatch, free_port, serve

# Runs the CLI in a Python where the server's packages cannot be imported, as after a plain
# `pip install dimwatch` (the wheel's metadata is checked in tests/test_deploy.py).
WITHOUT_SERVER = """
import sys
from importlib.abc import MetaPathFinder

class NoServer(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "fastapi", "starlette", "uvicorn", "pydantic"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoServer())
from clients.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_second_serve_on_the_same_data_dir_fails_in_one_line(tmp_path: Path) -> None:
    port, data_dir = free_port(), tmp_path / "data"
    with serve(["--port", str(port), "--data-dir", str(data_dir)], clean_env(), port, data_dir):
        done = dimwatch("serve", "--port", str(free_port()), "--data-dir", str(data_dir))

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"error: {data_dir} is in use by another dimwatch server: stop that one, or pass "
        "--data-dir with another folder\n"
    )


def test_serve_on_a_busy_port_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = dimwatch("serve", "--port", str(port), "--data-dir", str(tmp_path / "data"))

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"error: port {port} on 127.0.0.1 is in use (another dimwatch? `dimwatch status --url "
        f"http://127.0.0.1:{port}` asks it); pass --port with another port or stop that program\n"
    )


def test_serve_does_not_log_health_polls(tmp_path: Path) -> None:
    port, data_dir, log = free_port(), tmp_path / "data", tmp_path / "serve.log"
    with (
        log.open("wb") as sink,
        serve(
            ["--port", str(port), "--data-dir", str(data_dir)], clean_env(), port, data_dir, sink
        ),
    ):
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/v1/streams", timeout=5).status_code == 200
    text = log.read_text()

    assert '"GET /v1/streams HTTP/1.1" 200' in text
    assert "/healthz" not in text and '/readyz HTTP/1.1" 200' not in text
    assert f"Uvicorn running on http://127.0.0.1:{port} (Press CTRL+C to quit)" in text


def test_serve_without_the_server_extra_says_what_to_install(tmp_path: Path) -> None:
    done = children.run(
        [sys.executable, "-c", WITHOUT_SERVER, "serve", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )

    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("error: `dimwatch serve` needs the server extra's packages (no ")
    assert done.stderr.endswith("here): pip install 'dimwatch[server]'\n")
    assert done.stderr.count("\n") == 1


def test_cluster_commands_without_the_cluster_extra_say_what_to_install() -> None:
    hide_nats = WITHOUT_SERVER.replace(
        '{"torch", "fastapi", "starlette", "uvicorn", "pydantic"}', '{"nats"}'
    )
    for command in (["worker"], ["serve"]):
        done = children.run(
            [sys.executable, "-c", hide_nats, *command, "--nats", "nats://127.0.0.1:1"],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
        )

        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr == (
            f"error: `dimwatch {command[0]}{' --nats' if command == ['serve'] else ''}` needs "
            "the cluster extra's packages (no nats here): pip install 'dimwatch[server,cluster]'\n"
        )


def test_client_commands_work_without_the_server_extra(live_url: str) -> None:
    done = children.run(
        [sys.executable, "-c", WITHOUT_SERVER, "status", "--url", live_url],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
    )

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "no streams yet: push one with `dimwatch push NAME FILE`\n"


def test_client_import_pulls_no_server_package() -> None:
    code = (
        "import sys, clients, clients.cli, clients.client, clients._demo, clients._push; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'fastapi', 'starlette', 'uvicorn', 'pydantic', 'prometheus_client'}))"
    )
    done = children.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=60
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_demo_replays_into_dimwatch_url(live_url: str, live_client: DimwatchClient) -> None:
    flags = ["--chunk-size", "50", "--batch-size", "25", "--no-progress", "--stream", "env"]

    done = dimwatch("demo", *flags, DIMWATCH_URL=live_url)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"replaying into the dimwatch server at {live_url}\n")
    assert live_client.get_stream("env").rows_seen == 150


def median_request_seconds(url: str, keep_alive: bool, requests: int = 15) -> float:
    """Median seconds of GET url/healthz with http.client: one kept-alive connection for all
    requests, or a new connection for each."""
    host, port = url.removeprefix("http://").split(":")
    times = []
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for _ in range(requests):
        if not keep_alive:
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        start = time.perf_counter()
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        times.append(time.perf_counter() - start)
        assert response.status == 200
        if not keep_alive:
            conn.close()
    conn.close()
    return statistics.median(times)


def test_serve_answers_a_kept_alive_connection_without_a_stall(tmp_path: Path) -> None:
    # A socket made with proto 0 got no TCP_NODELAY from asyncio: every request after the first
    # on a kept-alive connection waited ~40 ms for the client's delayed ACK (Nagle), ~20x a new
    # connection's time. The kept-alive connection must be the faster of the two.
    port, data_dir = free_port(), tmp_path / "data"
    with serve(["--port", str(port), "--data-dir", str(data_dir)], clean_env(), port, data_dir):
        url = f"http://127.0.0.1:{port}"
        median_request_seconds(url, keep_alive=True, requests=3)  # warm the route
        new = median_request_seconds(url, keep_alive=False)
        kept = median_request_seconds(url, keep_alive=True)

    assert kept < 2 * new, f"kept-alive {kept * 1e3:.1f} ms vs new connection {new * 1e3:.1f} ms"
