"""Server-sent events: every applied batch's selection, and changes of the best H."""

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from service.deps import AuthorizedOrQuery, BackendDep, SettingsDep
from service.routes import errors

router = APIRouter(prefix="/v1/streams/{name}", tags=["events"], dependencies=[AuthorizedOrQuery])

POLL_SECONDS = 0.25  # how often an idle events stream checks for server shutdown

_EVENTS_DOC = {
    200: {
        "description": "text/event-stream of `step` and `selection_change` events",
        "content": {
            "text/event-stream": {
                "example": 'event: step\nid: 121\ndata: {"step": 121, "rows_seen": 1210, '
                '"best_latent_dim": 4, "models": []}\n\n'
                "event: selection_change\n"
                'data: {"step": 121, "previous": 6, "best_latent_dim": 4}\n\n'
            }
        },
    },
    **errors(401, 404, 422, 503),
}


@router.get("/events", response_class=StreamingResponse, responses=_EVENTS_DOC)
async def stream_events(
    name: str, backend: BackendDep, request: Request, settings: SettingsDep
) -> StreamingResponse:
    """One `step` event per applied batch (id = step, data = the selection), an extra
    `selection_change` event when the best H changes, `: keep-alive` comments in silence.
    Accepts ?token= in place of the Authorization header (for EventSource)."""
    hub = await backend.hub(name)
    closing = request.app.state.closing

    async def messages() -> AsyncIterator[str]:
        queue = hub.subscribe()
        try:
            yield ": connected\n\n"
            silent = 0.0
            while not closing.is_set():
                try:
                    message = await asyncio.wait_for(queue.get(), POLL_SECONDS)
                except TimeoutError:
                    silent += POLL_SECONDS
                    if silent >= settings.keepalive_seconds:
                        silent = 0.0
                        yield ": keep-alive\n\n"
                    continue
                if message is None:  # the stream was deleted or the server is stopping
                    return
                silent = 0.0
                yield message
        finally:
            hub.unsubscribe(queue)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)
