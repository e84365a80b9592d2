"""``maf-preflight history`` and ``runtime info|migrate|sync`` against real runtimes on disk and
on the PostgreSQL server of ``MAF_TEST_POSTGRES_URL`` (a schema of each test's own)."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_cli import cli
from helpers_loopback import closed_port
from helpers_runtime_procs import POSTGRES_URL, own_schema
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.jsonl import JsonRuntime
from pytest_maf_preflight.runtime.records import (
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime
from pytest_maf_preflight.runtime.sqlite_migrations import SCHEMA_VERSION


def bundle(statuses: dict[str, str], started: float) -> SessionBundle:
    session = SessionRecord(
        id=new_id(),
        agent_id="codex-1",
        environment="development",
        started_at=started,
        completed_at=started + 1,
        status="open",
        exit_code=0,
        runtime_mode="sqlite",
    )
    runs = tuple(
        ExecutionRecord(
            id=new_id(),
            session_id=session.id,
            config_id=config_id,
            config_version="1.0.0",
            agent_id="codex-1",
            kind="check",
            status=status,  # type: ignore[arg-type]
            started_at=started + i,
            completed_at=started + i + 0.1,
            duration=0.1,
            attempts=1,
            error_message=None if status == "passed" else f"{config_id} broke",
        )
        for i, (config_id, status) in enumerate(statuses.items())
    )
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
        ("env", "env broke")
    ]
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


# --- postgres -----------------------------------------------------------------------------------


def in_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` as the connection's search_path: how a CLI user chooses one."""
    parts = urllib.parse.urlsplit(url)
    query = [*urllib.parse.parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL into an empty schema of this test's own (the postgres mode uses the first existing
    schema of the search_path, so it is created first), dropped afterwards."""
    with own_schema() as schema:
        import psycopg
        from psycopg import sql

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        yield in_schema(POSTGRES_URL, schema)


def stored(runtime: RuntimeState) -> list[tuple[str, str, str, float]]:
    with runtime:
        return sorted((e.id, e.config_id, e.status, e.started_at) for e in runtime.executions())


def in_postgres(url: str) -> list[tuple[str, str, str, float]]:
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    return stored(PostgresRuntime(url))


def in_sqlite(project: Path) -> list[tuple[str, str, str, float]]:
    return stored(SqliteRuntime(project / ".maf" / "runtime.db"))


def test_sync_sqlite_to_postgres_and_back_copies_each_record_once(
    project: Path, pg_url: str, tmp_path: Path
) -> None:
    first = cli(
        project,
        "runtime",
        "sync",
        "--from",
        "sqlite",
        "--to",
        "postgres",
        "--json",
        MAF_DB_URL=pg_url,
    )
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert (report["copied"]["sessions"], report["copied"]["executions"]) == (2, 4)
    assert report["target"].startswith("postgres (postgresql://postgres@")
    again = json.loads(
        cli(
            project,
            "runtime",
            "sync",
            "--from",
            "sqlite",
            "--to",
            "postgres",
            "--json",
            MAF_DB_URL=pg_url,
        ).stdout
    )
    assert again["total_copied"] == 0
    assert again["present"]["executions"] == 4
    assert in_postgres(pg_url) == in_sqlite(project)

    # The reverse, into a project that has no database yet; the URL given as an option.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    back = cli(fresh, "runtime", "sync", "--from", "postgres", "--to", "sqlite", "--db-url", pg_url)
    assert back.returncode == 0, back.stderr
    assert "copied sessions 2, executions 4," in back.stdout
    assert (
        "copied sessions 0, executions 0,"
        in cli(
            fresh, "runtime", "sync", "--from", "postgres", "--to", "sqlite", "--db-url", pg_url
        ).stdout
    )
    assert in_sqlite(fresh) == in_sqlite(project)


def test_sync_copies_the_json_fallback_into_postgres_once(tmp_path: Path, pg_url: str) -> None:
    with JsonRuntime(tmp_path / ".agent-mail") as runtime:
        runtime.record_session(bundle({"git": "failed", "env": "passed"}, 500.0))
    first = cli(tmp_path, "runtime", "sync", "--to", "postgres", "--db-url", pg_url, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["copied"]["executions"] == 2
    second = json.loads(
        cli(
            tmp_path,
            "runtime",
            "sync",
            "--from",
            "json",
            "--to",
            "postgres",
            "--db-url",
            pg_url,
            "--json",
        ).stdout
    )
    assert second["total_copied"] == 0
    assert in_postgres(pg_url) == stored(JsonRuntime(tmp_path / ".agent-mail"))


def test_db_url_option_wins_over_the_environment(project: Path, pg_url: str) -> None:
    unused = f"postgresql://postgres@127.0.0.1:{closed_port()}/postgres"
    result = cli(
        project, "history", "--mode", "postgres", "--db-url", pg_url, "--json", MAF_DB_URL=unused
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"mode": "postgres", "skipped": [], "executions": []}


def test_an_unreachable_server_is_one_line_without_the_password(project: Path) -> None:
    port = closed_port()
    url = f"postgresql://postgres:maf-s3cret-pw@127.0.0.1:{port}/postgres"
    for args in (
        ("runtime", "sync", "--from", "sqlite", "--to", "postgres", "--db-url", url),
        ("runtime", "sync", "--from", "postgres", "--to", "sqlite"),
        ("history", "--mode", "postgres", "--db-url", url),
    ):
        result = cli(project, *args, MAF_DB_URL=url)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert f"127.0.0.1:{port}" in result.stderr
        assert "Traceback" not in result.stderr
        assert "maf-s3cret-pw" not in result.stdout + result.stderr


def test_sync_to_postgres_without_a_url_says_how_to_give_one(project: Path) -> None:
    pytest.importorskip("psycopg")
    result = cli(project, "runtime", "sync", "--from", "sqlite", "--to", "postgres")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "maf-preflight: error: postgres: no database URL: set MAF_DB_URL"
    )


def test_migrate_creates_the_postgres_schema(tmp_path: Path, pg_url: str) -> None:
    from pytest_maf_preflight.runtime.postgres_migrations import (
        SCHEMA_VERSION as POSTGRES_VERSION,
    )

    result = cli(tmp_path, "runtime", "migrate", "--mode", "postgres", "--json", MAF_DB_URL=pg_url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema_version"] == POSTGRES_VERSION
    schema = urllib.parse.parse_qs(urllib.parse.urlsplit(pg_url).query)["options"][0]
    assert data["location"].endswith(f", schema {schema.removeprefix('-csearch_path=')}")
    assert not (tmp_path / ".maf").exists()  # no SQLite database on the way
