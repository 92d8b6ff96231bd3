"""event-name-casing: the casing most of the codebase's event names share, and the names that
break it. Across all files linted together, so it runs after the per-file checks. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from mainstem.plans.lint import catalog
from mainstem.plans.lint.findings import Hit
from mainstem.plans.lint.messages import Message
from mainstem.plans.words import words

# In order of preference when counts tie: Segment's spec recommends "Object Action" Title Case.
STYLES: dict[str, re.Pattern[str]] = {
    "Title Case": re.compile(r"^[A-Z0-9][A-Za-z0-9]*( [A-Z0-9][A-Za-z0-9]*)*$"),
    "snake_case": re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$"),
    "camelCase": re.compile(r"^[a-z][a-z0-9]*([A-Z][a-z0-9]*)*$"),
    "Sentence case": re.compile(r"^[A-Z][a-z0-9]*( [a-z0-9]+)+$"),
    "lower case": re.compile(r"^[a-z0-9]+( [a-z0-9]+)+$"),
    "kebab-case": re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$"),
    "PascalCase": re.compile(r"^([A-Z][a-z0-9]+){2,}$"),
    "SCREAMING_SNAKE_CASE": re.compile(r"^[A-Z0-9]+(_[A-Z0-9]+)*$"),
}


def styles_of(name: str) -> set[str]:
    return {style for style, pattern in STYLES.items() if pattern.match(name)}


def dominant(names: Sequence[str]) -> tuple[str, int] | None:
    """The style most distinct names fit, and how many fit it (``None`` under two names)."""
    distinct = sorted(set(names))
    if len(distinct) < 2:
        return None
    counts = {style: sum(1 for n in distinct if style in styles_of(n)) for style in STYLES}
    style = max(STYLES, key=lambda s: counts[s])  # max keeps the first on ties
    return (style, counts[style]) if counts[style] else None


def recase(name: str, style: str) -> str:
    parts = words(name)
    if style == "Title Case":
        return " ".join(w.capitalize() for w in parts)
    if style == "snake_case":
        return "_".join(parts)
    if style == "camelCase":
        return parts[0] + "".join(w.capitalize() for w in parts[1:]) if parts else name
    if style == "Sentence case":
        return " ".join(parts).capitalize()
    if style == "lower case":
        return " ".join(parts)
    if style == "kebab-case":
        return "-".join(parts)
    if style == "PascalCase":
        return "".join(w.capitalize() for w in parts)
    return "_".join(parts).upper()


def event_name_casing(files: Sequence[tuple[str, Sequence[Message]]]) -> Iterator[tuple[str, Hit]]:
    """(path, hit) for every call site of an event whose name does not fit the dominant style."""
    sites = [
        (path, message)
        for path, messages in files
        for message in messages
        if message.type == "track" and message.event is not None and message.event.value
    ]
    names = [message.event.value for _, message in sites if message.event and message.event.value]
    found = dominant(names)
    if found is None:
        return
    style, count = found
    total = len(set(names))
    for path, message in sites:
        assert message.event is not None and message.event.value is not None
        name = message.event.value
        if style in styles_of(name):
            continue
        yield (
            path,
            Hit(
                catalog.EVENT_NAME_CASING,
                message.event.at.line,
                message.event.at.column,
                f'event "{name}" does not use {style} like the other events ({count} of {total} '
                f'names) — rename it "{recase(name, style)}"',
            ),
        )
