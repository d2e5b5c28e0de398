"""Server-sent events: every applied batch's selection, changes of the best H; resumable."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from service.deps import AuthorizedOrQuery, BackendDep, SettingsDep
from service.pubsub import Closing, Hub
from service.routes import errors

router = APIRouter(prefix="/v1/streams/{name}", tags=["events"], dependencies=[AuthorizedOrQuery])

_EVENTS_DOC = {
    200: {
        "description": "text/event-stream of `step` and `selection_change` events",
        "content": {
            "text/event-stream": {
                "example": "event: selection_change\n"
                'data: {"step": 121, "previous": 6, "best_latent_dim": 4}\n\n'
                'event: step\nid: 121\ndata: {"step": 121, "rows_seen": 1210, '
                '"best_latent_dim": 4, "models": []}\n\n'
            }
        },
    },
    **errors(401, 404, 422, 503),
}


@router.get("/events", response_class=StreamingResponse, responses=_EVENTS_DOC)
async def stream_events(
    name: str,
    backend: BackendDep,
    request: Request,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="resume after this step: its later events are replayed (EventSource "
            "sends it on reconnect)",
        ),
    ] = None,
) -> StreamingResponse:
    """Per applied batch: a `selection_change` event if the best H changed, then a `step` event
    (id = step, data = the selection); `: keep-alive` comments in silence; `reset` when events
    after Last-Event-ID are lost; `end` (reason deleted or shutdown) before the stream closes.
    Accepts ?token= in place of the Authorization header (for EventSource)."""
    step = (await backend.stream(name)).step
    hub = await backend.hub(name)
    closing: Closing = request.app.state.closing
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    messages = _messages(hub, closing, last_event_id, step, settings.keepalive_seconds)
    return StreamingResponse(messages, media_type="text/event-stream", headers=headers)


async def _messages(
    hub: Hub, closing: Closing, last_event_id: str | None, step: int, keepalive: float
) -> AsyncIterator[str]:
    """The wire text of one events stream, until its `end` (or the client leaves)."""
    listener = hub.subscribe(last_event_id, step)
    closing.watch(listener)
    try:
        yield ": connected\n\n"
        while (message := await listener.next(keepalive)) is not None:
            yield message
    finally:
        hub.unsubscribe(listener)
        closing.forget(listener)
