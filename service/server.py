"""Run the app under uvicorn: `run(Settings(...))` (`dimwatch serve`, `python -m service`).

SIGTERM or SIGINT: uvicorn stops accepting connections, open event streams end, requests in
flight finish (up to settings.shutdown_timeout), then the lifespan drains every stream's queue,
snapshots every stream and closes the store.
"""

import errno
import logging
import re
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from service import store
from service.app import create_app
from service.runtime.pool import freeze_heap
from service.settings import Settings

PROBES = ("/healthz", "/readyz")  # polled every few seconds by orchestrators: not access-logged


class StartupError(Exception):
    """The server cannot start (its data folder or port is taken); the message says the fix."""


class RedactTokens(logging.Filter):
    """Hide ?token=... (events streams) in access-log lines."""

    _pattern = re.compile(r"([?&]token=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "token=" in a for a in args):
            record.args = tuple(
                self._pattern.sub(r"\1***", a) if isinstance(a, str) else a for a in args
            )
        return True


class QuietProbes(logging.Filter):
    """Drop the access-log lines of successful health and readiness polls."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 5:
            path, status = args[2], args[4]
            return not (path in PROBES and isinstance(status, int) and status < 400)
        return True


class Server(uvicorn.Server):
    """uvicorn.Server that also tells open event streams to end when it is asked to stop."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.state.closing.set()
        super().handle_exit(sig, frame)  # uvicorn re-raises the signal after a clean shutdown

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        freeze_heap()
        if sockets and self.started:  # uvicorn announces only the sockets it opened itself
            host, port = sockets[0].getsockname()[:2]  # its own words: tools look for them
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, port
            )

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
    for kind in (RedactTokens, QuietProbes):
        if not any(isinstance(f, kind) for f in access.filters):
            access.addFilter(kind())
    return Server(config, app)


def bind(settings: Settings) -> socket.socket:
    """The listening socket of settings' host and port; StartupError saying why not.

    The socket is made with proto=IPPROTO_TCP, as asyncio makes the ones it binds itself: asyncio
    turns Nagle's algorithm off (TCP_NODELAY) only on connections of a socket whose proto says
    TCP, and a socket made with proto 0 gave every request on a kept-alive connection a ~40 ms
    stall (Nagle holding the answer's second segment until the client's delayed ACK). TCP_NODELAY
    is also set here, for transports that do not set it themselves (Linux passes it on to every
    accepted connection).
    """
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        where = f"{settings.host}:{settings.port}"
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {settings.port} on {settings.host} is in use (another dimwatch? "
                f"`dimwatch status --url http://{where}` asks it); pass --port with another "
                "port or stop that program"
            ) from None
        raise StartupError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


def check_data_dir(settings: Settings) -> None:
    """StartupError unless settings.data_dir can be created and no other server holds it."""
    try:
        store.check_free(settings.data_dir)
    except store.DataDirInUse:
        raise StartupError(
            f"{settings.data_dir} is in use by another dimwatch server: stop that one, or pass "
            "--data-dir with another folder"
        ) from None
    except OSError as exc:
        raise StartupError(
            f"cannot use {settings.data_dir} as the data folder: {exc.strerror or exc}"
        ) from None


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then shut down gracefully. StartupError, before anything
    starts, when the data folder is held by another server or the port is taken."""
    if settings.nats_url is None:  # a cluster's API node keeps no data of its own
        check_data_dir(settings)
    sock = bind(settings)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dimwatch").setLevel(settings.log_level.upper())
    build_server(settings).run(sockets=[sock])
