"""``mainstem plan …``, ``mainstem lint`` and ``mainstem violations``: parse, call the plans
library, format."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import typer
from rich.table import Table

from mainstem import config
from mainstem.api import parse_since
from mainstem.console import ConfigOption, DataDirOption
from mainstem.console import err as _err
from mainstem.console import fail as _fail
from mainstem.console import out as _out
from mainstem.errors import MainstemError
from mainstem.plans import codegen, inference, lint, report, segment_format, yaml_format
from mainstem.plans import diff as plan_changes
from mainstem.plans.attachment import load_plan
from mainstem.plans.enforcement import CompiledPlan
from mainstem.plans.lint import report as lint_report
from mainstem.plans.lint import sarif
from mainstem.plans.model import PlanError, TrackingPlan
from mainstem.storage import EventQuery, ViolationQuery
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore

plan_app = typer.Typer(
    help="Tracking plans: check, import, export, infer, diff, codegen, lint.", no_args_is_help=True
)
OutputOption = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
]


def _load(file: Path) -> TrackingPlan:
    try:
        return load_plan(file)
    except PlanError as exc:
        raise _fail(exc) from exc


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        _err.print(f"wrote {output}", highlight=False)


@plan_app.command("check")
def plan_check(
    file: Annotated[Path, typer.Argument(help="A plan: .yaml (ours) or .json (Segment export).")],
) -> None:
    """Check a tracking plan file; errors name the line and the fix."""
    plan = _load(file)
    compiled = CompiledPlan(plan)
    kinds = [k.lower() for k in ("IDENTIFY", "GROUP", "COMMON") if plan.single(k) is not None]
    events = len(compiled.track)
    rules = len(plan.rules)
    extra = f", {', '.join(kinds)}" if kinds else ""
    typer.echo(
        f'{file}: tracking plan "{plan.name}" is valid — {events} '
        f"{'event' if events == 1 else 'events'}{extra} ({rules} rules)"
    )


@plan_app.command("import")
def plan_import(
    file: Annotated[Path, typer.Argument(help="A Segment Protocols export (JSON).")],
    output: OutputOption = None,
    name: Annotated[str | None, typer.Option(help="Plan name, if the export has none.")] = None,
) -> None:
    """Convert a Segment Protocols export to the readable YAML format."""
    try:
        text = file.read_text(encoding="utf-8")
        plan = segment_format.loads(text, file=str(file), name=name)
    except OSError as exc:
        raise _fail(f"{file}: cannot read the file: {exc}") from exc
    except PlanError as exc:
        raise _fail(exc) from exc
    _write(yaml_format.dumps(plan), output)


@plan_app.command("export")
def plan_export(
    file: Annotated[Path, typer.Argument(help="A plan file (.yaml or .json).")],
    format: Annotated[
        Literal["segment", "yaml"], typer.Option("--format", help="segment (JSON) or yaml.")
    ] = "segment",
    output: OutputOption = None,
) -> None:
    """Write a plan as a Segment Protocols export (or in the YAML format)."""
    plan = _load(file)
    _write(segment_format.dumps(plan) if format == "segment" else yaml_format.dumps(plan), output)


@plan_app.command("infer")
def plan_infer(
    source: Annotated[str, typer.Option(help="Draft from this source's collected events.")],
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    since: Annotated[str, typer.Option(help="ISO time or look-back (24h, 7d).")] = "7d",
    name: Annotated[str | None, typer.Option(help="Plan name (default: the source id).")] = None,
    output: OutputOption = None,
) -> None:
    """Draft a tracking plan (YAML) from the events a source sent."""
    store = _store(config_path, data_dir)
    try:
        since_us = parse_since(since)
        messages = list(_messages(store, source, since_us))
    except MainstemError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    if not messages:
        raise _fail(f"no events from source {source!r} since {since} — widen --since")
    _write(yaml_format.dumps(inference.infer(messages, name or source)), output)
    _err.print(f"drafted from {len(messages)} messages", highlight=False)


@plan_app.command("diff")
def plan_diff(
    old: Annotated[Path, typer.Argument(help="The plan before (.yaml or .json).")],
    new: Annotated[Path, typer.Argument(help="The plan after (.yaml or .json).")],
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit with status 1 when the plans differ.")
    ] = False,
) -> None:
    """What changed between two plans: events, properties, types, required."""
    changes = plan_changes.diff(_load(old), _load(new))
    for change in changes:
        typer.echo(str(change))
    if not changes:
        typer.echo("no changes")
    elif exit_code:
        raise typer.Exit(code=1)


_MODULE_SUFFIX = {"python": ".py", "typescript": ".ts"}


@plan_app.command("codegen")
def plan_codegen(
    file: Annotated[Path, typer.Argument(help="A plan file (.yaml or .json).")],
    language: Annotated[
        Literal["python", "typescript"],
        typer.Option("--language", "--lang", help="python, or typescript (analytics-node)."),
    ] = "python",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="A file, or a directory to write <plan>_analytics.py/.ts into (default: stdout).",
        ),
    ] = None,
) -> None:
    """Generate a typed analytics client: one function per track event (like Typewriter)."""
    plan = _load(file)
    text = codegen.typescript(plan) if language == "typescript" else codegen.python(plan)
    if output is not None and (output.is_dir() or not output.suffix):
        output.mkdir(parents=True, exist_ok=True)
        output = output / f"{codegen.module_name(plan)}{_MODULE_SUFFIX[language]}"
    _write(text, output)


FormatOption = Annotated[
    Literal["text", "json", "sarif"],
    typer.Option("--format", help="text (file:line:col), json, or sarif (SARIF 2.1.0)."),
]


def lint_command(
    paths: Annotated[list[Path], typer.Argument(help="Source files or directories to check.")],
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="Also check events and properties against it.")
    ] = None,
    format: FormatOption = "text",
    config_path: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="File with a lint: section (default: ./mainstem.yaml when it exists).",
        ),
    ] = None,
    output: OutputOption = None,
) -> None:
    """Lint tracking code (Python, JavaScript, TypeScript); exit status 1 when there are errors."""
    plan = _load(plan_file) if plan_file is not None else None
    if config_path is None and Path("mainstem.yaml").is_file():
        config_path = Path("mainstem.yaml")
    try:
        settings = config.load_lint(config_path) if config_path is not None else None
    except MainstemError as exc:
        raise _fail(exc) from exc
    files = [path for path in _sources(paths) if lint.language_for(path.name) is not None]
    try:
        sources = [(str(path), path.read_bytes()) for path in files]
    except OSError as exc:
        raise _fail(f"{exc.filename}: cannot read the file: {exc.strerror}") from exc
    findings = lint.lint(sources, plan, settings)
    if format == "json":
        _write(json.dumps(lint_report.as_json(findings, len(files)), indent=2) + "\n", output)
    elif format == "sarif":
        _write(json.dumps(sarif.log(findings), indent=2) + "\n", output)
    else:
        _write(lint_report.text(findings), output)
        _err.print(lint_report.summary(findings, len(files)), highlight=False)
    if lint.has_errors(findings):
        raise typer.Exit(code=1)


@plan_app.command("lint")
def plan_lint(
    file: Annotated[Path, typer.Argument(help="The plan to check against.")],
    paths: Annotated[list[Path], typer.Argument(help="Source files or directories to check.")],
    format: FormatOption = "text",
) -> None:
    """Same as `mainstem lint --plan FILE PATHS...`."""
    lint_command(paths, plan_file=file, format=format, config_path=None, output=None)


_SKIP = {".git", "node_modules", ".venv", "venv", "__pycache__", "dist", "build"}


def _sources(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not _SKIP & set(child.relative_to(path).parts):
                    yield child
        elif path.exists():
            yield path
        else:
            raise _fail(f"{path}: no such file or directory")


def _messages(store: SqlitePipelineStore, source: str, since: int | None) -> Iterator[Any]:
    after = 0
    while rows := store.events(EventQuery(source=source, since=since, after=after, limit=1000)):
        for row in rows:
            yield msgspec.json.decode(row.body)
        after = rows[-1].seq


def _store(config_path: str, data_dir: str | None) -> SqlitePipelineStore:
    if data_dir is None:
        try:
            data_dir = config.load(config_path).settings.data_dir
        except MainstemError as exc:
            if not os.environ.get("MAINSTEM_DATA_DIR"):
                raise _fail(f"{exc} (or pass --data-dir)") from exc
            data_dir = os.environ["MAINSTEM_DATA_DIR"]
    path = Path(data_dir) / "pipeline.db"
    if not path.exists():
        raise _fail(f"no events in {data_dir} yet — start the server with `mainstem serve`")
    return SqlitePipelineStore(path, readonly=True)


def violations_command(
    config_path: ConfigOption = "mainstem.yaml",
    data_dir: DataDirOption = None,
    source: Annotated[str | None, typer.Option(help="Only this source id.")] = None,
    event: Annotated[str | None, typer.Option(help="Drill down: only this event.")] = None,
    type: Annotated[
        str | None, typer.Option("--type", help="Only this violation type, e.g. Required.")
    ] = None,
    field: Annotated[
        str | None, typer.Option(help="Drill down: only this field, e.g. properties.total.")
    ] = None,
    since: Annotated[str, typer.Option(help="ISO time or look-back (24h, 7d).")] = "24h",
    bucket: Annotated[str, typer.Option(help="Width of the time buckets (1h, 1d).")] = "1h",
    samples: Annotated[
        int, typer.Option(min=0, max=report.MAX_SAMPLES, help="Offending payloads to show.")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Tracking-plan violations per event, field and type, with offending payloads."""
    store = _store(config_path, data_dir)
    try:
        query = ViolationQuery(
            source=source, event=event, type=type, field=field, since=parse_since(since)
        )
        body = report.report(store, query, report.bucket_us(bucket), samples)
    except MainstemError as exc:
        raise _fail(exc) from exc
    finally:
        store.close()
    if as_json:
        sys.stdout.write(msgspec.json.encode(body).decode() + "\n")
        return
    table = Table(box=None)
    for column in ("count", "source", "event", "field", "type", "last seen"):
        table.add_column(column, overflow="fold")
    for row in body["data"]:
        table.add_row(
            str(row["count"]), row["source_id"], row["event"], row["field"], row["type"],
            row["last_seen"],
        )  # fmt: skip
    _out.print(table)
    _out.print(f"{body['total']} violations since {body['since']}", highlight=False)
    for sample in body["samples"]:
        _out.print(
            f"\n{sample['received_at']} {sample['source_id']} {sample['message_id']} "
            f"{sample['field']}: {sample['description']} ({sample['action']})",
            highlight=False,
        )
        _out.print_json(data=sample["payload"])
