"""``mainstem lint --format json`` and ``--format sarif``: the SARIF log is valid against the
official SARIF 2.1.0 schema (vendored in tests/plans/sarif, see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from mainstem.cli import app
from mainstem.plans import lint
from mainstem.plans.lint import sarif

runner = CliRunner()
FIXTURES = Path(__file__).parent / "lint_fixtures"
SCHEMA = json.loads((Path(__file__).parent / "sarif" / "sarif-schema-2.1.0.json").read_text())


def _lint(fmt: str, tmp_path: Path) -> tuple[int, dict[str, object]]:
    out = tmp_path / f"report.{fmt}"
    result = runner.invoke(
        app,
        [
            *("lint", "--plan", str(FIXTURES / "plan.yaml"), "--format", fmt, "-o", str(out)),
            *(str(FIXTURES / "javascript"), str(FIXTURES / "python" / "plan.py")),
        ],
    )
    return result.exit_code, json.loads(out.read_text(encoding="utf-8"))


def test_sarif_is_valid_sarif_2_1_0(tmp_path: Path) -> None:
    code, log = _lint("sarif", tmp_path)
    assert code == 1
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    [run] = log["runs"]  # type: ignore[index]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == list(lint.CHECKS)
    results = run["results"]
    assert {r["level"] for r in results} == {"error", "warning", "note"}
    first = results[0]
    assert rules[first["ruleIndex"]]["id"] == first["ruleId"]
    location = first["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].startswith("file:///")
    assert location["region"]["startLine"] >= 1


def test_an_invalid_log_fails_the_schema(tmp_path: Path) -> None:
    _, log = _lint("sarif", tmp_path)
    log["runs"][0]["results"][0]["level"] = "fatal"  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError, match="'fatal' is not one of"):
        jsonschema.Draft4Validator(SCHEMA).validate(log)


def test_json_report(tmp_path: Path) -> None:
    code, report = _lint("json", tmp_path)
    assert code == 1
    findings = report["findings"]
    assert isinstance(findings, list)
    assert report["files"] == 13
    assert report["errors"] == sum(1 for f in findings if f["severity"] == "error")
    plan_py = [f for f in findings if f["path"].endswith("plan.py")]
    assert plan_py[0] == {
        "check": "unplanned-event",
        "severity": "error",
        "path": str(FIXTURES / "python" / "plan.py"),
        "line": 7,
        "column": 30,
        "message": 'event "Order Complete" is not in tracking plan "web" — did you mean '
        '"Order Completed"?',
        "fix": lint.CHECKS["unplanned-event"].fix,
    }


def test_relative_paths_stay_relative_in_sarif() -> None:
    findings = lint.lint([("src/my app.js", b"analytics.track(name);\n")])
    log = sarif.log(findings)
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "src/my%20app.js"
    assert location["region"] == {"startLine": 1, "startColumn": 17}
    jsonschema.Draft4Validator(SCHEMA).validate(log)
