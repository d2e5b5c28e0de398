"""A stream's settings: one frozen spec, validated, versioned, migrated."""

import pytest

from streaming.errors import InvalidConfigError
from streaming.spec import SPEC_VERSION, StreamSpec, defaults


def test_defaults_are_the_services_defaults() -> None:
    assert defaults() == {
        "latent_dims": [2, 4, 6],
        "optimizer": "subspace",
        "learning_rate": 0.002,
        "estimator": "analytic",
        "mc_samples": 100,
        "bic_n": 10,
        "collapse_threshold": 1.0,
        "seed": 0,
        "device": "auto",
        "standardize": False,
        "adaptive": True,
        "boost_learning_rate": 0.05,
        "switch_margin": 5.0,
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"latent_dims": ()}, "latent_dims: expected at least one latent size, got none"),
        ({"latent_dims": (2, 2)}, r"latent_dims: expected distinct sizes, got \[2, 2\]"),
        ({"latent_dims": (0, 2)}, r"latent_dims: expected values >= 1, got \(0, 2\)"),
        ({"latent_dims": ("1", 2)}, "latent_dims: expected a list of integers"),
        ({"learning_rate": 1000.0}, "learning_rate: expected a number <= 1.0, got 1000.0"),
        ({"learning_rate": 0.0}, "learning_rate: expected a number > 0, got 0.0"),
        ({"bic_n": 0}, "bic_n: expected values >= 1, got 0"),
        ({"optimizer": "rmsprop"}, r"optimizer: expected one of \['subspace', 'adam', 'sgd'\]"),
        ({"estimator": "exact"}, r"estimator: expected one of \['analytic', 'mc'\]"),
        ({"device": "tpu"}, "device: expected 'auto', 'cpu' or 'cuda"),
        ({"estimator": "mc"}, "the subspace optimizer fits the exact posterior"),
        ({"switch_margin": -1.0}, "switch_margin: expected values >= 0"),
    ],
)
def test_invalid_settings_say_what_was_expected(settings: dict, message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        StreamSpec(**settings)


def test_the_old_name_of_the_default_update_is_accepted() -> None:
    assert StreamSpec(optimizer="natural").optimizer == "subspace"  # type: ignore[arg-type]


def test_record_round_trips_with_its_version() -> None:
    spec = StreamSpec(latent_dims=(1, 3), optimizer="adam", standardize=True, switch_margin=2.0)
    record = spec.to_record()
    assert record["spec_version"] == SPEC_VERSION and record["latent_dims"] == [1, 3]
    assert StreamSpec.from_record(record) == spec


def test_first_release_record_is_migrated() -> None:
    # no spec_version, no adaptive/standardize/switch_margin: a constant rate, no hysteresis
    record = {**defaults(), "optimizer": "natural"}
    for key in ("adaptive", "boost_learning_rate", "standardize", "switch_margin"):
        del record[key]
    spec = StreamSpec.from_record(record)
    assert (spec.optimizer, spec.adaptive, spec.switch_margin, spec.standardize) == (
        "subspace", False, 0.0, False,
    )  # fmt: skip


def test_record_missing_a_setting_names_it() -> None:
    record = StreamSpec().to_record()
    del record["bic_n"]
    with pytest.raises(KeyError, match="bic_n"):
        StreamSpec.from_record(record)


def test_record_of_a_newer_release_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="newer dimwatch"):
        StreamSpec.from_record({**StreamSpec().to_record(), "spec_version": SPEC_VERSION + 1})


def test_dimension_check_names_the_fix() -> None:
    with pytest.raises(InvalidConfigError, match=r"use latent_dims below 5 \(e.g. \[1, 2, 3\]\)"):
        StreamSpec(latent_dims=(2, 6)).check_dim(5)
