"""The ``identity:`` section of mainstem.yaml."""

from __future__ import annotations

import pickle

import pytest

from mainstem import config
from mainstem.errors import ConfigError
from mainstem.identity.graph import Event, MemoryState, counter_ids, resolve
from mainstem.identity.identifiers import CustomIdentifier
from mainstem.identity.rules import DEFAULT_BLOCKED, Limit

BASE = 'admin_token: "12345678"\nsources: [{id: web, name: Web, write_key: kkkkkkkkkkkk}]\n'


def test_rules_and_custom_identifiers_from_the_workspace() -> None:
    workspace = config.parse(
        BASE
        + "identity:\n"
        + "  identifiers:\n"
        + "    anonymous_id: {limit: 2, window: weekly}\n"
        + "    phone: {trait: phone_number, limit: 1, priority: 3}\n"
        + "  blocked: [void]\n"
        + "  blocked_pattern: null\n",
        env={},
    )
    spec = workspace.identity
    assert spec.custom == (CustomIdentifier("phone", "phone_number"),)
    assert dict(spec.rules.limits) == {
        "user_id": Limit(1),
        "anonymous_id": Limit(2, "weekly"),
        "phone": Limit(1),
    }
    assert dict(spec.rules.priorities) == {"user_id": 1, "email": 2, "phone": 3}
    assert spec.rules.blocked == DEFAULT_BLOCKED | {"void"}
    assert (spec.rules.is_blocked("VOID"), spec.rules.is_blocked("0")) == (True, False)
    assert pickle.loads(pickle.dumps(spec)) == spec  # crosses into the processor process

    state = MemoryState(counter_ids())
    for n, user in enumerate(["u1", "u2"]):
        msg = {"type": "identify", "messageId": f"m{n}", "userId": user}
        msg["traits"] = {"phoneNumber": "555"}
        resolve(state, spec.rules, Event.from_message(msg, "web", custom=spec.custom))
    assert {p: sorted(map(str, v.identifiers)) for p, v in state.profiles.items()} == {
        "use_1": ["phone:555", "user_id:u1"],
        "use_2": ["user_id:u2"],
    }


def test_no_section_means_the_defaults() -> None:
    assert config.parse(BASE, env={}).identity.custom == ()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "identity: [1]\n",
            "mainstem.yaml:3: identity must be a mapping with identifiers, blocked",
        ),
        (
            "identity:\n  blockd: []\n",
            "mainstem.yaml:4: unknown key 'blockd' — allowed: identifiers, blocked, "
            "blocked_pattern",
        ),
        (
            "identity:\n  identifiers:\n    email: {limit: 0}\n",
            "mainstem.yaml:5: limit must be a whole number of at least 1, got 0",
        ),
        (
            "identity:\n  identifiers:\n    email: {window: hourly}\n",
            "mainstem.yaml:5: window must be one of ever, daily, weekly, monthly, annually, "
            "got 'hourly'",
        ),
        (
            "identity:\n  identifiers:\n    Phone: {limit: 1}\n",
            "mainstem.yaml:5: identifier type 'Phone' must be lower-case, e.g. phone or ios.id",
        ),
        (
            "identity:\n  identifiers:\n    phone: {trait: ''}\n",
            "mainstem.yaml:5: trait must name a trait or property key, e.g. phone",
        ),
        (
            "identity:\n  blocked_pattern: '('\n",
            "mainstem.yaml:4: blocked_pattern is not a regular expression: missing ), "
            "unterminated subpattern at position 0",
        ),
    ],
)
def test_errors_name_the_line_and_the_fix(section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(BASE + section, env={})
    assert str(caught.value) == message
