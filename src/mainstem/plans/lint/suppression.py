"""``# mainstem: ignore[check-id]`` / ``// mainstem: ignore[a, b]`` comments: a finding is
suppressed by such a comment on its own line or on the line above. Read from the parsed
comments, so the same text inside a string does nothing."""

from __future__ import annotations

import re
from collections.abc import Mapping

from mainstem.plans.lint.syntax import Comment

_IGNORE = re.compile(r"mainstem:\s*ignore\[([^\]]*)\]")


def ignored(comments: tuple[Comment, ...]) -> Mapping[int, frozenset[str]]:
    """Line → the check ids suppressed on it."""
    lines: dict[int, set[str]] = {}
    for comment in comments:
        for match in _IGNORE.finditer(comment.text):
            ids = {part.strip() for part in match.group(1).split(",") if part.strip()}
            last = comment.at.line + comment.text.count("\n")
            for line in (last, last + 1):
                lines.setdefault(line, set()).update(ids)
    return {line: frozenset(ids) for line, ids in lines.items()}
