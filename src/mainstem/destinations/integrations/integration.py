"""What an integration with a vendor API is (pure): declared settings, and functions from a batch
of Segment messages to the HTTP requests that vendor expects.

The courier, retries, batching, dead letters and replay stay the same for every destination;
an integration only says *what* to send. :class:`~mainstem.destinations.transports.Vendor` is
the I/O edge that posts the requests.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

import msgspec

from mainstem.destinations.retry import Response
from mainstem.secret import Secret

Settings = Mapping[str, Any]
"""An integration's settings by name; secret values are :class:`~mainstem.secret.Secret`."""
Message = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Option:
    """One key under ``settings:`` of a destination of this type."""

    name: str
    help: str
    kind: Literal["text", "int", "bool", "map"] = "text"
    required: bool = False
    secret: bool = False
    """Wrapped in :class:`~mainstem.secret.Secret` (prints as ``********``)."""
    default: object = None
    needs: tuple[str, ...] = ()
    """Other settings that must be set when this one is."""


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP POST: ``path`` is appended to the destination's ``endpoint``."""

    path: str
    body: object
    """JSON-encodable; a :class:`msgspec.Raw` is sent as its bytes (see :func:`form`)."""
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


def _unchanged(request: Request, response: Response) -> Response:
    return response


@dataclass(frozen=True, slots=True)
class Integration:
    type: str
    """The ``type:`` in ``mainstem.yaml``."""
    display_name: str
    """The default ``name``, the key of the ``integrations`` object (e.g. ``Mixpanel``)."""
    endpoint: str
    """The default base URL; the ``endpoint`` setting overrides it (EU data centres, tests)."""
    options: tuple[Option, ...]
    types: tuple[str, ...]
    """Message types the vendor takes; others are refused when ``mainstem.yaml`` is loaded."""
    batch_size: int
    max_batch: int
    requests: Callable[[Sequence[Message], Settings], list[Request]]
    """The requests for a batch of messages that :attr:`skip` let through, in sending order.
    Deterministic: the same batch always gives the same requests (retries skip the ones
    already accepted)."""
    skip: Callable[[Message, Settings], str | None]
    """Why one (routed, filtered) message cannot go to this vendor, or ``None``; skipped
    messages count as filtered, with this reason."""
    answer: Callable[[Request, Response], Response] = _unchanged
    """Reinterpret a vendor's answer, for APIs that say 200 and mean failure."""


def basic_auth(user: str, password: str = "") -> tuple[str, str]:
    """An ``Authorization: Basic`` header."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return ("Authorization", f"Basic {token}")


FORM = ("Content-Type", "application/x-www-form-urlencoded")


def form(path: str, fields: Sequence[tuple[str, str]]) -> Request:
    """A form-encoded POST (``a=1&b=2``), for the vendor APIs that take no JSON body
    (Amplitude's Group Identify API)."""
    return Request(path, msgspec.Raw(urlencode(fields).encode("ascii")), headers=(FORM,))


def bearer(token: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {token}")


def reveal(settings: Settings, name: str) -> str:
    """The value of a secret (or plain) setting, ``""`` when unset."""
    value = settings.get(name)
    if value is None:
        return ""
    return value.reveal() if isinstance(value, Secret) else str(value)


T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


def chunks(items: Sequence[T], *, count: int, size: int) -> list[list[T]]:
    """``items`` in order, in groups of at most ``count`` items and about ``size`` bytes of JSON
    (the vendor's request limits; an item larger than ``size`` goes alone)."""
    result: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        length = len(_encode(item)) + 1
        if current and (len(current) >= count or used + length > size):
            result.append(current)
            current, used = [], 0
        current.append(item)
        used += length
    if current:
        result.append(current)
    return result
