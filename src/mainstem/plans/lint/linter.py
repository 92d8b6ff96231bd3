"""One lint run: parse every file, run the checks, apply the settings and the ignore comments.
Pure over (path, bytes) pairs; reading files is the caller's job."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mainstem.plans.lint import code_checks, parser
from mainstem.plans.lint.casing import event_name_casing
from mainstem.plans.lint.findings import Finding, Hit, Severity
from mainstem.plans.lint.messages import Message, messages
from mainstem.plans.lint.plan_checks import plan_checks
from mainstem.plans.lint.settings import LintSettings
from mainstem.plans.lint.suppression import ignored
from mainstem.plans.lint.syntax import SourceFile
from mainstem.plans.model import TrackingPlan


def lint(
    sources: Iterable[tuple[str, bytes]],
    plan: TrackingPlan | None = None,
    settings: LintSettings | None = None,
) -> list[Finding]:
    """Findings for source files (path, content), sorted by path, line and column.

    Files with an extension the linter does not read are skipped. Plan checks run only with a
    plan; ``event-name-casing`` compares the names across all the files given.
    """
    settings = settings or LintSettings()
    parsed: list[tuple[SourceFile, list[Message]]] = []
    for path, content in sources:
        language = parser.language_for(path)
        if language is not None:
            source = parser.parse(content, language, path)
            parsed.append((source, messages(source)))
    hits: dict[str, list[Hit]] = {source.path: [] for source, _ in parsed}
    for source, found in parsed:
        for rule in code_checks.RULES:
            hits[source.path] += rule(source, found)
        if plan is not None:
            hits[source.path] += plan_checks(found, plan)
    for path, hit in event_name_casing([(source.path, found) for source, found in parsed]):
        hits[path].append(hit)
    findings = []
    for source, _ in parsed:
        suppressed = ignored(source.comments)
        for hit in hits[source.path]:
            severity = settings.severity(hit.check)
            if severity is None or hit.check.id in suppressed.get(hit.line, ()):
                continue
            findings.append(
                Finding(
                    hit.check,
                    source.path,
                    hit.line,
                    hit.column,
                    hit.message,
                    severity,
                    hit.check.fix,
                )
            )
    return sorted(findings, key=lambda f: (f.path, f.line, f.column, f.check.id))


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(finding.severity is Severity.ERROR for finding in findings)
