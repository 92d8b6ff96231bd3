"""``mainstem lint``: ignore comments, the lint: settings, findings across files, exit codes, and
``mainstem plan lint``. What each check finds is in test_lint_fixtures.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mainstem import config
from mainstem.cli import app
from mainstem.errors import ConfigError
from mainstem.plans import lint
from mainstem.plans.lint.settings import LintSettings

runner = CliRunner()
FIXTURES = Path(__file__).parent / "lint_fixtures"
JS = """\
analytics.track(name); // mainstem: ignore[dynamic-event-name]
// mainstem: ignore[large-property-value, dynamic-event-name]
analytics.track(name, { body: JSON.stringify(x) });
analytics.track(name); // mainstem: ignore[hardcoded-write-key]
analytics.track("// mainstem: ignore[dynamic-event-name]", name);
/* mainstem: ignore[dynamic-event-name] */ analytics.track(other);

analytics.track(third);
"""
PY = """\
analytics.track(user_id, name, timestamp=now)  # mainstem: ignore[dynamic-event-name]
# mainstem: ignore[server-track-without-timestamp]
analytics.track(user_id, "Signed In")
analytics.track(user_id, "Signed In")
"""


def _ids(findings: list[lint.Finding]) -> list[tuple[str, int]]:
    return [(f.check.id, f.line) for f in findings]


def test_ignore_comments_on_the_line_or_the_line_above() -> None:
    assert _ids(lint.lint([("app.js", JS.encode())])) == [
        ("dynamic-event-name", 4),
        ("dynamic-event-name", 8),
    ]
    assert _ids(lint.lint([("app.py", PY.encode())])) == [("server-track-without-timestamp", 4)]


def test_settings_turn_checks_off_and_change_severities(tmp_path: Path) -> None:
    workspace = tmp_path / "mainstem.yaml"
    workspace.write_text(
        "admin_token: ${MAINSTEM_ADMIN_TOKEN}\n"
        "lint:\n"
        "  checks:\n"
        "    dynamic-event-name: off\n"
        "    server-track-without-timestamp: error\n",
        encoding="utf-8",
    )
    settings = config.load_lint(workspace, env={})  # the admin token is not needed to lint
    findings = lint.lint([("app.py", PY.encode())], settings=settings)
    assert [(f.check.id, f.line, f.severity) for f in findings] == [
        ("server-track-without-timestamp", 4, lint.Severity.ERROR)
    ]
    assert lint.has_errors(findings)


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        (
            "lint:\n  checks:\n    no-such-check: off\n",
            3,
            "unknown check 'no-such-check' — the checks are: dynamic-event-name, ",
        ),
        (
            "lint:\n  checks:\n    event-name-casing: loud\n",
            3,
            "event-name-casing: 'loud' is not a level — use one of off, info, warning, error",
        ),
        ("lint:\n  check: {}\n", 2, "unknown key 'check' — allowed: checks"),
    ],
)
def test_settings_errors_name_the_line(
    tmp_path: Path, section: str, line: int, message: str
) -> None:
    file = tmp_path / "lint.yaml"
    file.write_text(section, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        config.load_lint(file)
    assert caught.value.line == line
    assert message in str(caught.value)


def test_the_workspace_validates_its_lint_section() -> None:
    text = (
        "admin_token: abcdefgh12\n"
        "sources: [{id: web, write_key: abcdefgh12}]\n"
        "lint:\n"
        "  checks: {large-property-value: info}\n"
    )
    workspace = config.parse(text, env={})
    assert workspace.lint == LintSettings({"large-property-value": lint.Severity.INFO})
    with pytest.raises(ConfigError, match="unknown check 'large-values'"):
        config.parse(text.replace("large-property-value", "large-values"), env={})


def test_event_name_casing_compares_names_across_files() -> None:
    sources = [
        ("a.js", b'analytics.track("Order Completed");\nanalytics.track("Cart Viewed");\n'),
        ("b.ts", b'analytics.track("product_viewed");\n'),
    ]
    findings = lint.lint(sources, settings=LintSettings({"conversion-without-identify": None}))
    assert [str(f) for f in findings] == [
        'b.ts:1:17: warning [event-name-casing] event "product_viewed" does not use Title Case '
        'like the other events (2 of 3 names) — rename it "Product Viewed"'
    ]


def test_the_lint_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "src"
    (code / "node_modules").mkdir(parents=True)
    (code / "app.ts").write_text('analytics.track("Order Completed", {total: 5});\n')
    (code / "node_modules" / "lib.js").write_text("analytics.track(name);\n")
    (code / "README.md").write_text("analytics.track(name)\n")
    plan = FIXTURES / "plan.yaml"
    result = runner.invoke(app, ["lint", "--plan", str(plan), str(code)])
    assert result.exit_code == 1
    where = '(tracking plan "web", event "Order Completed")'
    assert result.stdout == (
        f'{code / "app.ts"}:1:1: warning [conversion-without-identify] "Order Completed" is a '
        "conversion but nothing in this file identifies the user (no identify() call, no "
        "userId) — it will be attributed to an anonymous visitor\n"
        f"    fix: {lint.CHECKS['conversion-without-identify'].fix}\n"
        f"{code / 'app.ts'}:1:36: error [missing-required-property] properties.order_id: "
        f"required but missing {where}\n"
        f"    fix: {lint.CHECKS['missing-required-property'].fix}\n"
    )
    assert result.stderr == "1 error, 1 warning, 0 infos in 1 file\n"

    # without the plan only a warning is left: exit status 0
    result = runner.invoke(app, ["lint", str(code)])
    assert result.exit_code == 0, result.output
    assert result.stderr == "0 errors, 1 warning, 0 infos in 1 file\n"

    # ./mainstem.yaml is read when there is one; --config names another
    monkeypatch.chdir(tmp_path)
    checks = "lint:\n  checks:\n    conversion-without-identify: "
    (tmp_path / "mainstem.yaml").write_text(checks + "error\n")
    assert runner.invoke(app, ["lint", str(code)]).exit_code == 1
    (tmp_path / "quiet.yaml").write_text(checks + "off\n")
    result = runner.invoke(app, ["lint", "--config", "quiet.yaml", str(code)])
    assert (result.exit_code, result.stdout) == (0, "")
    (tmp_path / "broken.yaml").write_text("lint:\n  checks:\n    nope: off\n")
    result = runner.invoke(app, ["lint", "-c", "broken.yaml", str(code)])
    assert result.exit_code == 1
    assert "broken.yaml:3: unknown check 'nope'" in result.stderr

    result = runner.invoke(app, ["lint", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "missing: no such file or directory" in result.stderr


def test_plan_lint_is_lint_with_a_plan(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        'analytics.track("u1", "Order Complete", {"total": 5}, timestamp=now)\n'
    )
    result = runner.invoke(app, ["plan", "lint", str(FIXTURES / "plan.yaml"), str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        f'{tmp_path / "app.py"}:1:23: error [unplanned-event] event "Order Complete" is not in '
        'tracking plan "web" — did you mean "Order Completed"?'
    )


@pytest.mark.parametrize("check", list(lint.CHECKS.values()), ids=list(lint.CHECKS))
def test_every_check_is_documented(check: lint.Check) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "lint.md").read_text(encoding="utf-8")
    row = f"| [`{check.id}`](#{check.id}) | {check.severity.label} |"
    assert row in docs, f"docs/lint.md needs the table row {row!r}"
    section = docs.split(f"\n### {check.id}\n", 1)
    assert len(section) == 2, f"docs/lint.md needs a section headed `### {check.id}`"
    assert section[1].lstrip().startswith(f"**{check.severity.label}"), check.id


def test_broken_source_is_still_read() -> None:
    # a syntax error and bytes that are not UTF-8 do not stop the parser at the call sites
    source = b'const s = "caf\xe9;\nif (x {\n}\nanalytics.track(eventName);\n'
    [finding] = lint.lint([("broken.js", source)])
    assert (finding.check.id, finding.line, finding.column) == ("dynamic-event-name", 4, 17)
    python = b'def f(:\n    analytics.track("u", name, timestamp=now)  # \xe9\n'
    assert [(f.check.id, f.line) for f in lint.lint([("broken.py", python)])] == [
        ("dynamic-event-name", 2)
    ]


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    # a socket named like a source file cannot be read, even by root
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "app.js"))
        result = runner.invoke(app, ["lint", str(tmp_path / "app.js")])
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {tmp_path / 'app.js'}: cannot read the file: No such device or address\n"
    )
