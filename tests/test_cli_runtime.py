"""``maf-preflight history`` and ``runtime info|migrate|sync`` against real runtimes on disk."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_maf_preflight.runtime.jsonl import JsonRuntime
from pytest_maf_preflight.runtime.records import (
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime
from pytest_maf_preflight.runtime.sqlite_migrations import SCHEMA_VERSION


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MAF_")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "pytest_maf_preflight.cli", *args], cwd=cwd,
                          env=environ, capture_output=True, text=True, timeout=60)


def bundle(statuses: dict[str, str], started: float) -> SessionBundle:
    session = SessionRecord(id=new_id(), agent_id="codex-1", environment="development",
                            started_at=started, completed_at=started + 1, status="open",
                            exit_code=0, runtime_mode="sqlite")
    runs = tuple(ExecutionRecord(
        id=new_id(), session_id=session.id, config_id=config_id, config_version="1.0.0",
        agent_id="codex-1", kind="check", status=status,  # type: ignore[arg-type]
        started_at=started + i, completed_at=started + i + 0.1, duration=0.1, attempts=1,
        error_message=None if status == "passed" else f"{config_id} broke")
        for i, (config_id, status) in enumerate(statuses.items()))
    return SessionBundle(session=session, executions=runs)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    with SqliteRuntime(tmp_path / ".maf" / "runtime.db") as runtime:
        runtime.record_session(bundle({"git": "passed", "env": "failed"}, 1000.0))
        runtime.record_session(bundle({"git": "timeout", "env": "passed"}, 2000.0))
    return tmp_path


def test_history_lists_newest_first_and_filters(project: Path) -> None:
    result = cli(project, "history", "--mode", "sqlite")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[3] for line in lines] == ["env", "git", "env", "git"]
    failed = cli(project, "history", "--status", "failed", "--json")
    data = json.loads(failed.stdout)
    assert data["mode"] == "sqlite"
    assert [(e["config_id"], e["error_message"]) for e in data["executions"]] == [
        ("env", "env broke")]
    git = json.loads(cli(project, "history", "--config", "git", "--limit", "1", "--json").stdout)
    assert [e["status"] for e in git["executions"]] == ["timeout"]


def test_history_with_a_bad_limit_is_one_clear_line(project: Path) -> None:
    result = cli(project, "history", "--limit", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "maf-preflight: error: --limit must be at least 1"


def test_info_names_the_mode_and_counts(project: Path) -> None:
    result = cli(project, "runtime", "info", "--json")
    data = json.loads(result.stdout)
    assert data["mode"] == "sqlite"
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["counts"]["executions"] == 4
    assert data["counts"]["sessions"] == 2


def test_info_reports_the_fallback_when_sqlite_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / ".maf").mkdir()
    (tmp_path / ".maf" / "runtime.db").write_bytes(b"garbage" * 500)
    result = cli(tmp_path, "runtime", "info")
    assert result.returncode == 0, result.stderr
    assert "note: sqlite:" in result.stdout
    assert "not a SQLite database" in result.stdout
    assert "mode: json" in result.stdout


def test_migrate_creates_and_upgrades_the_database(tmp_path: Path) -> None:
    db = tmp_path / "custom" / "rt.db"
    result = cli(tmp_path, "runtime", "migrate", MAF_DB_PATH=str(db))
    assert result.returncode == 0, result.stderr
    assert f"schema version {SCHEMA_VERSION}" in result.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("pragma user_version").fetchone() == (SCHEMA_VERSION,)


def test_sync_copies_the_json_fallback_into_sqlite_once(tmp_path: Path) -> None:
    with JsonRuntime(tmp_path / ".agent-mail") as runtime:
        runtime.record_session(bundle({"git": "failed"}, 500.0))
    first = cli(tmp_path, "runtime", "sync", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["copied"]["executions"] == 1
    second = json.loads(cli(tmp_path, "runtime", "sync", "--json").stdout)
    assert second["total_copied"] == 0
    with SqliteRuntime(tmp_path / ".maf" / "runtime.db") as runtime:
        assert [e.status for e in runtime.executions()] == ["failed"]


def test_an_unknown_mode_is_a_usage_error(project: Path) -> None:
    result = cli(project, "runtime", "info", "--mode", "mongo")
    assert result.returncode == 2
    assert "unknown runtime mode 'mongo'" in result.stderr
    assert "Traceback" not in result.stderr
