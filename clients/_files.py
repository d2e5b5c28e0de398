"""Reading the rows that `dimwatch push` sends: .npy files, CSV files, CSV on stdin.

The whole input is read and checked before anything is sent, so that a bad cell can never leave
half a file in a stream. Errors name the file and count lines, rows and columns from 1.

CSV rules: one row per line, cells separated by the delimiter (a comma unless told otherwise),
every cell a finite number, every row as long as the first; blank lines are skipped, and a first
line that is not all numbers is a header and is skipped.
"""

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from clients.errors import InputError

DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar", " ": "space"}
SHOWN = 24  # characters of a bad cell or line quoted in a message
FLOAT32_MAX = float(np.finfo(np.float32).max)  # larger magnitudes would be sent as inf


@dataclass(frozen=True)
class Rows:
    """What a file holds: the rows (N, D) float32 and, for CSV, the header line it skipped."""

    data: np.ndarray
    name: str  # the file as the user named it; "stdin" for -
    header: str | None = None  # the skipped first line, if it was a header


def load_rows(name: str, stdin: TextIO, delimiter: str = ",") -> Rows:
    """Every row of `name` (.npy, CSV, or "-" for CSV on stdin), checked; InputError if not."""
    if name == "-":
        rows = parse_csv(stdin.read(), "stdin", delimiter)
    else:
        path = Path(name)
        if not path.is_file():
            raise InputError(f"{name}: no such file")
        if path.suffix.lower() == ".npy":
            rows = Rows(_load_npy(path), name)
        else:
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                raise InputError(f"{name}: not a text CSV file (or name it .npy)") from None
            rows = parse_csv(text, name, delimiter)
    _check_shape(rows.data, rows.name)
    return rows


def _check_shape(data: np.ndarray, name: str) -> None:
    if data.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (rows x columns), got shape {data.shape}")
    if data.shape[0] == 0:
        raise InputError(f"{name}: no rows")
    if data.shape[1] < 2:
        raise InputError(f"{name}: expected at least 2 columns, got {data.shape[1]}")


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    bad = np.argwhere(~_sendable(array))
    if array.ndim == 2 and len(bad):
        row, col = (int(i) for i in bad[0])
        raise InputError(
            f"{path}: row {row + 1:,}, column {col + 1}: expected a finite number, got "
            f"{array[row, col]} ({len(bad):,} such values in the file)"
        )
    return array.astype(np.float32)


def _sendable(array: np.ndarray) -> np.ndarray:
    """Elementwise: finite and within float32's range (NaN compares False)."""
    return np.abs(array.astype(np.float64)) <= FLOAT32_MAX


def parse_csv(text: str, name: str, delimiter: str = ",") -> Rows:
    """The rows of CSV `text`, or InputError naming the first bad line and column (from 1)."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise InputError(f"{name}: no rows")
    _check_delimiter(lines[:2], name, delimiter)
    header = None
    if _is_header(lines[0][1], delimiter):
        header, lines = lines[0][1], lines[1:]
        if not lines:
            raise InputError(f"{name}: only a header line, no rows")
    try:
        data = np.loadtxt(
            io.StringIO("\n".join(line for _, line in lines)),
            delimiter=delimiter,
            ndmin=2,
            dtype=np.float64,
            comments=None,
        )
    except ValueError:
        data = None  # find and describe the first bad cell below
    if data is None or not _sendable(data).all():
        data = _scan(lines, name, delimiter)
    return Rows(data.astype(np.float32), name, header)


def _scan(lines: list[tuple[int, str]], name: str, delimiter: str) -> np.ndarray:
    """Cell by cell: the first problem raises InputError; else the rows (slow, exact)."""
    width = None
    first = lines[0][0]
    rows = []
    for number, line in lines:
        cells = _cells(line, delimiter, number, name)
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise InputError(
                f"{name}, line {number:,}: {len(cells)} cells, expected {width} as on line "
                f"{first:,} (the first row)"
            )
        rows.append(cells)
    return np.array(rows, dtype=np.float64)


def _cells(line: str, delimiter: str, number: int, name: str) -> list[float]:
    """The numbers of one line, or InputError naming the first cell that is not one."""
    values = []
    for column, cell in enumerate(line.split(delimiter), 1):
        where = f"{name}, line {number:,}, column {column}"
        text = cell.strip()
        try:
            value = float(text)
        except ValueError:
            if not text:
                raise InputError(f"{where}: empty cell, expected a number") from None
            raise InputError(f"{where}: expected a number, got {_quote(text)}") from None
        if not abs(value) <= FLOAT32_MAX:
            raise InputError(f"{where}: expected a finite number, got {_quote(text)}")
        values.append(value)
    return values


def _is_header(line: str, delimiter: str) -> bool:
    """A first line none of whose cells is a number (a typo in a data line is not a header)."""
    for cell in line.split(delimiter):
        try:
            float(cell)
        except ValueError:
            continue
        return False
    return True


def _check_delimiter(lines: list[tuple[int, str]], name: str, delimiter: str) -> None:
    """A first line of one cell usually means another delimiter: say which one to pass."""
    number, line = lines[-1]  # the first data line if the first is a header
    if delimiter in line:
        return
    for other, label in DELIMITERS.items():
        if other != delimiter and len(line.strip().split(other)) > 1:
            named = DELIMITERS.get(delimiter, repr(delimiter))
            raise InputError(
                f"{name}, line {number:,}: cells separated by {label}s, not {named}s: "
                f"pass --delimiter {_shell(other)}"
            )
    raise InputError(
        f"{name}, line {number:,}: expected at least 2 cells separated by "
        f"{DELIMITERS.get(delimiter, repr(delimiter))}s, got {_quote(line.strip())}"
    )


def _quote(text: str) -> str:
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "...")


def _shell(delimiter: str) -> str:
    return {"\t": "tab", " ": "' '", "|": "'|'", ";": "';'"}.get(delimiter, delimiter)
