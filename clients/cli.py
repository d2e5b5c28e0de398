"""The `dimwatch` command: run the server, push data, look at streams, watch them, a demo.

    dimwatch serve [--host H] [--port P] [--data-dir DIR] [--device DEV] [--token T ...]
    dimwatch serve --nats URL [...]         a cluster's API node (pip install 'dimwatch[cluster]')
    dimwatch worker --nats URL [--device DEV]   a cluster's worker
    dimwatch push STREAM FILE [--batch-size B] [--latent-dims 2,4,6] [...]   FILE: .npy, .csv, -
    dimwatch status [STREAM]
    dimwatch watch STREAM [--max-events N]
    dimwatch demo [--paper] [--chunk-size N] [...]

Client commands talk to `--url` (DIMWATCH_URL, else http://127.0.0.1:8000) with `--token`
(DIMWATCH_TOKEN). Errors are one readable line on stderr and a non-zero exit status:
1 for a failed command, 2 for wrong usage, 130 when interrupted.
"""

import argparse
import dataclasses
import itertools
import os
import sys
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.text import Text

from clients import _demo, _render, errors
from clients._files import load_array
from clients._requests import DEFAULT_URL, RetryPolicy
from clients.client import DimwatchClient
from clients.models import Event, SelectionChangeEvent, StepEvent, StreamSettings

# A command line gives up sooner than the library default: a server that is down is reported
# after about a second rather than four.
CLI_RETRY = RetryPolicy(attempts=3, backoff=0.25)


class CommandError(Exception):
    """A failure the user can act on; main prints its message without a traceback."""


