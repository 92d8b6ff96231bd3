"""The user docs stay true: every setting, command, option, route, metric and error code that the
code has is documented, the README's quick start is two commands, and relative links resolve."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mainstem.api import build_api
from mainstem.cli import app
from mainstem.destinations.integrations import INTEGRATIONS
from mainstem.gateway import ROUTES
from mainstem.metrics import Metrics
from mainstem.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "mainstem"
MARKDOWN = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *DOCS.glob("*.md")])

runner = CliRunner()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _prose(text: str) -> str:
    """Markdown without fenced code blocks, whose brackets are code, not links."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _headings(text: str) -> list[tuple[int, str]]:
    return [
        (len(match.group(1)), match.group(2).strip())
        for match in re.finditer(r"^(#{1,6})\s+(.+?)\s*#*\s*$", _prose(text), re.MULTILINE)
    ]


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_every_setting_has_a_row_in_the_configuration_reference(setting: Any) -> None:
    rows = [line for line in _read(DOCS / "configuration.md").splitlines() if line.startswith("|")]
    wanted = (f"`{setting.name}`", f"`{setting.env}`", f"`{setting.flag}`")
    assert any(all(part in row for part in wanted) for row in rows), (
        f"docs/configuration.md needs a settings table row with {', '.join(wanted)}"
    )


# --- CLI --------------------------------------------------------------------------------------


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group under ``command``, depth first, with its path of names."""
    if path:
        yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))
COMMAND_IDS = [" ".join(path) for path, _ in COMMANDS]


def _cli_sections() -> dict[str, str]:
    """``## mainstem <command>`` heading → the text up to the next heading of that level."""
    text = _read(DOCS / "cli.md")
    parts = re.split(r"^## +(.+?) *$", text, flags=re.MULTILINE)
    return {title.strip("` "): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_the_cli_walk_finds_the_nested_commands() -> None:
    assert {"serve", "config", "config check", "events"} <= set(COMMAND_IDS)


def test_top_level_help_exits_0() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_every_command_has_a_heading_and_a_working_help(
    path: tuple[str, ...], command: Any
) -> None:
    title = "mainstem " + " ".join(path)
    assert title in _cli_sections(), f"docs/cli.md needs a section headed `## {title}`"
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=COMMAND_IDS)
def test_every_option_is_documented_in_its_command_section(
    path: tuple[str, ...], command: Any
) -> None:
    section = _cli_sections().get("mainstem " + " ".join(path), "")
    for param in command.params:
        if type(param).__name__.endswith("Argument"):
            names = [param.name]
        else:
            names = [*param.opts, *param.secondary_opts]
        for name in names:
            assert f"`{name}`" in section, (
                f"docs/cli.md, section `mainstem {' '.join(path)}`, does not mention `{name}`"
            )


# --- destinations -----------------------------------------------------------------------------


def _destination_sections() -> dict[str, str]:
    """``### <Display name>`` heading of docs/destinations.md → its text."""
    text = _read(DOCS / "destinations.md")
    parts = re.split(r"^### +(.+?) *$", text, flags=re.MULTILINE)
    return {title: body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("integration", INTEGRATIONS.values(), ids=list(INTEGRATIONS))
def test_every_integration_has_a_section_with_its_settings_and_mapping(integration: Any) -> None:
    section = _destination_sections().get(integration.display_name)
    assert section is not None, f"docs/destinations.md needs `### {integration.display_name}`"
    assert f"`type: {integration.type}`" in section
    for name in ("endpoint", *(option.name for option in integration.options)):
        assert f"`{name}`" in section, f"{integration.display_name}: `{name}` is undocumented"
    assert "| Segment" in section, f"{integration.display_name}: no mapping table"


# --- HTTP API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_every_ingest_route_is_documented(path: str) -> None:
    assert f"`{path}`" in _read(DOCS / "http-api.md"), f"docs/http-api.md does not list `{path}`"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/pixel/{type}",
        "/v1/projects/{writeKey}/settings",
        "/api/v1/events",
        "/api/v1/rejections",
        "/health",
        "/metrics",
        "/api/v1/openapi.json",
    ],
)
def test_the_other_http_paths_are_documented(path: str) -> None:
    pattern = r"(?<![\w/{}])" + re.escape(path) + r"(?![\w/{}])"
    assert re.search(pattern, _read(DOCS / "http-api.md")), f"docs/http-api.md lacks {path}"


def _admin_routes() -> list[str]:
    app = build_api(lambda: None, lambda: None, dict, bytes)  # type: ignore[arg-type,return-value]
    paths = {getattr(route, "path", "") for route in app.routes}
    return sorted(path for path in paths if path.startswith("/api/v1/"))


