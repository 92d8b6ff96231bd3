"""The fixture corpus: for every check and language, code that must be found (true positives) and
code that looks alike but must not be (near misses, marked in the files). The table is the whole
truth: a fixture produces exactly these (check id, line) findings and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from mainstem.plans import lint, yaml_format

ROOT = Path(__file__).parent / "lint_fixtures"
PLAN = yaml_format.loads((ROOT / "plan.yaml").read_text(encoding="utf-8"))
LANGUAGES = ("python", "javascript", "typescript")
# Python's server libraries have no reset(): logout-without-reset is for analytics.js only, and
# its Python fixture holds near misses only.
NOT_FOR = {("python", "logout-without-reset")}

EXPECTED: dict[str, list[tuple[str, int]]] = {
    "python/conversion_without_identify.py": [
        ("conversion-without-identify", 7),
        ("conversion-without-identify", 11),
    ],
    "python/dynamic_event_name.py": [("dynamic-event-name", 7), ("dynamic-event-name", 8)],
    "python/event_name_casing.py": [("event-name-casing", 10)],
    "python/hardcoded_write_key.py": [
        ("hardcoded-write-key", 6),
        ("hardcoded-write-key", 7),
        ("hardcoded-write-key", 8),
    ],
    "python/large_property_value.py": [
        ("large-property-value", 9),
        ("large-property-value", 10),
        ("large-property-value", 11),
    ],
    "python/logout_without_reset.py": [],
    "python/pii_without_integrations.py": [
        ("pii-without-integrations", 7),
        ("pii-without-integrations", 8),
    ],
    "python/plan.py": [
        ("unplanned-event", 7),
        ("missing-required-property", 8),
        ("property-type-mismatch", 9),
        ("property-type-mismatch", 9),
        ("unplanned-property", 11),
    ],
    "python/server_track_without_timestamp.py": [("server-track-without-timestamp", 5)],
    "python/track_before_consent.py": [("track-before-consent", 8)],
    "javascript/conversion_identified.js": [],
    "javascript/conversion_without_identify.js": [
        ("conversion-without-identify", 2),
        ("conversion-without-identify", 3),
    ],
    "javascript/dynamic_event_name.js": [
        ("dynamic-event-name", 4),
        ("dynamic-event-name", 5),
        ("dynamic-event-name", 6),
    ],
    "javascript/event_name_casing.js": [("event-name-casing", 4)],
    "javascript/hardcoded_write_key.js": [
        ("hardcoded-write-key", 3),
        ("hardcoded-write-key", 4),
        ("hardcoded-write-key", 5),
    ],
    "javascript/large_property_value.js": [
        ("large-property-value", 2),
        ("large-property-value", 3),
        ("large-property-value", 4),
    ],
    "javascript/logout_without_reset.js": [
        ("logout-without-reset", 1),
        ("logout-without-reset", 6),
    ],
    "javascript/pii_without_integrations.js": [
        ("pii-without-integrations", 2),
        ("pii-without-integrations", 3),
    ],
    "javascript/plan.js": [
        ("unplanned-event", 2),
        ("missing-required-property", 3),
        ("property-type-mismatch", 4),
        ("property-type-mismatch", 4),
        ("unplanned-property", 5),
    ],
    "javascript/server_browser.js": [],
    "javascript/server_track_without_timestamp.js": [("server-track-without-timestamp", 6)],
    "javascript/track_before_consent.js": [("track-before-consent", 2)],
    "typescript/conversion_identified.ts": [],
    "typescript/conversion_without_identify.ts": [
        ("conversion-without-identify", 7),
        ("conversion-without-identify", 8),
    ],
    "typescript/dynamic_event_name.ts": [("dynamic-event-name", 5), ("dynamic-event-name", 6)],
    "typescript/event_name_casing.ts": [("event-name-casing", 5)],
    "typescript/hardcoded_write_key.ts": [
        ("hardcoded-write-key", 3),
        ("hardcoded-write-key", 4),
    ],
    "typescript/large_property_value.ts": [
        ("large-property-value", 4),
        ("large-property-value", 5),
        ("large-property-value", 6),
    ],
    "typescript/logout_without_reset.tsx": [("logout-without-reset", 6)],
    "typescript/pii_without_integrations.ts": [("pii-without-integrations", 7)],
    "typescript/plan.ts": [
        ("unplanned-event", 2),
        ("missing-required-property", 3),
        ("property-type-mismatch", 4),
        ("property-type-mismatch", 4),
        ("unplanned-property", 5),
    ],
    "typescript/server_browser.ts": [],
    "typescript/server_track_without_timestamp.ts": [("server-track-without-timestamp", 6)],
    "typescript/track_before_consent.ts": [
        ("track-before-consent", 2),
        ("track-before-consent", 3),
    ],
}


def _findings(name: str) -> list[tuple[str, int]]:
    path = ROOT / name
    plan = PLAN if path.stem == "plan" else None
    return [(f.check.id, f.line) for f in lint.lint([(name, path.read_bytes())], plan)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_produces_exactly_its_findings(name: str) -> None:
    assert _findings(name) == EXPECTED[name]


def test_the_table_covers_every_fixture_file() -> None:
    files = {str(p.relative_to(ROOT)) for lang in LANGUAGES for p in (ROOT / lang).iterdir()}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("check", sorted(lint.CHECKS))
def test_every_check_has_a_true_positive_and_a_near_miss_fixture(language: str, check: str) -> None:
    stem = "plan" if lint.CHECKS[check].needs_plan else check.replace("-", "_")
    fixtures = [name for name in EXPECTED if name.startswith(f"{language}/{stem}.")]
    assert fixtures, f"no {language} fixture for {check}"
    text = (ROOT / fixtures[0]).read_text(encoding="utf-8")
    assert "near miss" in text, f"{fixtures[0]} has no near miss for {check}"
    found = {finding for name in EXPECTED if name.startswith(language) for finding, _ in
             EXPECTED[name]}  # fmt: skip
    assert (check in found) != ((language, check) in NOT_FOR)
