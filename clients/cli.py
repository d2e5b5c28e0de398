"""The `dimwatch` command: run the server, push data, look at streams, watch them, a demo.

    dimwatch serve [--host H] [--port P] [--data-dir DIR] [--device DEV] [--token T ...]
    dimwatch serve --nats URL [...]         a cluster's API node ('dimwatch[server,cluster]')
    dimwatch worker --nats URL [--device DEV]   a cluster's worker
    dimwatch push STREAM FILE [--batch-size B] [--append | --resume] [...]   FILE: .npy, .csv, -
    dimwatch fit FILE [STREAM] [--max-rows N] [...]   passes over FILE until the pick converges
    dimwatch status [STREAM]
    dimwatch watch STREAM [--max-events N]
    dimwatch delete STREAM [--yes]
    dimwatch demo [--url URL] [--paper] [--chunk-size N] [...]

`dimwatch COMMAND --help` has each command's options, defaults and examples (clients/_parser.py).
Client commands talk to `--url` (DIMWATCH_URL, else http://127.0.0.1:8000) with `--token`
(DIMWATCH_TOKEN). Errors are one readable line on stderr and a non-zero exit status:
1 for a failed command, 2 for wrong usage, 130 when interrupted.
"""

import argparse
import dataclasses
import itertools
import shlex
import sys
import uuid
from collections.abc import Iterable, Sequence
from contextlib import closing
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.text import Text

from clients import _demo, _journal, _push, _render, _words, errors
from clients._command import CLI_RETRY, CommandError, read_file, say, stream_for
from clients._fit_command import cmd_fit
from clients._parser import build_parser
from clients.client import DimwatchClient
from clients.models import Event, SelectionChangeEvent, StepEvent, Stream

# The packages only the server needs (`pip install 'dimwatch[server]'`).
SERVER_PACKAGES = {"torch", "fastapi", "starlette", "uvicorn", "pydantic", "pydantic_settings"}
SERVER_PACKAGES |= {"prometheus_client"}


def _without_server(exc: ImportError, what: str) -> CommandError:
    """The message for an install without the extra a command needs (a client-only install
    asked to serve, a worker without the cluster extra); other import errors re-raised."""
    package = (exc.name or "").split(".")[0]
    extra = "server" if package in SERVER_PACKAGES else "cluster" if package == "nats" else None
    if extra is None:
        raise exc
    extras = "server" if extra == "server" else "server,cluster"  # a cluster node serves too
    return CommandError(
        f"{what} needs the {extra} extra's packages (no {exc.name} here): "
        f"pip install 'dimwatch[{extras}]'"
    )


def cmd_serve(args: argparse.Namespace, console: Console) -> int:
    try:
        from service.server import StartupError, run
        from service.settings import Settings
    except ImportError as exc:
        raise _without_server(exc, "`dimwatch serve`") from None

    given: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "device": args.device,
        "api_tokens": tuple(args.tokens) if args.tokens else None,
        "nats_url": args.nats,
    }
    # Flags win; anything not given comes from DIMWATCH_* through Settings itself.
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    if settings.nats_url is not None:  # an API node: the cluster extra, checked before starting
        try:
            import service.cluster.node  # noqa: F401
        except ImportError as exc:
            raise _without_server(exc, "`dimwatch serve --nats`") from None
    try:
        run(settings)
    except StartupError as exc:
        raise CommandError(str(exc)) from None
    return 0


def cmd_worker(args: argparse.Namespace, console: Console) -> int:
    try:
        from service.cluster.worker import run
        from service.settings import Settings
    except ImportError as exc:
        raise _without_server(exc, "`dimwatch worker`") from None

    given = {"nats_url": args.nats, "device": args.device, "metrics_port": args.metrics_port}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    if settings.nats_url is None:
        raise SystemExit("dimwatch worker: give --nats URL (or DIMWATCH_NATS_URL)")
    run(settings)
    return 0


