"""Prometheus metrics (``/metrics``).

Gateway metrics live in this process. The processor's counts are kept in the pipeline database,
committed with its outputs (so they are exactly-once and survive restarts); a collector reads
them at scrape time, together with the log lag.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Tally:
    """Counts by label values: a plain dict, no lock.

    prometheus-client's counters take a lock per increment, which cost the gateway more than its
    own work per single-event request. Each tally has one writer (the event loop, or the log
    writer thread); the scrape only reads.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.values: dict[tuple[str, ...], float] = {} if labels else {(): 0}

    def add(self, key: tuple[str, ...] = (), amount: float = 1) -> None:
        self.values[key] = self.values.get(key, 0) + amount

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for key, value in sorted(self.values.copy().items()):  # copy(): atomic under the GIL
            family.add_metric(list(key), value)
        return family


class Timings:
    """A histogram of seconds, lock-free like :class:`Tally`."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def family(self) -> Metric:
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        counts = list(self.counts)
        for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, self.total)
        return family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Tally(
            "mainstem_http_requests", "HTTP requests by route and status.", ("route", "status")
        )
        self.events_accepted = Tally(
            "mainstem_ingest_events_accepted",
            "Events in requests answered 200, by source.",
            ("source",),
        )
        self.requests_rejected = Tally(
            "mainstem_ingest_requests_rejected",
            "Ingest requests refused as a whole, by reason (project_not_found, source_disabled, "
            "invalid_json, payload_too_large, a discard code, ...).",
            ("reason",),
        )
        self.bytes = Tally("mainstem_ingest_bytes", "Request body bytes received (after gzip).")
        self.latency = Timings(
            "mainstem_ingest_request_seconds", "Ingest request latency, from first byte to answer."
        )
        self.commit_groups = Tally(
            "mainstem_log_commits", "Event log transactions (group commits)."
        )
        self.commit_records = Tally(
            "mainstem_log_committed_requests", "Requests committed to the event log."
        )
        self.commit_seconds = Timings(
            "mainstem_log_commit_seconds", "Time to commit one group to the event log."
        )
        self.registry.register(_Families(self))

    def on_commit(self, records: int, seconds: float) -> None:
        """Called by the log writer thread after each group commit."""
        self.commit_groups.add()
        self.commit_records.add((), records)
        self.commit_seconds.observe(seconds)

    def add_pipeline(
        self, counters: Callable[[], dict[tuple[str, str], int]], lag: Callable[[], int]
    ) -> None:
        self.registry.register(_PipelineCollector(counters, lag))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Families(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        for source in (
            m.requests,
            m.events_accepted,
            m.requests_rejected,
            m.bytes,
            m.latency,
            m.commit_groups,
            m.commit_records,
            m.commit_seconds,
        ):
            yield source.family()


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
        suppressed = CounterMetricFamily(
            "mainstem_processor_events_suppressed",
            "Messages dropped because their userId is suppressed (docs/privacy.md).",
            labels=["source"],
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
            elif name == "events_suppressed":
                suppressed.add_metric([label], value)
            elif name == "events_duplicate":
                duplicate_total += value
        duplicates.add_metric([], duplicate_total)
        yield stored
        yield rejected
        yield batches
        yield suppressed
        yield duplicates
        yield GaugeMetricFamily(
            "mainstem_log_lag", "Requests in the event log not yet processed.", value=lag
        )