def _say(console: Console, text: str | Text) -> None:
    """One message as it is: no markup, no highlighting, long lines left to the terminal."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 2,4,6, got {text!r}") from None


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("DIMWATCH_URL", DEFAULT_URL),
        help="server address (env DIMWATCH_URL; default %(default)s)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("DIMWATCH_TOKEN"), help="API token (env DIMWATCH_TOKEN)"
    )


def _stream_settings_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings of a stream this command creates")
    group.add_argument("--latent-dims", type=_int_list, help="candidate latent sizes, e.g. 2,4,6")
    group.add_argument("--learning-rate", type=float, help="optimizer step size (0.002)")
    group.add_argument("--estimator", choices=["analytic", "mc"], help="ELBO gradient")
    group.add_argument("--mc-samples", type=int, help="Monte Carlo samples per row (100)")
    group.add_argument("--bic-n", type=int, help="N of the BIC (10)")
    group.add_argument("--collapse-threshold", type=float, help="encoder entropy threshold (1.0)")
    group.add_argument("--seed", type=int, help="seed of initialisation and sampling (0)")
    group.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    group.add_argument(
        "--optimizer",
        choices=["natural", "adam", "sgd"],
        help="the online step (natural; the paper: adam)",
    )
    group.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="model z-scored columns (for columns in different units; off)",
    )
    group.add_argument(
        "--adaptive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="boost the learning rate when the stream changes (on)",
    )
    group.add_argument(
        "--boost-learning-rate", type=float, help="learning rate right after a change (0.05)"
    )


_SETTING_NAMES = (
    "latent_dims",
    "learning_rate",
    "estimator",
    "mc_samples",
    "bic_n",
    "collapse_threshold",
    "seed",
    "device",
    "optimizer",
    "standardize",
    "adaptive",
    "boost_learning_rate",
)


def _given_settings(args: argparse.Namespace) -> StreamSettings:
    given = {k: getattr(args, k) for k in _SETTING_NAMES if getattr(args, k) is not None}
    return StreamSettings(**given)  # type: ignore[typeddict-item]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dimwatch",
        description="Watch data streams and keep choosing their latent dimension.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands.add_parser("serve", help="run the dimwatch server"))
    worker = commands.add_parser("worker", help="run a cluster worker (trains its streams)")
    worker.add_argument("--nats", help="NATS server URL(s) (env DIMWATCH_NATS_URL)")
    worker.add_argument("--device", help="torch device for 'auto' streams (env DIMWATCH_DEVICE)")

    push = commands.add_parser("push", help="push rows from a .npy or .csv file (or - for stdin)")
    push.add_argument("stream", help="stream name (created if absent)")
    push.add_argument("file", help=".npy, .csv, or - to read CSV from stdin")
    push.add_argument(
        "--batch-size", type=_positive_int, default=10, help="rows per batch (%(default)s)"
    )
    push.add_argument("--no-progress", action="store_true", help="no progress bar")
    _client_options(push)
    _stream_settings_options(push)

    status = commands.add_parser("status", help="list streams, or one stream's scores")
    status.add_argument("stream", nargs="?", help="show this stream's candidates")
    _client_options(status)

    watch = commands.add_parser("watch", help="follow a stream live")
    watch.add_argument("stream")
    watch.add_argument("--max-events", type=_positive_int, help="stop after this many events")
    _client_options(watch)

    _add_demo(
        commands.add_parser("demo", help="replay the paper's stream (dims 6, then 2, then 4)")
    )
    return parser


def _add_serve(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", help="interface to bind (env DIMWATCH_HOST; 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (env DIMWATCH_PORT; 8000)")
    serve.add_argument("--data-dir", type=Path, help="storage folder (env DIMWATCH_DATA_DIR)")
    serve.add_argument("--device", help="torch device for 'auto' streams (env DIMWATCH_DEVICE)")
    serve.add_argument(
        "--nats", help="run as a cluster API node on these NATS server(s) (env DIMWATCH_NATS_URL)"
    )
    serve.add_argument(
        "--token",
        action="append",
        dest="tokens",
        help="accepted API token, repeatable (env DIMWATCH_API_TOKENS, comma-separated)",
    )


def _add_demo(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--url", help="replay against this server (default: start one in-process)")
    demo.add_argument(
        "--token", default=os.environ.get("DIMWATCH_TOKEN"), help="API token (env DIMWATCH_TOKEN)"
    )
    demo.add_argument("--paper", action="store_true", help="the paper's full settings (slow)")
    demo.add_argument(
        "--chunk-size", type=_positive_int, help="rows per chunk (10000; paper 100000)"
    )
    demo.add_argument("--batch-size", type=_positive_int, help="rows per batch (10)")
    demo.add_argument("--learning-rate", type=float, help="step size (0.002)")
    demo.add_argument("--estimator", choices=["analytic", "mc"], help="analytic; paper mc")
    demo.add_argument("--seed", type=int, help="seed of data and models (0)")
    demo.add_argument("--stream", help="stream name (default: a new demo-XXXXXX)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    from service.server import run
    from service.settings import Settings

    given: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "device": args.device,
        "api_tokens": tuple(args.tokens) if args.tokens else None,
        "nats_url": args.nats,
    }
    # Flags win; anything not given comes from DIMWATCH_* through Settings itself.
    run(Settings(**{k: v for k, v in given.items() if v is not None}))
    return 0


def cmd_worker(args: argparse.Namespace, console: Console) -> int:
    from service.cluster.worker import run
    from service.settings import Settings

    given = {"nats_url": args.nats, "device": args.device}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    if settings.nats_url is None:
        raise SystemExit("dimwatch worker: give --nats URL (or DIMWATCH_NATS_URL)")
    run(settings)
    return 0


def cmd_push(args: argparse.Namespace, console: Console) -> int:
    X = load_array(args.file, sys.stdin)
    settings = _given_settings(args)
    with DimwatchClient(args.url, args.token, retry=CLI_RETRY) as client:
        # D from the file: a new stream checks its latent sizes against it before existing.
        stream, created = client.ensure_stream(args.stream, **{**settings, "dim": X.shape[1]})
        if created:
            _say(console, f"created {_render.stream_line(stream)}")
        elif settings:
            ignored = ", ".join("--" + k.replace("_", "-") for k in settings)
            _say(console, f"stream {args.stream!r} exists; its settings stay ({ignored} ignored)")
        if stream.dim is not None and stream.dim != X.shape[1]:
            raise CommandError(
                f"{args.file}: has {X.shape[1]} columns, but stream {args.stream!r} "
                f"expects {stream.dim} (D is fixed by the stream's first batch)"
            )
        summary = client.stream_array(
            args.stream, X, batch_size=args.batch_size, progress=not args.no_progress
        )
    _say(console, _render.push_summary(args.stream, summary))
    if summary.last is not None:
        console.print(_render.selection_table(summary.last.selection))
    return 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    with DimwatchClient(args.url, args.token, retry=CLI_RETRY) as client:
        if args.stream is None:
            streams = client.list_streams()
            if not streams:
                _say(console, "no streams yet: push one with `dimwatch push NAME FILE`")
            else:
                console.print(_render.streams_table(streams))
            return 0
        stream = client.get_stream(args.stream)
        selection = client.selection(args.stream)
    _say(console, _render.stream_line(stream))
    if selection.best_latent_dim is None:
        _say(console, "no batches yet")
    else:
        console.print(_render.selection_table(selection))
    return 0


def cmd_watch(args: argparse.Namespace, console: Console) -> int:
    with DimwatchClient(args.url, args.token, retry=CLI_RETRY) as client:
        client.get_stream(args.stream)  # a missing stream fails here, before waiting
        with closing(client.watch(args.stream)) as stream_events:
            events = itertools.islice(stream_events, args.max_events)  # None: until the end
            if console.is_terminal:
                _watch_live(args.stream, events, console)
                return 0
            _say(console, f"watching {args.stream!r}")
            for event in events:
                if isinstance(event, SelectionChangeEvent):
                    _say(console, _render.change_line(event))
                elif isinstance(event, StepEvent):
                    _say(console, _render.step_line(event.selection))
                else:  # a reconnect lost events: the server says which
                    _say(console, event.message)
    return 0


def _watch_live(stream: str, events: Iterable[Event], console: Console) -> None:
    """Redraw the scores table in place; selection changes stay listed below it."""
    view = _render.WatchView(stream)
    with Live(view.render(), console=console, auto_refresh=False) as live:
        for event in events:
            if isinstance(event, StepEvent):
                view.selection = event.selection
            elif isinstance(event, SelectionChangeEvent):
                view.changes = (*view.changes, event)
            live.update(view.render(), refresh=True)


def _demo_options(args: argparse.Namespace) -> _demo.DemoOptions:
    base = _demo.DemoOptions.paper() if args.paper else _demo.DemoOptions()
    changes = {
        "chunk_size": args.chunk_size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "estimator": args.estimator,
        "seed": args.seed,
    }
    return dataclasses.replace(base, **{k: v for k, v in changes.items() if v is not None})


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    options = _demo_options(args)
    name = args.stream or f"demo-{uuid.uuid4().hex[:6]}"
    if args.url is not None:
        return _run_demo(args.url, args.token, name, options, args, console)
    from clients._local_server import local_server

    with (
        tempfile.TemporaryDirectory(prefix="dimwatch-demo-") as data_dir,
        local_server(Path(data_dir)) as url,
    ):
        _say(console, f"started an in-process dimwatch at {url} (data in {data_dir})")
        return _run_demo(url, None, name, options, args, console)


def _run_demo(
    url: str,
    token: str | None,
    name: str,
    options: _demo.DemoOptions,
    args: argparse.Namespace,
    console: Console,
) -> int:
    dims = ", ".join(str(d) for d in options.intrinsic_dims)
    _say(
        console,
        f"replaying the paper's stream into {name!r}: chunks of true dimension {dims}, "
        f"{options.chunk_size} rows each, batches of {options.batch_size}, "
        f"learning rate {options.learning_rate:g}, {options.estimator} ELBO",
    )
    with DimwatchClient(url, token, retry=CLI_RETRY) as client:
        _demo.create_demo_stream(client, name, options)
        chunks = _demo.replay(client, name, options, progress=not args.no_progress)
    console.print(_render.demo_table(chunks))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "push": cmd_push,
    "status": cmd_status,
    "watch": cmd_watch,
    "demo": cmd_demo,
}


def _explain(exc: Exception, args: argparse.Namespace) -> str:
    if isinstance(exc, errors.ConnectionError):
        if isinstance(exc.__cause__, httpx.ConnectError):  # nothing listens there
            return f"cannot reach dimwatch at {exc.url} — start it with `dimwatch serve`"
        return str(exc)
    if isinstance(exc, errors.AuthError):
        given = "was refused" if getattr(args, "token", None) else "is required"
        return f"a token {given} by {args.url} ({exc.message}); pass --token or set DIMWATCH_TOKEN"
    if isinstance(exc, errors.HTTPStatusError):
        return f"{exc.message} ({exc.status_code} {exc.code})"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 on success)."""
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return COMMANDS[args.command](args, console)
    except (errors.DimwatchError, CommandError) as exc:
        _say(Console(stderr=True), Text.assemble(("error: ", "bold red"), _explain(exc, args)))
        return 1
    except KeyboardInterrupt:
        _say(Console(stderr=True), "interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
