"""Checking a message against a rule: fastjsonschema for the common case (valid), jsonschema only
for invalid messages, to list every violation with its JSON path (DESIGN §7).

Violation ``type`` and ``description`` follow Segment's texts (reference §1.4: the English
messages of Go's gojsonschema, e.g. ``Invalid type. Expected: integer, given: number``); unplanned
events and properties get ``Unplanned Event`` / ``Unplanned Property`` (reference §9.1, our
choice). ``detail`` is our own wording for people: ``expected number, got string "12"``.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fastjsonschema
import jsonschema  # type: ignore[import-untyped]

from mainstem.plans.model import Rule

ROOT = "(root)"
_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("date-time")  # type: ignore[untyped-decorator]
def _date_time(value: object) -> bool:
    """ISO-8601 with a time zone, as fastjsonschema checks it (jsonschema alone needs an extra
    package for this format)."""
    if not isinstance(value, str):
        return True
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return "T" in value.upper() and parsed.tzinfo is not None


_TITLES = {
    "required": "Required",
    "type": "Invalid Type",
    "enum": "Enum",
    "const": "Const",
    "pattern": "Pattern",
    "format": "Format",
    "additionalProperties": "Additional Property",
    "allOf": "All Of",
    "anyOf": "Any Of",
    "oneOf": "One Of",
    "not": "Not",
    "if": "If Then Else",
}
_DESCRIPTIONS: dict[str, Callable[[str, Any, Any], str]] = {
    "enum": lambda field, rule, _: f"{field} must be one of the following: {_values(rule)}",
    "const": lambda field, rule, _: f"{field} does not match: {_value(rule)}",
    "pattern": lambda _, rule, __: f"Does not match pattern '{rule}'",
    "format": lambda _, rule, __: f"Does not match format '{rule}'",
    "minimum": lambda _, rule, __: f"Must be greater than or equal to {rule}",
    "maximum": lambda _, rule, __: f"Must be less than or equal to {rule}",
    "exclusiveMinimum": lambda _, rule, __: f"Must be greater than {rule}",
    "exclusiveMaximum": lambda _, rule, __: f"Must be less than {rule}",
    "multipleOf": lambda _, rule, __: f"Must be a multiple of {rule}",
    "minLength": lambda _, rule, __: f"String length must be greater than or equal to {rule}",
    "maxLength": lambda _, rule, __: f"String length must be less than or equal to {rule}",
    "minItems": lambda _, rule, __: f"Array must have at least {rule} items",
    "maxItems": lambda _, rule, __: f"Array must have at most {rule} items",
    "uniqueItems": lambda _, __, ___: "Array items must be unique",
    "allOf": lambda _, __, ___: "Must validate all the schemas (allOf)",
    "anyOf": lambda _, __, ___: "Must validate at least one schema (anyOf)",
    "oneOf": lambda _, __, ___: "Must validate one and only one schema (oneOf)",
    "not": lambda _, __, ___: "Must not validate the schema (not)",
}


@dataclass(frozen=True, slots=True)
class Violation:
    type: str
    """``Required``, ``Invalid Type``, ``Enum``, ... (Title-Case JSON Schema keyword)."""
    field: str
    """Dotted path in the message: ``properties.total``, ``traits.email``, ``(root)``."""
    description: str
    """Segment's text: ``properties.total is required``."""
    detail: str
    """Ours: ``expected number, got string "12"``."""

    def message(self, plan: str, event: str) -> str:
        """``properties.price: expected number, got string "12" (tracking plan "web", event
        "Order Completed")``."""
        return f'{self.field}: {self.detail} (tracking plan "{plan}", event "{event}")'

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "field": self.field, "description": self.description}


class _Part:
    """One piece of a rule: a fast check and the full explanation, at a place in the message."""

    def __init__(self, schema: dict[str, Any], prefix: tuple[str, ...]) -> None:
        self.prefix = prefix
        self.fast: Callable[[Any], Any] = fastjsonschema.compile(schema)
        self.full = jsonschema.Draft7Validator(schema, format_checker=_FORMATS)

    def explain(self, value: Any) -> list[Violation]:
        """The violations of ``value`` (empty when valid)."""
        try:
            self.fast(value)
            return []
        except fastjsonschema.JsonSchemaValueException as fast_error:
            errors = sorted(self.full.iter_errors(value), key=_order)
            found = [_violation(error, self.prefix) for error in errors]
            return found or [_from_fast(fast_error, self.prefix)]


