"""Request building and response parsing for the dimwatch API, without any I/O.

Every API operation is a `Call`: what to send (method, path, params, body, headers) and how to
read the answer. The sync and async clients only send Calls and sleep between retries, so all
the behaviour worth testing lives here (with clients/_events.py for `watch`): the binary batch
format, the error-body mapping and the retry decision.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
import numpy as np

from clients import errors
from clients.models import (
    Collapse,
    Health,
    History,
    ModelParams,
    Projection,
    PushResult,
    Selection,
    Stream,
    StreamPage,
    StreamSettings,
)

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
SSE_READ_TIMEOUT = 60.0  # seconds without a byte before `watch` gives up (keep-alive is 15 s)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API and the parser of its successful answer."""

    method: str
    path: str  # relative to the base URL, names already quoted
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    idempotent: bool = True  # may be resent after a transport error (the server may have seen it)

    def options(self) -> dict[str, Any]:
        """The keyword arguments of httpx's `request` besides method and path."""
        return {"params": self.params, "json": self.json, "content": self.content,
                "headers": self.headers}  # fmt: skip


def watch_timeout(timeout: float | None) -> httpx.Timeout:
    """The timeouts of an events stream: `timeout`, but reads wait for the keep-alive."""
    return httpx.Timeout(timeout, read=SSE_READ_TIMEOUT)


@dataclass(frozen=True)
class RetryPolicy:
    """When to resend: connection failures and 429 answers (up to `attempts` tries), and 503
    answers with a Retry-After (a server still restoring its streams, a storage hiccup; nothing
    was applied) for up to `wait_ready` seconds. `RetryPolicy(attempts=1, wait_ready=0)` never
    resends."""

    attempts: int = 5  # tries in all, the first included (connection failures, 429)
    backoff: float = 0.25  # seconds before the first retry, doubling after each
    max_delay: float = 10.0  # no single wait is longer; a longer Retry-After is not retried
    wait_ready: float = 60.0  # seconds from the first try within which a 503 is resent


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def retry_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    idempotent: bool,
    response: httpx.Response | None = None,
    error: httpx.TransportError | None = None,
    elapsed: float = 0.0,
) -> float | None:
    """Seconds to wait before try `attempt + 1`, or None when the outcome is final.

    A request that never left (connect failure) is always safe to resend; one that may have
    reached the server only when `idempotent` (a batch with a seq, a read). A 429, or a 503
    with Retry-After, was not applied, so it is resent after the server's Retry-After: a 429
    within `attempts`, a 503 while `elapsed` (seconds since the first try) plus the wait stays
    within `wait_ready` (a busy machine can take tens of seconds to restore and warm up).
    """
    backoff = min(policy.backoff * 2 ** (attempt - 1), policy.max_delay)
    if response is not None:
        retry_after = parse_retry_after(response)
        if response.status_code == 503 and retry_after is not None:
            wait = min(retry_after, policy.max_delay)  # sooner than asked is only another 503
            return wait if elapsed + wait <= policy.wait_ready else None
        if response.status_code != 429 or attempt >= policy.attempts:
            return None
        if retry_after is None:
            return backoff
        return retry_after if retry_after <= policy.max_delay else None
    if attempt >= policy.attempts:
        return None
    never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return backoff if never_sent or idempotent else None


def parse_retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: the API promises seconds, so fall back to backoff
    return max(seconds, 0.0) if seconds is not None else None


def connection_error(base_url: str, exc: httpx.TransportError) -> errors.ConnectionError:
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return errors.ConnectionError(f"cannot reach dimwatch at {base_url} ({detail})", base_url)
    if isinstance(exc, httpx.TimeoutException):
        message = f"dimwatch at {base_url} did not answer in time ({detail})"
        return errors.ConnectionError(message, base_url)
    return errors.ConnectionError(
        f"lost the connection to dimwatch at {base_url} ({detail})", base_url
    )


_STATUS_ERRORS: dict[int, type[errors.HTTPStatusError]] = {
    401: errors.AuthError,
    403: errors.AuthError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.PayloadTooLargeError,
    422: errors.ValidationError,
    429: errors.RateLimitedError,
}


def error_from_response(response: httpx.Response) -> errors.HTTPStatusError:
    """Map an error answer (`{"error", "message", "details"}`) to its exception."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code, message, details = str(body.get("error")), body["message"], body.get("details")
    else:  # not the contract's shape: a proxy, another service, a crash page
        code = f"http_{status}"
        message = response.text.strip()[:200] or response.reason_phrase or "no message"
        details = None
    if status == 429:
        return errors.RateLimitedError(
            status, code, message, details, retry_after=parse_retry_after(response)
        )
    if code == "seq_gap":
        return errors.SeqGapError(status, code, message, details)
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = errors.ServerError if status >= 500 else errors.HTTPStatusError
    return cls(status, code, message, details)


def finish(call: Call[T], response: httpx.Response) -> T:
    """Raise the error of a 4xx/5xx answer, else parse the body into the call's result."""
    if response.status_code >= 400:
        raise error_from_response(response)
    try:
        return call.parse(response)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise errors.ProtocolError(
            f"unexpected answer to {call.method} {call.path} "
            f"(status {response.status_code}): {type(exc).__name__}: {exc}"
        ) from exc


def _body(response: httpx.Response) -> Any:
    return response.json()


def _stream_path(name: str, *parts: str) -> str:
    return "/".join(["/v1/streams", quote(name, safe=""), *parts])


