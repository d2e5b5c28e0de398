"""Server-sent events of `watch`, without any I/O: the decoder, typed events, and what a watch
knows across reconnects."""

import json
from dataclasses import dataclass

import httpx

from clients import errors
from clients._requests import RetryPolicy, connection_error, error_from_response, retry_delay
from clients.models import Event, ResetEvent, Selection, SelectionChangeEvent, StepEvent


@dataclass(frozen=True)
class ServerSentEvent:
    event: str  # "message" when the server named none
    data: str
    id: str | None


class SSEDecoder:
    """Turns the lines of a `text/event-stream` into events (WHATWG HTML, 9.2.6)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def decode(self, line: str) -> ServerSentEvent | None:
        """Feed one line (without its end); a blank line completes the event read so far."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. ": keep-alive"
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerSentEvent(event=event, data="\n".join(data), id=self._id)


def parse_event(sse: ServerSentEvent) -> Event | None:
    """A typed event from a server-sent one; None for kinds this client does not know."""
    try:
        if sse.event == "step":
            chosen = Selection.from_json(json.loads(sse.data))
            return StepEvent(step=chosen.step, selection=chosen)
        if sse.event == "selection_change":
            return SelectionChangeEvent.from_json(json.loads(sse.data))
        if sse.event == "reset":
            return ResetEvent.from_json(json.loads(sse.data))
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.ProtocolError(f"unexpected {sse.event!r} event: {exc}") from exc
    return None


def check_event_stream(response: httpx.Response) -> None:
    """Raise unless the opened events response is a 200 `text/event-stream` (body read on error)."""
    if response.status_code >= 400:
        raise error_from_response(response)
    media = response.headers.get("Content-Type", "").split(";")[0].strip()
    if media != "text/event-stream":
        raise errors.ProtocolError(f"expected a text/event-stream answer, got {media!r}")


class WatchSession:
    """What `watch` knows across reconnects, without I/O: the last event id (sent back as
    Last-Event-ID, so the server replays what was missed and nothing twice), whether the server
    ended the stream for good (`end` with reason deleted), and when to give up.

    A connection that drops, or an events stream that closes without `end: deleted` (the server
    stopping, a proxy timing out), is reopened after the policy's backoff, up to
    `policy.attempts` failures in a row (a connection that delivered an event resets the count);
    a 503 with Retry-After (a server restoring its streams) is waited out for up to
    `policy.wait_ready` seconds.
    """

    def __init__(self, policy: RetryPolicy, base_url: str, now: float) -> None:
        self.policy = policy
        self.base_url = base_url
        self.since = now  # time.monotonic() when the current run of failures began
        self.last_event_id: str | None = None
        self.deleted = False
        self.failures = 0
        self._decoder = SSEDecoder()

    def headers(self) -> dict[str, str]:
        """The request headers of the next connection (a fresh decoder for it too)."""
        self._decoder = SSEDecoder()
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def opened(self, response: httpx.Response, now: float) -> float | None:
        """None for a 200 event stream; seconds to wait for a retriable 503; raises otherwise."""
        if response.status_code == 503:
            delay = retry_delay(
                self.policy, 1, idempotent=True, response=response, elapsed=now - self.since
            )
            if delay is not None:
                return delay
        check_event_stream(response)
        return None

    def feed(self, line: str) -> Event | None:
        """The typed event this line completes, if any."""
        sse = self._decoder.decode(line)
        if sse is None:
            return None
        self.failures = 0
        if sse.id is not None:
            self.last_event_id = sse.id
        if sse.event == "end":
            self.deleted = json.loads(sse.data).get("reason") == "deleted"
            return None
        return parse_event(sse)

    def reconnect_delay(self, error: httpx.TransportError | None, now: float) -> float:
        """Seconds before the next connection; raises ConnectionError when it is time to stop."""
        if self.failures == 0:
            self.since = now
        self.failures += 1
        if self.failures < self.policy.attempts:
            return min(self.policy.backoff * 2 ** (self.failures - 1), self.policy.max_delay)
        if error is not None:
            raise connection_error(self.base_url, error)
        raise errors.ConnectionError(
            f"the events stream of dimwatch at {self.base_url} ended "
            f"{self.failures} times in a row; gave up",
            self.base_url,
        )
