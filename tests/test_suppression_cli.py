"""``mainstem suppress``, ``unsuppress`` and ``suppressions`` through Typer's runner, on the
workspace's real event store (SQLite, and PostgreSQL through --database-url)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mainstem.cli import app
from mainstem.storage.postgres.pipeline import PostgresPipelineStore
from mainstem.storage.sqlite.pipeline import SqlitePipelineStore
from tests.conftest import InProcess
from tests.storage.postgres import fresh_schema

runner = CliRunner()


def test_suppress_and_unsuppress_change_what_the_api_lists(
    inproc: InProcess, workspace_file: Path
) -> None:
    config = ["--config", str(workspace_file)]
    result = runner.invoke(app, ["suppress", "bob", "alice", "bob", *config])
    assert result.exit_code == 0, result.output
    match = re.fullmatch(
        r"Suppressed 2 user ids \(regulation (\w+)\); the processor applies it within about a "
        r"second\.\n",
        result.output,
    )
    assert match, result.output
    assert inproc.app.store is not None
    regulation = inproc.app.store.regulation(match.group(1))
    assert regulation is not None and regulation.subject_ids == ("bob", "alice")

    listed = runner.invoke(app, ["suppressions", *config])
    assert (listed.exit_code, listed.output) == (0, "alice\nbob\n")
    result = runner.invoke(app, ["unsuppress", "bob", *config])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Unsuppressed 1 user id (regulation ")
    listed = runner.invoke(app, ["suppressions", "--json", *config])
    assert json.loads(listed.output) == {
        "suppressed": [{"subjectType": "USER_ID", "subjectIds": ["alice"]}]
    }
    assert inproc.app.store.suppressed() == {"alice"}


def test_nothing_suppressed(inproc: InProcess, workspace_file: Path) -> None:
    result = runner.invoke(app, ["suppressions", "--json", "--config", str(workspace_file)])
    assert (result.exit_code, json.loads(result.output)) == (0, {"suppressed": []})
    plain = runner.invoke(app, ["suppressions", "--config", str(workspace_file)])
    assert (plain.exit_code, plain.output) == (0, "")


def test_bad_ids_and_missing_places_are_one_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = runner.invoke(app, ["suppress", "", "--data-dir", str(data)])
    assert result.exit_code == 1
    assert 'subjectIds[0] must be a non-empty string (a userId), got ""' in result.output
    assert not (data / "pipeline.db").exists()
    listed = runner.invoke(app, ["suppressions", "--data-dir", str(data)])
    assert listed.exit_code == 1
    assert f"no event store in {data} yet" in listed.output.replace("\n", "")
    missing = runner.invoke(app, ["suppress", "u1", "--data-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 1
    assert "no data directory" in missing.output


def test_suppress_before_the_server_ever_ran_creates_the_event_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["suppress", "u1", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    store = SqlitePipelineStore(tmp_path / "pipeline.db", readonly=True)
    assert store.suppressed() == {"u1"}
    store.close()


@pytest.mark.parametrize("flag", ["--database-url", "env"])
def test_the_commands_work_on_postgresql(
    flag: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fresh_schema() as url:
        args = ["--config", str(tmp_path / "missing.yaml")]
        if flag == "env":
            monkeypatch.setenv("MAINSTEM_DATABASE_URL", url)
        else:
            args += ["--database-url", url]
        result = runner.invoke(app, ["suppress", "pg-user", *args])
        assert result.exit_code == 0, result.output
        listed = runner.invoke(app, ["suppressions", *args])
        assert (listed.exit_code, listed.output) == (0, "pg-user\n")
        store = PostgresPipelineStore(url, readonly=True)
        assert store.suppressed() == {"pg-user"}
        store.close()