def as_rows(array: Any, what: str, dtype: type = np.float32) -> np.ndarray:
    """The array as rows (N, D) of `dtype`; InputError unless it is 2-D and numeric."""
    try:
        rows: np.ndarray = np.asarray(array, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise errors.InputError(f"{what}: expected numbers, got {exc}") from exc
    if rows.ndim != 2:
        raise errors.InputError(
            f"{what}: expected a 2-D array (rows x columns), got shape {rows.shape}"
        )
    return rows


WireDtype = Literal["float32", "float16", "bfloat16"]  # X-Dtype of a binary batch


def encode_batch(array: Any, dtype: WireDtype | None = None) -> tuple[bytes, int, WireDtype]:
    """The binary body of a batch (little-endian, row-major), its column count D and its X-Dtype.

    `dtype` None sends a float16 numpy array as float16 (lossless, half the bytes) and anything
    else as float32; "bfloat16" rounds float32 to the nearest bfloat16 (ties to even).
    """
    if dtype is None:
        is_half = isinstance(array, np.ndarray) and array.dtype == np.float16
        dtype = "float16" if is_half else "float32"
    if dtype == "float16":
        with np.errstate(over="ignore"):  # beyond float16 becomes inf, which the server refuses
            half = as_rows(array, "batch", np.float16)
        return np.ascontiguousarray(half, dtype="<f2").tobytes(), half.shape[1], dtype
    rows = as_rows(array, "batch")
    if dtype == "bfloat16":
        bits = np.ascontiguousarray(rows, dtype="<f4").view("<u4").astype(np.uint64)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16  # round half to even
        rounded = np.where(np.isfinite(rows), rounded, bits >> 16)  # inf, NaN stay non-finite
        return rounded.astype("<u2").tobytes(), rows.shape[1], dtype
    if dtype != "float32":
        raise errors.InputError(f"dtype: expected float32, float16 or bfloat16, got {dtype!r}")
    return np.ascontiguousarray(rows, dtype="<f4").tobytes(), rows.shape[1], dtype


def batches(array: Any, batch_size: int, start_seq: int) -> Iterator[tuple[int, np.ndarray]]:
    """Cut an array into consecutive batches of `batch_size` rows, numbered from `start_seq`."""
    if batch_size < 1:
        raise errors.InputError(f"batch_size: expected >= 1, got {batch_size}")
    rows = as_rows(array, "array")
    for i, start in enumerate(range(0, len(rows), batch_size)):
        yield start_seq + i, rows[start : start + batch_size]


# --- the API's operations (docs/api.md) ---------------------------------------------------------


def health() -> Call[Health]:
    return Call("GET", "/healthz", lambda r: Health.from_json(_body(r)))


def list_streams(after: str | None = None, limit: int | None = None) -> Call[StreamPage]:
    """A page of the streams sorted by name, those after `after` (the server's page size
    when limit is None)."""
    params = {k: v for k, v in (("after", after), ("limit", limit)) if v is not None}
    return Call("GET", "/v1/streams", _stream_page, params=params or None)


def _stream_page(response: httpx.Response) -> StreamPage:
    body = _body(response)
    return StreamPage([Stream.from_json(s) for s in body["data"]], body.get("next"))


def create_stream(name: str, settings: StreamSettings) -> Call[Stream]:
    body: dict[str, Any] = {"name": name, **settings}
    if "latent_dims" in body:
        body["latent_dims"] = [int(h) for h in body["latent_dims"]]
    return Call(
        "POST", "/v1/streams", lambda r: Stream.from_json(_body(r)), json=body, idempotent=False
    )


def get_stream(name: str) -> Call[Stream]:
    return Call("GET", _stream_path(name), lambda r: Stream.from_json(_body(r)))


def delete_stream(name: str) -> Call[None]:
    return Call("DELETE", _stream_path(name), lambda r: None, idempotent=False)


def push(
    name: str, array: Any, seq: int | None = None, dtype: WireDtype | None = None
) -> Call[PushResult]:
    """A batch in the binary format; with a seq it is safe to resend (duplicates are skipped)."""
    content, dim, wire = encode_batch(array, dtype)
    headers = {"Content-Type": "application/octet-stream", "X-Dim": str(dim)}
    if wire != "float32":  # the server's default; an older server knows no X-Dtype
        headers["X-Dtype"] = wire
    if seq is not None:
        headers["X-Seq"] = str(int(seq))
    return Call(
        "POST",
        _stream_path(name, "batches"),
        lambda r: PushResult.from_json(_body(r)),
        content=content,
        headers=headers,
        idempotent=seq is not None,
    )


def selection(name: str) -> Call[Selection]:
    return Call("GET", _stream_path(name, "selection"), lambda r: Selection.from_json(_body(r)))


def collapse(name: str) -> Call[Collapse]:
    return Call("GET", _stream_path(name, "collapse"), lambda r: Collapse.from_json(_body(r)))


def history(name: str, after: int = -1, limit: int = 1000) -> Call[History]:
    return Call(
        "GET",
        _stream_path(name, "history"),
        lambda r: History.from_json(_body(r)),
        params={"after": after, "limit": limit},
    )


def model(name: str, latent_dim: int | str = "best") -> Call[ModelParams]:
    which = "best" if latent_dim == "best" else str(int(latent_dim))
    return Call(
        "GET", _stream_path(name, "models", which), lambda r: ModelParams.from_json(_body(r))
    )


def _projection(name: str, op: str, array: Any, latent_dim: int | None) -> Call[Projection]:
    body = {"data": as_rows(array, "data", np.float64).tolist(), "latent_dim": latent_dim}
    return Call("POST", _stream_path(name, op), lambda r: Projection.from_json(_body(r)), json=body)


def transform(name: str, array: Any, latent_dim: int | None = None) -> Call[Projection]:
    return _projection(name, "transform", array, latent_dim)


def reconstruct(name: str, array: Any, latent_dim: int | None = None) -> Call[Projection]:
    return _projection(name, "reconstruct", array, latent_dim)


def events_path(name: str) -> str:
    return _stream_path(name, "events")
