"""What each recently applied batch was, so that a resent seq is checked against it.

A client that lost an answer resends the batch with the same seq and is answered `duplicate`.
A seq reused for *another* batch (a different file, a bug) must not be: like an idempotency key
reused with another body, it is refused with 409 `seq_reused`, naming both shapes. For that the
stream keeps, for each of its last WINDOW batches, a 16-byte BLAKE2b digest of the batch's
float32 values (after decoding: a JSON and a binary body of the same numbers agree) and its shape.
A resend older than the window cannot be checked and is answered `duplicate` as before.

Memory: WINDOW * 24 bytes per stream (6 KiB). The window survives restarts: it is stored with
each snapshot and rebuilt from the batches replayed after it.
"""

import hashlib

import numpy as np

from service.errors import ApiError

WINDOW = 256  # batches; a client resends what was in flight when it lost its answers
_RECORD = np.dtype([("seq", "<i8"), ("rows", "<i4"), ("cols", "<i4"), ("digest", "V16")])


def digest(x: np.ndarray) -> bytes:
    """16 bytes identifying a (B, D) float32 batch's values and shape."""
    h = hashlib.blake2b(np.ascontiguousarray(x, dtype="<f4").data, digest_size=16)
    h.update(np.array(x.shape, dtype="<i8").tobytes())
    return h.digest()


class Digests:
    """A ring of the last WINDOW batches' (seq, shape, digest), seq = the step before a batch."""

    def __init__(self, records: np.ndarray | None = None) -> None:
        self._ring = np.zeros(WINDOW, _RECORD)
        self._ring["seq"] = -1
        if records is not None:
            for record in records:
                self._ring[record["seq"] % WINDOW] = record

    def add(self, seq: int, x: np.ndarray, value: bytes) -> None:
        """Record the batch applied as step seq + 1 (value: its digest())."""
        self._ring[seq % WINDOW] = (seq, x.shape[0], x.shape[1], value)

    def check(self, name: str, seq: int, x: np.ndarray) -> None:
        """409 seq_reused when seq was applied with other values; nothing when it is the same
        batch or too old to tell."""
        record = self._ring[seq % WINDOW]
        if record["seq"] != seq or bytes(record["digest"]) == digest(x):
            return
        applied = f"{int(record['rows'])} x {int(record['cols'])}"
        given = f"{x.shape[0]} x {x.shape[1]}"
        differs = "other values" if applied == given else f"shape {given}"
        raise ApiError(
            409,
            "seq_reused",
            f"seq {seq} of stream {name!r} was applied with another batch ({applied}, rows x "
            f"columns); this one has {differs}. A resend must repeat the batch exactly; a new "
            "batch takes the next seq (the stream's step) or none",
            {"seq": seq, "applied_shape": [int(record["rows"]), int(record["cols"])],
             "given_shape": list(x.shape)},
        )  # fmt: skip

    def to_bytes(self) -> bytes:
        kept = self._ring[self._ring["seq"] >= 0]
        return kept[np.argsort(kept["seq"])].tobytes()

    @classmethod
    def from_bytes(cls, data: bytes | None) -> "Digests":
        """The ring from to_bytes() (None or b"": empty, as in snapshots from before)."""
        if not data:
            return cls()
        return cls(np.frombuffer(data, _RECORD))
