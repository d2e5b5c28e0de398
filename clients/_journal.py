"""What `dimwatch push` remembers between runs: per server and stream, the last file pushed.

A record says which file (by the SHA-256 of its rows, so that a reformatted CSV is the same file)
went into which stream, and how many rows the stream held before its first row. With the stream's
`rows_seen` that tells how far the file got, so a re-run after a failure continues at the first
missing row and a re-run after success sends nothing. Nothing else is kept: no rows, no tokens.

The records live in $XDG_STATE_HOME/dimwatch/pushes.json (~/.local/state/dimwatch/pushes.json),
one JSON object, rewritten atomically.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MAX_RECORDS = 1000  # the oldest are dropped beyond this


@dataclass(frozen=True)
class PushRecord:
    """One file pushed into one stream."""

    file: str  # the name the user gave, for messages
    digest: str  # SHA-256 of the rows' float32 bytes and shape
    rows: int  # rows in the file
    rows_before: int  # the stream's rows_seen before the file's first row


def digest(rows: np.ndarray) -> str:
    h = hashlib.sha256(repr(rows.shape).encode())
    h.update(np.ascontiguousarray(rows, dtype="<f4").tobytes())
    return h.hexdigest()


def path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "dimwatch" / "pushes.json"


def _key(url: str, stream: str) -> str:
    return f"{url.rstrip('/')} {stream}"


def _read() -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(data: dict[str, dict[str, object]]) -> None:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    keep = dict(list(data.items())[-MAX_RECORDS:])
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(keep, indent=1))
    tmp.replace(target)


def load(url: str, stream: str) -> PushRecord | None:
    """The last push recorded into `stream` on the server at `url`, if any."""
    found = _read().get(_key(url, stream))
    try:
        return PushRecord(**found) if isinstance(found, dict) else None  # type: ignore[arg-type]
    except TypeError:
        return None


def save(url: str, stream: str, record: PushRecord) -> None:
    data = _read()
    data.pop(_key(url, stream), None)  # re-inserted last: the newest
    data[_key(url, stream)] = asdict(record)
    _write(data)


def forget(url: str, stream: str) -> None:
    data = _read()
    if data.pop(_key(url, stream), None) is not None:
        _write(data)
