"""How the CLI draws results in the terminal (rich tables and lines); no I/O of its own."""

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from clients.models import (
    Collapse,
    FitResult,
    PathPiece,
    PushSummary,
    Selection,
    SelectionChangeEvent,
    Stream,
)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _h(value: int | None) -> str:
    return "-" if value is None else str(value)


def provisional(selection: Selection) -> bool:
    """A pick the server marks unconverged (`converged: false`); a server that does not say
    (None) is taken at its word."""
    return selection.converged is False


def _best(selection: Selection) -> str:
    best = _h(selection.best_latent_dim)
    return f"{best} (provisional: not converged yet)" if provisional(selection) else best


def streams_table(streams: Sequence[Stream]) -> Table:
    """One row per stream: its size, progress, current choice of H and whether it is final."""
    table = Table(title="dimwatch streams", title_justify="left")
    for name, justify in [
        ("stream", "left"),
        ("D", "right"),
        ("step", "right"),
        ("rows", "right"),
        ("best H", "right"),
        ("pick", "left"),
        ("candidates", "left"),
        ("optimizer", "left"),
        ("device", "left"),
    ]:
        table.add_column(name, justify=justify, no_wrap=name in ("pick", "best H"))  # type: ignore[arg-type]
    for s in streams:
        table.add_row(
            s.name,
            _h(s.dim),
            str(s.step),
            str(s.rows_seen),
            Text(_h(s.best_latent_dim), style="bold green"),
            _pick(s),
            ",".join(str(h) for h in s.latent_dims),
            s.optimizer or "-",
            s.device,
        )
    return table


def _pick(stream: Stream) -> Text:
    """converged (final for the data seen) or provisional; "-" before the first batch or from a
    server that does not say."""
    if stream.best_latent_dim is None or stream.converged is None:
        return Text("-")
    if stream.converged:
        return Text("converged", style="green")
    return Text("provisional", style="yellow")


def stream_line(stream: Stream) -> str:
    """The stream's settings in one line; a learning rate only where the optimizer uses one."""
    return (
        f"stream {stream.name!r}: D={_h(stream.dim)}, candidates H="
        f"{','.join(str(h) for h in stream.latent_dims)}, {_optimizer(stream)}, "
        f"estimator {stream.estimator}, BIC N={stream.bic_n}, seed {stream.seed}, "
        f"device {stream.device}"
    )


def _optimizer(stream: Stream) -> str:
    """`optimizer subspace` (it has no learning rate), `optimizer adam at learning rate 0.002`;
    an older server that does not name the optimizer: its learning rate."""
    if stream.optimizer is None:
        return f"learning rate {stream.learning_rate:g}"
    if stream.optimizer in ("subspace", "natural"):  # natural: its name on earlier servers
        return f"optimizer {stream.optimizer}"
    return f"optimizer {stream.optimizer} at learning rate {stream.learning_rate:g}"


def selection_table(selection: Selection, title: str = "") -> Table:
    """Every candidate's scores; the best H (lowest entropy BIC) highlighted."""
    rank = selection.effective_rank
    title = title or (
        f"step {selection.step}, {selection.rows_seen} rows, best H = {_best(selection)}"
        + ("" if rank is None else f", effective rank {rank:.1f}")
    )
    table = Table(title=title)
    table.title_justify = "left"
    for name in ("H", "entropy ELBO", "entropy BIC", "batch BIC", "sigma^2", "active latents"):
        table.add_column(name, justify="right")
    for name in ("eff. rank", "top-H share"):
        table.add_column(name, justify="right")
    table.add_column("")
    for m in selection.models:
        best = m.latent_dim == selection.best_latent_dim
        table.add_row(
            str(m.latent_dim),
            _num(m.entropy_elbo, 3),
            _num(m.bic, 1),
            _num(m.batch_bic, 1),
            _num(m.sigma2, 4),
            f"{m.active_latents}/{m.latent_dim}",
            _num(m.effective_rank, 1),
            "-" if m.variance_share is None else f"{100 * m.variance_share:.1f}%",
            "<- best" if best else "",
            style="bold green" if best else None,
        )
    table.caption = (
        "lower BIC is better; the best H has the lowest entropy BIC. eff. rank: exp of the "
        "entropy of the eigenvalues of each model's covariance; top-H share: of its variance"
    )
    return table


def push_summary(stream: str, summary: PushSummary) -> str:
    rate = summary.rows / summary.seconds if summary.seconds > 0 else 0.0
    line = (
        f"pushed {summary.rows} rows in {summary.batches} batches to {stream!r} "
        f"in {summary.seconds:.1f} s ({rate:.0f} rows/s)"
    )
    if summary.duplicates:
        line += f"; {summary.duplicates} batches were applied before and skipped"
    if summary.last is not None:
        chosen = summary.last.selection
        line += f"\nstep {chosen.step}, best H = {_best(chosen)}"
    return line


