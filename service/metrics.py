"""Prometheus metrics of one app, in their own registry (several apps can live in one process)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The counters docs/api.md promises under GET /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batches = Counter("dimwatch_batches", "Batches applied (training steps)", registry=r)
        self.rows = Counter("dimwatch_rows", "Rows learned", registry=r)
        self.step_seconds = Histogram(
            "dimwatch_step_seconds",
            "Time to apply one batch: training step plus durable commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "dimwatch_commit_seconds",
            "Time from a trained batch's hand-off to its log until it is durable (in step_seconds)",
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
