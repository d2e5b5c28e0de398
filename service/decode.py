"""Request bodies -> float32 arrays (B, D), checked against the limits; no stream state here.

Everything that can be checked without the stream is checked here, so that a bad batch never
waits in a stream's queue: media type, shape, finiteness, size limits. Column counts against the
stream's D are checked by the stream itself, in order.
"""

import io
import re
from collections.abc import Mapping

import numpy as np
from pydantic import ValidationError

from service.errors import ApiError, validation_message
from service.schemas import BatchIn
from service.settings import Settings

JSON = "application/json"
BINARY = "application/octet-stream"
NPY = "application/x-npy"
MEDIA_TYPES = (JSON, BINARY, NPY)
_INTEGER = re.compile(r"\s*[0-9]{1,18}\s*")  # X-Dim and X-Seq headers
MAX_HEADER_INTEGER = 10**18 - 1  # the largest value _INTEGER reads
# X-Dtype of a binary body -> how its values are read; bfloat16 as its bits (numpy has no
# bfloat16): the high 16 bits of a float32, widened exactly in _from_binary.
BINARY_DTYPES = {"float32": "<f4", "float16": "<f2", "bfloat16": "<u2"}


def invalid(message: str, details: object = None) -> ApiError:
    return ApiError(422, "invalid_batch", message, details)


def decode_batch(
    media_type: str, body: bytes, headers: Mapping[str, str], settings: Settings
) -> tuple[np.ndarray, int | None]:
    """The batch (B, D) float32 and its seq (None when not given) from one request."""
    if media_type == JSON:
        try:
            parsed = BatchIn.model_validate_json(body)
        except ValidationError as exc:
            raise _from_pydantic(exc) from None
        return rows_to_array(parsed.data, settings), parsed.seq
    if media_type == BINARY:
        x = _from_binary(body, headers.get("x-dim"), headers.get("x-dtype"), settings)
    elif media_type == NPY:
        x = _from_npy(body)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected Content-Type {', '.join(MEDIA_TYPES)}, got {media_type or 'none'}",
        )
    return check_array(x, settings), _seq_header(headers.get("x-seq"))


def media_type(content_type: str | None) -> str:
    """'application/json; charset=utf-8' -> 'application/json'."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def rows_to_array(rows: list[list[float]], settings: Settings) -> np.ndarray:
    """Nested lists -> (B, D) float32, rejecting ragged rows."""
    _check_rows(len(rows), settings)
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, rejected below
            x = np.array(rows, dtype=np.float32)
    except ValueError:  # numpy refuses ragged nesting: say which row
        width = len(rows[0])
        i = next(i for i, row in enumerate(rows) if len(row) != width)
        raise invalid(
            f"ragged rows: row {i} has {len(rows[i])} values, expected {width} like row 0"
        ) from None
    return check_array(x, settings, owned=True)


def check_array(x: np.ndarray, settings: Settings, owned: bool = False) -> np.ndarray:
    """A C-contiguous (B, D) float32 array of finite numbers within the limits: a copy, unless
    `owned` says x is the caller's own C-contiguous float32 array already."""
    if x.ndim != 2:
        raise invalid(f"expected a 2-D array (rows, columns), got shape {list(x.shape)}")
    _check_rows(x.shape[0], settings)
    if x.shape[1] < 1:
        raise invalid("expected at least one column, got rows of length 0")
    if x.shape[1] > settings.max_dim:
        raise ApiError(
            422,
            "limit_exceeded",
            f"batch has {x.shape[1]} columns; the limit max_dim is {settings.max_dim}",
        )
    if x.dtype.kind not in "fiu":
        raise invalid(f"expected real numbers, got dtype {x.dtype}")
    # A writable C-ordered copy (the caller owns it; torch warns on read-only arrays). Only a
    # conversion to float32 can overflow: float32 input skips the errstate context.
    if x.dtype == np.float32:
        if not (owned and x.flags.c_contiguous):
            x = np.array(x, order="C", copy=True)
    else:
        with np.errstate(over="ignore"):
            x = np.array(x, dtype=np.float32, order="C", copy=True)
    if not np.isfinite(x).all():
        row = int(np.argmin(np.isfinite(x).all(axis=1)))
        raise invalid(f"expected finite numbers, got NaN or Inf in row {row}")
    return x


def _check_rows(rows: int, settings: Settings) -> None:
    if rows < 1:
        raise invalid("expected at least one row, got an empty batch")
    if rows > settings.max_rows_per_batch:
        raise ApiError(
            413,
            "limit_exceeded",
            f"batch has {rows} rows; the limit max_rows_per_batch is {settings.max_rows_per_batch}",
        )


def _from_binary(
    body: bytes, x_dim: str | None, x_dtype: str | None, settings: Settings
) -> np.ndarray:
    """Little-endian rows of X-Dtype (float32 when absent); check_array widens them to float32
    and refuses what is not finite, the same for every width."""
    name = "float32" if x_dtype is None else x_dtype.strip().lower()
    if name not in BINARY_DTYPES:
        raise invalid(f"X-Dtype: expected one of {', '.join(BINARY_DTYPES)}, got {x_dtype!r}")
    if x_dim is None or not _INTEGER.fullmatch(x_dim) or int(x_dim) < 1:
        raise invalid(f"X-Dim: expected the number of columns as a positive integer, got {x_dim!r}")
    dim = int(x_dim)
    if dim > settings.max_dim:
        raise ApiError(
            422, "limit_exceeded", f"X-Dim is {dim}; the limit max_dim is {settings.max_dim}"
        )
    size = np.dtype(BINARY_DTYPES[name]).itemsize
    if len(body) % (size * dim) != 0:
        raise invalid(
            f"expected a multiple of {size} * X-Dim = {size * dim} bytes of {name}, "
            f"got {len(body)} bytes"
        )
    x = np.frombuffer(body, dtype=BINARY_DTYPES[name]).reshape(-1, dim)
    if name == "bfloat16":
        x = (x.astype("<u4") << 16).view("<f4")
    return x


def _from_npy(body: bytes) -> np.ndarray:
    """Read the header first, so a header promising more data than sent allocates nothing."""
    f = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if dtype.hasobject:
            raise ValueError("object arrays are not accepted")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if expected != len(body) - f.tell():
            raise ValueError(
                f"header promises {expected} bytes of data, got {len(body) - f.tell()}"
            )
        x = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError, TypeError, MemoryError) as exc:
        raise invalid(f"expected a .npy file of a 2-D float array: {exc}") from None
    assert isinstance(x, np.ndarray)
    return x


def _seq_header(value: str | None) -> int | None:
    if value is None:
        return None
    if not _INTEGER.fullmatch(value):
        raise invalid(f"X-Seq: expected a non-negative integer, got {value!r}")
    return int(value)


def _from_pydantic(exc: ValidationError) -> ApiError:
    return invalid(*validation_message(exc.errors()))
