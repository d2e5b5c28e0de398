"""One source for a stream's settings (streaming/spec.py): the API's request and response
schemas, the CLI's flags and the stored record are derived from StreamSpec, and agree with it
field by field (names, defaults, bounds, help texts, choices)."""

import dataclasses

import pytest

from clients._parser import SETTING_NAMES, build_parser
from service.live import LiveStream
from service.schemas import StreamCreate, StreamOut
from streaming.spec import SPEC_VERSION, StreamSpec, defaults

FIELDS = {f.name: f for f in dataclasses.fields(StreamSpec)}


def test_request_schema_has_every_setting_with_its_default_bounds_and_text() -> None:
    properties = StreamCreate.model_json_schema()["properties"]
    assert set(properties) == {*FIELDS, "name", "dim"}
    for name, f in FIELDS.items():
        prop = properties[name]
        assert prop["description"] == f.metadata["doc"], name
        if name != "latent_dims":
            assert prop["default"] == f.default, name
        for bound, key in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum")):
            if bound in f.metadata:
                where = prop["items"] if name == "latent_dims" else prop
                assert where[key] == f.metadata[bound], (name, bound)
    assert StreamCreate(name="s").to_spec() == StreamSpec()


def test_response_schema_lists_every_setting() -> None:
    assert set(FIELDS) <= set(StreamOut.model_json_schema()["properties"])


def test_cli_has_a_flag_for_every_setting_with_the_default_in_its_help() -> None:
    assert set(SETTING_NAMES) == set(FIELDS)
    push = build_parser()._subparsers._group_actions[0].choices["push"]  # type: ignore[union-attr]
    flags = {a.dest: a for a in push._actions}
    for name, f in FIELDS.items():
        action = flags[name]
        assert action.help is not None and action.help.startswith(f.metadata["doc"]), name
        shown = defaults()[name]
        if isinstance(shown, list):
            shown = ",".join(str(v) for v in shown)
        elif isinstance(shown, bool):
            shown = "on" if shown else "off"
        assert action.help.endswith(f"[{shown}]"), name
    assert flags["optimizer"].choices == ["subspace", "adam", "sgd"]


@pytest.mark.parametrize(
    "spec", [StreamSpec(), StreamSpec(latent_dims=(1, 3), optimizer="adam", switch_margin=0.0)]
)
def test_stored_record_is_the_spec_with_its_version(spec: StreamSpec) -> None:
    live = LiveStream("s", spec.to_record(), 8, "2026-12-01T00:00:00Z", "cpu", 10)
    assert live.record == {**spec.to_record(), "spec_version": SPEC_VERSION}
    assert StreamSpec.from_record(live.record) == spec
