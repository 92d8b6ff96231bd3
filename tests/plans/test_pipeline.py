"""Enforcement in the processor: violations committed with the events, blocked events and
violations forwarded to another source, and a replay writes the same rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mainstem.intake import Limits
from mainstem.logrecord import LogRecord
from mainstem.plans import yaml_format
from mainstem.plans.enforcement import Controls, Enforcement
from mainstem.plans.governance import SourcePlan
from mainstem.processor import Processor
from mainstem.storage import EventQuery, ViolationQuery
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

PLAN = yaml_format.loads(
    """\
plan: web
events:
  Order Completed:
    properties:
      order_id: {type: string, required: true}
      total: {type: number, required: true}
"""
)
AT = 1_700_000_000_000_000
MESSAGES = [
    {"type": "track", "event": "Order Completed", "userId": "u", "messageId": "ok",
     "properties": {"order_id": "o1", "total": 5}},
    {"type": "track", "event": "Order Completed", "userId": "u", "messageId": "bad",
     "properties": {"order_id": "o2", "total": "5", "coupon": "X"}},
    {"type": "track", "event": "Order Complete", "userId": "u", "messageId": "typo",
     "properties": {}},
]  # fmt: skip


def run(root: Path, enforcement: Enforcement) -> tuple[SqlitePipelineStore, SqliteEventLog]:
    log = SqliteEventLog(root / "log-0.db")
    store = SqlitePipelineStore(root / "pipeline.db")
    log.append(
        [LogRecord(source_id="web", received_at=AT, body=json.dumps({"batch": MESSAGES}).encode())]
    )
    plans = (SourcePlan("web", "Website", PLAN, enforcement),)
    Processor(log, store, limits=Limits(), dedupe_window=86400, plans=plans).drain()
    return store, log


def stored(store: SqlitePipelineStore, source: str) -> list[dict[str, Any]]:
    rows = store.events(EventQuery(source=source, after=0))
    return [json.loads(row.body) for row in rows]


def test_violations_and_omissions_are_committed_with_the_events(tmp_path: Path) -> None:
    enforcement = Enforcement(
        track=Controls(unplanned_events="block", unplanned_fields="omit"),
        forward_blocked_to="audit",
        forward_violations_to="audit",
    )
    store, log = run(tmp_path, enforcement)
    web = stored(store, "web")
    assert [m["messageId"] for m in web] == ["ok", "bad"]
    assert web[1]["properties"] == {"order_id": "o2", "total": "5"}
    assert web[1]["context"]["protocols"] == {
        "sourceId": "web",
        "omitted": ["coupon"],
        "omitted_on_violation": [],
        "violations": [
            {
                "type": "Invalid Type",
                "field": "properties.total",
                "description": "Invalid type. Expected: number, given: string",
            }
        ],
    }
    rows = store.violations(ViolationQuery(after=0))
    assert [
        (r.source_id, r.violation.message_id, r.violation.event, r.violation.type,
         r.violation.field, r.violation.action, r.violation.plan, r.violation.event_version)
        for r in rows
    ] == [
        ("web", "bad", "Order Completed", "Invalid Type", "properties.total", "allowed", "web", 1),
        ("web", "bad", "Order Completed", "Unplanned Property", "properties.coupon", "omitted",
         "web", 1),
        ("web", "typo", "Order Complete", "Unplanned Event", "event", "blocked", "web", None),
    ]  # fmt: skip
    assert json.loads(rows[1].violation.payload)["properties"]["coupon"] == "X"
    audit = stored(store, "audit")
    assert [(m["event"], m["messageId"]) for m in audit] == [
        ("Violation Generated", "sch-bad-0"),
        ("Violation Generated", "sch-bad-1"),
        ("Violation Generated", "sch-typo-0"),
        ("Order Complete", "typo"),
    ]
    assert audit[0]["userId"] == "schema-violations"
    assert audit[0]["forwardedFromProject"] == "web"
    assert {k: audit[0]["properties"][k] for k in ("eventName", "violationType")} == {
        "eventName": "Order Completed",
        "violationType": "Invalid Type",
    }
    assert audit[3]["forwardedFromProject"] == "web"
    assert audit[3]["properties"] == {}
    counters = store.counters()
    assert counters[("events_blocked", "web/track")] == 1
    assert counters[("violations", "web/Unplanned Event")] == 1
    store.close()

    # a replay of the same log from scratch writes the same rows
    again, log2 = run(tmp_path / "again", enforcement)
    assert stored(again, "web") == web and stored(again, "audit") == audit
    assert [r.violation for r in again.violations(ViolationQuery(after=0))] == [
        r.violation for r in rows
    ]
    for closable in (again, log, log2):
        closable.close()


def test_without_a_plan_nothing_is_checked(tmp_path: Path) -> None:
    log = SqliteEventLog(tmp_path / "log-0.db")
    store = SqlitePipelineStore(tmp_path / "pipeline.db")
    log.append(
        [LogRecord(source_id="web", received_at=AT, body=json.dumps({"batch": MESSAGES}).encode())]
    )
    Processor(log, store, limits=Limits(), dedupe_window=86400).drain()
    assert len(stored(store, "web")) == 3
    assert store.violations(ViolationQuery()) == []
    log.close()
    store.close()
