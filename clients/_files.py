"""Reading the rows that `dimwatch push` sends: .npy files, CSV files, CSV on stdin."""

import io
from pathlib import Path
from typing import TextIO

import numpy as np

from clients.errors import InputError


def load_array(name: str, stdin: TextIO) -> np.ndarray:
    """Rows (N, D) float32 from `name` (.npy, CSV, or "-" for CSV on stdin); InputError if not."""
    if name == "-":
        name = "stdin"
        rows = _parse_csv(stdin.read(), name)
    else:
        path = Path(name)
        if not path.is_file():
            raise InputError(f"{name}: no such file")
        if path.suffix.lower() == ".npy":
            rows = _load_npy(path)
        else:
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                raise InputError(f"{name}: not a text CSV file (or name it .npy)") from None
            rows = _parse_csv(text, name)
    if rows.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (rows x columns), got shape {rows.shape}")
    if rows.shape[0] == 0:
        raise InputError(f"{name}: no rows")
    if rows.shape[1] < 2:
        raise InputError(f"{name}: expected at least 2 columns, got {rows.shape[1]}")
    return rows


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    return array.astype(np.float32, copy=False)


def _parse_csv(text: str, name: str) -> np.ndarray:
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and not _is_numeric_row(lines[0]):
        lines = lines[1:]  # a header row
    if not lines:
        raise InputError(f"{name}: no rows")
    try:
        return np.loadtxt(io.StringIO("\n".join(lines)), delimiter=",", ndmin=2, dtype=np.float32)
    except ValueError as exc:
        raise InputError(f"{name}: expected comma-separated numbers ({exc})") from None


def _is_numeric_row(line: str) -> bool:
    try:
        [float(cell) for cell in line.split(",")]
    except ValueError:
        return False
    return True
