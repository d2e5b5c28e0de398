"""The `dimwatch` command line: its commands, options, defaults, help texts and examples."""

import argparse
import dataclasses
import os
import re
from typing import Any, Literal, get_args, get_origin, get_type_hints

from clients._requests import DEFAULT_URL
from streaming.spec import RENAMED, StreamSpec

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # the server's rule for stream names
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "space": " ", "bar": "|"}

CSV_RULES = """\
CSV rules: one row per line, cells separated by --delimiter (a comma unless told otherwise),
every cell a finite number, every row as long as the first; blank lines are skipped, and a first
line with no number in it is a header, skipped (push says so). .npy files hold one 2-D numeric
array. The whole file is checked before anything is sent; errors give line and column from 1.
Columns that are not data can be dropped: --drop-columns label,1 (header names, or numbers from
1). The row index pandas writes (DataFrame.to_csv(): a first column with no name in the header,
or without a header one that counts 0, 1, 2, ...) is dropped, with a note; --keep-index keeps it.

Re-running is safe: push remembers (per server and stream, in ~/.local/state/dimwatch) which file
went in. The same file again continues where an interrupted push stopped, or sends nothing if it
finished; a different file is appended after a finished push. When push cannot tell (the stream
holds rows it did not record), it stops and prints the command for either meaning: --append (add
every row again, after the stream's rows) or --resume (continue the file after its rows there).
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; each option's help ends with its [default]."""


def _command(
    commands: "argparse._SubParsersAction[argparse.ArgumentParser]",
    name: str,
    summary: str,
    description: str,
    examples: str,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog="examples:\n" + examples,
        formatter_class=_Formatter,
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 2,4,6, got {text!r}") from None


def column_list(text: str) -> tuple[str, ...]:
    columns = tuple(part.strip() for part in text.split(",") if part.strip())
    if not columns:
        raise argparse.ArgumentTypeError(
            f"expected column names or numbers like label,3, got {text!r}"
        )
    return columns


def stream_name(text: str) -> str:
    if not NAME.match(text):
        raise argparse.ArgumentTypeError(f"a stream name is {NAME_RULE}; got {text!r}")
    return text


def delimiter(text: str) -> str:
    value = DELIMITER_NAMES.get(text, text.replace("\\t", "\t"))
    if len(value) != 1 or value in "0123456789.-+eE\"'":
        names = ", ".join(DELIMITER_NAMES)
        raise argparse.ArgumentTypeError(f"expected one character or {names}; got {text!r}")
    return value


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("DIMWATCH_URL", DEFAULT_URL),
        help="server address (env DIMWATCH_URL) [%(default)s]",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("DIMWATCH_TOKEN"),
        help="API token [env DIMWATCH_TOKEN, else none]",
    )


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(StreamSpec))


