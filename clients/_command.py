"""What the CLI's commands share: their failure, how they print, the retry policy, reading FILE
and the stream a file's rows go into (`dimwatch push`, `dimwatch fit`)."""

import argparse
import sys

from rich.console import Console
from rich.text import Text

from clients import _render
from clients._files import Columns, Rows, load_rows
from clients._parser import SETTING_NAMES
from clients._requests import RetryPolicy
from clients.client import DimwatchClient
from clients.models import Stream, StreamSettings

# A command line gives up sooner than the library default: a server that is down is reported
# after about a second rather than four.
CLI_RETRY = RetryPolicy(attempts=3, backoff=0.25)


class CommandError(Exception):
    """A failure the user can act on; main prints its message without a traceback."""


def say(console: Console, text: str | Text) -> None:
    """One message as it is: no markup, no highlighting, long lines left to the terminal."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def given_settings(args: argparse.Namespace) -> StreamSettings:
    """The stream settings given as flags (the others are the server's defaults)."""
    given = {k: getattr(args, k) for k in SETTING_NAMES if getattr(args, k) is not None}
    return StreamSettings(**given)  # type: ignore[typeddict-item]


def read_file(args: argparse.Namespace) -> Rows:
    """FILE's rows, every one checked before anything is sent; what was skipped or dropped is
    said on stderr."""
    rows = load_rows(
        args.file, sys.stdin, args.delimiter, Columns(args.drop_columns, args.keep_index)
    )
    for note in rows.notes:
        say(Console(stderr=True), note)
    return rows


def stream_for(
    client: DimwatchClient,
    name: str,
    args: argparse.Namespace,
    dim: int,
    console: Console,
) -> Stream:
    """Stream `name`, created with the flags' settings and D = dim if absent; CommandError if
    its D differs. Settings given for an existing stream are said to be ignored."""
    settings = given_settings(args)
    # D from the file: a new stream checks its latent sizes against it before existing.
    wanted: StreamSettings = {**settings, "dim": dim}
    stream, created = client.ensure_stream(name, **wanted)
    if created:
        say(console, f"created {_render.stream_line(stream)}")
    else:
        differ = [k for k, v in settings.items() if _setting(stream, k) != _setting(settings, k)]
        if differ:
            ignored = ", ".join("--" + k.replace("_", "-") for k in differ)
            say(console, f"stream {name!r} exists; its settings stay ({ignored} ignored)")
    if stream.dim is not None and stream.dim != dim:
        raise CommandError(
            f"{args.file}: has {dim} columns, but stream {name!r} "
            f"expects {stream.dim} (D is fixed by the stream's first batch)"
        )
    return stream


def _setting(where: Stream | StreamSettings, name: str) -> object:
    value = where.get(name) if isinstance(where, dict) else getattr(where, name, None)
    return tuple(value) if isinstance(value, list | tuple) else value
