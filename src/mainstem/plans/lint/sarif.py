"""Findings as a SARIF 2.1.0 log (OASIS Static Analysis Results Interchange Format), the format
GitHub code scanning and most CI dashboards read: one run, the checks as rules with their
default level and help, each finding a result at ``file:line:column``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from mainstem import __version__
from mainstem.plans.lint.catalog import CHECKS
from mainstem.plans.lint.findings import Finding

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def log(findings: Sequence[Finding]) -> dict[str, Any]:
    rules = list(CHECKS.values())
    index = {check.id: i for i, check in enumerate(rules)}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mainstem lint",
                        "version": __version__,
                        "rules": [
                            {
                                "id": check.id,
                                "shortDescription": {"text": check.summary},
                                "help": {"text": f"{check.fix} (docs/lint.md#{check.id})"},
                                "defaultConfiguration": {"level": check.severity.sarif_level},
                                "properties": {"needsPlan": check.needs_plan},
                            }
                            for check in rules
                        ],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": [
                    {
                        "ruleId": finding.check.id,
                        "ruleIndex": index[finding.check.id],
                        "level": finding.severity.sarif_level,
                        "message": {"text": f"{finding.message}. Fix: {finding.fix}"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": _uri(finding.path)},
                                    "region": {
                                        "startLine": finding.line,
                                        "startColumn": finding.column,
                                    },
                                }
                            }
                        ],
                    }
                    for finding in findings
                ],
            }
        ],
    }


def _uri(path: str) -> str:
    """A relative path stays relative (SARIF viewers resolve it against the checkout)."""
    posix = PurePath(path).as_posix()
    return ("file://" if posix.startswith("/") else "") + quote(posix)
