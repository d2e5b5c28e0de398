"""`dimwatch fit FILE [STREAM]`: the latent dimension of a file in one command.

The file's rows go into a stream in shuffled passes until the selection converges, or until
the stream has learnt from --max-rows rows (clients/_fit.py); then the pick, its margin, the
pick for each N of the BIC and the collapse of every latent are printed. Without STREAM the
stream is named after the file. Run again, it goes on where it stopped (or, converged, sends
nothing and prints the same answer); it refuses a stream that holds rows of another file.
"""

import argparse
import re
from pathlib import Path

from rich.console import Console

from clients import _journal, _render
from clients._command import CLI_RETRY, CommandError, read_file, say, stream_for
from clients._files import Rows
from clients.client import DimwatchClient
from clients.models import FitResult, Stream


def default_name(file: str) -> str:
    """The stream of a fit of `file` when none is named: the file's name without its suffix,
    as a valid stream name ("stdin" for -)."""
    stem = "stdin" if file == "-" else Path(file).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("._-")[:64] or "fit"


def cmd_fit(args: argparse.Namespace, console: Console) -> int:
    rows = read_file(args)
    name = args.stream or default_name(args.file)
    with DimwatchClient(args.url, args.token, retry=CLI_RETRY) as client:
        stream = stream_for(client, name, args, rows.data.shape[1], console)
        _claim(client, stream, rows)
        if stream.optimizer in ("adam", "sgd"):
            say(console, f"stream {name!r} trains with {stream.optimizer}, which never reports "
                         "converged: the fit goes on to --max-rows")  # fmt: skip
        try:
            result = client.fit_array(
                name,
                rows.data,
                batch_size=args.batch_size,
                max_rows=args.max_rows,
                progress=not args.no_progress,
            )
        except KeyboardInterrupt:
            say(Console(stderr=True), f"interrupted: run the same command again to go on "
                                      f"fitting {args.file} into {name!r}")  # fmt: skip
            return 130
    _report(result, stream, args.file, rows.data.shape[1], console)
    return 0


def _claim(client: DimwatchClient, stream: Stream, rows: Rows) -> None:
    """A fit goes on only in a stream without rows or with this file's (as recorded by an
    earlier fit or push here); the file is recorded for the next run, and for `dimwatch push`."""
    digest = _journal.digest(rows.data)
    recorded = _journal.load(client.base_url, stream.name)
    if recorded is not None and recorded.digest == digest:
        return
    if stream.rows_seen:
        raise CommandError(
            f"stream {stream.name!r} holds {stream.rows_seen:,} rows, and no fit or push of "
            f"{rows.name} into it is recorded here: fit into a stream of its own "
            f"(`dimwatch fit {rows.name} NAME`), or delete it first (`dimwatch delete "
            f"{stream.name}`)"
        )
    record = _journal.PushRecord(rows.name, digest, len(rows.data), stream.rows_seen)
    _journal.save(client.base_url, stream.name, record)


def _report(result: FitResult, stream: Stream, file: str, dim: int, console: Console) -> None:
    for line in _render.fit_lines(result, file, dim, stream.bic_n):
        say(console, line)
    console.print(_render.collapse_table(result.collapse))
    if result.converged and result.pushed == 0:
        say(console, f"(nothing sent: {stream.name!r} had converged on {file} already)")
    elif not result.converged:
        more = 2 * max(result.max_rows, result.rows_seen)
        say(console, f"to go on from here: the same command with --max-rows {more}")
