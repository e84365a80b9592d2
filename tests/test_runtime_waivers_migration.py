"""The migration that brought waivers, escalation decisions and silences (SQLite 5, PostgreSQL
3): a real store at the previous version upgrades in place, its records kept, and the new
tables answer the active lookups through their indexes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_runtime_procs import POSTGRES_URL, own_schema
from pytest_maf_preflight.runtime.records import AgentRecord, SilenceRecord, WaiverRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime
from pytest_maf_preflight.runtime.sqlite_migrations import SCHEMA_VERSION, migrate

WAIVER = WaiverRecord(
    id="w-1",
    check_id="api",
    granted_by="lead",
    reason="outage",
    granted_at=10.0,
    expires_at=20.0,
    scope={"leases": ["l-1"]},
)
SILENCE = SilenceRecord(
    id="s-1",
    check_id="api",
    path_id=None,
    created_by="ops",
    reason="window",
    created_at=10.0,
    expires_at=20.0,
)


def test_a_sqlite_file_at_version_4_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "runtime.db"
    with sqlite3.connect(db, isolation_level=None) as conn:
        assert migrate(conn, 4) == 4
        conn.execute("INSERT INTO agents (id, last_heartbeat, details) VALUES ('a-1', 5.0, '{}')")
        assert "waivers" not in {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    conn.close()

    with SqliteRuntime(db) as runtime:
        assert runtime.info().schema_version == SCHEMA_VERSION == 5
        assert runtime.agents() == [AgentRecord("a-1", 5.0)]
        runtime.add_waiver(WAIVER)
        runtime.add_silence(SILENCE)
        assert runtime.waivers(active_at=15.0) == [WAIVER]
        assert runtime.silences(active_at=15.0) == [SILENCE]

    with sqlite3.connect(db) as conn:
        plan = " ".join(
            str(r[-1])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM waivers WHERE expires_at > 1 AND "
                "granted_at <= 1 AND (revoked_at IS NULL OR revoked_at > 1)"
            )
        )
        assert "idx_waivers_active" in plan
        assert [
            r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        ] == [1, 2, 3, 4, 5]
    conn.close()


@pytest.fixture
def schema() -> Iterator[str]:
    with own_schema() as name:
        yield name


def test_a_postgres_schema_at_version_2_upgrades_in_place(schema: str) -> None:
    import psycopg
    from psycopg import sql

    from pytest_maf_preflight.runtime import postgres_migrations
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        assert postgres_migrations.migrate(conn, schema, 2) == 2
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.agents (id, last_heartbeat, details) VALUES ('a-1', 5.0, '{{}}')"
            ).format(sql.Identifier(schema))
        )

    with PostgresRuntime(POSTGRES_URL, schema=schema) as runtime:
        assert runtime.info().schema_version == postgres_migrations.SCHEMA_VERSION == 3
        assert runtime.agents() == [AgentRecord("a-1", 5.0)]
        runtime.add_waiver(WAIVER)
        runtime.add_silence(SILENCE)
        assert runtime.waivers(active_at=15.0, check_id="api") == [WAIVER]
        assert runtime.silences(active_at=25.0) == []
