"""Plans attached to sources in mainstem.yaml, with errors at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mainstem import config
from mainstem.errors import ConfigError
from mainstem.plans.enforcement import Controls, Enforcement

HEAD = """\
admin_token: long-enough
sources:
  - id: audit
    write_key: audit-key-123
  - id: web
    write_key: web-key-1234
"""
PLAN = "plan: web\nevents:\n  Signed Up:\n    properties:\n      plan: string\n"


def load(tmp_path: Path, source: str, plan: str = PLAN) -> config.Workspace:
    (tmp_path / "plans").mkdir(exist_ok=True)
    (tmp_path / "plans" / "web.yaml").write_text(plan, encoding="utf-8")
    path = tmp_path / "mainstem.yaml"
    path.write_text(HEAD + source, encoding="utf-8")
    return config.load(path, env={})


def test_a_source_gets_its_plan_and_enforcement(tmp_path: Path) -> None:
    workspace = load(
        tmp_path,
        """\
    tracking_plan: plans/web.yaml
    enforcement:
      track: {unplanned_events: block, properties_on_violation: omit}
      identify: {unplanned_traits: omit, common_on_violation: block}
      forward_blocked_events_to: audit
      forward_violations_to: audit
""",
    )
    audit, web = workspace.sources
    assert audit.tracking_plan is None and audit.enforcement == Enforcement()
    assert web.tracking_plan is not None and web.tracking_plan.name == "web"
    assert web.enforcement == Enforcement(
        track=Controls(unplanned_events="block", fields_on_violation="omit"),
        identify=Controls(unplanned_fields="omit", common_on_violation="block"),
        forward_blocked_to="audit",
        forward_violations_to="audit",
    )


@pytest.mark.parametrize(
    ("source", "plan", "error"),
    [
        (
            "    tracking_plan: plans/missing.yaml\n",
            PLAN,
            "mainstem.yaml:7: tracking plan file plans/missing.yaml does not exist (looked for "
            "{tmp}/plans/missing.yaml) — create it or fix the path",
        ),
        (
            "    tracking_plan: plans/web.yaml\n    enforcement:\n      track:\n"
            "        unplanned_events: omit\n",
            PLAN,
            "mainstem.yaml:10: unplanned_events is 'omit' — use one of: allow, block",
        ),
        (
            "    tracking_plan: plans/web.yaml\n    enforcement:\n      identify:\n"
            "        unplanned_properties: omit\n",
            PLAN,
            "mainstem.yaml:10: unknown key 'unplanned_properties' — allowed: unplanned_traits, "
            "traits_on_violation, common_on_violation",
        ),
        (
            "    enforcement:\n      track: {unplanned_events: block}\n",
            PLAN,
            "mainstem.yaml:7: enforcement needs a tracking_plan on the same source",
        ),
        (
            "    tracking_plan: plans/web.yaml\n    enforcement:\n"
            "      forward_violations_to: nowhere\n",
            PLAN,
            "mainstem.yaml:9: forward_violations_to names source 'nowhere', which is not in "
            "sources — use one of: audit, web",
        ),
        (
            "    tracking_plan: plans/web.yaml\n",
            "plan: web\nevents:\n  Signed Up:\n    properties:\n      plan: text\n",
            "{tmp}/plans/web.yaml:5: unknown type 'text' (types: string, number, integer, "
            "boolean, object, array, null, any, date-time)",
        ),
    ],
)
def test_errors_name_the_file_line_and_fix(
    tmp_path: Path, source: str, plan: str, error: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, source, plan)
    assert str(caught.value) == error.format(tmp=tmp_path).replace(
        "mainstem.yaml", str(tmp_path / "mainstem.yaml"), 1
    )
