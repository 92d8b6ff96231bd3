"""The tracking-code linter: Segment calls in Python, JavaScript and TypeScript, read with real
parsers (tree-sitter), checked for mistakes that enforcement only sees after they ship — and,
with a plan, against the plan.

- :mod:`.parser` turns source into :mod:`.syntax` (calls, bindings, identifiers, comments);
- :mod:`.messages` knows what each Segment library's arguments mean;
- :mod:`.code_checks`, :mod:`.casing` and :mod:`.plan_checks` find problems, one id each
  (:mod:`.catalog`);
- :mod:`.linter` runs them with the :mod:`.settings` and :mod:`.suppression` comments;
- :mod:`.report` and :mod:`.sarif` format the findings.
"""

from mainstem.plans.lint.catalog import CHECKS
from mainstem.plans.lint.findings import Check, Finding, Severity
from mainstem.plans.lint.linter import has_errors, lint
from mainstem.plans.lint.parser import language_for

__all__ = ["CHECKS", "Check", "Finding", "Severity", "has_errors", "language_for", "lint"]
