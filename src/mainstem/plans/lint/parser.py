"""Source text → :class:`~mainstem.plans.lint.syntax.SourceFile`, with the tree-sitter grammars
for Python, JavaScript and TypeScript (real parsers: strings, comments and nesting are never
guessed with patterns). Pure over bytes."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

import tree_sitter
import tree_sitter_javascript
import tree_sitter_python
import tree_sitter_typescript

from mainstem.plans.lint.syntax import (
    MODULE,
    Binding,
    Call,
    Comment,
    Entry,
    Expr,
    Kind,
    Mention,
    Scope,
    SourceFile,
    Span,
)

LANGUAGES = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
}
_GRAMMARS = {
    "python": tree_sitter_python.language,
    "javascript": tree_sitter_javascript.language,
    "typescript": tree_sitter_typescript.language_typescript,
    "tsx": tree_sitter_typescript.language_tsx,
}
_JS_FUNCTIONS = {
    "function_declaration", "generator_function_declaration", "function_expression", "function",
    "generator_function", "arrow_function", "method_definition",
}  # fmt: skip
_JS_WRAPPERS = {
    "parenthesized_expression", "as_expression", "satisfies_expression", "non_null_expression",
}  # fmt: skip
_LITERALS: dict[str, Kind] = {
    "true": "boolean", "false": "boolean", "null": "null", "none": "null", "undefined": "null",
    "array": "array", "list": "array", "tuple": "array", "identifier": "name",
    "member_expression": "member", "attribute": "member",
}  # fmt: skip
_IDENTIFIERS = frozenset({"identifier", "property_identifier", "shorthand_property_identifier"})
# identifiers that declare a name rather than read it: a parameter is not a consent check
_DECLARING = {
    "import_statement", "import_from_statement",
    "formal_parameters", "required_parameter", "optional_parameter", "parameters",
    "typed_parameter", "default_parameter", "typed_default_parameter", "lambda_parameters",
    "type", "type_annotation",
}  # fmt: skip
_NAMED = {
    "variable_declarator", "function_declaration", "function_definition", "class_declaration",
    "class_definition", "method_definition",
}  # fmt: skip


def language_for(path: str) -> str | None:
    """The grammar for a file name, or ``None`` for files the linter does not read."""
    return LANGUAGES.get(PurePath(path).suffix.lower())


def parse(source: bytes, language: str, path: str) -> SourceFile:
    """The calls, bindings, identifiers, comments and imports of one file."""
    tree = tree_sitter.Parser(tree_sitter.Language(_GRAMMARS[language]())).parse(source)
    reader = _Reader(source, python=language == "python")
    reader.visit(tree.root_node, MODULE)
    return SourceFile(
        path=path,
        language=language,
        calls=tuple(reader.calls),
        bindings=tuple(reader.bindings),
        mentions=tuple(reader.mentions),
        comments=tuple(reader.comments),
        scopes=tuple(reader.scopes),
        imports=tuple(reader.imports),
    )


class _Reader:
    def __init__(self, source: bytes, *, python: bool) -> None:
        self.source = source
        self.python = python
        self.line_starts = [0, *(i + 1 for i, b in enumerate(source) if b == 0x0A)]
        self.ids = itertools.count(1)
        self.calls: list[Call] = []
        self.bindings: list[Binding] = []
        self.mentions: list[Mention] = []
        self.comments: list[Comment] = []
        self.scopes: list[Scope] = [MODULE]
        self.imports: list[str] = []

    def span(self, node: Any) -> Span:
        line = bisect.bisect_right(self.line_starts, node.start_byte) - 1
        prefix = self.source[self.line_starts[line] : node.start_byte]
        column = len(prefix.decode("utf-8", errors="replace")) + 1
        return Span(line + 1, column, node.start_byte, node.end_byte)

    def visit(self, root: Any, scope: Scope) -> None:
        # (node, its function, whether identifiers under it read values: not in parameter
        # lists or type annotations)
        stack: list[tuple[Any, Scope, bool]] = [(root, scope, True)]
        while stack:
            node, scope, reads = stack.pop()
            kind = node.type
            if kind == "comment":
                self.comments.append(Comment(_text(node), self.span(node)))
                continue
            if kind in _DECLARING:
                reads = False
            if kind in _JS_FUNCTIONS or kind == "function_definition":
                scope = Scope(next(self.ids), _function_name(node), self.span(node))
                self.scopes.append(scope)
            elif kind in ("call_expression", "call", "new_expression"):
                self.call(node, scope)
            elif kind in _IDENTIFIERS and reads and not _declares(node):
                self.mentions.append(Mention(_text(node), self.span(node), scope))
            self.binding(node)
            self.import_(node)
            stack.extend((child, scope, reads) for child in reversed(node.children))

    def call(self, node: Any, scope: Scope) -> None:
        function = node.child_by_field_name(
            "constructor" if node.type == "new_expression" else "function"
        )
        receiver, method = _callee(function)
        if not method:
            return
        arguments = node.child_by_field_name("arguments")
        args: list[Expr] = []
        keywords: dict[str, Expr] = {}
        splat = False
        for child in arguments.named_children if arguments is not None else ():
            if child.type in ("list_splat", "dictionary_splat", "spread_element"):
                splat = True
            elif child.type == "keyword_argument":
                name, value = child.child_by_field_name("name"), child.child_by_field_name("value")
                if name is not None and value is not None:
                    keywords[_text(name)] = self.expr(value)
            elif child.type != "comment" and not splat:
                args.append(self.expr(child))
        self.calls.append(
            Call(
                receiver=receiver,
                method=method,
                args=tuple(args),
                at=self.span(node),
                scope=scope,
                keywords=keywords,
                constructor=node.type == "new_expression",
                splat=splat,
            )
        )

    def binding(self, node: Any) -> None:
        kind = node.type
        if kind in ("variable_declarator", "assignment_expression", "assignment"):
            target = node.child_by_field_name("name" if kind == "variable_declarator" else "left")
            value = node.child_by_field_name("value" if kind == "variable_declarator" else "right")
        elif kind in ("pair", "keyword_argument"):
            target = node.child_by_field_name("key" if kind == "pair" else "name")
            value = node.child_by_field_name("value")
        else:
            return
        if target is None or value is None:
            return
        name = self.key(target)
        if name is not None:
            self.bindings.append(Binding(name, self.expr(value), self.span(target)))

    def import_(self, node: Any) -> None:
        kind = node.type
        if kind == "import_statement" and not self.python:
            source = node.child_by_field_name("source")
            text = self.string(source) if source is not None else None
            if text:
                self.imports.append(text)
        elif kind == "import_statement":
            self.imports += [_text(c) for c in node.named_children if c.type == "dotted_name"]
            self.imports += [
                _text(c.child_by_field_name("name"))
                for c in node.named_children
                if c.type == "aliased_import"
            ]
        elif kind == "import_from_statement":
            module = node.child_by_field_name("module_name")
            if module is not None:
                self.imports.append(_text(module))
        elif kind == "call_expression":
            function = node.child_by_field_name("function")
            arguments = node.child_by_field_name("arguments")
            if (
                function is not None
                and _text(function) in ("require", "import")
                and arguments is not None
                and arguments.named_children
            ):
                text = self.string(arguments.named_children[0])
                if text:
                    self.imports.append(text)

    def key(self, node: Any) -> str | None:
        """The name a target or object key gives: the last name of ``a.b.c``, a key's text."""
        kind = node.type
        if kind in ("identifier", "property_identifier", "shorthand_property_identifier_pattern"):
            return _text(node)
        if kind in ("member_expression", "attribute"):
            last = node.child_by_field_name(
                "property" if kind == "member_expression" else "attribute"
            )
            return _text(last) if last is not None else None
        if kind == "string":
            return self.string(node)
        return None

    def string(self, node: Any) -> str | None:
        """The text of a string literal without interpolation, else ``None``."""
        if node.type == "string":
            parts = [c for c in node.named_children if c.type not in ("string_start", "string_end")]
            if any(c.type == "interpolation" for c in parts):
                return None
            return "".join(_text(c) for c in parts)
        if node.type == "template_string":
            parts = node.named_children
            if any(c.type == "template_substitution" for c in parts):
                return None
            return "".join(_text(c) for c in parts)
        if node.type == "concatenated_string":
            texts = [self.string(c) for c in node.named_children]
            return None if any(t is None for t in texts) else "".join(t or "" for t in texts)
        return None

    def expr(self, node: Any) -> Expr:
        while node.type in _JS_WRAPPERS and node.named_children:
            node = node.named_children[0]
        kind = node.type
        text, at = _text(node), self.span(node)
        if kind in ("string", "template_string", "concatenated_string"):
            value = self.string(node)
            return Expr("string" if value is not None else "template", text, at, value=value)
        if kind in ("number", "integer", "float"):
            lowered = text.lower()
            decimal = kind == "float" or (any(c in lowered for c in ".e") and "x" not in lowered)
            return Expr("number" if decimal else "integer", text, at)
        if kind in ("object", "dictionary"):
            return self.object(node, text, at)
        if kind in ("call_expression", "call"):
            function = node.child_by_field_name("function")
            return Expr("call", text, at, callee=_text(function) if function is not None else "")
        if kind == "identifier" and text == "undefined":
            return Expr("null", text, at)
        return Expr(_LITERALS.get(kind, "other"), text, at)

    def object(self, node: Any, text: str, at: Span) -> Expr:
        entries: list[Entry] = []
        spread = False
        for child in node.named_children:
            if child.type in ("spread_element", "dictionary_splat"):
                spread = True
            elif child.type == "shorthand_property_identifier":
                entries.append(
                    Entry(
                        _text(child), self.span(child), Expr("name", _text(child), self.span(child))
                    )
                )
            elif child.type == "pair":
                key_node, value = (
                    child.child_by_field_name("key"),
                    child.child_by_field_name("value"),
                )
                if key_node is None or value is None:
                    continue
                key = self.string(key_node) if key_node.type == "string" else None
                if key is None and not self.python and key_node.type == "property_identifier":
                    key = _text(key_node)
                if key is not None:
                    entries.append(Entry(key, self.span(key_node), self.expr(value)))
        return Expr("object", text, at, entries=tuple(entries), spread=spread)


