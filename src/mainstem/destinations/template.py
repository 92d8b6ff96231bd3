"""Message templates for chat destinations: ``{{path}}`` replaced by the value at an FQL field
path of the message (``{{properties.total}}``, ``{{context.page.url}}``); a missing value
renders as nothing, a string as itself, anything else as compact JSON (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from mainstem.destinations import fql

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

DEFAULT = "{{type}} {{event}} by {{userId}}"


def check(template: str) -> None:
    """Raises:
    fql.FqlError: a placeholder is not a field path."""
    for match in _PLACEHOLDER.finditer(template):
        expr = fql.parse(match.group(1)) if match.group(1) else None
        if not isinstance(expr, fql.Path):
            raise fql.FqlError(f"{{{{{match.group(1)}}}}} is not a field path like {{{{userId}}}}")


def render(template: str, message: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        found = fql.value(fql.parse(match.group(1)), message)
        if found is None:
            return ""
        if isinstance(found, str):
            return found
        return json.dumps(found, separators=(",", ":"), ensure_ascii=False)

    return " ".join(_PLACEHOLDER.sub(value, template).split(" ")).strip()
