"""README.md as a new user follows it: its examples run as written against a real server."""

import json
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from clients import DimwatchClient
from clients._local_server import local_server
from clients._parser import build_parser
from tests import children

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCUMENTED_URL = "http://127.0.0.1:8000"
TIMEOUT = 120.0  # seconds for one README block to run


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def block_with(language: str, text: str) -> str:
    (found,) = [b for b in blocks(language) if text in b]
    return found


def shell_lines(block: str) -> list[str]:
    """The commands of a shell block, continuation lines joined, comments dropped."""
    joined = block.replace("\\\n", " ")
    return [shlex.join(shlex.split(line, comments=True)) for line in joined.splitlines()]


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_server(tmp_path_factory.mktemp("readme")) as base:
        yield base


def run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return children.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False, env=env
    )


@dataclass(frozen=True)
class Fitted:
    """The README's `dimwatch fit` walk-through, run as written, twice."""

    file: Path
    first: subprocess.CompletedProcess[str]
    again: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def fitted(url: str, tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    tmp = tmp_path_factory.mktemp("fit")
    make_data, fit = shell_lines(block_with("bash", "dimwatch fit"))
    env = {**os.environ, "DIMWATCH_URL": url, "XDG_STATE_HOME": str(tmp / "state")}
    command = [
        str(Path(sys.executable).parent / "dimwatch"),
        *shlex.split(fit)[1:],
        "--no-progress",
    ]
    made = run([sys.executable, *shlex.split(make_data)[1:]], tmp)
    assert made.returncode == 0, made.stderr
    return Fitted(tmp / "readings.csv", run(command, tmp, env), run(command, tmp, env))


def test_fit_walk_through_picks_the_exact_p_pca_choice(url: str, fitted: Fitted) -> None:
    with DimwatchClient(url) as client:
        stream = client.get_stream("readings")
    X = np.loadtxt(fitted.file, delimiter=",")
    bic = {  # Eq. 27 at the exact p-PCA optimum: scikit-learn's PCA log-likelihood per row
        h: (h * X.shape[1] + 1) * math.log(stream.bic_n)
        - 2 * stream.bic_n * PCA(n_components=h).fit(X).score(X)
        for h in stream.latent_dims
    }
    exact = min(bic, key=bic.__getitem__)

    assert fitted.first.returncode == 0, fitted.first.stderr
    said = re.search(r"best H = (\d+)", block_with("bash", "dimwatch fit"))
    assert said is not None and int(said[1]) == exact  # what the README promises
    assert f"\nbest H = {exact}, ahead of H = " in fitted.first.stdout
    assert ": converged after " in fitted.first.stdout


def test_fit_walk_through_again_sends_nothing_and_says_the_same(fitted: Fitted) -> None:
    assert fitted.again.returncode == 0, fitted.again.stderr
    assert "(nothing sent: 'readings' had converged on readings.csv already)" in fitted.again.stdout
    pick = [line for line in fitted.first.stdout.splitlines() if line.startswith("best H")]
    assert pick and pick[0] in fitted.again.stdout.splitlines()


def test_plain_http_example_runs_as_written(url: str, tmp_path: Path) -> None:
    block = block_with("bash", "curl ")
    script = block.replace("localhost:8000", url.removeprefix("http://"))

    done = run(["bash", "-euo", "pipefail", "-c", script], tmp_path)

    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in re.sub(r"}{", "}\n{", done.stdout).splitlines()]
    assert [("error" in a) for a in answers] == [False, False, False]
    assert answers[1]["rows"] == 2 and answers[2]["best_latent_dim"] in (1, 2)


def test_python_example_runs_twice_without_conflict_or_duplicates(url: str, tmp_path: Path) -> None:
    (make_data,) = [c for c in shell_lines(block_with("bash", "dimwatch push")) if "np.save" in c]
    script = block_with("python", "DimwatchClient").replace(DOCUMENTED_URL, url)
    python = [c if c != "python" else sys.executable for c in shlex.split(make_data)]

    made = run(python, tmp_path)
    first = run([sys.executable, "-c", script], tmp_path)
    again = run([sys.executable, "-c", script], tmp_path)

    assert made.returncode == 0, made.stderr
    assert (first.returncode, first.stderr, again.returncode, again.stderr) == (0, "", 0, "")
    with DimwatchClient(url) as client:
        assert client.get_stream("from-python").rows_seen == 3000


def test_every_documented_command_parses() -> None:
    commands = [
        shlex.split(line)[1:]
        for block in blocks("bash")
        for line in shell_lines(block)
        if line.startswith("dimwatch ")
    ]
    assert len(commands) >= 6
    for args in commands:
        build_parser().parse_args(args)  # SystemExit (a usage error) fails the test


def test_dimwatch_is_put_on_path_before_the_readme_uses_it() -> None:
    activate = README.index("source .venv/bin/activate")
    first_use = min(
        README.index(line) for block in blocks("bash") for line in block.splitlines()
        if line.startswith("dimwatch ")
    )  # fmt: skip

    assert activate < first_use
    assert ".venv/bin/dimwatch" not in README


def test_make_commands_come_first_then_pip_without_make() -> None:
    first = blocks("bash")[0]
    assert shell_lines(first) == ["make run", "make test"]
    installs = [c for b in blocks("bash") for c in shell_lines(b) if c.startswith("pip install")]
    assert "pip install '.[server]'" in installs and "pip install ." in installs
