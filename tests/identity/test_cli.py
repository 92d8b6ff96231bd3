"""``mainstem profile show|explain`` over a real profiles.db."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mainstem.cli import app
from mainstem.identity.resolver import Resolver

from .conftest import Pipeline
from .helpers import message

runner = CliRunner()


def _build(pipeline: Pipeline) -> Path:
    from mainstem.identity.sqlite import SqliteProfileStore

    pipeline.send(
        [
            message("page", 1, 0, anonymousId="laptop"),
            message("identify", 2, 1, userId="u1", traits={"email": "a@b.com", "plan": "pro"}),
            message("track", 3, 2, anonymousId="laptop", userId="u1", event="Bought"),
            message("identify", 4, 3, userId="u2", traits={"email": "a@b.com"}),
        ]
    )
    profiles = SqliteProfileStore(pipeline.root / "profiles.db", fsync=False)
    try:
        Resolver(pipeline.store, profiles).sync()
    finally:
        profiles.close()
    return pipeline.root


def test_show_prints_the_profile_as_json(pipeline: Pipeline) -> None:
    root = _build(pipeline)
    result = runner.invoke(app, ["profile", "show", "email:a@b.com", "--data-dir", str(root)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert [(i["type"], i["id"]) for i in shown["external_ids"]] == [
        ("anonymous_id", "laptop"),
        ("email", "a@b.com"),
        ("user_id", "u1"),
    ]
    assert (shown["collection"], shown["traits"], shown["merges"]) == (
        "users",
        {"email": "a@b.com", "plan": "pro"},
        1,
    )
    assert shown["metadata"]["first_message_id"] == "m1"


def test_explain_draws_identifiers_merges_and_kept_out_identifiers(pipeline: Pipeline) -> None:
    root = _build(pipeline)
    result = runner.invoke(
        app, ["profile", "explain", "user_id:u1", "--data-dir", str(root)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.output.splitlines()]
    assert any("identifiers (3)" in line for line in lines)
    assert any(
        "anonymous_id:laptop · first seen 2024-05-01T10:00:00.000Z in m1 (source web)" in line
        for line in lines
    )
    assert any("merges (1)" in line for line in lines)
    assert any(
        "by track m3 at 2024-05-01T10:02:00.000Z: matched user_id:u1 "
        "(within user_id: 1 ever)" in line
        for line in lines
    )
    assert any("recent events (3)" in line for line in lines)
    other = runner.invoke(
        app, ["profile", "explain", "user_id:u2", "--data-dir", str(root)], env={"COLUMNS": "200"}
    )
    assert any(
        "email:a@b.com on m4: Identifier value limit exceeded (user_id: 1 ever)" in line
        for line in other.output.splitlines()
    )


def test_an_unknown_profile_is_an_error(pipeline: Pipeline) -> None:
    root = _build(pipeline)
    result = runner.invoke(app, ["profile", "show", "nobody", "--data-dir", str(root)])
    assert result.exit_code == 1
    assert "no profile has 'nobody' — name it as type:value, e.g. user_id:123 or email:a@b.com" in (
        " ".join(result.output.split())
    )


def test_no_profiles_yet_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profile", "show", "user_id:1", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"no profiles in {tmp_path} yet" in " ".join(result.output.split())


def test_an_unreachable_postgresql_is_a_clear_error(tmp_path: Path) -> None:
    from tests.conftest import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"  # nothing listens there
    result = runner.invoke(
        app,
        ["profile", "show", "user_id:1", "--data-dir", str(tmp_path)],
        env={"MAINSTEM_DATABASE_URL": url},
    )
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "profiles in PostgreSQL: the server is unreachable" in output
    assert "is PostgreSQL running, and is database_url right?" in output
    assert "Traceback" not in output


def test_delete_asks_then_removes_the_profile(pipeline: Pipeline) -> None:
    root = _build(pipeline)
    args = ["profile", "delete", "user_id:u2", "--data-dir", str(root)]
    refused = runner.invoke(app, args, input="n\n")
    assert refused.exit_code == 1
    assert (
        runner.invoke(app, ["profile", "show", "user_id:u2", "--data-dir", str(root)]).exit_code
        == 0
    )
    result = runner.invoke(app, [*args, "--yes"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("deleted use_")
    assert result.output.endswith(" (1 profile(s) including merged ones)\n")
    gone = runner.invoke(app, ["profile", "show", "user_id:u2", "--data-dir", str(root)])
    assert gone.exit_code == 1


def test_delete_identifier_takes_one_identifier_off(pipeline: Pipeline) -> None:
    root = _build(pipeline)
    args = ["--data-dir", str(root)]
    result = runner.invoke(
        app, ["profile", "delete-identifier", "user_id:u1", "email:a@b.com", *args]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(runner.invoke(app, ["profile", "show", "user_id:u1", *args]).output)
    assert result.output == (
        f"deleted email:a@b.com from {shown['segment_id']} (now: anonymous_id:laptop, user_id:u1)\n"
    )
    assert [i["type"] for i in shown["external_ids"]] == ["anonymous_id", "user_id"]
    assert shown["traits"] == {"email": "a@b.com", "plan": "pro"}
    last = runner.invoke(app, ["profile", "delete-identifier", "user_id:u1", "user_id:u1", *args])
    assert last.exit_code == 1
    assert "user_id:u1 is the last user_id of" in last.output
    bad = runner.invoke(app, ["profile", "delete-identifier", "user_id:u1", "nope", *args])
    assert bad.exit_code == 1
    assert "'nope' is not type:value — e.g. email:a@b.com" in bad.output
