"""The readable tracking-plan format (``plans/web.yaml``), documented in
``docs/tracking-plans.md``.

A field is a JSON Schema draft-07 object with two conveniences: ``required: true`` on the field
(instead of a ``required`` list on its parent) and the types ``any`` (no constraint) and
``date-time`` (an ISO-8601 string). Everything else is passed to JSON Schema as written, so
nothing a Segment rule can say is lost: a rule this format cannot express is kept verbatim under
``rules:``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from mainstem.plans.document import Document, read
from mainstem.plans.model import DRAFT_07, Rule, RuleType, TrackingPlan, envelope
from mainstem.plans.segment_format import parse_rule

_TOP = ("plan", "description", "events", "pages", "screens", "identify", "group", "common", "rules")
_EVENT_KEYS = ("description", "version", "labels", "properties")
_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
_SUGAR_TYPES = ("any", "date-time")


class _NotSugar(Exception):
    """This schema cannot be written with the YAML conveniences; keep it as a raw rule."""


def loads(text: str, file: str = "plan.yaml") -> TrackingPlan:
    """Parse the YAML format.

    Raises:
        PlanError: with ``file:line``, what is wrong and the fix.
    """
    doc = read(text, file)
    top = doc.value
    if not isinstance(top, dict):
        raise doc.error("", "a tracking plan is a mapping — start with `plan: <name>`")
    for key in top:
        if key not in _TOP:
            raise doc.error(key, f"unknown key {key!r} — allowed: {', '.join(_TOP)}")
    name = top.get("plan")
    if not isinstance(name, str) or not name:
        raise doc.error("plan" if "plan" in top else "", "add the plan's name: `plan: web`")
    rules: list[Rule] = []
    named: tuple[tuple[str, RuleType], ...] = (
        ("events", "TRACK"),
        ("pages", "PAGE"),
        ("screens", "SCREEN"),
    )
    for section, rule_type in named:
        events = top.get(section) or {}
        if not isinstance(events, dict):
            raise doc.error(section, f"{section} must map names to their definition")
        for event, spec in events.items():
            specs = spec if isinstance(spec, list) else [spec]
            for index, one in enumerate(specs):
                path = f"{section}.{event}" + (f"[{index}]" if isinstance(spec, list) else "")
                rules.append(_named_rule(doc, path, rule_type, str(event), one))
    traits: tuple[tuple[str, RuleType], ...] = (("identify", "IDENTIFY"), ("group", "GROUP"))
    for section, kind in traits:
        if section in top:
            rules.append(_traits_rule(doc, section, kind, top[section]))
    if "common" in top:
        rules.append(_common_rule(doc, top["common"]))
    raw = top.get("rules") or []
    if not isinstance(raw, list):
        raise doc.error("rules", "rules must be a list of Segment rules")
    rules.extend(parse_rule(doc, f"rules[{i}]", item) for i, item in enumerate(raw))
    _check_unique(doc, rules)
    description = top.get("description", "")
    return TrackingPlan(name=name, rules=tuple(rules), description=str(description or ""))


def _named_rule(doc: Document, path: str, rule_type: RuleType, key: str, spec: Any) -> Rule:
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise doc.error(path, f"{path} must be a mapping with description and properties")
    for name in spec:
        if name not in _EVENT_KEYS:
            raise doc.error(
                f"{path}.{name}", f"unknown key {name!r} — allowed: {', '.join(_EVENT_KEYS)}"
            )
    version = spec.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise doc.error(f"{path}.version", "version must be a whole number, 1 or more")
    fields = _fields(doc, f"{path}.properties", spec.get("properties") or {})
    schema = envelope("properties", _object(fields), str(spec.get("description") or ""))
    labels = spec.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            raise doc.error(f"{path}.labels", "labels must map a label to its value")
        schema = {**schema, "labels": {str(k): str(v) for k, v in labels.items()}}
    return Rule(rule_type, key, version, schema)


def _traits_rule(doc: Document, path: str, rule_type: RuleType, spec: Any) -> Rule:
    spec = {} if spec is None else spec
    if not isinstance(spec, dict) or set(spec) - {"description", "traits"}:
        raise doc.error(path, f"{path} takes `description` and `traits` — e.g. `traits: {{...}}`")
    fields = _fields(doc, f"{path}.traits", spec.get("traits") or {})
    schema = envelope("traits", _object(fields), str(spec.get("description") or ""))
    return Rule(rule_type, None, 1, schema)


def _common_rule(doc: Document, spec: Any) -> Rule:
    if not isinstance(spec, dict):
        raise doc.error("common", "common maps top-level fields of every message to their rules")
    description = str(spec.get("description") or "")
    fields = _fields(doc, "common", {k: v for k, v in spec.items() if k != "description"})
    schema: dict[str, Any] = {"$schema": DRAFT_07, **_object(fields)}
    if description:
        schema["description"] = description
    return Rule("COMMON", None, 1, schema)


def _fields(doc: Document, path: str, fields: Any) -> dict[str, tuple[dict[str, Any], bool]]:
    if not isinstance(fields, dict):
        raise doc.error(path, f"{path} must map each name to its type, e.g. `total: number`")
    return {str(name): _field(doc, f"{path}.{name}", spec) for name, spec in fields.items()}


def _field(doc: Document, path: str, spec: Any) -> tuple[dict[str, Any], bool]:
    """(JSON Schema, required) of one field; a bare string is shorthand for its type."""
    if isinstance(spec, str | list):
        spec = {"type": spec}
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise doc.error(path, f"{path} must be a type (`string`) or a mapping (`type: string`)")
    schema = dict(spec)
    required = schema.pop("required", False)
    if isinstance(required, list):  # plain JSON Schema: names required in this object
        schema["required"] = required
        required = False
    if not isinstance(required, bool):
        raise doc.error(f"{path}.required", "required must be true or false")
    if "type" in schema:
        schema.update(_type(doc, f"{path}.type", schema.pop("type")))
    if "properties" in schema:
        children = _fields(doc, f"{path}.properties", schema["properties"])
        explicit = list(schema.pop("required", []))
        schema.update(_object(children, explicit))
    if "items" in schema and isinstance(schema["items"], dict | str):
        schema["items"], _ = _field(doc, f"{path}.items", schema["items"])
    return schema, required


def _type(doc: Document, path: str, value: Any) -> dict[str, Any]:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(name, str) for name in names):
        raise doc.error(path, "type must be a name or a list of names, e.g. `[string, null]`")
    for name in names:
        if name not in _JSON_TYPES + _SUGAR_TYPES:
            hint = f" — did you mean `{name.lower()}`?" if name.lower() in _JSON_TYPES else ""
            raise doc.error(
                path,
                f"unknown type {name!r}{hint} (types: {', '.join(_JSON_TYPES + _SUGAR_TYPES)})",
            )
    if "any" in names:
        return {}
    if names == ["date-time"]:
        return {"type": "string", "format": "date-time"}
    if "date-time" in names:
        raise doc.error(path, "date-time cannot be combined with other types; use `format`")
    return {"type": names[0] if len(names) == 1 else names}


def _object(
    fields: Mapping[str, tuple[dict[str, Any], bool]], explicit: list[Any] | None = None
) -> dict[str, Any]:
    required = [name for name, (_, req) in fields.items() if req]
    required += [name for name in explicit or [] if name not in required]
    result: dict[str, Any] = {
        "type": "object",
        "properties": {name: schema for name, (schema, _) in fields.items()},
    }
    if required:
        result["required"] = required
    return result


def _check_unique(doc: Document, rules: list[Rule]) -> None:
    seen: set[tuple[str, str | None, int]] = set()
    for rule in rules:
        key = (rule.type, rule.key, rule.version)
        if key in seen:
            what = f'"{rule.key}" version {rule.version}' if rule.key else rule.type.lower()
            raise doc.error("", f"the plan defines {what} twice — keep one")
        seen.add(key)


# ---- writing ------------------------------------------------------------------------------


def dumps(plan: TrackingPlan) -> str:
    """The plan in the YAML format; Segment rules it cannot express are kept under ``rules``."""
    out: dict[str, Any] = {"plan": plan.name}
    if plan.description:
        out["description"] = plan.description
    raw: list[dict[str, Any]] = []
    sections = {"TRACK": "events", "PAGE": "pages", "SCREEN": "screens"}
    versions: dict[tuple[str, str], int] = {}
    for rule in plan.rules:
        if rule.type in sections and rule.key is not None:
            versions[(rule.type, rule.key)] = versions.get((rule.type, rule.key), 0) + 1
    for rule in plan.rules:
        try:
            if rule.type in sections and rule.key is not None:
                spec = _event_spec(rule)
                section = out.setdefault(sections[rule.type], {})
                if versions[(rule.type, rule.key)] > 1 or rule.key in section:
                    existing = section.get(rule.key, [])
                    section[rule.key] = [*existing, {"version": rule.version, **spec}]
                else:
                    if rule.version != 1:
                        spec = {"version": rule.version, **spec}
                    section[rule.key] = spec
            elif rule.type in ("IDENTIFY", "GROUP") and rule.type.lower() not in out:
                out[rule.type.lower()] = _traits_spec(rule)
            elif rule.type == "COMMON" and "common" not in out:
                out["common"] = _common_spec(rule)
            else:
                raise _NotSugar
        except _NotSugar:
            raw.append(
                {
                    "type": rule.type,
                    "key": rule.key,
                    "version": rule.version,
                    "jsonSchema": dict(rule.schema),
                }
            )
    if raw:
        out["rules"] = raw
    return yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100)


def _event_spec(rule: Rule) -> dict[str, Any]:
    schema = dict(rule.schema)
    labels = schema.pop("labels", None)
    description = str(schema.get("description", ""))
    section = _section_of(schema, "properties", description)
    spec: dict[str, Any] = {}
    if description:
        spec["description"] = description
    if labels is not None:
        if not isinstance(labels, dict):
            raise _NotSugar
        spec["labels"] = dict(labels)
    spec["properties"] = _fields_spec(section)
    return spec


def _traits_spec(rule: Rule) -> dict[str, Any]:
    if rule.version != 1:
        raise _NotSugar
    description = str(rule.schema.get("description", ""))
    section = _section_of(dict(rule.schema), "traits", description)
    spec: dict[str, Any] = {}
    if description:
        spec["description"] = description
    spec["traits"] = _fields_spec(section)
    return spec


def _common_spec(rule: Rule) -> dict[str, Any]:
    schema = dict(rule.schema)
    if rule.version != 1 or schema.pop("$schema", DRAFT_07) != DRAFT_07:
        raise _NotSugar
    description = schema.pop("description", "")
    spec: dict[str, Any] = {"description": description} if description else {}
    fields = _fields_spec(schema)
    if "description" in fields:
        raise _NotSugar
    return {**spec, **fields}


def _section_of(schema: dict[str, Any], section: str, description: str) -> dict[str, Any]:
    """The sub-schema of ``section`` when ``schema`` is exactly Segment's envelope around it."""
    inner = schema.get("properties", {}).get(section)
    if not isinstance(inner, dict):
        raise _NotSugar
    if {k: v for k, v in schema.items() if k != "labels"} != envelope(section, inner, description):
        raise _NotSugar
    return inner