def fit_lines(result: FitResult, file: str, dim: int, bic_n: int) -> list[str]:
    """What a fit found: how it ended, the pick and its margin, the pick for each N."""
    ended = "converged" if result.converged else "provisional: not converged"
    cap = "" if result.converged else ", the most --max-rows allows"
    lines = [
        f"fitted {file} ({result.rows:,} rows, D = {dim}) into stream {result.stream!r}: "
        f"{ended} after {result.rows_seen:,} rows ({result.passes:.1f} passes){cap}",
        f"best H = {_h(result.best_latent_dim)}{_margin(result.selection)}",
    ]
    if result.selection.path:
        lines.append(f"the pick for each N of the BIC: {path_text(result.selection.path, bic_n)}")
    return lines


def _margin(selection: Selection) -> str:
    """`, ahead of H = 2 by 41.2 BIC units` (the runner-up's BIC minus the pick's)."""
    others = [m for m in selection.models if m.latent_dim != selection.best_latent_dim]
    if selection.margin is None or not others:
        return ""
    runner_up = min(others, key=lambda m: m.bic).latent_dim
    if selection.margin < 0:
        return f", held against H = {runner_up} ({-selection.margin:.1f} BIC units behind it)"
    return f", ahead of H = {runner_up} by {selection.margin:.1f} BIC units"


def path_text(path: Sequence[PathPiece], bic_n: int) -> str:
    """`H = 4 for 3 <= N < 41.2, H = 6 for N >= 41.2 (this stream's N = 10)`."""
    pieces = [
        f"H = {p.latent_dim} for "
        + (f"N >= {_n(p.n_from)}" if p.n_to is None else f"{_n(p.n_from)} <= N < {_n(p.n_to)}")
        for p in path
    ]
    return f"{', '.join(pieces)} (this stream's N = {bic_n})"


def _n(n: float) -> str:
    return f"{n:,.0f}" if n >= 1000 else f"{n:.3g}"


def collapse_table(collapse: Collapse) -> Table:
    """Per candidate H, each latent's encoder entropy; collapsed latents marked."""
    table = Table(caption=f"* collapsed: encoder entropy above {collapse.threshold:g}")
    table.add_column("H", justify="right")
    table.add_column("active", justify="right")
    table.add_column("encoder entropy of each latent", justify="left")
    for m in collapse.models:
        cells = [
            f"{h + 0.0:.2f}{'*' if gone else ''}".replace("-0.00", "0.00")
            for h, gone in zip(m.encoder_entropies, m.collapsed, strict=True)
        ]
        table.add_row(str(m.latent_dim), f"{m.active_latents}/{m.latent_dim}", "  ".join(cells))
    return table


def step_line(selection: Selection) -> Text:
    """`step 121  best H=4  BIC  H2 329.4 | H4 300.5*`: one line per applied batch."""
    mark = "?" if provisional(selection) else ""
    text = Text(f"step {selection.step:>7}  best H={_h(selection.best_latent_dim)}{mark}  BIC ")
    for i, m in enumerate(selection.models):
        best = m.latent_dim == selection.best_latent_dim
        text.append(" | " if i else " ")
        text.append(f"H{m.latent_dim} {m.bic:.1f}", style="bold green" if best else None)
    return text


def change_line(event: SelectionChangeEvent) -> Text:
    return Text(
        f">> step {event.step}: best H changed {_h(event.previous)} -> {event.best_latent_dim}",
        style="bold black on yellow",
    )


@dataclass
class WatchView:
    """What `dimwatch watch` shows live: the latest scores and the recent changes of H."""

    stream: str
    selection: Selection | None = None
    changes: tuple[SelectionChangeEvent, ...] = ()

    def render(self) -> RenderableType:
        parts: list[RenderableType] = [Text(f"watching {self.stream!r} (Ctrl-C to stop)")]
        if self.selection is None:
            parts.append(Text("waiting for the next batch ...", style="dim"))
        else:
            parts.append(selection_table(self.selection))
        for change in self.changes[-5:]:
            parts.append(change_line(change))
        return Group(*parts)


@dataclass(frozen=True)
class ChunkSummary:
    """How the selection fared on one chunk of the demo stream."""

    index: int
    true_dim: int
    rows: int
    selected_at_end: int | None  # best H after the chunk's last batch
    right_in_second_half: float  # fraction of the chunk's second half where best H == true_dim


def demo_table(chunks: Sequence[ChunkSummary]) -> Table:
    table = Table(title="selected latent dimension per chunk", title_justify="left")
    for name in ("chunk", "rows", "true dim", "H at chunk end", "right in 2nd half"):
        table.add_column(name, justify="right")
    for c in chunks:
        right = c.selected_at_end == c.true_dim
        table.add_row(
            str(c.index + 1),
            str(c.rows),
            str(c.true_dim),
            Text(_h(c.selected_at_end), style="bold green" if right else "bold red"),
            f"{100 * c.right_in_second_half:.0f}%",
        )
    return table
