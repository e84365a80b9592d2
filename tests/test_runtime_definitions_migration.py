"""The migration that brought ``smoke_tests``, ``escalation_paths`` and the seed's agent fields
(SQLite 4, PostgreSQL 2): a real store at the previous version upgrades in place, its records
kept, in one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_runtime_procs import POSTGRES_URL, own_schema
from pytest_maf_preflight.runtime.records import AgentRecord, EscalationPathDefinition
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime
from pytest_maf_preflight.runtime.sqlite_migrations import SCHEMA_VERSION, migrate

OLD_PATH_ROW = ("on-call", "1.0.0", "h" * 64, '{"id":"on-call"}', 123.0)
AGENT_COLUMNS = {"id", "last_heartbeat", "details", "type", "capabilities", "status"}
SMOKE_COLUMNS = ["nodeid", "version", "content_hash", "file", "document", "recorded_at"]


def test_a_sqlite_file_at_version_3_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "runtime.db"
    with sqlite3.connect(db, isolation_level=None) as conn:
        assert migrate(conn, 3) == 3
        conn.execute(
            "INSERT INTO agents (id, last_heartbeat, details) VALUES ('a-1', 5.0, '{\"pid\":1}')"
        )
        conn.execute(
            "INSERT INTO escalation_paths (id, version, content_hash, document, "
            "updated_at) VALUES (?, ?, ?, ?, ?)",
            OLD_PATH_ROW,
        )
        conn.execute(
            "INSERT INTO preflight_sessions (id, agent_id, environment, started_at, "
            "completed_at, status, exit_code, runtime_mode) VALUES "
            "('s-1', 'a-1', 'dev', 1.0, 2.0, 'open', 0, 'sqlite')"
        )
    conn.close()

    with SqliteRuntime(db) as runtime:
        assert runtime.info().schema_version == SCHEMA_VERSION == 5
        assert [s.id for s in runtime.sessions()] == ["s-1"]
        # Rows of the old shape read back with the seed's defaults.
        assert runtime.agents() == [AgentRecord("a-1", 5.0, {"pid": 1})]
        assert runtime.escalation_paths() == [
            EscalationPathDefinition(
                path_id="on-call",
                version="1.0.0",
                content_hash="h" * 64,
                document={"id": "on-call"},
                recorded_at=123.0,
            )
        ]
        assert runtime.smoke_tests() == []
        runtime.heartbeat("a-1", at=6.0, agent_type="coordinator", capabilities=["plan"])
        assert runtime.agents()[0].capabilities == ("plan",)

    with sqlite3.connect(db) as conn:
        assert {r[1] for r in conn.execute("PRAGMA table_info(agents)")} == AGENT_COLUMNS
        assert [r[1] for r in conn.execute("PRAGMA table_info(smoke_tests)")] == SMOKE_COLUMNS
        assert [
            r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        ] == list(range(1, SCHEMA_VERSION + 1))
        assert (
            conn.execute(
                "SELECT name FROM sqlite_master WHERE name LIKE 'escalation_paths_before%'"
            ).fetchall()
            == []
        )
    conn.close()


def test_a_failing_upgrade_leaves_the_file_at_version_3(tmp_path: Path) -> None:
    """A table in the way (a user's own ``escalation_paths_before_4``) fails the step, which
    rolls back whole: nothing of migration 4 is left, and the old rows are intact."""
    db = tmp_path / "runtime.db"
    with sqlite3.connect(db, isolation_level=None) as conn:
        migrate(conn, 3)
        conn.execute(
            "INSERT INTO escalation_paths (id, version, content_hash, document, "
            "updated_at) VALUES (?, ?, ?, ?, ?)",
            OLD_PATH_ROW,
        )
        conn.execute("CREATE TABLE escalation_paths_before_4 (x)")
        with pytest.raises(sqlite3.OperationalError, match="already exists"):
            migrate(conn)
        assert conn.execute("PRAGMA user_version").fetchone() == (3,)
        assert [r[1] for r in conn.execute("PRAGMA table_info(smoke_tests)")][:2] == [
            "nodeid",
            "first_seen",
        ]
        assert conn.execute("SELECT id, updated_at FROM escalation_paths").fetchall() == [
            ("on-call", 123.0)
        ]
        assert "type" not in {r[1] for r in conn.execute("PRAGMA table_info(agents)")}
    conn.close()


@pytest.fixture
def schema() -> Iterator[str]:
    with own_schema() as name:
        yield name


def test_a_postgres_schema_at_version_1_upgrades_in_place(schema: str) -> None:
    import psycopg
    from psycopg import sql

    from pytest_maf_preflight.runtime import postgres_migrations
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        assert postgres_migrations.migrate(conn, schema, 1) == 1
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.agents (id, last_heartbeat, details) VALUES ('a-1', 5.0, '{{}}')"
            ).format(sql.Identifier(schema))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.escalation_paths (id, version, content_hash, "
                "document, updated_at) VALUES (%s, %s, %s, %s, %s)"
            ).format(sql.Identifier(schema)),
            OLD_PATH_ROW,
        )

    with PostgresRuntime(POSTGRES_URL, schema=schema) as runtime:
        assert runtime.info().schema_version == postgres_migrations.SCHEMA_VERSION == 3
        assert runtime.agents() == [AgentRecord("a-1", 5.0)]
        assert [p.path_id for p in runtime.escalation_paths()] == ["on-call"]
        assert runtime.smoke_tests() == []

    with psycopg.connect(POSTGRES_URL) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'smoke_tests' ORDER BY ordinal_position",
                (schema,),
            )
        ]
        assert columns == SMOKE_COLUMNS
