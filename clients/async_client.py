"""`AsyncDimwatchClient`: the methods of `DimwatchClient` as coroutines, for asyncio.

It sends the same `Call`s (clients/_requests.py) and sleeps between retries with asyncio.
"""

import asyncio
import time
from collections.abc import AsyncGenerator
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


class AsyncDimwatchClient:
    """The same API for asyncio; close it with `await client.aclose()` or `async with`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | None = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=api.auth_headers(token),
            transport=transport,
            timeout=timeout,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt, started = 0, time.monotonic()
        while True:
            attempt += 1
            try:
                response = await self._http.request(call.method, call.path, **call.options())
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
            await asyncio.sleep(delay)

    async def health(self) -> Health:
        return await self._send(api.health())

    async def list_streams(self) -> list[Stream]:
        """Every stream, sorted by name (page after page)."""
        page = await self._send(api.list_streams())
        streams = list(page.streams)
        while page.next is not None:
            page = await self._send(api.list_streams(after=page.next))
            streams.extend(page.streams)
        return streams

    async def create_stream(self, name: str, **settings: Unpack[StreamSettings]) -> Stream:
        return await self._send(api.create_stream(name, settings))

    async def get_stream(self, name: str) -> Stream:
        return await self._send(api.get_stream(name))

    async def ensure_stream(
        self, name: str, **settings: Unpack[StreamSettings]
    ) -> tuple[Stream, bool]:
        """The stream, created with `settings` if absent; and whether this call created it."""
        try:
            return await self.get_stream(name), False
        except errors.NotFoundError:
            pass
        try:
            return await self.create_stream(name, **settings), True
        except errors.ConflictError:
            return await self.get_stream(name), False

    async def delete_stream(self, name: str) -> None:
        await self._send(api.delete_stream(name))

    async def push(
        self, stream: str, array: Any, seq: int | None = None, dtype: WireDtype | None = None
    ) -> PushResult:
        """Learn one batch (B, D); with `seq`, retries after a lost answer cannot train twice.
        `dtype` "float16"/"bfloat16" sends 2 bytes a number (None: float16 arrays as float16)."""
        return await self._send(api.push(stream, array, seq, dtype))

    async def stream_array(
        self,
        stream: str,
        X: Any,
        batch_size: int = 10,
        progress: bool = False,
        start_seq: int | None = None,
    ) -> PushSummary:
        """Push X (N, D) in numbered batches; see `DimwatchClient.stream_array`."""
        seq = (await self.get_stream(stream)).step if start_seq is None else start_seq
        rows = api.as_rows(X, "X")
        with Upload(len(rows), progress, stream) as upload:
            for number, batch in api.batches(rows, batch_size, seq):
                upload.record(await self.push(stream, batch, seq=number))
        return upload.summary()

    async def fit_array(
        self,
        stream: str,
        X: Any,
        batch_size: int = _fit.DEFAULT_BATCH_SIZE,
        max_rows: int = _fit.DEFAULT_MAX_ROWS,
        shuffle_seed: int = 0,
        progress: bool = False,
        **settings: Unpack[StreamSettings],
    ) -> FitResult:
        """Learn X in shuffled passes until converged; see `DimwatchClient.fit_array`."""
        with _fit.Fit(X, stream, batch_size, max_rows, shuffle_seed, progress) as fit:
            created, _ = await self.ensure_stream(stream, **fit.settings(settings))
            fit.start(created, await self.selection(stream))
            while (batch := fit.next_batch()) is not None:
                fit.record(await self.push(stream, batch[1], seq=batch[0]))
        return fit.result(await self.collapse(stream))

    async def selection(self, stream: str) -> Selection:
        return await self._send(api.selection(stream))

    async def collapse(self, stream: str) -> Collapse:
        return await self._send(api.collapse(stream))

    async def history(self, stream: str, after: int = -1, limit: int = 1000) -> History:
        return await self._send(api.history(stream, after, limit))

    async def model(self, stream: str, latent_dim: int | str = "best") -> ModelParams:
        return await self._send(api.model(stream, latent_dim))

    async def transform(self, stream: str, X: Any, latent_dim: int | None = None) -> Projection:
        return await self._send(api.transform(stream, X, latent_dim))

    async def reconstruct(self, stream: str, X: Any, latent_dim: int | None = None) -> Projection:
        return await self._send(api.reconstruct(stream, X, latent_dim))

    async def watch(self, stream: str) -> AsyncGenerator[Event, None]:
        """Typed events of the stream as they happen; see `DimwatchClient.watch`."""
        session = WatchSession(self.retry, self.base_url, time.monotonic())
        while not session.deleted:
            try:
                async with self._http.stream(
                    "GET",
                    api.events_path(stream),
                    headers=session.headers(),
                    timeout=api.watch_timeout(self._timeout),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                    wait = session.opened(response, time.monotonic())
                    if wait is None:
                        async for line in response.aiter_lines():
                            if (event := session.feed(line)) is not None:
                                yield event
                    error = None
            except httpx.TransportError as exc:
                error, wait = exc, None
            if not session.deleted:
                await asyncio.sleep(
                    wait if wait is not None else session.reconnect_delay(error, time.monotonic())
                )