def _stream_settings_options(parser: argparse.ArgumentParser) -> None:
    """One option per setting of a stream (streaming/spec.py, their one source): --latent-dims
    takes a comma list, a yes/no setting --x / --no-x, a choice its values; each help text ends
    with the server's default."""
    group = parser.add_argument_group(
        "settings of a stream this command creates (ignored for an existing stream; "
        "server defaults in brackets)"
    )
    hints = get_type_hints(StreamSpec)
    for f in dataclasses.fields(StreamSpec):
        flag, kind = "--" + f.name.replace("_", "-"), hints[f.name]
        default: Any = f.default
        if isinstance(default, tuple):
            shown = ",".join(str(v) for v in default)
        elif isinstance(default, bool):
            shown = "on" if default else "off"
        else:
            shown = str(default)
        options: dict[str, Any] = {"help": f"{f.metadata['doc']} [{shown}]"}
        if f.name == "latent_dims":
            options["type"] = int_list
        elif kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif get_origin(kind) is Literal:
            options["choices"] = [v for v in get_args(kind) if v not in RENAMED]
        elif kind in (int, float):
            options["type"] = kind
        group.add_argument(flag, **options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dimwatch",
        description="Watch data streams and keep choosing their latent dimension.\n\n"
        "Client commands talk to --url (env DIMWATCH_URL, default "
        f"{DEFAULT_URL}) with --token (env DIMWATCH_TOKEN).\n"
        "`dimwatch COMMAND --help` describes each command.",
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_worker(commands)
    _add_push(commands)
    _add_fit(commands)
    _add_status(commands)
    _add_watch(commands)
    _add_delete(commands)
    _add_demo(commands)
    return parser


def _add_serve(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    serve = _command(
        commands,
        "serve",
        "run the dimwatch server (needs `pip install 'dimwatch[server]'`)",
        "Run the server: the REST API, the dashboard at /, metrics at /metrics. Flags win over\n"
        "DIMWATCH_* variables (docs/operations.md lists them all). Ctrl-C stops it cleanly.",
        "  dimwatch serve\n"
        "  dimwatch serve --host 0.0.0.0 --port 8080 --data-dir /var/lib/dimwatch --token S3CRET\n",
    )
    serve.add_argument("--host", help="interface to bind (env DIMWATCH_HOST) [127.0.0.1]")
    serve.add_argument("--port", type=int, help="TCP port (env DIMWATCH_PORT) [8000]")
    serve.add_argument("--data-dir", help="storage folder (env DIMWATCH_DATA_DIR) [data]")
    serve.add_argument(
        "--device", help="torch device of 'auto' streams (env DIMWATCH_DEVICE) [auto]"
    )
    serve.add_argument(
        "--nats",
        help="run as a cluster API node on these NATS server(s) (env DIMWATCH_NATS_URL) [off]",
    )
    serve.add_argument(
        "--token",
        action="append",
        dest="tokens",
        help="accepted API token, repeatable (env DIMWATCH_API_TOKENS, comma-separated) [none]",
    )


def _add_worker(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    worker = _command(
        commands,
        "worker",
        "run a cluster worker (trains its streams; needs `pip install 'dimwatch[server,cluster]'`)",
        "Run a worker of a cluster: it leases partitions of the streams from NATS JetStream and\n"
        "trains them; API nodes (`dimwatch serve --nats URL`) answer the clients.\n"
        "docs/deployment.md describes cluster mode.",
        "  dimwatch worker --nats nats://127.0.0.1:4222\n"
        "  dimwatch worker --nats nats://nats:4222 --device cuda\n",
    )
    worker.add_argument("--nats", help="NATS server URL(s) (env DIMWATCH_NATS_URL) [none]")
    worker.add_argument(
        "--device", help="torch device of 'auto' streams (env DIMWATCH_DEVICE) [auto]"
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics on this port of DIMWATCH_HOST (env DIMWATCH_METRICS_PORT) [none]",
    )


def _add_push(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    push = _command(
        commands,
        "push",
        "push rows from a .npy or CSV file (or - for CSV on stdin)",
        "Push the rows of FILE into STREAM in batches, creating the stream (with D from the\n"
        "file) if it does not exist, and print the selection afterwards.\n\n" + CSV_RULES,
        "  dimwatch push sensors data.npy\n"
        "  dimwatch push sensors data.csv --batch-size 50 --latent-dims 1,2,3\n"
        "  dimwatch push sensors data.tsv --delimiter tab\n"
        "  cat rows.csv | dimwatch push sensors -\n",
    )
    push.add_argument("stream", type=stream_name, help=f"stream name ({NAME_RULE})")
    push.add_argument("file", help=".npy, CSV (any other name), or - for CSV on stdin")
    push.add_argument(
        "--batch-size", type=positive_int, default=10, help="rows per batch [%(default)s]"
    )
    _file_options(push)
    again = push.add_mutually_exclusive_group()
    again.add_argument(
        "--append", action="store_true", help="add every row, even if the file went in before"
    )
    again.add_argument(
        "--resume", action="store_true", help="continue the file after its rows in the stream"
    )
    push.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _client_options(push)
    _stream_settings_options(push)


def _add_fit(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    fit = _command(
        commands,
        "fit",
        "the latent dimension of a file: passes over it until the pick has converged",
        "Send the rows of FILE into STREAM (named after the file if not given; created with D\n"
        "from the file) in shuffled passes until the selection has converged, or until the\n"
        "stream has learnt from --max-rows rows (then the pick is provisional, and it says so).\n"
        "Then print the pick, its margin over the runner-up, the pick for each N of the BIC\n"
        "and the collapse of every latent. Run again, it goes on where it stopped; once\n"
        "converged it sends nothing and prints the same answer.\n\n" + CSV_RULES.split("\n\n")[0],
        "  dimwatch fit wine.csv\n"
        "  dimwatch fit iris.csv --drop-columns species --latent-dims 1,2,3\n"
        "  dimwatch fit readings.npy readings-2024 --max-rows 1000000\n",
    )
    fit.add_argument("file", help=".npy, CSV (any other name), or - for CSV on stdin")
    fit.add_argument(
        "stream", nargs="?", type=stream_name, help="stream name [the file's name, no suffix]"
    )
    fit.add_argument(
        "--batch-size", type=positive_int, default=100, help="rows per batch [%(default)s]"
    )
    fit.add_argument(
        "--max-rows",
        type=positive_int,
        default=200_000,
        help="stop, provisional, once the stream has learnt from this many rows [%(default)s]",
    )
    _file_options(fit)
    fit.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _client_options(fit)
    _stream_settings_options(fit)


def _file_options(parser: argparse.ArgumentParser) -> None:
    """How to read FILE: the CSV delimiter, columns that are not data, pandas' index."""
    parser.add_argument(
        "--delimiter",
        type=delimiter,
        default=",",
        help="CSV cell separator: one character, or tab [comma]",
    )
    parser.add_argument(
        "--drop-columns",
        type=column_list,
        default=(),
        metavar="COLUMNS",
        help="columns that are not data (a label), by header name or number from 1 [none]",
    )
    parser.add_argument(
        "--keep-index",
        action="store_true",
        help="keep a first column that looks like pandas' row index [dropped, with a note]",
    )


def _add_status(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    status = _command(
        commands,
        "status",
        "list streams, or one stream's candidates and scores",
        "Without STREAM: every stream with D, batches, rows, its best H and whether that pick\n"
        "has converged or is provisional. With STREAM: its settings and every candidate H:\n"
        "entropy ELBO, entropy BIC (lower is better), batch BIC, sigma^2 and active latents\n"
        "(docs/math.md explains each).",
        "  dimwatch status\n  dimwatch status sensors --url http://dimwatch.internal:8000\n",
    )
    status.add_argument("stream", nargs="?", type=stream_name, help="the stream to show")
    _client_options(status)


def _add_watch(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    watch = _command(
        commands,
        "watch",
        "follow a stream live",
        "Print the scores after every batch and mark every change of the best H, until Ctrl-C\n"
        "(or --max-events). In a terminal the scores table is redrawn in place.",
        "  dimwatch watch sensors\n  dimwatch watch sensors --max-events 100 > log.txt\n",
    )
    watch.add_argument("stream", type=stream_name, help="the stream to follow")
    watch.add_argument(
        "--max-events",
        type=positive_int,
        help="stop after this many events [until Ctrl-C or the server stops]",
    )
    _client_options(watch)


def _add_delete(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    delete = _command(
        commands,
        "delete",
        "delete a stream with its models and history",
        "Delete STREAM for good: its models, stored batches and history. Asks first in a\n"
        "terminal; elsewhere (scripts) pass --yes.",
        "  dimwatch delete sensors\n  dimwatch delete sensors --yes\n",
    )
    delete.add_argument("stream", type=stream_name, help="the stream to delete")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _client_options(delete)


def _add_demo(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    demo = _command(
        commands,
        "demo",
        "replay the paper's stream (true dimension 6, then 2, then 4)",
        "Replay the paper's stream (D = 10; chunks of true dimension 6, 2, 4) into a server and\n"
        "print, per chunk, the H selected. The server: --url or DIMWATCH_URL if given, else the\n"
        f"one running at {DEFAULT_URL} (watch it in its dashboard), else one started in this\n"
        "process for the demo (needs `pip install 'dimwatch[server]'`).",
        "  dimwatch demo\n  dimwatch demo --url http://127.0.0.1:8000 --chunk-size 2000\n"
        "  dimwatch demo --paper    # the paper's full settings: 300,000 rows, Monte Carlo\n",
    )
    demo.add_argument(
        "--url",
        default=os.environ.get("DIMWATCH_URL"),
        help=f"server (env DIMWATCH_URL) [the one at {DEFAULT_URL}, else one in-process]",
    )
    demo.add_argument(
        "--token",
        default=os.environ.get("DIMWATCH_TOKEN"),
        help="API token [env DIMWATCH_TOKEN, else none]",
    )
    demo.add_argument("--paper", action="store_true", help="the paper's full settings (slow)")
    demo.add_argument(
        "--chunk-size", type=positive_int, help="rows per chunk [10000; --paper 100000]"
    )
    demo.add_argument("--batch-size", type=positive_int, help="rows per batch [10]")
    demo.add_argument("--learning-rate", type=float, help="step size [0.002]")
    demo.add_argument(
        "--estimator", choices=["analytic", "mc"], help="batch ELBO [analytic; --paper mc]"
    )
    demo.add_argument("--seed", type=int, help="seed of data and models [0]")
    demo.add_argument("--stream", type=stream_name, help="stream name [a new demo-XXXXXX]")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
