"""Functions: user Python code that receives events (destination functions) or webhooks
(source functions), run in isolated worker processes.

User code imports what it needs from here::

    from mainstem.functions import EventNotSupported, RetryError, Segment, ValidationError, fetch

* :mod:`~mainstem.functions.api` — what user code sees: the error classes, ``Segment`` (the
  emitter of source functions), ``fetch`` and the ``Request`` of a webhook.
* :mod:`~mainstem.functions.spec` — the ``function:`` block of ``mainstem.yaml``.
* :mod:`~mainstem.functions.protocol` — length-prefixed JSON frames over pipes.
* :mod:`~mainstem.functions.child` — the worker process that loads and calls user code.
* :mod:`~mainstem.functions.runner` — the pool of worker processes: limits, kill, respawn.
* :mod:`~mainstem.functions.outcome` — what a call's result means (pure): retry, discard, HTTP.
* :mod:`~mainstem.functions.destination` — a destination function as a delivery transport.
* :mod:`~mainstem.functions.source` — ``POST /functions/{source_id}``.

This package's ``__init__`` imports only :mod:`~mainstem.functions.api`, so a worker process
starts small.
"""

from mainstem.functions.api import (
    EventNotSupported,
    FetchResponse,
    InvalidEventPayload,
    Request,
    RetryError,
    Segment,
    ValidationError,
    fetch,
)

__all__ = [
    "EventNotSupported",
    "FetchResponse",
    "InvalidEventPayload",
    "Request",
    "RetryError",
    "Segment",
    "ValidationError",
    "fetch",
]
