"""Server-sent event decoding and typed events, without any I/O."""

import json

import pytest

from clients import errors
from clients._events import ServerSentEvent, SSEDecoder, parse_event
from clients.models import SelectionChangeEvent, StepEvent
from tests.clients import samples


def _decode(text: str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    decoded = [decoder.decode(line) for line in text.split("\n")]
    return [e for e in decoded if e is not None]


def test_sse_decoder_reads_event_id_and_multiline_data() -> None:
    events = _decode('event: step\nid: 5\ndata: {"a":\ndata: 1}\n\n')

    assert events == [ServerSentEvent(event="step", data='{"a":\n1}', id="5")]


def test_sse_decoder_skips_comments_and_empty_events() -> None:
    assert _decode(": keep-alive\n\nevent: step\n\n") == []


def test_sse_decoder_names_an_unnamed_event_message() -> None:
    assert _decode("data:x\n\n") == [ServerSentEvent(event="message", data="x", id=None)]


def test_parse_event_reads_a_step() -> None:
    sse = ServerSentEvent(event="step", data=json.dumps(samples.SELECTION), id="121")

    event = parse_event(sse)

    assert isinstance(event, StepEvent)
    assert (event.step, event.selection.best_latent_dim) == (121, 4)
    assert [m.latent_dim for m in event.selection.models] == [2, 4]


def test_parse_event_reads_a_selection_change() -> None:
    data = json.dumps({"step": 9, "previous": 6, "best_latent_dim": 2})

    event = parse_event(ServerSentEvent(event="selection_change", data=data, id=None))

    assert event == SelectionChangeEvent(step=9, previous=6, best_latent_dim=2)


def test_parse_event_ignores_an_unknown_kind() -> None:
    assert parse_event(ServerSentEvent(event="hello", data="{}", id=None)) is None


def test_parse_event_raises_protocol_error_on_bad_json() -> None:
    with pytest.raises(errors.ProtocolError, match="unexpected 'step' event"):
        parse_event(ServerSentEvent(event="step", data="{", id=None))
