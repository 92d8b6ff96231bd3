"""Processor throughput with a 50-event tracking plan enforced, next to the same processor
without a plan over the very same log, in the same run (target: ratio >= 0.7 with 10% of the
events invalid). Writes the ``## Tracking plans`` section of docs/benchmarks.md.

Usage: .venv/bin/python bench/plans.py [--events 100000] [--violations 0.1] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.plans import yaml_format
from mainstem.plans.enforcement import Controls, Enforcement
from mainstem.plans.governance import SourcePlan
from mainstem.processor import Processor
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from report import write_section  # type: ignore[import-not-found]

EVENTS = 50
RECEIVED = 1_714_557_600_000_000


def plan_text() -> str:
    lines = ["plan: bench", "events:"]
    for n in range(EVENTS):
        lines += [
            f"  Event {n}:",
            "    properties:",
            "      order_id: {type: string, required: true}",
            "      total: {type: number, required: true}",
            "      currency: {type: string, enum: [USD, EUR, GBP]}",
            "      coupon: [string, 'null']",
            "      products:",
            "        type: array",
            "        items:",
            "          type: object",
            "          properties:",
            "            sku: {type: string, required: true}",
            "            price: number",
        ]
    lines += [
        "identify:",
        "  traits:",
        "    email: {type: string, required: true}",
        "common:",
        "  context:",
        "    type: object",
        "    properties:",
        "      library: {type: object, required: true}",
    ]
    return "\n".join(lines) + "\n"


def message(i: int, rng: random.Random, violations: float) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "order_id": f"o{i}",
        "total": round(rng.random() * 100, 2),
        "currency": rng.choice(["USD", "EUR", "GBP"]),
        "coupon": None,
        "products": [{"sku": f"s{i % 97}", "price": 9.5}, {"sku": "x", "price": 1}],
    }
    if rng.random() < violations:
        properties["total"] = str(properties["total"])
    return {
        "type": "track",
        "event": f"Event {i % EVENTS}",
        "anonymousId": f"anon-{i % 5000}",
        "messageId": f"m-{i}",
        "timestamp": "2024-05-01T09:59:59.123Z",
        "context": {"library": {"name": "analytics.js", "version": "next-1.84.1"}},
        "properties": properties,
    }


def run(root: Path, log: SqliteEventLog, plans: tuple[SourcePlan, ...]) -> float:
    store = SqlitePipelineStore(root / "pipeline.db", fsync=False)
    processor = Processor(
        log, store, limits=Limits(), dedupe_window=86400, batch_records=64, plans=plans
    )
    start = time.perf_counter()
    processor.drain()
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--violations", type=float, default=0.10)
    parser.add_argument("--no-write", action="store_true", help="Do not update the docs.")
    args = parser.parse_args()
    rng = random.Random(7)
    plan = yaml_format.loads(plan_text())
    enforced = (
        SourcePlan(
            "web",
            "Web",
            plan,
            Enforcement(track=Controls(unplanned_fields="omit", fields_on_violation="omit")),
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log = SqliteEventLog(root / "log-0.db", fsync=False)
        records = [
            LogRecord(
                source_id="web",
                received_at=RECEIVED + b,
                body=json.dumps(
                    {"batch": [message(b * 100 + k, rng, args.violations) for k in range(100)]}
                ).encode(),
            )
            for b in range(args.events // 100)
        ]
        log.append(records)
        results: dict[str, float] = {}
        for round_ in range(3):  # alternate, best of three: the machine is noisy
            for name, plans in (("without a plan", ()), ("with a 50-event plan", enforced)):
                (root / f"{name}-{round_}").mkdir()
                rate = args.events / run(root / f"{name}-{round_}", log, plans)
                results[name] = max(results.get(name, 0.0), rate)
        log.close()
    ratio = results["with a 50-event plan"] / results["without a plan"]
    lines = [
        "## Tracking plans",
        "",
        "<!-- Written by bench/plans.py: this section is replaced on every run. -->",
        "",
        "Command: `.venv/bin/python bench/plans.py`  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- nproc: {os.cpu_count()}; Python {platform.python_version()}",
        f"- {args.events:,} track events in batches of 100 in one SQLite event log, "
        f"{args.violations:.0%} of them invalid (a number sent as a string); the processor "
        "drains it into a fresh event store (no fsync), once without a plan and once with a "
        "50-event plan (required properties, enums, nested arrays, a common schema) enforced "
        "with `omit` on violations and unplanned properties; best of three alternating runs",
        "",
        "| processor | events/s |",
        "|---|--:|",
        *(f"| {name} | {rate:,.0f} |" for name, rate in results.items()),
        "",
        f"Ratio with ÷ without: **{ratio:.2f}** (target ≥ 0.70 — "
        + ("met" if ratio >= 0.7 else "NOT met")
        + ").",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section("Tracking plans", section)


if __name__ == "__main__":
    main()
