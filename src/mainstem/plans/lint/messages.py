"""Which calls are Segment calls, and what their arguments mean in each library: pure.

- analytics.js (browser): ``track(event, properties?, options?)``,
  ``identify(userId?, traits?, options?)``; ``options.integrations``, ``options.timestamp``.
- @segment/analytics-node (and RudderStack's node SDK): one object,
  ``track({userId, anonymousId, event, properties, timestamp, integrations})``.
- segment-analytics-python / rudder-sdk-python: ``track(user_id, event, properties, context,
  timestamp, anonymous_id, integrations)`` by position or keyword, and the like per method.

A receiver counts as an analytics client when its last name contains ``analytics``, ``segment``
or ``rudder``, or is ``client``, ``ajs`` or ``tracker`` (``window.analytics``,
``this.analytics``, ``rudderanalytics``, ``segmentClient``…).
"""

from __future__ import annotations

from dataclasses import dataclass

from mainstem.plans.lint.syntax import Call, Expr, SourceFile

METHODS = ("track", "identify", "page", "screen", "group", "alias", "reset")
# JavaScript modules of server libraries (Python has only server libraries)
SERVER_MODULES = ("@segment/analytics-node", "analytics-node", "@rudderstack/rudder-sdk-node")
_RECEIVER_NAMES = ("client", "ajs", "tracker")
_RECEIVER_PARTS = ("analytics", "segment", "rudder")
# segment-analytics-python's positional parameters, per method
_PYTHON_ORDER = {
    "track": ("user_id", "event", "properties", "context", "timestamp", "anonymous_id",
              "integrations"),
    "identify": ("user_id", "traits", "context", "timestamp", "anonymous_id", "integrations"),
    "page": ("user_id", "category", "name", "properties", "context", "timestamp", "anonymous_id",
             "integrations"),
    "screen": ("user_id", "category", "name", "properties", "context", "timestamp",
               "anonymous_id", "integrations"),
    "group": ("user_id", "group_id", "traits", "context", "timestamp", "anonymous_id",
              "integrations"),
    "alias": ("previous_id", "user_id", "context", "timestamp", "integrations"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Message:
    """A Segment call and the arguments that mean something to the checks."""

    type: str
    call: Call
    event: Expr | None = None
    properties: Expr | None = None
    """Track/page properties, identify/group traits."""
    integrations: Expr | None = None
    timestamp: Expr | None = None
    user_id: Expr | None = None
    server: bool = False
    """Sent by a server library (analytics-python, analytics-node), not a browser."""
    opaque: bool = False
    """Some fields come from a value the linter cannot read (``**kwargs``, ``{...params}``, an
    options variable), so a missing timestamp or integrations may be there after all."""


def is_client(receiver: str) -> bool:
    last = receiver.rsplit(".", 1)[-1].strip("?!()").lower()
    return last in _RECEIVER_NAMES or any(part in last for part in _RECEIVER_PARTS)


def messages(source: SourceFile) -> list[Message]:
    """The Segment calls of a file, in file order."""
    server_file = source.language == "python" or any(
        module in SERVER_MODULES for module in source.imports
    )
    found = []
    for call in source.calls:
        if call.method not in METHODS or call.constructor or not is_client(call.receiver):
            continue
        if source.language == "python":
            found.append(_python(call))
        else:
            found.append(_javascript(call, server_file))
    return found


def _python(call: Call) -> Message:
    order = _PYTHON_ORDER.get(call.method, ())
    named = dict(zip(order, call.args, strict=False)) | dict(call.keywords)
    return Message(
        type=call.method,
        call=call,
        event=named.get("event"),
        properties=named.get("properties", named.get("traits")),
        integrations=named.get("integrations"),
        timestamp=named.get("timestamp"),
        user_id=_present(named.get("user_id")),
        server=True,
        opaque=call.splat,
    )


def _javascript(call: Call, server_file: bool) -> Message:
    args = call.args
    first = args[0] if args else None
    if first is not None and first.kind == "object" and _node_style(call.method, first):
        return Message(
            type=call.method,
            call=call,
            event=first.entry("event"),
            properties=first.entry("properties") or first.entry("traits"),
            integrations=first.entry("integrations"),
            timestamp=first.entry("timestamp"),
            user_id=_present(first.entry("userId")),
            server=True,
            opaque=first.spread or call.splat,
        )
    event = user_id = None
    rest = list(args)
    if call.method == "track" and rest:
        event = rest.pop(0)
    elif call.method in ("identify", "group", "alias") and rest and rest[0].kind != "object":
        user_id = _present(rest.pop(0))
    elif call.method in ("page", "screen"):
        while rest and rest[0].kind not in ("object", "name", "member"):
            rest.pop(0)  # category, name
    properties = rest.pop(0) if rest else None
    options = rest[0] if rest and rest[0].kind == "object" else None
    # an options variable or call may hold integrations and a timestamp; a callback does not
    unreadable = bool(rest) and (
        rest[0].kind in ("name", "member", "call") or bool(options and options.spread)
    )
    return Message(
        type=call.method,
        call=call,
        event=event,
        properties=properties,
        integrations=options.entry("integrations") if options else None,
        timestamp=options.entry("timestamp") if options else None,
        user_id=user_id,
        server=server_file,
        opaque=call.splat or unreadable,
    )


def _node_style(method: str, first: Expr) -> bool:
    keys = {entry.key for entry in first.entries}
    wanted = {"event"} if method == "track" else {"userId", "anonymousId", "groupId"}
    return bool(keys & wanted) or (method == "track" and first.spread)


def _present(expr: Expr | None) -> Expr | None:
    return None if expr is None or expr.kind == "null" else expr
