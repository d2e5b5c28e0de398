"""Reading the rows that `dimwatch push` sends: .npy files, CSV files, CSV on stdin.

The whole input is read and checked before anything is sent, so that a bad cell can never leave
half a file in a stream. Errors name the file and count lines, rows and columns from 1.

CSV rules: one row per line, cells separated by the delimiter (a comma unless told otherwise),
every cell a finite number, every row as long as the first; blank lines are skipped, and a first
line that is not all numbers is a header and is skipped.

Columns that are not data are dropped before the numbers are read, each with a note for the user:
those named by `--drop-columns` (header names, or numbers from 1 as in the file), and the row
index pandas writes with `DataFrame.to_csv()`: a first column without a name in the header (or,
without a header, holding exactly 0, 1, 2, ...), unless `keep_index`.
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
    """What a file holds: the rows (N, D) float32, the header line it skipped (CSV) and notes
    for the user on what was skipped or dropped."""

    data: np.ndarray
    name: str  # the file as the user named it; "stdin" for -
    header: str | None = None  # the skipped first line, if it was a header
    notes: tuple[str, ...] = ()  # "f.csv: skipped the header line 'a,b'", columns dropped, ...


@dataclass(frozen=True)
class Columns:
    """Which columns of a file are not data: `drop` as the user gave them (header names, or
    numbers from 1), and whether to keep an index column as pandas writes it."""

    drop: tuple[str, ...] = ()
    keep_index: bool = False


def load_rows(name: str, stdin: TextIO, delimiter: str = ",", columns: Columns = Columns()) -> Rows:
    """Every row of `name` (.npy, CSV, or "-" for CSV on stdin), checked; InputError if not."""
    if name == "-":
        rows = parse_csv(stdin.read(), "stdin", delimiter, columns)
    else:
        path = Path(name)
        if not path.is_file():
            raise InputError(f"{name}: no such file")
        if path.suffix.lower() == ".npy":
            rows = _load_npy(path, name, columns.drop)
        else:
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                raise InputError(f"{name}: not a text CSV file (or name it .npy)") from None
            rows = parse_csv(text, name, delimiter, columns)
    _check_shape(rows.data, rows.name)
    return rows


def _check_shape(data: np.ndarray, name: str) -> None:
    if data.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (rows x columns), got shape {data.shape}")
    if data.shape[0] == 0:
        raise InputError(f"{name}: no rows")
    if data.shape[1] < 2:
        raise InputError(f"{name}: expected at least 2 columns, got {data.shape[1]}")


def _load_npy(path: Path, name: str, drop: tuple[str, ...]) -> Rows:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise InputError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    keep: list[int] | None = None
    notes: tuple[str, ...] = ()
    if drop and array.ndim == 2:
        dropped = _dropped(drop, None, array.shape[1], name)
        keep = [i for i in range(array.shape[1]) if i not in dropped]
        array, notes = array[:, keep], (_dropped_note(name, dropped),)
    bad = np.argwhere(~_sendable(array))
    if array.ndim == 2 and len(bad):
        row, col = (int(i) for i in bad[0])
        raise InputError(
            f"{path}: row {row + 1:,}, column {(col if keep is None else keep[col]) + 1}: "
            f"expected a finite number, got {array[row, col]} ({len(bad):,} such values in "
            "the file)"
        )
    return Rows(array.astype(np.float32), name, notes=notes)


def _sendable(array: np.ndarray) -> np.ndarray:
    """Elementwise: finite and within float32's range (NaN compares False)."""
    return np.abs(array.astype(np.float64)) <= FLOAT32_MAX


def parse_csv(text: str, name: str, delimiter: str = ",", columns: Columns = Columns()) -> Rows:
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
    names = None if header is None else [c.strip() for c in header.split(delimiter)]
    width = lines[0][1].count(delimiter) + 1
    dropped = _dropped(columns.drop, names, width, name)
    unnamed_index = names is not None and names[0] == "" and not columns.keep_index
    keep = [i for i in range(width) if i not in dropped and not (i == 0 and unnamed_index)]
    data = _numbers(lines, name, delimiter, keep)
    notes = [] if header is None else [f"{name}: skipped the header line {header!r}"]
    if dropped:
        notes.append(_dropped_note(name, dropped))
    if unnamed_index and 0 not in dropped:
        notes.append(f"{name}: dropped column 1, which has no name in the header: the row index "
                     "pandas writes (--keep-index keeps it)")  # fmt: skip
    elif names is None and not columns.keep_index and 0 not in dropped and _counts(data[:, 0]):
        data = data[:, 1:]
        notes.append(f"{name}: dropped column 1, which counts the rows 0, 1, 2, ...: a row "
                     "index (--keep-index keeps it)")  # fmt: skip
    return Rows(data.astype(np.float32), name, header, tuple(notes))


