"""One exception tree for Mainstem, grouped by what the caller should do.

::

    MainstemError
    ├── RequestError            400  reject the input; retrying the same request cannot help
    │   ├── MalformedBody       400  the body is not the JSON we expect
    │   ├── PayloadTooLarge     400  a request or event is over a size limit (Segment answers 400)
    │   ├── InvalidMessage      400  a single-event request that fails validation
    │   └── Unprocessable       422  well-formed JSON that asks for something unsupported or invalid
    ├── Unauthorized            401  unknown or disabled write key, bad admin token
    ├── NotFound                404
    ├── TooManyRequests         429  the event log is behind; retry after ``retry_after`` seconds
    ├── RetryLater              503  storage not ready or shutting down; the client should retry
    │   └── LeaseLost           503  another process holds the lease now; nothing was committed
    └── ConfigError             ---  the workspace or settings are wrong; fix the file and restart

Each class carries its HTTP status and a machine-readable ``code``; structured facts live in
attributes. Foreign exceptions are translated once, at the boundary, with ``raise ... from exc``.
"""

from __future__ import annotations


class MainstemError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class RequestError(MainstemError):
    status = 400
    code = "bad_request"


class MalformedBody(RequestError):
    code = "invalid_json"


class PayloadTooLarge(RequestError):
    code = "payload_too_large"


class InvalidMessage(RequestError):
    """A message failed validation; ``code`` is Segment's discard code (``event_not_string``)."""


class Unprocessable(RequestError):
    """Well-formed JSON whose content cannot be done (an unsupported regulation type, bad ids):
    the admin API's 422, as Segment's Public API answers."""

    status = 422
    code = "unprocessable"


class Unauthorized(MainstemError):
    status = 401
    code = "unauthorized"


class NotFound(MainstemError):
    status = 404
    code = "not_found"


class TooManyRequests(MainstemError):
    """Backpressure: Segment's clients retry a 429 after ``Retry-After`` (reference §1.7)."""

    status = 429
    code = "rate_limited"
    retry_after = 1


class RetryLater(MainstemError):
    status = 503
    code = "unavailable"


class LeaseLost(RetryLater):
    """Another process holds the lease (on a log partition, or on a destination's delivery) now:
    ours had expired and nothing was committed. A gateway appends to another partition; a worker
    drops the partition or stops delivering to the destination."""


class ConfigError(MainstemError):
    """A configuration problem: the message names the file, the line and the fix."""

    code = "config_error"

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.line = line
