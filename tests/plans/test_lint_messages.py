"""How each Segment library's call arguments are read (plans/lint/messages.py)."""

from __future__ import annotations

import pytest

from mainstem.plans.lint import parser
from mainstem.plans.lint.messages import Message, is_client, messages


def _read(code: str, path: str) -> list[Message]:
    language = parser.language_for(path)
    assert language is not None
    return messages(parser.parse(code.encode(), language, path))


def _summary(message: Message) -> tuple[object, ...]:
    def text(expr: object) -> str | None:
        return getattr(expr, "text", None)

    return (
        message.type,
        text(message.event),
        text(message.properties),
        text(message.integrations),
        text(message.timestamp),
        text(message.user_id),
        message.server,
        message.opaque,
    )


@pytest.mark.parametrize(
    ("path", "code", "expected"),
    [
        ("a.py", 'analytics.track("u", "E", {"a": 1}, None, ts, None, {"All": False})',
         ("track", '"E"', '{"a": 1}', '{"All": False}', "ts", '"u"', True, False)),
        ("a.py", 'client.track(user_id=None, event="E", anonymous_id="a", timestamp=t)',
         ("track", '"E"', None, None, "t", None, True, False)),
        ("a.py", 'analytics.identify("u", {"email": e}, **options)',
         ("identify", None, '{"email": e}', None, None, '"u"', True, True)),
        ("a.js", 'analytics.track("E", {a: 1}, {integrations: {All: false}, timestamp: t})',
         ("track", '"E"', "{a: 1}", "{All: false}", "t", None, False, False)),
        ("a.js", 'window.analytics.identify({email: e})',
         ("identify", None, "{email: e}", None, None, None, False, False)),
        ("a.js", 'analytics.identify("u", {plan: p}, options)',
         ("identify", None, "{plan: p}", None, None, '"u"', False, True)),
        ("a.js", 'analytics.page("Docs", "Intro", {path: p})',
         ("page", None, "{path: p}", None, None, None, False, False)),
        ("a.ts", 'analytics.track({userId: u, event: "E", properties: {a: 1}, timestamp: t})',
         ("track", '"E"', "{a: 1}", None, "t", "u", True, False)),
        ("a.ts", 'analytics.track({...base, event: "E"})',
         ("track", '"E"', None, None, None, None, True, True)),
        ("a.js", 'import { Analytics } from "@segment/analytics-node";\nanalytics.track("E");',
         ("track", '"E"', None, None, None, None, True, False)),
    ],
)  # fmt: skip
def test_arguments_as_each_library_reads_them(
    path: str, code: str, expected: tuple[object, ...]
) -> None:
    [message] = _read(code, path)
    assert _summary(message) == expected


@pytest.mark.parametrize(
    ("receiver", "client"),
    [
        ("analytics", True),
        ("window.analytics?", True),
        ("this.segmentClient", True),
        ("rudderanalytics", True),
        ("useAnalytics()", True),
        ("self.client", True),
        ("mixpanel", False),
        ("httpClient", False),
        ("", False),
    ],
)
def test_which_receivers_are_analytics_clients(receiver: str, client: bool) -> None:
    assert is_client(receiver) is client


def test_constructors_and_other_methods_are_not_messages() -> None:
    assert (
        _read('new analytics.track("E");\nanalytics.flush();\nmixpanel.track("E");', "a.js") == []
    )
