"""A YAML (or JSON) document read with the line of every value, so plan errors name
``file:line``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from mainstem.plans.model import PlanError


@dataclass
class Document:
    file: str
    value: Any
    lines: dict[str, int] = field(default_factory=dict)

    def error(self, path: str, message: str) -> PlanError:
        """``message`` located at ``path`` (or its nearest located parent)."""
        probe = path
        while probe and probe not in self.lines:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        return PlanError(message, file=self.file, line=self.lines.get(probe))


def read(text: str, file: str) -> Document:
    """Parse ``text``; JSON is read as YAML (a superset) to keep the lines.

    Raises:
        PlanError: not YAML/JSON, or empty.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise PlanError(
            f"not valid YAML or JSON: {exc.problem} — check indentation and quoting",
            file=file,
            line=line,
        ) from exc
    if node is None:
        raise PlanError("the file is empty", file=file)
    doc = Document(file, None)
    doc.value = _build(node, "", doc.lines)
    return doc


def _build(node: yaml.Node, path: str, lines: dict[str, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = f"{path}.{key}" if path else key
            lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, f"{path}[{i}]", lines) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    return yaml.safe_load(yaml.serialize(node))