def _numbers(
    lines: list[tuple[int, str]], name: str, delimiter: str, keep: list[int]
) -> np.ndarray:
    """The kept columns of every line as float64 (N, len(keep)); InputError for a bad cell or a
    row not as long as the first."""
    data = None
    if len({line.count(delimiter) for _, line in lines}) == 1:  # not ragged: the fast reader
        try:
            data = np.loadtxt(
                io.StringIO("\n".join(line for _, line in lines)),
                delimiter=delimiter,
                ndmin=2,
                dtype=np.float64,
                comments=None,
                usecols=keep,
            )
        except ValueError:
            data = None  # find and describe the first bad cell below
    if data is None or not _sendable(data).all():
        data = _scan(lines, name, delimiter, keep)
    return data


def _counts(column: np.ndarray) -> bool:
    """0, 1, 2, ..., n - 1 (n >= 3): what a row index holds."""
    return len(column) >= 3 and bool(np.array_equal(column, np.arange(len(column))))


def _dropped(
    drop: tuple[str, ...], names: list[str] | None, width: int, file: str
) -> dict[int, str]:
    """The columns `drop` names (0-based index -> how the user named it); InputError if one
    is not a column of the file: a number from 1 to `width`, or a name in the header."""
    found: dict[int, str] = {}
    for item in drop:
        if item.isdigit():
            if not 1 <= int(item) <= width:
                raise InputError(
                    f"{file}: --drop-columns {item}: expected a column number from 1 to {width}"
                )
            found[int(item) - 1] = item
        elif names is None:
            raise InputError(
                f"{file}: --drop-columns {item!r}: the file has no header naming its columns; "
                f"give their numbers (from 1 to {width})"
            )
        elif item not in names:
            listed = ", ".join(repr(n) for n in names if n)
            raise InputError(f"{file}: --drop-columns {item!r}: no such column; the header has "
                             f"{listed}")  # fmt: skip
        elif names.index(item) >= width:
            raise InputError(f"{file}: --drop-columns {item!r}: column {names.index(item) + 1} "
                             f"of the header, but the rows have {width} cells")  # fmt: skip
        else:
            found[names.index(item)] = item
    return found


def _dropped_note(file: str, dropped: dict[int, str]) -> str:
    said = [
        str(i + 1) if given == str(i + 1) else f"{i + 1} ({given!r})"
        for i, given in sorted(dropped.items())
    ]
    return f"{file}: dropped column{'s' if len(said) > 1 else ''} {', '.join(said)} as asked"


def _scan(lines: list[tuple[int, str]], name: str, delimiter: str, keep: list[int]) -> np.ndarray:
    """Cell by cell: the first problem raises InputError; else the kept columns (slow, exact)."""
    width = None
    first = lines[0][0]
    rows = []
    for number, line in lines:
        cells = line.split(delimiter)
        if width is None:
            width = len(cells)
        elif len(cells) != width:
            raise InputError(
                f"{name}, line {number:,}: {len(cells)} cells, expected {width} as on line "
                f"{first:,} (the first row)"
            )
        rows.append([_number(cells[i], f"{name}, line {number:,}, column {i + 1}") for i in keep])
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(keep))


def _number(cell: str, where: str) -> float:
    """The number in one cell, or InputError saying what is there instead."""
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        if not text:
            raise InputError(f"{where}: empty cell, expected a number") from None
        raise InputError(f"{where}: expected a number, got {_quote(text)}") from None
    if not abs(value) <= FLOAT32_MAX:
        raise InputError(f"{where}: expected a finite number, got {_quote(text)}")
    return value


def _is_header(line: str, delimiter: str) -> bool:
    """A first line none of whose cells is a number (a typo in a data line is not a header), or
    pandas' header of a frame with numbered columns: an empty cell, then 0, 1, 2, ..."""
    cells = [cell.strip() for cell in line.split(delimiter)]
    if cells[0] == "" and cells[1:] == [str(i) for i in range(len(cells) - 1)]:
        return True
    for cell in cells:
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
