"""The checks that read one file's tracking code, without a plan: pure functions from a parsed
file and its Segment calls to hits. Each is documented in docs/lint.md under its id."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from mainstem.plans.lint import catalog
from mainstem.plans.lint.findings import Check, Hit
from mainstem.plans.lint.messages import Message, is_client
from mainstem.plans.lint.syntax import Expr, Scope, SourceFile, Span
from mainstem.plans.words import ends_with_phrase, has_phrase, words

Rule = Callable[[SourceFile, Sequence[Message]], Iterator[Hit]]

CONVERSIONS = frozenset({
    "order completed", "checkout completed", "purchase", "purchased", "purchase completed",
    "payment completed", "payment succeeded", "subscription started", "subscription created",
    "subscription renewed", "trial started", "signed up", "conversion",
})  # fmt: skip
REVENUE = frozenset({"revenue", "order total", "total"})
LOGOUTS = frozenset({"logout", "log out", "logged out", "signout", "sign out", "signed out"})
PII = frozenset({
    "email", "e mail", "phone", "mobile", "address", "street", "ssn", "social security",
    "date of birth", "dob", "birthday", "birthdate", "passport", "credit card", "card number",
    "iban", "tax id",
})  # fmt: skip
# callees whose result is a serialized object, and members that hold a document or a request
LARGE_CALLS = frozenset({
    "stringify", "dumps", "serialize", "to json", "get json", "model dump", "to dict", "asdict",
    "vars", "locals",
})  # fmt: skip
LARGE_MEMBERS = frozenset({
    "inner html", "outer html", "text content", "inner text", "body", "dict", "document element",
    "post", "files",
})  # fmt: skip
_PLACEHOLDERS = ("$", "<", "{", "%", "your", "process.env", "xxx")
TRACKING = ("track", "page", "screen", "identify", "group", "alias")


def _hit(check: Check, at: Span, message: str) -> Hit:
    return Hit(check, at.line, at.column, message)


def dynamic_event_name(source: SourceFile, messages: Sequence[Message]) -> Iterator[Hit]:
    for message in messages:
        event = message.event
        if message.type == "track" and event is not None and event.kind != "string":
            yield _hit(
                catalog.DYNAMIC_EVENT_NAME,
                event.at,
                f"event name is not a string literal: {_short(event.text)}",
            )


def conversion_without_identify(source: SourceFile, messages: Sequence[Message]) -> Iterator[Hit]:
    if any(m.type == "identify" for m in messages):
        return
    for message in messages:
        if message.type != "track" or message.user_id is not None or message.opaque:
            continue
        name = message.event.value if message.event is not None else None
        revenue = [
            entry.key
            for entry in (message.properties.entries if message.properties else ())
            if " ".join(words(entry.key)) in REVENUE
        ]
        if name is not None and has_phrase(name, CONVERSIONS):
            what = f'"{name}" is a conversion'
        elif revenue:
            what = f"this event carries revenue ({revenue[0]})"
        else:
            continue
        yield _hit(
            catalog.CONVERSION_WITHOUT_IDENTIFY,
            message.call.at,
            f"{what} but nothing in this file identifies the user (no identify() call, no "
            "userId) — it will be attributed to an anonymous visitor",
        )


def logout_without_reset(source: SourceFile, messages: Sequence[Message]) -> Iterator[Hit]:
    # analytics.js keeps the user in the browser; the server libraries have no reset()
    if source.language == "python" or not messages:
        return
    reset_in = {m.call.scope.id for m in messages if m.type == "reset"}
    seen: set[int] = set()
    for scope in source.scopes:
        if scope.name and ends_with_phrase(scope.name, LOGOUTS) and scope.id not in reset_in:
            seen.add(scope.id)
            yield _logout(scope.at, f"function {scope.name}()")
    for message in messages:
        event = message.event.value if message.event is not None else None
        scope = message.call.scope
        if (
            message.type == "track"
            and event is not None
            and ends_with_phrase(event, LOGOUTS)
            and scope.id not in reset_in | seen
        ):
            seen.add(scope.id)
            yield _logout(message.call.at, f'"{event}" is tracked')


def _logout(at: Span, what: str) -> Hit:
    return _hit(
        catalog.LOGOUT_WITHOUT_RESET,
        at,
        f"{what} but analytics.reset() is not called there — the next user of the device "
        "inherits this identity",
    )


def hardcoded_write_key(source: SourceFile, messages: Sequence[Message]) -> Iterator[Hit]:
    for binding in source.bindings:
        if "writekey" in binding.name.lower().replace("_", "") and _looks_like_key(binding.value):
            yield _write_key(binding.value)
    for call in source.calls:
        first = call.args[0] if call.args else None
        loads = call.method == "load" and is_client(call.receiver)
        constructs = call.method in ("Client", "Analytics") and call.receiver in ("", "analytics")
        if first is not None and (loads or constructs) and _looks_like_key(first):
            yield _write_key(first)


def _looks_like_key(value: Expr) -> bool:
    text = value.value
    if value.kind != "string" or text is None or len(text) < 8 or any(c.isspace() for c in text):
        return False
    return not text.lower().startswith(_PLACEHOLDERS)


def _write_key(value: Expr) -> Hit:
    shown = (value.value or "")[:4]
    return _hit(
        catalog.HARDCODED_WRITE_KEY,
        value.at,
        f'write key "{shown}…" is hard-coded — anyone who reads the code can send events as '
        "this source",
    )


def pii_without_integrations(source: SourceFile, messages: Sequence[Message]) -> Iterator[Hit]:
    for message in messages:
        if message.type not in TRACKING or message.properties is None:
            continue
        if message.integrations is not None or message.opaque:
            continue
        keys = [
            entry
            for entry in message.properties.entries
            if has_phrase(entry.key, PII) and entry.value.kind != "boolean"
        ]
        if keys:
            names = ", ".join(entry.key for entry in keys)
            yield _hit(
                catalog.PII_WITHOUT_INTEGRATIONS,
                keys[0].key_at,
                f"personal data ({names}) sent with no integrations option — every destination "
                "receives it",
            )


def server_track_without_timestamp(
    source: SourceFile, messages: Sequence[Message]
) -> Iterator[Hit]:
    for message in messages:
        if (
            message.type == "track"
            and message.server
            and message.timestamp is None
            and not message.opaque
        ):
            yield _hit(
                catalog.SERVER_TRACK_WITHOUT_TIMESTAMP,
                message.call.at,
                "server-side track without timestamp — the event gets the time of the call, "
                "not of the action",
            )


def large_property_value(source: SourceFile, messages: Sequence[Message]) -> Iterator[Hit]:
    for message in messages:
        properties = message.properties
        if message.type not in TRACKING or properties is None:
            continue
        if properties.kind != "object":
            if _large(properties):
                yield _large_hit(properties, "properties")
            continue
        for entry in properties.entries:
            if _large(entry.value):
                yield _large_hit(entry.value, f"properties.{entry.key}")


def _large(value: Expr) -> bool:
    if value.kind == "call":
        return " ".join(words(value.callee.rsplit(".", 1)[-1])) in LARGE_CALLS
    if value.kind == "member":
        return " ".join(words(value.text.rsplit(".", 1)[-1])) in LARGE_MEMBERS
    return False


def _large_hit(value: Expr, where: str) -> Hit:
    return _hit(
        catalog.LARGE_PROPERTY_VALUE,
        value.at,
        f"{where}: {_short(value.text)} can be very large (a whole object, document or request)",
    )


def track_before_consent(source: SourceFile, messages: Sequence[Message]) -> Iterator[Hit]:
    calls = [m.call.at for m in messages]
    first: dict[int, Span] = {}
    for mention in source.mentions:
        if "consent" not in mention.name.lower():
            continue
        if any(call.contains(mention.at) for call in calls):
            continue  # a property named consent_… in a call is not a check
        known = first.get(mention.scope.id)
        if known is None or mention.at.start < known.start:
            first[mention.scope.id] = mention.at
    for message in messages:
        scope: Scope = message.call.scope
        check = first.get(scope.id)
        if message.type in TRACKING and check is not None and message.call.at.end <= check.start:
            yield _hit(
                catalog.TRACK_BEFORE_CONSENT,
                message.call.at,
                f"{message.type}() runs before the consent check on line {check.line} — it "
                "sends data the user may not have agreed to",
            )


def _short(text: str) -> str:
    text = " ".join(text.split())
    return f"`{text}`" if len(text) <= 40 else f"`{text[:37]}…`"


RULES: tuple[Rule, ...] = (
    dynamic_event_name,
    conversion_without_identify,
    logout_without_reset,
    hardcoded_write_key,
    pii_without_integrations,
    server_track_without_timestamp,
    large_property_value,
    track_before_consent,
)
