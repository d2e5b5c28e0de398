"""The digests of recent batches: what a resent seq is compared with."""

import numpy as np
import pytest

from service.errors import ApiError
from service.runtime.digests import WINDOW, Digests, digest


def _batch(seed: int, rows: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 4)).astype(np.float32)


def _filled(count: int) -> Digests:
    digests = Digests()
    for seq in range(count):
        digests.add(seq, _batch(seq), digest(_batch(seq)))
    return digests


def test_check_the_same_batch_passes() -> None:
    _filled(5).check("s", 3, _batch(3))


def test_check_other_values_refuses_with_both_shapes() -> None:
    with pytest.raises(ApiError) as raised:
        _filled(5).check("s", 3, _batch(9))
    assert (raised.value.status, raised.value.code) == (409, "seq_reused")
    assert raised.value.details == {"seq": 3, "applied_shape": [3, 4], "given_shape": [3, 4]}


def test_check_a_seq_older_than_the_window_cannot_tell() -> None:
    _filled(WINDOW + 2).check("s", 1, _batch(99))  # evicted by seq WINDOW + 1


def test_round_trip_through_bytes_keeps_every_digest() -> None:
    restored = Digests.from_bytes(_filled(WINDOW + 10).to_bytes())
    restored.check("s", WINDOW + 5, _batch(WINDOW + 5))
    with pytest.raises(ApiError):
        restored.check("s", 20, _batch(21))


def test_from_no_bytes_is_empty() -> None:
    Digests.from_bytes(None).check("s", 0, _batch(0))
    Digests.from_bytes(b"").check("s", 0, _batch(0))
