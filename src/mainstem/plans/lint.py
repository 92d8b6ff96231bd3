"""The tracking-code linter: finds ``analytics.track(...)`` calls in Python, JavaScript and
TypeScript with real parsers (tree-sitter) and checks literal event names and properties against
a plan — before the code ships, where enforcement only sees it after. Pure over source text.

Checked: the event is planned (with a suggestion for near misses), each literal property key is
planned, required properties are present (unless the object spreads another one in), and
literal values have a planned JSON type. Calls whose event is not a literal are skipped.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import tree_sitter
import tree_sitter_javascript
import tree_sitter_python
import tree_sitter_typescript

from mainstem.plans.model import TrackingPlan

_LANGUAGES = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".tsx": "tsx",
}
_GRAMMARS = {
    "python": tree_sitter_python.language,
    "javascript": tree_sitter_javascript.language,
    "typescript": tree_sitter_typescript.language_typescript,
    "tsx": tree_sitter_typescript.language_tsx,
}


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Call:
    event: str
    event_node: Any
    properties: Any | None
    """The literal object/dict node, or None."""


def language_for(path: str) -> str | None:
    """The grammar for a file name, or ``None`` for files the linter does not read."""
    return _LANGUAGES.get(PurePath(path).suffix.lower())


def lint(source: bytes, language: str, plan: TrackingPlan, path: str) -> list[Problem]:
    """Problems of the track calls in ``source``, in file order."""
    parser = tree_sitter.Parser(tree_sitter.Language(_GRAMMARS[language]()))
    tree = parser.parse(source)
    calls = _python_calls(tree.root_node) if language == "python" else _js_calls(tree.root_node)
    rules = plan.track_rules()
    problems: list[Problem] = []
    for call in calls:
        versions = rules.get(call.event)
        if not versions:
            hint = difflib.get_close_matches(call.event, list(rules), n=1)
            problems.append(
                _at(
                    path,
                    call.event_node,
                    f'event "{call.event}" is not in tracking plan "{plan.name}"'
                    + (f' — did you mean "{hint[0]}"?' if hint else " — add it to the plan"),
                )
            )
            continue
        if call.properties is None:
            continue
        section = versions[-1].schema.get("properties", {}).get("properties", {})
        planned: Mapping[str, Any] = {}
        for rule in versions:
            sub = rule.schema.get("properties", {}).get("properties", {})
            planned = {**planned, **sub.get("properties", {})} if isinstance(sub, dict) else planned
        required = section.get("required", []) if isinstance(section, dict) else []
        keys, spread = _literal_keys(call.properties, language)
        where = f'(tracking plan "{plan.name}", event "{call.event}")'
        for key, key_node, value_node in keys:
            if key not in planned:
                problems.append(_at(path, key_node, f"properties.{key}: not planned {where}"))
                continue
            got = _literal_type(value_node, language)
            wanted = _types(planned[key])
            integer_as_number = got == "integer" and "number" in wanted
            if got is not None and wanted and got not in wanted and not integer_as_number:
                problems.append(
                    _at(
                        path,
                        value_node,
                        f"properties.{key}: expected {' or '.join(wanted)}, got {got} "
                        f"{value_node.text.decode()} {where}",
                    )
                )
        if not spread:
            present = {key for key, _, _ in keys}
            for name in required:
                if name not in present:
                    problems.append(
                        _at(
                            path,
                            call.properties,
                            f"properties.{name}: required but missing {where}",
                        )
                    )
    return problems


def _at(path: str, node: Any, message: str) -> Problem:
    row, column = node.start_point
    return Problem(path, row + 1, column + 1, message)


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _js_calls(root: Any) -> list[_Call]:
    calls = []
    for node in _walk(root):
        if node.type != "call_expression":
            continue
        function = node.child_by_field_name("function")
        if function is None or function.type != "member_expression":
            continue
        prop = function.child_by_field_name("property")
        if prop is None or prop.text != b"track":
            continue
        arguments = node.child_by_field_name("arguments")
        args = [c for c in arguments.named_children if c.type != "comment"] if arguments else []
        event = _js_string(args[0]) if args else None
        if event is None:
            continue
        properties = args[1] if len(args) > 1 and args[1].type == "object" else None
        calls.append(_Call(event, args[0], properties))
    return calls


def _python_calls(root: Any) -> list[_Call]:
    calls = []
    for node in _walk(root):
        if node.type != "call":
            continue
        function = node.child_by_field_name("function")
        if function is None or function.type != "attribute":
            continue
        attribute = function.child_by_field_name("attribute")
        if attribute is None or attribute.text != b"track":
            continue
        arguments = node.child_by_field_name("arguments")
        if arguments is None:
            continue
        positional = [
            c for c in arguments.named_children if c.type not in ("keyword_argument", "comment")
        ]
        keywords = {
            c.child_by_field_name("name").text.decode(): c.child_by_field_name("value")
            for c in arguments.named_children
            if c.type == "keyword_argument"
        }
        # segment-analytics-python / rudder-sdk-python: track(user_id, event, properties, ...)
        event_node = keywords.get("event", positional[1] if len(positional) > 1 else None)
        props_node = keywords.get("properties", positional[2] if len(positional) > 2 else None)
        event = _python_string(event_node)
        if event is None:
            continue
        properties = (
            props_node if props_node is not None and props_node.type == "dictionary" else None
        )
        calls.append(_Call(event, event_node, properties))
    return calls


def _js_string(node: Any) -> str | None:
    if node.type == "string":
        return "".join(c.text.decode() for c in node.named_children if c.type == "string_fragment")
    if node.type == "template_string" and all(
        c.type == "string_fragment" for c in node.named_children
    ):
        return "".join(c.text.decode() for c in node.named_children)
    return None


def _python_string(node: Any) -> str | None:
    if node is None or node.type != "string":
        return None
    if any(c.type == "interpolation" for c in node.named_children):
        return None
    return "".join(c.text.decode() for c in node.named_children if c.type == "string_content")


def _literal_keys(node: Any, language: str) -> tuple[list[tuple[str, Any, Any]], bool]:
    """(key, key node, value node) of a literal object, and whether it spreads another in."""
    keys: list[tuple[str, Any, Any]] = []
    spread = False
    for child in node.named_children:
        if child.type in ("spread_element", "dictionary_splat"):
            spread = True
        elif child.type == "shorthand_property_identifier":
            keys.append((child.text.decode(), child, child))
        elif child.type == "pair":
            key_node = child.child_by_field_name("key")
            value_node = child.child_by_field_name("value")
            if key_node is None:
                continue
            if key_node.type in ("property_identifier", "identifier") and language != "python":
                key = key_node.text.decode()
            elif key_node.type == "string":
                text = _python_string(key_node) if language == "python" else _js_string(key_node)
                if text is None:
                    continue
                key = text
            else:
                continue
            keys.append((key, key_node, value_node))
    return keys, spread


def _literal_type(node: Any, language: str) -> str | None:
    kind = node.type
    if kind in ("string", "template_string"):
        return "string"
    if kind in ("number", "integer"):
        text = node.text.decode().lower()
        return "number" if any(c in text for c in ".e") and not text.startswith("0x") else "integer"
    if kind == "float":
        return "number"
    if kind in ("true", "false"):
        return "boolean"
    if kind in ("null", "none"):
        return "null"
    if kind in ("array", "list"):
        return "array"
    if kind in ("object", "dictionary"):
        return "object"
    return None


def _types(schema: Any) -> list[str]:
    if not isinstance(schema, Mapping):
        return []
    kinds = schema.get("type")
    if isinstance(kinds, str):
        return [kinds]
    return [k for k in kinds if isinstance(k, str)] if isinstance(kinds, list) else []
