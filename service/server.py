"""Run the app under uvicorn: `run(Settings(...))` (`dimwatch serve`, `python -m service`).

SIGTERM or SIGINT: uvicorn stops accepting connections, open event streams end, requests in
flight finish (up to settings.shutdown_timeout), then the lifespan drains every stream's queue,
snapshots every stream and closes the store.
"""

import logging
import re
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings


class RedactTokens(logging.Filter):
    """Hide ?token=... (events streams) in access-log lines."""

    _pattern = re.compile(r"([?&]token=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


class Server(uvicorn.Server):
    """uvicorn.Server that also tells open event streams to end when it is asked to stop."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.state.closing.set()
        super().handle_exit(sig, frame)  # uvicorn re-raises the signal after a clean shutdown

    def stop(self) -> None:
        """Begin the graceful shutdown (what SIGTERM does); safe to call from any thread."""
        self._app.state.closing.set()
        self.should_exit = True


def build_server(settings: Settings) -> Server:
    """The app under uvicorn with settings' host, port (0: a free one), timeouts and logging."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        proxy_headers=False,
        lifespan="on",
    )
    config.load()
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in access.filters):
        access.addFilter(RedactTokens())
    return Server(config, app)


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dimwatch").setLevel(settings.log_level.upper())
    build_server(settings).run()
