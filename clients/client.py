"""The sync dimwatch client on httpx, `DimwatchClient` (clients/async_client.py: the async one).

Both clients only send the `Call`s built in `clients._requests` and sleep between retries;
everything else (request bodies, parsing, error mapping, retry decisions) is shared and free of
I/O.

    with DimwatchClient("http://127.0.0.1:8000", token="...") as client:
        client.create_stream("sensors", latent_dims=[2, 4, 6])
        client.stream_array("sensors", X, batch_size=10)       # binary batches with seq numbers
        client.fit_array("sensors", X).best_latent_dim         # passes over X until converged
        print(client.selection("sensors").best_latent_dim)
        for event in client.watch("sensors"): ...

Pass `transport=` (e.g. `httpx.MockTransport`, `httpx.ASGITransport`) to talk to something other
than a socket.
"""

import time
from collections.abc import Generator
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx

from clients import _fit, errors
from clients import _requests as api
from clients._events import WatchSession
from clients._progress import Upload
from clients._requests import DEFAULT_URL, Call, RetryPolicy, WireDtype
from clients.models import (
    Collapse,
    Event,
    FitResult,
    Health,
    History,
    ModelParams,
    Projection,
    PushResult,
    PushSummary,
    Selection,
    Stream,
    StreamSettings,
)

T = TypeVar("T")

__all__ = ["DEFAULT_URL", "DimwatchClient", "RetryPolicy"]


class DimwatchClient:
    """Blocking client. Thread-safe as far as httpx.Client is; close it (or use `with`)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=api.auth_headers(token),
            transport=transport,
            timeout=timeout,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call[T]) -> T:
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                response = self._http.request(call.method, call.path, **call.options())
            except httpx.TransportError as exc:
                delay = api.retry_delay(self.retry, attempt, idempotent=call.idempotent, error=exc)
                if delay is None:
                    raise api.connection_error(self.base_url, exc) from exc
            else:
                delay = api.retry_delay(
                    self.retry,
                    attempt,
                    idempotent=call.idempotent,
                    response=response,
                    elapsed=time.monotonic() - started,
                )
                if delay is None:
                    return api.finish(call, response)
            time.sleep(delay)

    def health(self) -> Health:
        return self._send(api.health())

    def list_streams(self) -> list[Stream]:
        """Every stream, sorted by name (page after page)."""
        page = self._send(api.list_streams())
        streams = list(page.streams)
        while page.next is not None:
            page = self._send(api.list_streams(after=page.next))
            streams.extend(page.streams)
        return streams

    def create_stream(self, name: str, **settings: Unpack[StreamSettings]) -> Stream:
        return self._send(api.create_stream(name, settings))

    def get_stream(self, name: str) -> Stream:
        return self._send(api.get_stream(name))

    def ensure_stream(self, name: str, **settings: Unpack[StreamSettings]) -> tuple[Stream, bool]:
        """The stream, created with `settings` if absent; and whether this call created it.

        Safe to run again (`create_stream` raises ConflictError for an existing name); an
        existing stream keeps its own settings, whatever `settings` says.
        """
        try:
            return self.get_stream(name), False
        except errors.NotFoundError:
            pass
        try:
            return self.create_stream(name, **settings), True
        except errors.ConflictError:  # created by someone else in between
            return self.get_stream(name), False

    def delete_stream(self, name: str) -> None:
        self._send(api.delete_stream(name))

    def push(
        self, stream: str, array: Any, seq: int | None = None, dtype: WireDtype | None = None
    ) -> PushResult:
        """Learn one batch (B, D); with `seq`, retries after a lost answer cannot train twice.
        `dtype` "float16"/"bfloat16" sends 2 bytes a number (None: float16 arrays as float16)."""
        return self._send(api.push(stream, array, seq, dtype))

    def stream_array(
        self,
        stream: str,
        X: Any,
        batch_size: int = 10,
        progress: bool = False,
        start_seq: int | None = None,
    ) -> PushSummary:
        """Push X (N, D) in batches numbered `start_seq`, `start_seq + 1`, ...

        `start_seq=None` continues after the batches the stream has applied (its `step`).
        Re-running with the same `start_seq` after a failure skips what was applied already.
        `progress=True` draws a progress bar on stderr (the CLI does; a library stays quiet).
        """
        seq = self.get_stream(stream).step if start_seq is None else start_seq
        rows = api.as_rows(X, "X")
        with Upload(len(rows), progress, stream) as upload:
            for number, batch in api.batches(rows, batch_size, seq):
                upload.record(self.push(stream, batch, seq=number))
        return upload.summary()

    def fit_array(
        self,
        stream: str,
        X: Any,
        batch_size: int = _fit.DEFAULT_BATCH_SIZE,
        max_rows: int = _fit.DEFAULT_MAX_ROWS,
        shuffle_seed: int = 0,
        progress: bool = False,
        **settings: Unpack[StreamSettings],
    ) -> FitResult:
        """Learn X (N, D) in shuffled passes until the selection converges or the stream has
        learnt from `max_rows` rows (then `result.converged` is False: the pick is provisional).

        Creates the stream with `settings` (and D from X) if it does not exist. Run again after
        an interruption, it goes on where it stopped; on a converged stream it sends nothing.
        """
        with _fit.Fit(X, stream, batch_size, max_rows, shuffle_seed, progress) as fit:
            created, _ = self.ensure_stream(stream, **fit.settings(settings))
            fit.start(created, self.selection(stream))
            while (batch := fit.next_batch()) is not None:
                fit.record(self.push(stream, batch[1], seq=batch[0]))
        return fit.result(self.collapse(stream))

    def selection(self, stream: str) -> Selection:
        return self._send(api.selection(stream))

    def collapse(self, stream: str) -> Collapse:
        return self._send(api.collapse(stream))

    def history(self, stream: str, after: int = -1, limit: int = 1000) -> History:
        return self._send(api.history(stream, after, limit))

    def model(self, stream: str, latent_dim: int | str = "best") -> ModelParams:
        return self._send(api.model(stream, latent_dim))

    def transform(self, stream: str, X: Any, latent_dim: int | None = None) -> Projection:
        return self._send(api.transform(stream, X, latent_dim))

    def reconstruct(self, stream: str, X: Any, latent_dim: int | None = None) -> Projection:
        return self._send(api.reconstruct(stream, X, latent_dim))

    def watch(self, stream: str) -> Generator[Event, None, None]:
        """Typed events of the stream as they happen, until the stream is deleted.

        Reconnects when the connection drops or the server restarts, with Last-Event-ID so that
        nothing is missed or repeated (a `ResetEvent` says when the server no longer had what
        was missed); gives up with ConnectionError after `retry.attempts` failures in a row."""
        session = WatchSession(self.retry, self.base_url, time.monotonic())
        while not session.deleted:
            try:
                with self._http.stream(
                    "GET",
                    api.events_path(stream),
                    headers=session.headers(),
                    timeout=api.watch_timeout(self._timeout),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                    wait = session.opened(response, time.monotonic())
                    if wait is None:
                        for line in response.iter_lines():
                            if (event := session.feed(line)) is not None:
                                yield event
                    error = None
            except httpx.TransportError as exc:
                error, wait = exc, None
            if not session.deleted:
                time.sleep(
                    wait if wait is not None else session.reconnect_delay(error, time.monotonic())
                )