def test_the_admin_routes_are_found() -> None:
    assert {"/api/v1/events", "/api/v1/warehouse/loads"} <= set(_admin_routes())


@pytest.mark.parametrize("path", _admin_routes())
def test_every_admin_route_is_documented(path: str) -> None:
    pattern = r"(?<![\w/{}])" + re.escape(path) + r"(?![\w/{}])"
    assert re.search(pattern, _read(DOCS / "http-api.md")), f"docs/http-api.md lacks {path}"


def _metric_names() -> list[str]:
    metrics = Metrics()
    metrics.add_pipeline(lambda: {}, lambda: 0)
    return sorted({family.name for family in metrics.registry.collect()})


def test_the_metric_names_are_found() -> None:
    names = _metric_names()
    assert "mainstem_http_requests" in names
    assert "mainstem_log_lag" in names  # from the pipeline collector


@pytest.mark.parametrize("name", _metric_names())
def test_every_metric_is_documented(name: str) -> None:
    assert f"`{name}`" in _read(DOCS / "http-api.md"), f"docs/http-api.md does not list `{name}`"


# Class defaults that no HTTP answer carries: the base classes' codes, and configuration errors,
# which are printed by the CLI rather than answered.
_NOT_ANSWERED = {"internal_error", "bad_request", "config_error"}


def _error_codes() -> set[str]:
    """Every literal error or discard code in the package: ``code="..."`` arguments, the first
    argument of ``Rejection(...)`` / ``Rejected(...)``, and ``code = "..."`` class attributes."""
    codes: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(_read(path), filename=str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in ("Rejection", "Rejected") and node.args:
                    codes.update(_literal(node.args[0]))
                for keyword in node.keywords:
                    if keyword.arg == "code":
                        codes.update(_literal(keyword.value))
            elif isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if (
                        isinstance(statement, ast.Assign | ast.AnnAssign)
                        and any(
                            isinstance(target, ast.Name) and target.id == "code"
                            for target in _targets(statement)
                        )
                        and statement.value is not None
                    ):
                        codes.update(_literal(statement.value))
    return codes - _NOT_ANSWERED


def _targets(statement: ast.Assign | ast.AnnAssign) -> list[ast.expr]:
    return statement.targets if isinstance(statement, ast.Assign) else [statement.target]


def _literal(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    return set()


def test_the_error_codes_are_found() -> None:
    codes = _error_codes()
    assert {"project_not_found", "no_user_anon_id", "empty_batch", "invalid_since"} <= codes


@pytest.mark.parametrize("code", sorted(_error_codes()))
def test_every_error_and_discard_code_is_documented(code: str) -> None:
    assert f"`{code}`" in _read(DOCS / "http-api.md"), f"docs/http-api.md does not explain `{code}`"


# --- README -----------------------------------------------------------------------------------


def test_readme_quick_start_is_make_run_and_make_test() -> None:
    text = _read(ROOT / "README.md")
    match = re.search(r"^## Quick start\s*$(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md needs a `## Quick start` section"
    blocks = re.findall(r"^```\w*\n(.*?)^```", match.group(1), re.MULTILINE | re.DOTALL)
    commands = [line.strip() for block in blocks for line in block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


# --- links ------------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for _, heading in _headings(_read(path)):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links(path: Path) -> list[str]:
    prose = re.sub(r"`[^`\n]*`", "", _prose(_read(path)))
    return re.findall(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose)


def _relative_links() -> list[tuple[Path, str]]:
    return [
        (path, target)
        for path in MARKDOWN
        if path.exists()
        for target in sorted(set(_links(path)))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)
    ]


RELATIVE_LINKS = _relative_links()


def test_the_user_docs_exist() -> None:
    for name in ("configuration", "http-api", "cli", "architecture", "migrating-from-segment"):
        assert (DOCS / f"{name}.md").exists()


@pytest.mark.parametrize(
    ("source", "target"),
    RELATIVE_LINKS,
    ids=[f"{path.relative_to(ROOT)}->{target}" for path, target in RELATIVE_LINKS],
)
def test_relative_links_resolve(source: Path, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    linked = (source.parent / file_part).resolve() if file_part else source
    assert linked.exists(), f"{source.relative_to(ROOT)} links to {target}, which does not exist"
    if anchor and linked.suffix == ".md":
        assert anchor in _anchors(linked), (
            f"{source.relative_to(ROOT)} links to {target}, but {linked.name} has no heading "
            f"with that anchor"
        )
