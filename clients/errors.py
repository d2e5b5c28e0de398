"""Errors raised by the dimwatch client.

    DimwatchError
    ├── ConnectionError          the server could not be reached (refused, DNS, timeout, dropped)
    ├── ProtocolError            the server answered something that breaks the API contract
    ├── InputError (ValueError)  a local argument cannot be sent (e.g. an array that is not 2-D)
    ├── MissingExtraError (ImportError)  an optional part (export) needs a package not installed
    └── HTTPStatusError          the server answered 4xx/5xx with its error body
        ├── ValidationError      422 invalid_request / invalid_batch / invalid_config / ...
        ├── AuthError            401 unauthorized, 403
        ├── NotFoundError        404 not_found
        ├── ConflictError        409 stream_exists / no_data_yet / ...
        │   └── SeqGapError      409 seq_gap, with .expected_seq
        ├── RateLimitedError     429 rate_limited, with .retry_after (seconds or None)
        ├── PayloadTooLargeError 413 payload_too_large / limit_exceeded
        └── ServerError          5xx

Every HTTPStatusError carries the server's body: `.status_code`, `.code` (the stable machine
code, e.g. "invalid_batch"), `.message` (what was wrong and what was expected) and `.details`.
`ConnectionError` deliberately shadows the builtin inside this package; import it qualified
(`from clients import errors; errors.ConnectionError`) where that could confuse.
"""

from typing import Any


class DimwatchError(Exception):
    """Base class of every error the client raises."""


class ConnectionError(DimwatchError):
    """The server could not be reached, or the connection broke before an answer came."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url  # the base URL the client tried


class ProtocolError(DimwatchError):
    """The server's answer does not match the API contract (wrong service on that port?)."""


class InputError(DimwatchError, ValueError):
    """An argument cannot be turned into a request; raised before anything is sent."""


class MissingExtraError(DimwatchError, ImportError):
    """An optional part of the client needs a package that is not installed; the message names
    the extra to install (`pip install 'dimwatch[export]'`)."""


class HTTPStatusError(DimwatchError):
    """The server answered with an error status and the contract's error body."""

    def __init__(self, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code  # HTTP status, e.g. 422
        self.code = code  # stable machine code, e.g. "invalid_batch"
        self.message = message  # the server's message, e.g. "expected 10 columns, got 9"
        self.details = details  # optional extra structure from the body


class ValidationError(HTTPStatusError):
    """422: the request or the batch was invalid; `.message` says what was expected."""


class AuthError(HTTPStatusError):
    """401/403: a token is missing or wrong."""


class NotFoundError(HTTPStatusError):
    """404: no such stream (or route)."""


class ConflictError(HTTPStatusError):
    """409: the request conflicts with the stream's state (exists already, no data yet, ...)."""


class SeqGapError(ConflictError):
    """409 seq_gap: a batch's seq skipped ahead; `.expected_seq` is the seq the server wants."""

    def __init__(self, status_code: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(status_code, code, message, details)
        expected = details.get("expected_seq") if isinstance(details, dict) else None
        self.expected_seq: int | None = expected if isinstance(expected, int) else None


class RateLimitedError(HTTPStatusError):
    """429: too many requests; `.retry_after` is the server's Retry-After in seconds."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status_code, code, message, details)
        self.retry_after = retry_after


class PayloadTooLargeError(HTTPStatusError):
    """413: the body or the batch is over the server's limits."""


class ServerError(HTTPStatusError):
    """5xx: the server failed; the request may be retried later."""
