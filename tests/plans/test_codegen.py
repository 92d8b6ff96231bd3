"""Typed clients: the generated module passes ``mypy --strict`` with segment-analytics-python,
catches a wrong call, and sends the exact event name, properties and context."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from mypy import api as mypy_api
from typer.testing import CliRunner

from mainstem.cli import app

runner = CliRunner()
PLAN = """\
plan: web
events:
  Order Completed:
    description: Fires when checkout succeeds
    properties:
      order_id: {type: string, required: true}
      total: {type: number, required: true}
      currency: {type: string, enum: [USD, EUR]}
      products:
        type: array
        items:
          type: object
          properties:
            sku: {type: string, required: true}
  Signed Up:
    - version: 1
      properties: {plan: string}
    - version: 2
      properties: {plan: {type: string, required: true}, 2fa: boolean}
"""
GOOD = """\
from web_analytics import order_completed, signed_up
import segment.analytics as analytics  # type: ignore[import-untyped]
order_completed(analytics, {"order_id": "o1", "total": 5.0, "currency": "EUR"}, user_id="u")
signed_up(analytics, {"plan": "pro", "2fa": True}, anonymous_id="a")
"""
BAD = """\
from web_analytics import order_completed
import segment.analytics as analytics  # type: ignore[import-untyped]
order_completed(analytics, {"order_id": "o1", "total": "5", "currency": "GBP"})
"""


class Recorder:
    """Stands in for the analytics client: records what the generated code sends."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def track(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


def test_generated_python_client(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN, encoding="utf-8")
    module = tmp_path / "web_analytics.py"
    result = runner.invoke(
        app,
        ["plan", "codegen", str(tmp_path / "plan.yaml"), "--language", "python", "-o", str(module)],
    )
    assert result.exit_code == 0, result.output
    (tmp_path / "good.py").write_text(GOOD, encoding="utf-8")
    (tmp_path / "bad.py").write_text(BAD, encoding="utf-8")
    args = ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy")]
    out, err, status = mypy_api.run([*args, str(module), str(tmp_path / "good.py")])
    assert status == 0, out + err
    out, _, status = mypy_api.run([*args, str(module), str(tmp_path / "bad.py")])
    assert status == 1
    assert (
        'Incompatible types (expression has type "str", TypedDict item "total" has type "float")'
        in out
    )
    assert (
        "Incompatible types (expression has type \"Literal['GBP']\", TypedDict item "
        "\"currency\" has type \"Literal['USD', 'EUR']\")"
    ) in out

    spec = importlib.util.spec_from_file_location("web_analytics", module)
    assert spec is not None and spec.loader is not None
    generated = importlib.util.module_from_spec(spec)
    sys.modules["web_analytics"] = generated
    try:
        spec.loader.exec_module(generated)
    finally:
        del sys.modules["web_analytics"]
    client = Recorder()
    generated.signed_up(client, {"plan": "pro", "2fa": True}, user_id="u")
    [call] = client.calls
    assert json.loads(json.dumps(call)) == {
        "user_id": "u",
        "anonymous_id": None,
        "event": "Signed Up",
        "properties": {"plan": "pro", "2fa": True},
        "context": {
            "protocols": {"event_version": 2},
            "typewriter": {"language": "python", "version": generated._TYPEWRITER["version"]},
        },
    }
