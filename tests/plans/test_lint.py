"""The tracking-code linter on Python, JavaScript and TypeScript sources, and ``mainstem plan
lint``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mainstem.cli import app
from mainstem.plans import lint, yaml_format

runner = CliRunner()
PLAN_TEXT = """\
plan: web
events:
  Order Completed:
    properties:
      order_id: {type: string, required: true}
      total: {type: number, required: true}
      coupon: [string, "null"]
"""
PLAN = yaml_format.loads(PLAN_TEXT)
WHERE = '(tracking plan "web", event "Order Completed")'
JS = """\
analytics.track("Order Completed", { order_id: "o1", total: 5 });
analytics.track("Order Complete", { order_id: "o1", total: 5 });
window.analytics.track(`Order Completed`, { order_id: 1, total: "5", colour: "red" });
analytics.track("Order Completed", { ...base, coupon: null });
analytics.track(name, { anything: true });
"""
PY = """\
analytics.track("u1", "Order Completed", {"order_id": "o1", "total": 5.5})
client.track(user_id="u1", event="Order Completed", properties={"total": 5, "coupon": False})
analytics.track("u1", "Signup", {})
analytics.track("u1", f"Order {kind}", {"x": 1})
analytics.track("u1", "Order Completed", {**base})
"""


@pytest.mark.parametrize(("language", "path"), [("javascript", "app.js"), ("tsx", "app.tsx")])
def test_javascript_and_typescript(language: str, path: str) -> None:
    assert [str(p) for p in lint.lint(JS.encode(), language, PLAN, path)] == [
        f'{path}:2:17: event "Order Complete" is not in tracking plan "web" — did you mean '
        '"Order Completed"?',
        f"{path}:3:55: properties.order_id: expected string, got integer 1 {WHERE}",
        f'{path}:3:65: properties.total: expected number, got string "5" {WHERE}',
        f"{path}:3:70: properties.colour: not planned {WHERE}",
    ]


def test_python() -> None:
    assert [str(p) for p in lint.lint(PY.encode(), "python", PLAN, "app.py")] == [
        f"app.py:2:87: properties.coupon: expected string or null, got boolean False {WHERE}",
        f"app.py:2:64: properties.order_id: required but missing {WHERE}",
        'app.py:3:23: event "Signup" is not in tracking plan "web" — add it to the plan',
    ]


def test_the_lint_command(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN_TEXT, encoding="utf-8")
    code = tmp_path / "src"
    (code / "node_modules").mkdir(parents=True)
    (code / "app.ts").write_text('analytics.track("Order Completed", {total: 5});\n')
    (code / "node_modules" / "lib.js").write_text('analytics.track("Nope");\n')
    (code / "README.md").write_text('analytics.track("Nope")\n')
    result = runner.invoke(app, ["plan", "lint", str(tmp_path / "plan.yaml"), str(code)])
    assert result.exit_code == 1
    assert result.stdout == (
        f"{code / 'app.ts'}:1:36: properties.order_id: required but missing {WHERE}\n"
    )
    assert result.stderr == "1 problems in 1 files\n"