def cmd_push(args: argparse.Namespace, console: Console) -> int:
    rows = read_file(args)
    X = rows.data
    with DimwatchClient(args.url, args.token, retry=CLI_RETRY) as client:
        stream = stream_for(client, args.stream, args, X.shape[1], console)
        mode: _push.Mode = "append" if args.append else "resume" if args.resume else "auto"
        recorded = _journal.load(client.base_url, stream.name)
        plan = _push.plan(stream, X, rows.name, recorded, mode, _command_line(args))
        if plan.note:
            say(console, plan.note)
        if plan.start == len(X):
            return 0
        _journal.save(client.base_url, stream.name, plan.record)
        summary = _push.send(
            client, stream, X, plan.start, args.batch_size, progress=not args.no_progress
        )
    say(console, _render.push_summary(args.stream, summary))
    if summary.last is not None:
        console.print(_render.selection_table(summary.last.selection))
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed, without --append/--resume: what to run again."""
    words = [w for w in args.argv if w not in ("--append", "--resume")]
    return shlex.join(["dimwatch", *words])


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    with DimwatchClient(args.url, args.token, retry=CLI_RETRY) as client:
        if args.stream is None:
            streams = client.list_streams()
            if not streams:
                say(console, "no streams yet: push one with `dimwatch push NAME FILE`")
            else:
                console.print(_render.streams_table(streams))
            return 0
        stream = _existing(client, args.stream)
        selection = client.selection(args.stream)
    say(console, _render.stream_line(stream))
    if selection.best_latent_dim is None:
        say(console, "no batches yet")
    else:
        console.print(_render.selection_table(selection))
    return 0


def _existing(client: DimwatchClient, name: str) -> Stream:
    """The stream; CommandError naming a close match (or `dimwatch status`) if it is not there."""
    try:
        return client.get_stream(name)
    except errors.NotFoundError:
        names = [s.name for s in client.list_streams()]
        raise CommandError(_words.no_such_stream(name, names, client.base_url)) from None


def cmd_watch(args: argparse.Namespace, console: Console) -> int:
    with DimwatchClient(args.url, args.token, retry=CLI_RETRY) as client:
        _existing(client, args.stream)  # a missing stream fails here, before waiting
        with closing(client.watch(args.stream)) as stream_events:
            events = itertools.islice(stream_events, args.max_events)  # None: until the end
            if console.is_terminal:
                _watch_live(args.stream, events, console)
                return 0
            say(console, f"watching {args.stream!r}")
            for event in events:
                if isinstance(event, SelectionChangeEvent):
                    say(console, _render.change_line(event))
                elif isinstance(event, StepEvent):
                    say(console, _render.step_line(event.selection))
                else:  # a reconnect lost events: the server says which
                    say(console, event.message)
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


def cmd_delete(args: argparse.Namespace, console: Console) -> int:
    with DimwatchClient(args.url, args.token, retry=CLI_RETRY) as client:
        stream = _existing(client, args.stream)  # a missing stream fails here
        what = f"stream {stream.name!r} ({stream.rows_seen:,} rows, its models and history)"
        if not args.yes and not _confirmed(f"delete {what} for good? [y/N] ", console):
            if not sys.stdin.isatty():
                raise CommandError(f"not deleting {what}: pass --yes to confirm")
            say(console, "not deleted")
            return 1
        client.delete_stream(stream.name)
        _journal.forget(client.base_url, stream.name)
    say(console, f"deleted {what}")
    return 0


def _confirmed(question: str, console: Console) -> bool:
    if not sys.stdin.isatty():
        return False
    return console.input(question).strip().lower() in ("y", "yes")


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
        say(console, f"replaying into the dimwatch server at {args.url}")
        return _run_demo(args.url, args.token, name, options, args, console)
    if _demo.is_serving(_demo.DEFAULT_URL, args.token):
        say(console, f"replaying into the dimwatch server running at {_demo.DEFAULT_URL}")
        return _run_demo(_demo.DEFAULT_URL, args.token, name, options, args, console)
    try:
        from clients._local_server import local_server
    except ImportError as exc:
        raise _without_server(exc, f"no server at {_demo.DEFAULT_URL}; starting one") from None
    with _demo.scratch_dir() as data_dir, local_server(data_dir) as url:
        say(
            console,
            f"no dimwatch server at {_demo.DEFAULT_URL}: started one in this process at {url} "
            f"(data in {data_dir}, deleted afterwards)",
        )
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
    with DimwatchClient(url, token, retry=CLI_RETRY) as client:
        stream = _demo.create_demo_stream(client, name, options)
        say(
            console,
            f"replaying the paper's stream (chunks of true dimension {dims}, "
            f"{options.chunk_size} rows each, batches of {options.batch_size}) into "
            f"{_render.stream_line(stream)}",
        )
        chunks = _demo.replay(client, name, options, progress=not args.no_progress)
    console.print(_render.demo_table(chunks))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "push": cmd_push,
    "fit": cmd_fit,
    "status": cmd_status,
    "watch": cmd_watch,
    "delete": cmd_delete,
    "demo": cmd_demo,
}


def _explain(exc: Exception, args: argparse.Namespace) -> str:
    if isinstance(exc, _push.PushStopped):
        cause = exc.cause if isinstance(exc.cause, Exception) else None
        return (
            f"{'interrupted' if cause is None else _explain(cause, args)}; "
            f"{'' if exc.exact else 'at least '}{exc.done:,} of {exc.total:,} rows of "
            f"{args.file} went into {args.stream!r}: run the same command again to continue "
            "where it stopped"
        )
    if isinstance(exc, errors.ConnectionError):
        if isinstance(exc.__cause__, httpx.ConnectError):  # nothing listens there
            return f"cannot reach dimwatch at {exc.url} — start it with `dimwatch serve`"
        return str(exc)
    if isinstance(exc, errors.AuthError):
        given = "was refused" if getattr(args, "token", None) else "is required"
        return f"a token {given} by {args.url} ({exc.message}); pass --token or set DIMWATCH_TOKEN"
    if isinstance(exc, errors.HTTPStatusError):
        return f"{_words.in_cli_words(exc.message)} ({exc.status_code} {exc.code})"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status (0 on success)."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(words)
    args.argv = words
    console = Console()
    try:
        return COMMANDS[args.command](args, console)
    except (errors.DimwatchError, CommandError) as exc:
        say(Console(stderr=True), Text.assemble(("error: ", "bold red"), _explain(exc, args)))
        interrupted = isinstance(exc, _push.PushStopped) and isinstance(
            exc.cause, KeyboardInterrupt
        )
        return 130 if interrupted else 1
    except KeyboardInterrupt:
        say(Console(stderr=True), "interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
