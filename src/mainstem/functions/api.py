"""What a user's function sees (segment-governance.md §8.4, in Python).

A destination function defines ``on_track``, ``on_identify``, ``on_page``, ``on_screen``,
``on_group``, ``on_alias``, ``on_delete`` and/or ``on_batch``, each ``handler(event, settings)``.
A source function defines ``on_request(request, settings)`` and emits Segment calls with
``Segment.track({...})`` and friends. Both signal failures by raising:

* :class:`RetryError` — a temporary failure; the event is tried again later.
* :class:`ValidationError` (and :class:`InvalidEventPayload`) — the event is rejected for good.
* :class:`EventNotSupported` — this function does not handle the event; it is not retried.

Any other exception, a timeout, running out of memory or a dying process counts as temporary.

This module runs inside worker processes: it imports only the standard library (``fetch``
imports httpx when it is first called).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


class FunctionError(Exception):
    """Base of the errors a function may raise on purpose."""


class RetryError(FunctionError):
    """A temporary failure (the API was down, rate-limited us): retry with backoff."""


class ValidationError(FunctionError):
    """The event cannot be accepted (bad or missing fields): do not retry."""


class InvalidEventPayload(ValidationError):
    """Segment's other name for a rejected event."""


class EventNotSupported(FunctionError):
    """The function does not handle this kind of event: do not retry."""


_CALLS = ("track", "identify", "page", "screen", "group", "alias")


class _Emitter:
    """``Segment.track({...})`` etc.: the calls a source function emits, collected per request.

    Each call takes one message in Segment's shape (camelCase: ``userId``, ``anonymousId``,
    ``event``, ``properties``, ``traits``, ...); ``type`` is set for you. Nothing is sent until
    the function returns: then every collected call is validated and committed to the event log
    together, or, if the function raises, none is.
    """

    def __init__(self) -> None:
        self.emitted: list[dict[str, Any]] = []

    def _emit(self, kind: str, message: Mapping[str, Any]) -> None:
        if not isinstance(message, Mapping):
            raise TypeError(f"Segment.{kind}() takes one dict, got {type(message).__name__}")
        self.emitted.append({**message, "type": kind})

    def track(self, message: Mapping[str, Any]) -> None:
        self._emit("track", message)

    def identify(self, message: Mapping[str, Any]) -> None:
        self._emit("identify", message)

    def page(self, message: Mapping[str, Any]) -> None:
        self._emit("page", message)

    def screen(self, message: Mapping[str, Any]) -> None:
        self._emit("screen", message)

    def group(self, message: Mapping[str, Any]) -> None:
        self._emit("group", message)

    def alias(self, message: Mapping[str, Any]) -> None:
        self._emit("alias", message)

    def set(self, message: Mapping[str, Any]) -> None:
        """Segment's object API (warehouse-only rows) is not supported."""
        raise ValidationError("Segment.set() (the object API) is not supported by Mainstem")

    def take(self) -> list[dict[str, Any]]:
        emitted, self.emitted = self.emitted, []
        return emitted


Segment = _Emitter()
"""The emitter of source functions (one per worker process, emptied for every request)."""


class Headers(Mapping[str, str]):
    """Request headers, case-insensitive: ``request.headers.get("Stripe-Signature")``."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = {key.lower(): value for key, value in items.items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Request:
    """The webhook a source function receives."""

    method: str
    url: str
    headers: Headers
    body: bytes = b""
    query: Mapping[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Request:
        url = str(raw.get("url", ""))
        return cls(
            method=str(raw.get("method", "POST")),
            url=url,
            headers=Headers(raw.get("headers") or {}),
            body=str(raw.get("body", "")).encode("latin-1"),
            query=parse_qs(urlsplit(url).query, keep_blank_values=True),
        )

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON raises :class:`ValidationError`."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ValidationError(f"the request body is not JSON: {exc}") from exc

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body (the last value of repeated keys)."""
        return {key: values[-1] for key, values in parse_qs(self.text()).items()}

    def data(self) -> Any:
        """The body as JSON or, for a form, as a dict — by ``Content-Type``."""
        kind = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            return self.form()
        return self.json()


@dataclass(frozen=True)
class FetchResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | bytes | None = None,
    json_body: Any = None,
    timeout: float = 10.0,
) -> FetchResponse:
    """An HTTP request, like Segment's ``fetch``. Network errors and timeouts raise
    :class:`RetryError`, so the event is tried again; any status comes back as a response
    (raise :class:`RetryError` yourself for a 5xx or 429 you want retried). Plain ``httpx`` and
    ``urllib`` work in functions too."""
    import httpx  # here, so that functions that never fetch do not pay for the import

    try:
        reply = httpx.request(
            method,
            url,
            headers=dict(headers or {}),
            content=body,
            json=json_body,
            timeout=timeout,
            follow_redirects=True,
        )
    except httpx.HTTPError as exc:
        raise RetryError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
    return FetchResponse(reply.status_code, dict(reply.headers), reply.content)


HANDLERS = {kind: f"on_{kind}" for kind in (*_CALLS, "delete")}
"""Message type → the handler a destination function defines for it."""
