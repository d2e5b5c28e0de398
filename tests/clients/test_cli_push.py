"""`dimwatch push` and `dimwatch delete` as processes against a real server: a push checks the
whole file before sending, is safe to re-run, and says what to run when it cannot tell."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from clients import DimwatchClient, errors
from clients._files import load_rows
from clients._local_server import local_server
from clients._push import CtrlC
from tests import children
from tests.clients.conftest import NO_RETRY, rows
from tests.clients.processes import DIMWATCH, clean_env, dimwatch, stop

INTERRUPT_TIMEOUT = 60.0  # seconds for an interrupted push to have sent its first rows


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_server(tmp_path_factory.mktemp("push")) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[DimwatchClient]:
    with DimwatchClient(url, retry=NO_RETRY) as c:
        yield c


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A stream name of its own per test (the server is shared by the module)."""
    return request.node.name.removeprefix("test_")[:60].replace("[", "-").rstrip("]")


def csv(path: Path, data: np.ndarray, header: str | None = None) -> str:
    lines = [",".join(f"{v:.5f}" for v in row) for row in data]
    path.write_text("\n".join(([header] if header else []) + lines) + "\n")
    return str(path)


def test_push_nan_in_the_file_sends_nothing_and_names_line_and_column(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    data = rows(3000, dim=4)
    file = csv(tmp_path / "rows.csv", data)
    text = Path(file).read_text().splitlines()
    text[1500] = "0.1,nan,0.3,0.4"  # line 1,501
    Path(file).write_text("\n".join(text) + "\n")

    done = dimwatch("push", name, file, "--url", url, "--latent-dims", "1,2")

    assert (done.returncode, done.stdout) == (1, "")
    assert (
        done.stderr == f"error: {file}, line 1,501, column 2: expected a finite number, got 'nan'\n"
    )
    with pytest.raises(errors.NotFoundError):
        client.get_stream(name)  # not even created


def test_push_with_the_wrong_delimiter_says_which_to_pass(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("x;y;z\n1;2;3\n4;5;6\n")

    done = dimwatch("push", name, str(path), "--url", url)

    assert done.returncode == 1
    assert done.stderr == (
        f"error: {path}, line 2: cells separated by semicolons, not commas: pass --delimiter ';'\n"
    )
    fixed = dimwatch(
        "push", name, str(path), "--url", url, "--delimiter", ";", "--latent-dims", "1"
    )
    assert fixed.returncode == 0, fixed.stderr
    assert client.get_stream(name).rows_seen == 2


def test_push_the_same_file_again_sends_nothing(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    file = csv(tmp_path / "rows.csv", rows(40, dim=5), header="a,b,c,d,e")
    flags = ["--url", url, "--latent-dims", "1,2", "--no-progress"]

    first = dimwatch("push", name, file, *flags)
    again = dimwatch("push", name, file, *flags)

    assert (
        first.returncode == 0 and first.stderr == f"{file}: skipped the header line 'a,b,c,d,e'\n"
    )
    assert again.returncode == 0
    assert again.stdout == (
        f"{file} is in {name!r} already (40 rows, pushed before); nothing sent. To add its rows "
        f"once more: `dimwatch push {name} {file} --url {url} --latent-dims 1,2 --no-progress "
        "--append`\n"
    )
    assert client.get_stream(name).rows_seen == 40


def test_push_rerun_after_an_interrupt_continues_without_duplicates(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    file = csv(tmp_path / "rows.csv", rows(3000, dim=4))
    args = ["push", name, file, "--url", url, "--latent-dims", "1,2", "--no-progress"]
    code, err = _interrupted(args, client, name)
    done = client.get_stream(name).rows_seen

    again = dimwatch(*args)

    assert 100 <= done < 3000 and code == 130
    assert err.startswith("error: interrupted; ")
    assert err.endswith(f"rows of {file} went into {name!r}: run the same command again to "
                        "continue where it stopped\n")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"continuing {file} at row {done + 1:,}: its first {done:,} rows are in" in again.stdout
    assert client.get_stream(name).rows_seen == 3000


def test_push_interrupted_says_the_rows_the_server_holds(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    file = csv(tmp_path / "rows.csv", rows(5000, dim=4))
    args = ["push", name, file, "--url", url, "--latent-dims", "1,2", "--no-progress"]

    code, err = _interrupted(args, client, name)

    # The first batch again, as a barrier: its answer (a duplicate) comes after every batch the
    # server had received, so `rows_seen` counts a batch that was on its way too.
    first = load_rows(file, sys.stdin).data[:10]
    held = client.push(name, first, seq=0).selection.rows_seen
    assert code == 130
    assert f"; {held:,} of 5,000 rows of {file} went into {name!r}" in err


def _interrupted(args: list[str], client: DimwatchClient, name: str) -> tuple[int, str]:
    """`dimwatch ARGS`, sent SIGINT (Ctrl-C) once the stream holds 100 rows, while a batch is
    most likely on its way; its exit status and stderr."""
    pushing = children.popen([DIMWATCH, *args], env=clean_env(), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + INTERRUPT_TIMEOUT
        while _rows_in(client, name) < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        pushing.send_signal(signal.SIGINT)
        _, err = pushing.communicate(timeout=30)
    finally:
        stop(pushing)  # type: ignore[arg-type]
    return pushing.returncode, err


def _rows_in(client: DimwatchClient, name: str) -> int:
    try:
        return client.get_stream(name).rows_seen
    except errors.NotFoundError:
        return 0


def test_push_into_rows_pushed_elsewhere_refuses_with_both_commands(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    client.create_stream(name, latent_dims=[1, 2])
    client.push(name, rows(20, dim=3))  # by the Python client: push has no record of it
    file = csv(tmp_path / "rows.csv", rows(30, dim=3))

    refused = dimwatch("push", name, file, "--url", url)
    appended = dimwatch("push", name, file, "--url", url, "--append", "--no-progress")

    command = f"dimwatch push {name} {file} --url {url}"
    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: stream {name!r} holds 20 rows already and no push of this file into it is "
        f"recorded here. To add all 30 rows of {file} after them: `{command} --append`; to "
        f"continue {file} after the rows an earlier push of it left: `{command} --resume`\n"
    )
    assert appended.returncode == 0, appended.stderr
    assert client.get_stream(name).rows_seen == 50


def test_push_resume_continues_a_file_pushed_in_part_elsewhere(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    data = rows(50, dim=3)
    client.create_stream(name, latent_dims=[1, 2])
    client.stream_array(name, data[:20], batch_size=10)
    file = csv(tmp_path / "rows.csv", data)

    done = dimwatch("push", name, file, "--url", url, "--resume", "--no-progress")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"continuing {file} at row 21: its first 20 rows are in")
    assert client.get_stream(name).rows_seen == 50


def test_push_another_file_after_a_finished_push_appends(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    first = csv(tmp_path / "first.csv", rows(30, dim=3, seed=1))
    second = csv(tmp_path / "second.csv", rows(20, dim=3, seed=2))
    flags = ["--url", url, "--latent-dims", "1,2", "--no-progress"]

    assert dimwatch("push", name, first, *flags).returncode == 0
    done = dimwatch("push", name, second, *flags)

    assert done.returncode == 0, done.stderr
    assert f"adding 20 rows of {second} after the 30 rows of {name!r}" in done.stdout
    assert client.get_stream(name).rows_seen == 50


def test_push_a_stream_name_with_a_space_says_which_names_are_allowed(tmp_path: Path) -> None:
    done = dimwatch("push", "my stream", str(tmp_path / "rows.csv"))

    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "dimwatch push: error: argument stream: a stream name is 1-64 letters, digits, '.', '_' "
        "or '-', starting with a letter or digit; got 'my stream'"
    )


def test_delete_without_yes_outside_a_terminal_deletes_nothing(
    url: str, client: DimwatchClient, name: str
) -> None:
    client.create_stream(name)

    done = dimwatch("delete", name, "--url", url)

    assert done.returncode == 1
    assert done.stderr == (
        f"error: not deleting stream {name!r} (0 rows, its models and history): pass --yes to "
        "confirm\n"
    )
    assert client.get_stream(name).name == name


def test_delete_yes_deletes_and_a_new_push_starts_afresh(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    file = csv(tmp_path / "rows.csv", rows(30, dim=3))
    flags = ["--url", url, "--latent-dims", "1,2", "--no-progress"]
    assert dimwatch("push", name, file, *flags).returncode == 0

    deleted = dimwatch("delete", name, "--url", url, "--yes")
    pushed = dimwatch("push", name, file, *flags)

    assert (deleted.returncode, deleted.stdout) == (
        0,
        f"deleted stream {name!r} (30 rows, its models and history)\n",
    )
    assert pushed.returncode == 0, pushed.stderr
    assert client.get_stream(name).rows_seen == 30


def test_delete_a_missing_stream_fails(url: str) -> None:
    done = dimwatch("delete", "nope", "--url", url, "--yes")

    assert done.returncode == 1
    assert done.stderr.startswith(f"error: no stream 'nope' at {url}: ")


def test_ctrl_c_during_a_push_is_held_until_the_batch_is_answered_a_second_stops_at_once() -> None:
    with CtrlC() as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs in the main thread between bytecodes
        held = ctrl_c.presses
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)

    assert held == 1
    with pytest.raises(KeyboardInterrupt):
        ctrl_c.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_push_a_csv_from_pandas_leaves_its_index_out(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    data = rows(20, dim=13)
    lines = [",".join(["", *(f"c{j}" for j in range(13))])]  # as DataFrame.to_csv() writes
    lines += [",".join([str(i), *(f"{v:.5f}" for v in row)]) for i, row in enumerate(data)]
    file = tmp_path / "frame.csv"
    file.write_text("\n".join(lines) + "\n")

    done = dimwatch("push", name, str(file), "--url", url, "--no-progress")

    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[1] == (
        f"{file}: dropped column 1, which has no name in the header: the row index pandas "
        "writes (--keep-index keeps it)"
    )
    assert client.get_stream(name).dim == 13


def test_push_drop_columns_leaves_a_label_column_out(
    url: str, client: DimwatchClient, tmp_path: Path, name: str
) -> None:
    file = tmp_path / "iris.csv"
    file.write_text("a,b,c,species\n1,2,3,setosa\n4,5,7,virginica\n0,1,1,setosa\n")

    done = dimwatch(
        "push", name, str(file), "--url", url, "--drop-columns", "species", "--latent-dims", "1"
    )

    assert done.returncode == 0, done.stderr
    assert (client.get_stream(name).dim, client.get_stream(name).rows_seen) == (3, 3)