def _text(node: Any) -> str:
    return bytes(node.text).decode("utf-8", errors="replace")


def _declares(node: Any) -> bool:
    parent = node.parent
    if parent is None:
        return False
    return parent.type in _NAMED and parent.child_by_field_name("name") == node


def _callee(function: Any) -> tuple[str, str]:
    """(receiver text, method name) of a called expression, ``("", "")`` if it has no name."""
    if function is None:
        return "", ""
    if function.type in ("identifier",):
        return "", _text(function)
    if function.type in ("member_expression", "attribute"):
        field = "property" if function.type == "member_expression" else "attribute"
        receiver = function.child_by_field_name("object")
        method = function.child_by_field_name(field)
        if receiver is not None and method is not None:
            return _text(receiver), _text(method)
    return "", ""


def _function_name(node: Any) -> str:
    name = node.child_by_field_name("name")
    if name is not None:
        return _text(name)
    parent = node.parent
    while parent is not None and parent.type in _JS_WRAPPERS:
        parent = parent.parent
    if parent is None:
        return ""
    if parent.type == "variable_declarator":
        target = parent.child_by_field_name("name")
    elif parent.type == "pair":
        target = parent.child_by_field_name("key")
    elif parent.type == "assignment_expression":
        target = parent.child_by_field_name("left")
        if target is not None and target.type == "member_expression":
            target = target.child_by_field_name("property")
    else:
        return ""
    return _text(target) if target is not None else ""


def walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))
