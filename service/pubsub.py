"""Fan-out of one stream's events to its server-sent-event listeners, with replay on reconnect.

Event loop only, except `Closing.set`, which any thread may call. Nothing polls: a listener
sleeps until a publish, its stream's end or the server's shutdown wakes it, or until the
keep-alive interval passes.

Ids: every applied batch publishes its events in one go, `selection_change` (if any, without an
id) before `step` (id = the step). So an id names a step whose events have all been sent, and a
listener that reconnects with `Last-Event-ID: n` is owed exactly the events of steps > n: the
last REPLAY batches are kept per stream to replay them; when steps it is owed are no longer
kept, it gets a `reset` event first (then what is kept) and should re-read the selection and
history.
"""

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# A listener that falls this many events behind loses the oldest ones rather than growing memory.
LISTENER_BUFFER = 256
# Applied batches whose events are kept per stream for listeners that reconnect.
REPLAY = 256

Messages = list[tuple[str, str]]  # (event name, JSON data) of one applied batch, in order
KEEPALIVE = ": keep-alive\n\n"


def sse(event: str, data: str, event_id: int | None = None) -> str:
    """One server-sent event in wire format."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {data}\n\n"


def _end(reason: str) -> str:
    """The last event of an events stream: `deleted` (do not reconnect) or `shutdown`."""
    return sse("end", json.dumps({"reason": reason}))


@dataclass(frozen=True)
class _Batch:
    """The events of one applied batch, rendered when read (often never). The text is not kept:
    REPLAY rendered batches of a wide stream are about a megabyte, the reports they come from a
    small part of that."""

    step: int
    render: Callable[[], Messages]

    def wire(self) -> list[str]:
        return [sse(e, d, self.step if e == "step" else None) for e, d in self.render()]


@dataclass(eq=False)
class Listener:
    """One open events stream: messages waiting to be sent, None once it must end."""

    queue: "asyncio.Queue[str | None]" = field(default_factory=asyncio.Queue)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    ended: bool = False

    def offer(self, message: str | None) -> None:
        """Queue a message (None: the end); a slow listener drops its oldest, never the end."""
        if self.ended:
            return
        if message is not None and self.queue.qsize() >= LISTENER_BUFFER:
            self.queue.get_nowait()
        self.queue.put_nowait(message)

    def end(self, reason: str) -> None:
        self.offer(_end(reason))
        self.offer(None)
        self.ended = True

    async def next(self, keepalive: float) -> str | None:
        """The next message, KEEPALIVE after `keepalive` seconds of silence, None at the end."""
        try:
            return await asyncio.wait_for(self.queue.get(), keepalive)
        except TimeoutError:
            return KEEPALIVE


class Hub:
    """Listeners of one stream and its recent events; `publish` never blocks."""

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._recent: deque[_Batch] = deque(maxlen=REPLAY)
        self._closed: str | None = None  # why the stream's events ended ("deleted", ...)

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def publish(self, step: int, render: Callable[[], Messages]) -> None:
        """Record the events of step `step` (rendered only if someone reads them) and send them
        to every listener."""
        batch = _Batch(step, render)
        self._recent.append(batch)
        if self._listeners:
            messages = batch.wire()  # once for every listener
            for listener in self._listeners:
                for message in messages:
                    listener.offer(message)

    def subscribe(self, last_event_id: str | None, step: int) -> Listener:
        """A new listener (`step`: the stream's step as the caller read it), owed what it missed
        after `last_event_id`; one that ends at once when the stream's events already ended."""
        listener = Listener()
        if self._closed is not None:
            listener.end(self._closed)
            return listener
        if last_event_id is not None:
            for message in self._missed(last_event_id, step):
                listener.offer(message)
        self._listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def close(self, reason: str = "deleted") -> None:
        """End every listener, and every later one at once."""
        self._closed = reason
        for listener in self._listeners:
            listener.end(reason)
        self._listeners.clear()

    def _missed(self, last_event_id: str, step: int) -> list[str]:
        """Replay of the steps after `last_event_id`, behind a `reset` event when some of them
        are no longer kept (or the id is not a step of this stream)."""
        step = max(step, self._recent[-1].step if self._recent else 0)
        last = int(last_event_id) if last_event_id.isascii() and last_event_id.isdigit() else None
        if last is not None and last >= step:
            return [] if last == step else [_reset("ahead", last_event_id, step, None)]
        kept = [b for b in self._recent if last is None or b.step > last]
        messages = [m for b in kept for m in b.wire()]
        oldest = kept[0].step if kept else None
        if last is None:
            return [_reset("unknown_id", last_event_id, step, oldest), *messages]
        if oldest != last + 1:
            return [_reset("too_old", last_event_id, step, oldest), *messages]
        return messages


def _reset(reason: str, last_event_id: str, step: int, oldest: int | None) -> str:
    """Events after Last-Event-ID were lost: say so, and what is replayed from where."""
    explain = {
        "too_old": "some events after it are no longer kept",
        "ahead": "it is past this stream's step (a stream of the same name was recreated?)",
        "unknown_id": "it is not a step of this stream",
    }[reason]
    data = {
        "reason": reason,
        "last_event_id": last_event_id,
        "step": step,
        "replayed_from": oldest,
        "message": f"cannot resume after Last-Event-ID {last_event_id!r}: {explain}; "
        "re-read the selection and the history",
    }
    return sse("reset", json.dumps(data))


class Closing:
    """Set once when the server begins to stop (from any thread): ends every open events
    stream with an `end` event of reason "shutdown", at once, each on its own loop."""

    def __init__(self) -> None:
        self._set = False
        self._lock = threading.Lock()
        self._listeners: set[Listener] = set()

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._lock:
            self._set = True
            listeners, self._listeners = self._listeners, set()
        for listener in listeners:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nothing left to end
                listener.loop.call_soon_threadsafe(listener.end, "shutdown")

    def watch(self, listener: Listener) -> None:
        """End `listener` when the server stops (at once if it is stopping already)."""
        with self._lock:
            if not self._set:
                self._listeners.add(listener)
                return
        listener.end("shutdown")

    def forget(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)
