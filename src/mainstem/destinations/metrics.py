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
        lag = GaugeMetricFamily(
            "mainstem_destination_lag",
            "Stored events a destination has not handled yet.",
            labels=["destination"],
        )
        for row in rows:
            lag.add_metric([row["id"]], row["lag"])
        yield lag
