"""Plan inference from collected events, and plan diff (library and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mainstem.cli import app
from mainstem.logrecord import LogRecord
from mainstem.plans import diff, inference, yaml_format
from mainstem.plans.enforcement import CompiledPlan, Enforcement, decide
from mainstem.processor import Limits, Processor
from mainstem.storage.sqlite.eventlog import SqliteEventLog
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

runner = CliRunner()
MESSAGES = [
    {"type": "track", "event": "Order Completed", "messageId": "1", "anonymousId": "a",
     "properties": {"total": 5, "coupon": None, "products": [{"sku": "a", "qty": 1}]}},
    {"type": "track", "event": "Order Completed", "messageId": "2", "anonymousId": "a",
     "properties": {"total": 5.5, "products": [{"sku": "b"}], "meta": {"ab": "x"}}},
    {"type": "identify", "messageId": "3", "anonymousId": "a", "traits": {"email": "a@b.c"}},
    {"type": "page", "messageId": "4", "anonymousId": "a", "properties": {}},  # no name
]  # fmt: skip


def test_inference_drafts_a_plan_the_events_pass() -> None:
    plan = inference.infer(MESSAGES, "web")
    assert yaml_format.dumps(plan) == (
        "plan: web\n"
        "description: Drafted from collected events\n"
        "events:\n"
        "  Order Completed:\n"
        "    properties:\n"
        "      coupon: 'null'\n"
        "      meta:\n"
        "        type: object\n"
        "        properties:\n"
        "          ab:\n"
        "            type: string\n"
        "            required: true\n"
        "      products:\n"
        "        type: array\n"
        "        required: true\n"
        "        items:\n"
        "          type: object\n"
        "          properties:\n"
        "            qty: integer\n"
        "            sku:\n"
        "              type: string\n"
        "              required: true\n"
        "      total:\n"
        "        type: number\n"
        "        required: true\n"
        "identify:\n"
        "  traits:\n"
        "    email:\n"
        "      type: string\n"
        "      required: true\n"
    )
    compiled = CompiledPlan(plan)
    for message in MESSAGES:
        assert decide(message, compiled, Enforcement(), "web").findings == []


def test_diff_names_every_change() -> None:
    old = yaml_format.loads(
        "plan: web\nevents:\n  A:\n    properties:\n      total: {type: number, required: true}\n"
        "      coupon: string\n  Gone: {}\n"
    )
    new = yaml_format.loads(
        "plan: web\nevents:\n  A:\n    properties:\n      total: string\n"
        "      sku: {type: string, required: true}\n  New: {}\n"
        "identify: {traits: {email: string}}\n"
    )
    assert [str(change) for change in diff.diff(old, new)] == [
        '- track "A" properties.coupon',
        '+ track "A" properties.sku (required)',
        '~ track "A" properties.total: {"type": "number"} → {"type": "string"}',
        '~ track "A" properties.total: required → optional',
        '- track "Gone"',
        '+ track "New"',
        "+ identify",
    ]


def test_infer_and_diff_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    log = SqliteEventLog(data / "log-0.db")
    store = SqlitePipelineStore(data / "pipeline.db")
    log.append(
        [
            LogRecord(
                source_id="web", received_at=2**50, body=json.dumps({"batch": MESSAGES}).encode()
            )
        ]
    )
    Processor(log, store, limits=Limits(), dedupe_window=86400).drain()
    log.close()
    store.close()
    drafted = tmp_path / "draft.yaml"
    args = ["plan", "infer", "--source", "web", "--data-dir", str(data), "--since", "2000-01-01"]
    result = runner.invoke(app, [*args, "-o", str(drafted)])
    assert result.exit_code == 0, result.output
    assert yaml_format.loads(drafted.read_text()) == inference.infer(MESSAGES[:3], "web")
    assert result.stderr.endswith("drafted from 4 messages\n")

    changed = tmp_path / "changed.yaml"
    changed.write_text(drafted.read_text().replace("type: number", "type: string"))
    same = runner.invoke(app, ["plan", "diff", str(drafted), str(drafted), "--exit-code"])
    assert (same.exit_code, same.stdout) == (0, "no changes\n")
    result = runner.invoke(app, ["plan", "diff", str(drafted), str(changed), "--exit-code"])
    assert result.exit_code == 1
    assert result.stdout == (
        '~ track "Order Completed" properties.total: {"type": "number"} → {"type": "string"}\n'
    )
    empty = runner.invoke(app, ["plan", "infer", "--source", "ios", "--data-dir", str(data)])
    assert empty.exit_code == 1
    assert "no events from source 'ios' since 7d — widen --since" in empty.stderr