class CompiledRule:
    """A rule ready to check messages; compile once per plan load.

    Valid messages cost one compiled fastjsonschema call. An invalid one is explained by
    jsonschema piece by piece — the envelope, the object of properties (or traits) with its
    members stubbed, and each member that fails its own fast check — because jsonschema over a
    whole event costs ~200 µs and over one property a few (bench/plans.py).
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.planned = rule.planned_names()
        schema = dict(rule.schema)
        self._fast: Callable[[Any], Any] = fastjsonschema.compile(schema)
        self._whole = _Part(schema, ())
        self._section: str | None = None
        section = rule.section()
        inner = schema.get("properties", {}).get(section) if section else None
        if (
            section is not None
            and isinstance(inner, dict)
            and isinstance(inner.get("properties"), dict)
            and '"$ref"' not in json.dumps(schema)  # pieces must stand alone
        ):
            self._section = section
            members = inner["properties"]
            outer = {**schema, "properties": {**schema["properties"], section: {}}}
            shell = {**inner, "properties": {name: {} for name in members}}
            self._outer = _Part(outer, ())
            self._shell = _Part(shell, (section,))
            self._members = {
                name: _Part(sub, (section, name))
                for name, sub in members.items()
                if isinstance(sub, dict)
            }

    def check(self, message: dict[str, Any]) -> list[Violation]:
        """Every violation of ``message`` (none for a valid one), sorted by field."""
        try:
            self._fast(message)
            return []
        except fastjsonschema.JsonSchemaValueException:
            pass
        if self._section is None:
            found = self._whole.explain(message)
        else:
            found = self._outer.explain(message)
            value = message.get(self._section)
            if isinstance(value, dict):
                found += self._shell.explain(value)
                for name, part in self._members.items():
                    if name in value:
                        found += part.explain(value[name])
            if not found:  # the pieces disagree with the whole (should not happen): ask it
                found = self._whole.explain(message)
        return sorted(_unique(found), key=lambda v: (v.field, v.type))


def clean_check(rule: CompiledRule, common: CompiledRule | None) -> Callable[[Any], bool]:
    """One compiled check that ``message`` passes ``rule`` and ``common`` and sends no property
    (or trait) the rule does not name — when it holds, enforcement has nothing to record and
    nothing to change, whatever the controls (the fast path of
    :func:`~mainstem.plans.enforcement.decide`). ``False`` only means "look closer"."""
    schema: dict[str, Any] = json.loads(json.dumps(rule.rule.schema))
    section = rule.rule.section()
    if rule.planned is not None and section is not None:
        schema["properties"][section]["additionalProperties"] = False
    parts = [schema] + ([json.loads(json.dumps(common.rule.schema))] if common else [])
    if any('"$ref"' in json.dumps(part) for part in parts):  # refs are relative to each root
        return lambda message: False
    for part in parts:
        part.pop("$schema", None)
    compiled = fastjsonschema.compile(
        {"$schema": "http://json-schema.org/draft-07/schema#", "allOf": parts}
    )

    def check(message: Any) -> bool:
        try:
            compiled(message)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return check


def _order(error: Any) -> tuple[str, str]:
    return (".".join(str(p) for p in error.absolute_path), str(error.validator))


def _path(parts: Sequence[Any]) -> str:
    return ".".join(str(p) for p in parts) or ROOT


def _violation(error: Any, prefix: tuple[str, ...] = ()) -> Violation:
    keyword = str(error.validator)
    field = _path([*prefix, *error.absolute_path])
    rule = error.validator_value
    instance = error.instance
    if keyword == "required":
        name = _missing_name(error.message)
        field = f"{field}.{name}" if field != ROOT else name
        return Violation("Required", field, f"{field} is required", "required but missing")
    if keyword == "type":
        expected = ", ".join(rule) if isinstance(rule, list) else str(rule)
        given = json_type(instance)
        return Violation(
            "Invalid Type",
            field,
            f"Invalid type. Expected: {expected}, given: {given}",
            f"expected {' or '.join(rule) if isinstance(rule, list) else rule}, "
            f"got {given} {_value(instance)}",
        )
    describe = _DESCRIPTIONS.get(keyword)
    description = describe(field, rule, instance) if describe else str(error.message)
    if field == ROOT and keyword in ("allOf", "anyOf", "oneOf", "not"):
        description = f"{ROOT} {description}"
    if keyword == "enum":
        detail = f"expected one of {_values(rule)}, got {_value(instance)}"
    elif keyword in ("pattern", "format"):
        detail = f"{_value(instance)} does not match {keyword} '{rule}'"
    else:
        detail = description[0].lower() + description[1:]
    return Violation(_TITLES.get(keyword, _title(keyword)), field, description, detail)


def _from_fast(error: Any, prefix: tuple[str, ...] = ()) -> Violation:
    parts = [*prefix, *list(error.path)[1:]]  # fastjsonschema paths start with "data"
    field = _path(parts)
    keyword = str(error.rule)
    rule = error.rule_definition
    describe = _DESCRIPTIONS.get(keyword)
    description = describe(field, rule, error.value) if describe else str(error.message)
    detail = f"{_value(error.value)} does not match {keyword} '{rule}'"
    return Violation(_TITLES.get(keyword, _title(keyword)), field, description, detail)


def _missing_name(message: str) -> str:
    # jsonschema: "'total' is a required property" (the name as a Python repr)
    text = message.removesuffix(" is a required property")
    try:
        return str(ast.literal_eval(text))
    except (ValueError, SyntaxError):
        return text


def _unique(violations: list[Violation]) -> list[Violation]:
    seen: set[tuple[str, str, str]] = set()
    result = []
    for violation in violations:
        key = (violation.type, violation.field, violation.description)
        if key not in seen:
            seen.add(key)
            result.append(violation)
    return result


def json_type(value: Any) -> str:
    """The JSON type name gojsonschema reports (``integer`` for whole numbers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "..."


def _values(values: Any) -> str:
    return ", ".join(_value(v) for v in values) if isinstance(values, list) else _value(values)


def _title(keyword: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", keyword).title()
