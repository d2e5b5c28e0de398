"""Reading what `dimwatch push` sends: every problem of a file found before anything is sent,
named by file, line and column counted from 1, in words (no numpy internals)."""

import io
from pathlib import Path

import numpy as np
import pytest

from clients._files import load_rows, parse_csv
from clients.errors import InputError


def test_csv_without_header_reads_float32_rows() -> None:
    rows = load_rows("-", io.StringIO("1,2\n3,4\n"))

    assert rows.data.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert (rows.data.dtype, rows.name, rows.header) == (np.float32, "stdin", None)


def test_csv_header_is_skipped_and_reported() -> None:
    rows = parse_csv("x, y\n1,2\n\n3,4\n", "f.csv")

    assert (rows.data.tolist(), rows.header) == ([[1.0, 2.0], [3.0, 4.0]], "x, y")


def test_csv_with_another_delimiter_reads_with_it() -> None:
    rows = parse_csv("1\t2\n3\t4\n", "f.tsv", "\t")

    assert rows.data.tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3\n4,5\n", "f.csv, line 2: 2 cells, expected 3 as on line 1 (the first row)"),
        ("a,b\n\n1,2\n3,x\n", "f.csv, line 4, column 2: expected a number, got 'x'"),
        ("1,2\n3,\n", "f.csv, line 2, column 2: empty cell, expected a number"),
        ("1,2\n3,nan\n", "f.csv, line 2, column 2: expected a finite number, got 'nan'"),
        ("1,2\n-inf,4\n", "f.csv, line 2, column 1: expected a finite number, got '-inf'"),
        ("1,2\n1e39,4\n", "f.csv, line 2, column 1: expected a finite number, got '1e39'"),
        ("1,abc\n3,4\n", "f.csv, line 1, column 2: expected a number, got 'abc'"),
        ("1;2\n3;4\n", "f.csv, line 2: cells separated by semicolons, not commas: "
         "pass --delimiter ';'"),
        ("1\t2\n", "f.csv, line 1: cells separated by tabs, not commas: pass --delimiter tab"),
        ("1\n2\n", "f.csv, line 2: expected at least 2 cells separated by commas, got '2'"),
        ("x,y\n", "f.csv: only a header line, no rows"),
        ("\n\n", "f.csv: no rows"),
        ("1,2\n1." + "0" * 40 + ",x\n", "f.csv, line 2, column 2: expected a number, got 'x'"),
        ("1,2\n3," + "y" * 40 + "\n", "f.csv, line 2, column 2: expected a number, got '"
         + "y" * 24 + "...'"),
    ],
    ids=[
        "ragged", "not-a-number", "empty-cell", "nan", "inf", "float32-overflow",
        "typo-in-first-line", "semicolons", "tabs", "one-column", "header-only", "blank",
        "long-line", "long-cell",
    ],
)  # fmt: skip
def test_csv_problem_is_named_with_line_and_column(text: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_csv(text, "f.csv")

    assert str(info.value) == message


def test_npy_with_nan_names_row_and_column(tmp_path: Path) -> None:
    data = np.zeros((2000, 3))
    data[1500, 2] = np.nan
    np.save(tmp_path / "x.npy", data)

    with pytest.raises(InputError) as info:
        load_rows(str(tmp_path / "x.npy"), io.StringIO())

    assert str(info.value) == (
        f"{tmp_path / 'x.npy'}: row 1,501, column 3: expected a finite number, got nan "
        "(1 such values in the file)"
    )


def test_single_column_array_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((5, 1)))

    with pytest.raises(InputError, match=r"x\.npy: expected at least 2 columns, got 1"):
        load_rows(str(tmp_path / "x.npy"), io.StringIO())


def test_large_csv_reads_on_the_fast_path() -> None:
    data = np.random.default_rng(0).standard_normal((20_000, 10)).astype(np.float32)
    text = "\n".join(",".join(repr(float(v)) for v in row) for row in data)

    assert np.array_equal(parse_csv(text, "big.csv").data, data)