def _fields_spec(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an object schema; only ``type: object``, ``properties`` and a ``required``
    list naming some of them may be there."""
    if set(schema) - {"type", "properties", "required"} or schema.get("type") != "object":
        raise _NotSugar
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    if not isinstance(properties, dict) or not isinstance(required, list):
        raise _NotSugar
    if any(name not in properties for name in required) or len(set(required)) != len(required):
        raise _NotSugar
    return {name: _field_spec(child, name in required) for name, child in properties.items()}


def _field_spec(schema: Any, required: bool) -> Any:
    if not isinstance(schema, dict):
        raise _NotSugar  # boolean schemas have no readable form
    spec = dict(schema)
    if "required" in spec and not isinstance(spec["required"], list):
        raise _NotSugar
    if "properties" in spec:
        children = _fields_spec(
            {k: spec[k] for k in ("type", "properties", "required") if k in spec}
            | {"type": "object"}
        )
        for key in ("properties", "required"):
            spec.pop(key, None)
        if schema.get("type") != "object":
            raise _NotSugar
        spec["properties"] = children
    if isinstance(spec.get("items"), dict):
        spec["items"] = _field_spec(spec["items"], False)
    if spec.get("type") == "string" and spec.get("format") == "date-time":
        del spec["format"]
        spec["type"] = "date-time"
    spec = {"type": spec.pop("type", "any"), **({"required": True} if required else {}), **spec}
    if list(spec) == ["type"] and isinstance(spec["type"], str):
        return spec["type"]
    return spec
