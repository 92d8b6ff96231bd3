"""Per-destination Prometheus metrics, read from ``delivery.db`` at scrape time (the totals are
committed with each destination's cursor, so they survive restarts)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

_COUNTERS = (
    ("delivered", "mainstem_destination_events_delivered", "Events a destination accepted."),
    (
        "filtered",
        "mainstem_destination_events_filtered",
        "Events not sent: source, type, consent, integrations or filters.",
    ),
    (
        "dead_letters",
        "mainstem_destination_events_dead",
        "Events dead-lettered (discarded by a 4xx or out of retry window).",
    ),
    ("retries", "mainstem_destination_retries", "Failed attempts that were retried."),
)
_GAUGES = (
    ("lag", "mainstem_destination_lag", "Stored events a destination has not handled yet."),
    (
        "oldest_undelivered_seconds",
        "mainstem_destination_oldest_undelivered_seconds",
        "Age of the oldest stored event a destination has not handled yet (0 when caught up).",
    ),
    (
        "latency_seconds",
        "mainstem_destination_latency_seconds",
        "Receipt to acceptance of the oldest event of the last delivered batch.",
    ),
)


class DeliveryCollector(Collector):
    def __init__(self, overview: Callable[[], list[dict[str, Any]]]) -> None:
        self._overview = overview

    def collect(self) -> Iterator[Metric]:
        try:
            rows = self._overview()
        except Exception:  # storage not ready: report nothing rather than fail the scrape
            return
        for key, name, documentation in _COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=["destination"])
            for row in rows:
                family.add_metric([row["id"]], row[key])
            yield family
        dropped = CounterMetricFamily(
            "mainstem_destination_events_dropped",
            "Events not sent, by the routing step that stopped them (disabled, source, type, "
            "consent, integrations, filter, unsupported, unreadable).",
            labels=["destination", "reason"],
        )
        for row in rows:
            for reason, count in sorted(row["filtered_by"].items()):
                dropped.add_metric([row["id"], reason], count)
        yield dropped
        for key, name, documentation in _GAUGES:
            gauge = GaugeMetricFamily(name, documentation, labels=["destination"])
            for row in rows:
                if row[key] is not None:
                    gauge.add_metric([row["id"]], row[key])
            yield gauge
