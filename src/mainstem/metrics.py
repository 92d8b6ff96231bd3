"""Prometheus metrics (``/metrics``).

Gateway metrics live in this process. The processor's counts are kept in the pipeline database,
committed with its outputs (so they are exactly-once and survive restarts); a collector reads
them at scrape time, together with the log lag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# `_created` series are noise for counters that start with the process.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mainstem_http_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.events_accepted = Counter(
            "mainstem_ingest_events_accepted",
            "Events in requests answered 200, by source.",
            ["source"],
            registry=self.registry,
        )
        self.requests_rejected = Counter(
            "mainstem_ingest_requests_rejected",
            "Ingest requests refused as a whole, by reason (project_not_found, source_disabled, "
            "invalid_json, payload_too_large, a discard code, ...).",
            ["reason"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "mainstem_ingest_bytes",
            "Request body bytes received (after gzip).",
            registry=self.registry,
        )
        self.latency = Histogram(
            "mainstem_ingest_request_seconds",
            "Ingest request latency, from first byte to answer.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_groups = Counter(
            "mainstem_log_commits",
            "Event log transactions (group commits).",
            registry=self.registry,
        )
        self.commit_records = Counter(
            "mainstem_log_committed_requests",
            "Requests committed to the event log.",
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "mainstem_log_commit_seconds",
            "Time to commit one group to the event log.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def on_commit(self, records: int, seconds: float) -> None:
        self.commit_groups.inc()
        self.commit_records.inc(records)
        self.commit_seconds.observe(seconds)

    def add_pipeline(
        self, counters: Callable[[], dict[tuple[str, str], int]], lag: Callable[[], int]
    ) -> None:
        self.registry.register(_PipelineCollector(counters, lag))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PipelineCollector(Collector):
    def __init__(
        self, counters: Callable[[], dict[tuple[str, str], int]], lag: Callable[[], int]
    ) -> None:
        self._counters = counters
        self._lag = lag

    def collect(self) -> Iterator[Metric]:
        stored = CounterMetricFamily(
            "mainstem_processor_events_stored",
            "Events written to the event store.",
            labels=["source", "type"],
        )
        rejected = CounterMetricFamily(
            "mainstem_processor_events_rejected",
            "Messages rejected by discard code.",
            labels=["source", "code"],
        )
        batches = CounterMetricFamily(
            "mainstem_processor_batches_with_rejections",
            "Batches with rejected messages: empty_batch_result (all) or multi_user_error (some).",
            labels=["source", "code"],
        )
        duplicates = CounterMetricFamily(
            "mainstem_processor_events_duplicate", "Messages dropped as duplicate messageIds."
        )
        try:
            counters = self._counters()
            lag = self._lag()
        except Exception:  # storage not ready: report nothing rather than fail the scrape
            return
        duplicate_total = 0
        for (name, label), value in sorted(counters.items()):
            first, _, second = label.partition("/")
            if name == "events_stored":
                stored.add_metric([first, second], value)
            elif name == "events_rejected":
                rejected.add_metric([first, second], value)
            elif name == "batches_with_rejections":
                batches.add_metric([first, second], value)
            elif name == "events_duplicate":
                duplicate_total += value
        duplicates.add_metric([], duplicate_total)
        yield stored
        yield rejected
        yield batches
        yield duplicates
        yield GaugeMetricFamily(
            "mainstem_log_lag", "Requests in the event log not yet processed.", value=lag
        )
