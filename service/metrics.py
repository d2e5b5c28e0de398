"""Prometheus metrics of one app, in their own registry (several apps can live in one process)."""

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streaming.report import StepReport, effective_rank

# (name, its last report or None before a batch) of every stream this process serves
StreamReports = Callable[[], Iterable[tuple[str, StepReport | None]]]


class Metrics:
    """The counters docs/api.md promises under GET /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batches = Counter("dimwatch_batches", "Batches applied (training steps)", registry=r)
        self.rows = Counter("dimwatch_rows", "Rows learned", registry=r)
        self.step_seconds = Histogram(
            "dimwatch_step_seconds",
            "Time to apply one batch: its training step and its durable commit, which overlap",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "dimwatch_commit_seconds",
            "Time from a batch's hand-off to its log until it is durable (in step_seconds)",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0),
            registry=r,
        )
        self.streams = Gauge("dimwatch_streams", "Live streams", registry=r)
        self.unavailable = Gauge(
            "dimwatch_streams_unavailable",
            "Stored streams that cannot be served (restore or reload failed)",
            registry=r,
        )
        self.memory = Gauge(
            "dimwatch_memory_reserved_bytes",
            "Memory budget reserved: by stream banks (resident) and batches in progress",
            ["kind"],
            registry=r,
        )
        self.memory_budget = Gauge(
            "dimwatch_memory_budget_bytes",
            "The memory budget (DIMWATCH_MEMORY_BUDGET_MB)",
            registry=r,
        )
        self.selection_changes = Counter(
            "dimwatch_selection_changes", "Times a stream's best latent size changed", registry=r
        )
        self.rejected = Counter(
            "dimwatch_rejected", "Requests answered with an error, by code", ["reason"], registry=r
        )
        self._per_stream: StreamGauges | None = None

    def watch(self, source: StreamReports) -> None:
        """Serve the per-stream gauges of `source`'s streams (read at each scrape, so a deleted
        stream's series goes with it); a second call replaces the source."""
        if self._per_stream is None:
            self._per_stream = StreamGauges(source)
            self.registry.register(self._per_stream)
        self._per_stream.source = source


class StreamGauges(Collector):
    """Per stream, what a collapse alert needs (docs/operations.md): the BIC pick, the effective
    rank of the pick's fitted covariance, and the rows seen (so that a rule waits for data)."""

    def __init__(self, source: StreamReports) -> None:
        self.source = source

    def describe(self) -> Iterable[Metric]:
        return []  # no collect() at registration: the source may not be ready yet

    def collect(self) -> Iterator[Metric]:
        pick = GaugeMetricFamily(
            "dimwatch_stream_best_latent_dim", "The stream's BIC pick H", labels=["stream"]
        )
        rank = GaugeMetricFamily(
            "dimwatch_stream_effective_rank",
            "Effective rank of the pick's fitted covariance W W^T + sigma2 I (1..D)",
            labels=["stream"],
        )
        rows = GaugeMetricFamily(
            "dimwatch_stream_rows_seen", "Rows the stream has learned", labels=["stream"]
        )
        for name, report in self.source():
            if report is None:
                continue
            best = next(m for m in report.models if m.latent_dim == report.best_latent_dim)
            pick.add_metric([name], report.best_latent_dim)
            rank.add_metric([name], effective_rank(best.sigma2, best.tau2, report.dim))
            rows.add_metric([name], report.rows_seen)
        yield from (pick, rank, rows)
