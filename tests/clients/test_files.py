"""Reading what `dimwatch push` sends: every problem of a file found before anything is sent,
named by file, line and column counted from 1, in words (no numpy internals)."""

import io
from pathlib import Path

import numpy as np
import pytest

from clients._files import Columns, load_rows, parse_csv
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


def _pandas_csv(data: np.ndarray, columns: list[str], header: bool = True) -> str:
    """The text `pandas.DataFrame(data, columns=columns).to_csv(header=header)` writes: the row
    index first, unnamed in the header."""
    lines = [",".join(["", *columns])] if header else []
    lines += [",".join([str(i), *(repr(float(v)) for v in row)]) for i, row in enumerate(data)]
    return "\n".join(lines) + "\n"


def test_csv_from_pandas_drops_its_index_with_a_note() -> None:
    data = np.arange(12, dtype=np.float32).reshape(4, 3) / 7

    rows = parse_csv(_pandas_csv(data, ["a", "b", "c"]), "f.csv")

    assert np.array_equal(rows.data, data)
    assert rows.notes == (
        "f.csv: skipped the header line ',a,b,c'",
        "f.csv: dropped column 1, which has no name in the header: the row index pandas writes "
        "(--keep-index keeps it)",
    )


def test_csv_from_pandas_with_numbered_columns_drops_header_and_index() -> None:
    data = np.ones((5, 3), dtype=np.float32)

    rows = parse_csv(_pandas_csv(data, ["0", "1", "2"]), "f.csv")

    assert (rows.data.shape, rows.header) == ((5, 3), ",0,1,2")


def test_csv_without_header_whose_first_column_counts_rows_drops_it() -> None:
    data = np.full((4, 2), 0.5, dtype=np.float32)

    rows = parse_csv(_pandas_csv(data, ["a", "b"], header=False), "f.csv")

    assert np.array_equal(rows.data, data)
    assert rows.notes == (
        "f.csv: dropped column 1, which counts the rows 0, 1, 2, ...: a row index "
        "(--keep-index keeps it)",
    )


def test_csv_keep_index_keeps_the_first_column() -> None:
    text = _pandas_csv(np.ones((4, 2)), ["a", "b"])

    rows = parse_csv(text, "f.csv", columns=Columns(keep_index=True))

    assert rows.data[:, 0].tolist() == [0, 1, 2, 3] and rows.data.shape == (4, 3)


def test_csv_drop_columns_by_name_and_number_drops_labels_before_reading() -> None:
    text = "a,label,b,c\n1,setosa,2,3\n4,virginica,5,6\n"

    rows = parse_csv(text, "f.csv", columns=Columns(drop=("label", "4")))

    assert rows.data.tolist() == [[1.0, 2.0], [4.0, 5.0]]
    assert rows.notes[-1] == "f.csv: dropped columns 2 ('label'), 4 as asked"


def test_csv_bad_cell_after_a_dropped_column_names_its_column_in_the_file() -> None:
    with pytest.raises(InputError) as info:
        parse_csv("x,1,2\ny,3,oops\n", "f.csv", columns=Columns(drop=("1",)))

    assert str(info.value) == "f.csv, line 2, column 3: expected a number, got 'oops'"


@pytest.mark.parametrize(
    ("text", "drop", "message"),
    [
        ("a,b,c\n1,2,3\n", ("d",), "f.csv: --drop-columns 'd': no such column; the header has "
         "'a', 'b', 'c'"),
        ("a,b,c\n1,2,3\n", ("4",), "f.csv: --drop-columns 4: expected a column number from 1 to 3"),
        ("1,2,3\n", ("b",), "f.csv: --drop-columns 'b': the file has no header naming its "
         "columns; give their numbers (from 1 to 3)"),
    ],
    ids=["unknown-name", "number-too-large", "name-without-header"],
)  # fmt: skip
def test_csv_drop_columns_not_in_the_file_is_refused(
    text: str, drop: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InputError) as info:
        parse_csv(text, "f.csv", columns=Columns(drop=drop))

    assert str(info.value) == message


def test_npy_drop_columns_by_number(tmp_path: Path) -> None:
    data = np.arange(12.0).reshape(3, 4)
    data[1, 3] = np.nan  # in a column that is dropped
    np.save(tmp_path / "x.npy", data)

    rows = load_rows(str(tmp_path / "x.npy"), io.StringIO(), columns=Columns(drop=("4",)))

    assert rows.data.tolist() == data[:, :3].tolist()
    assert rows.notes == (f"{tmp_path / 'x.npy'}: dropped column 4 as asked",)


def test_npy_nan_after_a_dropped_column_names_its_column_in_the_file(tmp_path: Path) -> None:
    data = np.zeros((3, 4))
    data[2, 3] = np.inf
    np.save(tmp_path / "x.npy", data)

    with pytest.raises(InputError, match=r"x\.npy: row 3, column 4: expected a finite number"):
        load_rows(str(tmp_path / "x.npy"), io.StringIO(), columns=Columns(drop=("1",)))


def test_npy_drop_columns_by_name_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 4)))

    with pytest.raises(InputError, match=r"--drop-columns 'label': the file has no header"):
        load_rows(str(tmp_path / "x.npy"), io.StringIO(), columns=Columns(drop=("label",)))
