"""The web UI: one static page and its script, a thin view over the admin API (``/ui``)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from mainstem.errors import NotFound

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


@cache
def asset(name: str) -> bytes:
    """Raises: NotFound: no such file of the UI."""
    if name not in _TYPES:
        raise NotFound(f"no UI file {name!r} — open /ui", code="not_found")
    return resources.files(__package__).joinpath(name).read_bytes()


def media_type(name: str) -> str:
    return _TYPES[name]
