"""Errors in the command line's words: flags instead of the API's fields, and a stream that is
not there named with its close matches."""

from pathlib import Path

import numpy as np
import pytest

from clients import DimwatchClient
from clients._words import in_cli_words, no_such_stream
from clients.cli import main
from tests.clients.conftest import rows


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (
            "latent_dims: expected every H < D = 13, got [13] >= 13; use latent_dims below 13 "
            "(e.g. [1, 2, 3]) or rows of more than 13 columns",
            "--latent-dims: expected every H < D = 13, got 13 >= 13; use --latent-dims below 13 "
            "(e.g. --latent-dims 1,2,3) or rows of more than 13 columns",
        ),
        (
            "estimator: the subspace optimizer fits the exact posterior (estimator 'analytic'); "
            "got 'mc': use optimizer 'adam' for 'mc'",
            "--estimator: the subspace optimizer fits the exact posterior (--estimator analytic); "
            "got 'mc': use --optimizer adam for 'mc'",
        ),
        (
            "body.latent_dims.0: Input should be greater than or equal to 1",
            "--latent-dims: Input should be greater than or equal to 1",
        ),
        (
            "mc_samples is 5000; the limit max_mc_samples is 1000",
            "--mc-samples is 5000; the limit max_mc_samples is 1000",
        ),
        ("expected 10 columns, got 9", "expected 10 columns, got 9"),
    ],
)
def test_in_cli_words_names_flags_instead_of_fields(message: str, words: str) -> None:
    assert in_cli_words(message) == words


def test_no_such_stream_names_the_close_matches() -> None:
    names = ["wine-raw", "wine-z", "sensors"]

    assert no_such_stream("wine_raw", names, "http://h") == (
        "no stream 'wine_raw' at http://h: did you mean 'wine-raw'?"
    )
    assert no_such_stream("cars", names, "http://h") == (
        "no stream 'cars' at http://h: `dimwatch status` lists its 3 streams"
    )
    assert no_such_stream("cars", [], "http://h") == (
        "no stream 'cars' at http://h: it has no streams yet"
    )


def test_push_latent_dims_of_the_file_size_says_which_flag_to_pass(
    live_url: str, live_client: DimwatchClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "rows.npy"
    np.save(file, rows(10, dim=13))

    code = main(["push", "s", str(file), "--url", live_url, "--latent-dims", "2,13"])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: --latent-dims: ") and err.endswith("(422 invalid_config)\n")
    assert "(e.g. --latent-dims 1,2" in err
    assert "latent_dims" not in err and "[" not in err
    assert live_client.list_streams() == []


@pytest.mark.parametrize("command", ["status", "watch", "delete"])
def test_a_misspelt_stream_names_the_close_match(
    command: str,
    live_url: str,
    live_client: DimwatchClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live_client.create_stream("wine-raw")

    code = main([command, "wine_raw", "--url", live_url])

    assert code == 1
    assert capsys.readouterr().err == (
        f"error: no stream 'wine_raw' at {live_url}: did you mean 'wine-raw'?\n"
    )
