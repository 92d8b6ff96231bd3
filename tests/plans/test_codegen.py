"""Typed clients: the generated Python module passes ``mypy --strict`` with
segment-analytics-python and the TypeScript one ``tsc --strict`` with @segment/analytics-node;
both reject wrong calls (a missing required property, a wrong type, a value outside an enum) and
send the exact event name, properties and context."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mypy import api as mypy_api
from typer.testing import CliRunner

from mainstem import __version__
from mainstem.cli import app
from mainstem.plans import lint

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
  Delete:
    description: |-
      A reserved word as an event name, and a */ in a
      description that spans lines
    properties:
      reason: {type: [string, "null"], enum: [spam, other, null], required: true}
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
order_completed(analytics, {"order_id": "o2"})
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
    assert 'Missing key "total" for TypedDict "OrderCompleted"' in out
    assert out.count("error:") == 3, out

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
    # the generated code passes the linter (nothing dynamic, a timestamp parameter)
    assert lint.lint([("web_analytics.py", module.read_bytes())]) == []
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
        "timestamp": None,
        "integrations": None,
    }


JS = Path(__file__).resolve().parent.parent / "js"
TSC = JS / "node_modules" / "typescript" / "bin" / "tsc"
TS_GOOD = """\
import { Analytics } from "@segment/analytics-node";
import { _delete, orderCompleted, signedUp } from "./gen/web_analytics";

const analytics = new Analytics({ writeKey: "test-key" });
_delete(analytics, { reason: null }, { userId: "u1" });
orderCompleted(
  analytics,
  { order_id: "o1", total: 5, currency: "EUR", products: [{ sku: "s1" }] },
  { userId: "u1" },
);
signedUp(analytics, { plan: "pro", "2fa": true }, { anonymousId: "a1", timestamp: new Date() });
"""
TS_BAD = """\
import { Analytics } from "@segment/analytics-node";
import { orderCompleted, signedUp } from "./gen/web_analytics";

const analytics = new Analytics({ writeKey: "test-key" });
orderCompleted(analytics, { order_id: "o1" }, { userId: "u1" });
orderCompleted(analytics, { order_id: "o1", total: 5, currency: "GBP" }, { userId: "u1" });
signedUp(analytics, { plan: 2 }, { userId: "u1" });
signedUp(analytics, { plan: "pro" }, { timestamp: new Date() });
"""
TS_RUN = """\
import type { Analytics } from "@segment/analytics-node";
import { signedUp } from "./gen/web_analytics";

const calls: unknown[] = [];
const recorder = { track: (params: unknown) => calls.push(params) } as unknown as Analytics;
signedUp(recorder, { plan: "pro" }, { userId: "u1", context: { ip: "1.2.3.4" } });
console.log(JSON.stringify(calls));
"""


def _tsc(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node is not None, "node is not on PATH — install Node.js (CI: `make test` needs it)"
    assert TSC.exists(), f"{TSC} is missing — run `make node` (npm ci in tests/js) first"
    options = ["--strict", "--target", "es2022", "--module", "commonjs"]
    return subprocess.run(
        [node, str(TSC), *options, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_generated_typescript_client(tmp_path: Path) -> None:
    (tmp_path / "plan.yaml").write_text(PLAN, encoding="utf-8")
    result = runner.invoke(
        app,
        [
            "plan",
            "codegen",
            str(tmp_path / "plan.yaml"),
            "--lang",
            "typescript",
            "-o",
            str(tmp_path / "gen"),
        ],
    )
    assert result.exit_code == 0, result.output
    module = tmp_path / "gen" / "web_analytics.ts"
    generated = module.read_text(encoding="utf-8")
    assert "/** Fires when checkout succeeds */" in generated
    assert lint.lint([("web_analytics.ts", generated.encode())]) == []
    assert (
        "/**\n * A reserved word as an event name, and a *\\/ in a\n"
        " * description that spans lines\n"
        ' */\nexport type Delete = {\n  reason: "spam" | "other" | null;\n};\n'
    ) in generated
    (tmp_path / "node_modules").symlink_to(JS / "node_modules")
    for name, text in (("good.ts", TS_GOOD), ("bad.ts", TS_BAD), ("run.ts", TS_RUN)):
        (tmp_path / name).write_text(text, encoding="utf-8")

    checked = _tsc(tmp_path, "--noEmit", "good.ts")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    checked = _tsc(tmp_path, "--noEmit", "bad.ts")
    assert checked.returncode == 2
    # one error per wrong call, each with its explanation lines below it
    errors = re.split(r"\n(?=bad\.ts\()", checked.stdout.strip())
    assert len(errors) == 4, checked.stdout
    assert errors[0].startswith("bad.ts(5,27): error TS2345:")
    assert "Property 'total' is missing in type '{ order_id: string; }'" in errors[0]
    assert errors[1] == (
        "bad.ts(6,55): error TS2322: Type '\"GBP\"' is not assignable to type "
        '\'"USD" | "EUR" | undefined\'.'
    )
    assert errors[2] == (
        "bad.ts(7,23): error TS2322: Type 'number' is not assignable to type 'string'."
    )
    assert errors[3].startswith("bad.ts(8,38): error TS2345:")
    assert "Property 'anonymousId' is missing in type '{ timestamp: Date; }'" in errors[3]

    built = _tsc(tmp_path, "--outDir", "out", "run.ts")
    assert built.returncode == 0, built.stdout + built.stderr
    ran = subprocess.run(
        [str(shutil.which("node")), str(tmp_path / "out" / "run.js")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(ran.stdout) == [
        {
            "userId": "u1",
            "context": {
                "ip": "1.2.3.4",
                "protocols": {"event_version": 2},
                "typewriter": {"language": "typescript", "version": __version__},
            },
            "event": "Signed Up",
            "properties": {"plan": "pro"},
        }
    ]
