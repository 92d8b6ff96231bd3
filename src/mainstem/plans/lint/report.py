"""Findings as text for people (``file:line:col: severity [check-id] message``, then the fix)
and as JSON for programs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from mainstem.plans.lint.findings import Finding, Severity


def text(findings: Sequence[Finding]) -> str:
    lines = []
    for finding in findings:
        lines.append(str(finding))
        lines.append(f"    fix: {finding.fix}")
    return "".join(line + "\n" for line in lines)


def summary(findings: Sequence[Finding], files: int) -> str:
    counts = Counter(finding.severity for finding in findings)
    parts = [
        f"{counts[severity]} {severity.label}{'s' if counts[severity] != 1 else ''}"
        for severity in sorted(Severity, reverse=True)
    ]
    return f"{', '.join(parts)} in {files} {'file' if files == 1 else 'files'}"


def as_json(findings: Sequence[Finding], files: int) -> dict[str, Any]:
    counts = Counter(finding.severity.label for finding in findings)
    return {
        "findings": [
            {
                "check": finding.check.id,
                "severity": finding.severity.label,
                "path": finding.path,
                "line": finding.line,
                "column": finding.column,
                "message": finding.message,
                "fix": finding.fix,
            }
            for finding in findings
        ],
        "files": files,
        "errors": counts["error"],
        "warnings": counts["warning"],
        "infos": counts["info"],
    }
