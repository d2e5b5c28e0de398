"""A dimwatch server inside this process, on a free 127.0.0.1 port (for `dimwatch demo`).

This and `dimwatch serve` are the only places the clients touch the service package, and both
import it lazily: the client library itself works without the server's dependencies.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import uvicorn

START_TIMEOUT = 60.0  # seconds for the app's lifespan (loading stored streams) to finish


@contextmanager
def local_server(
    data_dir: Path, device: str = "auto", tokens: tuple[str, ...] = ()
) -> Iterator[str]:
    """Run uvicorn with the real app in a background thread; yield its base URL.

    Host, port, data dir, device and tokens come from the arguments, not DIMWATCH_* variables;
    with `tokens`, every API call needs one of them.
    """
    from service.server import build_server
    from service.settings import Settings

    overrides: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,  # the OS picks a free port; read back once uvicorn is listening
        "data_dir": data_dir,
        "device": device,
        "api_tokens": tokens,
        "log_level": "warning",
    }
    settings = Settings(**overrides)
    server = build_server(settings)
    thread = threading.Thread(target=server.run, name="dimwatch-demo-server", daemon=True)
    thread.start()
    try:
        port = _wait_until_ready(server, thread)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()  # ends open event streams too, as SIGTERM does
        thread.join(timeout=settings.shutdown_timeout + 5)


def _wait_until_ready(server: "uvicorn.Server", thread: threading.Thread) -> int:
    """Wait until uvicorn listens and /readyz says the stored streams are loaded; the port."""
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process dimwatch server did not start")
        time.sleep(0.02)
    port = int(server.servers[0].sockets[0].getsockname()[1])
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        while http.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the in-process dimwatch server did not become ready")
            time.sleep(0.02)
    return port
