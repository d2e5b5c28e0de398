"""Fan-out of one stream's events to its server-sent-event listeners (event loop only)."""

import asyncio

# A listener that falls this many events behind loses the oldest ones rather than growing memory.
LISTENER_BUFFER = 256


class Hub:
    """Listeners of one stream; `publish` never blocks, `close` ends every listener."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[str | None]] = set()

    def subscribe(self) -> "asyncio.Queue[str | None]":
        queue: asyncio.Queue[str | None] = asyncio.Queue(LISTENER_BUFFER)
        self._listeners.add(queue)
        return queue

    def unsubscribe(self, queue: "asyncio.Queue[str | None]") -> None:
        self._listeners.discard(queue)

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def publish(self, message: str | None) -> None:
        """Queue an SSE message (None: end of stream) for every listener."""
        for queue in self._listeners:
            if queue.full():
                queue.get_nowait()  # drop the oldest: a slow listener must not hold memory
            queue.put_nowait(message)

    def close(self) -> None:
        self.publish(None)


def sse(event: str, data: str, event_id: int | None = None) -> str:
    """One server-sent event in wire format."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return f"{head}data: {data}\n\n"
