"""The SQLite runtime's schema, as versioned migrations (SPEC S5).

The version lives in ``PRAGMA user_version``. Each migration runs in its own ``BEGIN IMMEDIATE``
transaction together with the version bump, and re-reads the version inside that transaction, so
two processes opening a fresh database at once apply every step exactly once: the second one
waits for the write lock, then sees the step is done and rolls back. ``schema_migrations`` keeps
a row per applied step (when), which is also what proves "exactly once" in the tests.

Migrations are append-only: never edit a released one, add the next.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

#: Migration ``n`` (1-based) is ``MIGRATIONS[n - 1]``.
MIGRATIONS: tuple[str, ...] = (
    # --- 1: the tables of SPEC S5 ---------------------------------------------------------
    """
    CREATE TABLE schema_migrations (
        version INTEGER PRIMARY KEY,
        applied_at REAL NOT NULL
    );

    CREATE TABLE preflight_configs (
        config_id TEXT NOT NULL,
        version TEXT NOT NULL,
        config_type TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        document TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (config_id, content_hash)
    );
    CREATE INDEX idx_configs_recorded ON preflight_configs (recorded_at, content_hash);

    CREATE TABLE preflight_sessions (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        environment TEXT NOT NULL,
        started_at REAL NOT NULL,
        completed_at REAL NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        runtime_mode TEXT NOT NULL
    );

    CREATE TABLE preflight_executions (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES preflight_sessions (id),
        config_id TEXT NOT NULL,
        config_version TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        completed_at REAL NOT NULL,
        duration REAL NOT NULL,
        attempts INTEGER NOT NULL,
        result TEXT NOT NULL,
        error_message TEXT
    );
    CREATE INDEX idx_executions_started ON preflight_executions (started_at, id);
    CREATE INDEX idx_executions_config ON preflight_executions (config_id, started_at);
    CREATE INDEX idx_executions_status ON preflight_executions (status, started_at);
    CREATE INDEX idx_executions_session ON preflight_executions (session_id, started_at);

    CREATE TABLE smoke_tests (
        nodeid TEXT PRIMARY KEY,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        last_status TEXT,
        last_execution_id TEXT
    );

    CREATE TABLE escalation_paths (
        id TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        document TEXT NOT NULL,
        updated_at REAL NOT NULL
    );

    CREATE TABLE escalation_tracking (
        id TEXT PRIMARY KEY,
        path_id TEXT NOT NULL,
        dedup_key TEXT NOT NULL,
        check_id TEXT,
        failure_class TEXT,
        state TEXT NOT NULL,
        level INTEGER NOT NULL DEFAULT 0,
        occurrences INTEGER NOT NULL DEFAULT 1,
        path_snapshot TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        next_action_at REAL,
        acknowledged_by TEXT,
        acknowledged_at REAL,
        resolved_by TEXT,
        resolved_at REAL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX idx_escalations_open_key ON escalation_tracking (dedup_key)
        WHERE state IN ('triggered', 'acknowledged', 'escalated');
    CREATE INDEX idx_escalations_state ON escalation_tracking (state, next_action_at);

    CREATE TABLE escalation_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        escalation_id TEXT NOT NULL REFERENCES escalation_tracking (id),
        level INTEGER NOT NULL,
        channel TEXT NOT NULL,
        target TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        response TEXT NOT NULL DEFAULT '{}',
        attempted_at REAL NOT NULL
    );
    CREATE INDEX idx_deliveries_escalation ON escalation_deliveries (escalation_id, attempted_at);

    CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        last_heartbeat REAL NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );

    CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        path_pattern TEXT NOT NULL,
        exclusive INTEGER NOT NULL DEFAULT 1,
        reason TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        released_at REAL,
        fencing_token INTEGER NOT NULL UNIQUE
    );
    CREATE INDEX idx_leases_active ON leases (released_at, expires_at);
    CREATE INDEX idx_leases_agent ON leases (agent_id);

    CREATE TABLE reservation_conflicts (
        id TEXT PRIMARY KEY,
        session_id TEXT,
        conflict_type TEXT NOT NULL,
        severity TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        holder_agent_id TEXT,
        path TEXT,
        path_pattern TEXT,
        lease_id TEXT,
        expires_at REAL,
        status TEXT NOT NULL,
        override INTEGER NOT NULL DEFAULT 0,
        detected_at REAL NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX idx_conflicts_detected ON reservation_conflicts (detected_at);

    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        correlation_id TEXT,
        recipient TEXT,
        status TEXT NOT NULL DEFAULT 'queued'
    );
    CREATE INDEX idx_messages_queue ON messages (status, recipient, created_at, id);
    """,
    # --- 2: sessions say where they ran and carry free-form details ------------------------
    """
    ALTER TABLE preflight_sessions ADD COLUMN hostname TEXT NOT NULL DEFAULT '';
    ALTER TABLE preflight_sessions ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX idx_sessions_started ON preflight_sessions (started_at, id);
    """,
    # --- 3: the lease store's fencing counter; conflicts queried per session ----------------
    # The counter, not MAX(leases.fencing_token), hands out tokens: a token must never come
    # back, not even after the lease rows that carried it are deleted. It starts from the
    # largest token already in the table.
    """
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO counters (name, value)
        SELECT 'fencing_token', COALESCE(MAX(fencing_token), 0) FROM leases;
    CREATE INDEX idx_leases_created ON leases (created_at, id);
    CREATE INDEX idx_conflicts_session ON reservation_conflicts (session_id, detected_at);
    """,
    # --- 4: the definitions a session ran with; agents as the seed describes them -----------
    # Nothing wrote smoke_tests or escalation_paths before: both become content-deduplicated
    # definitions like preflight_configs (one row per id and content hash), written with the
    # session that ran them. A hand-written escalation_paths row is carried over; the old
    # smoke_tests held no definition to carry.
    """
    DROP TABLE smoke_tests;
    CREATE TABLE smoke_tests (
        nodeid TEXT NOT NULL,
        version TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        file TEXT NOT NULL,
        document TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (nodeid, content_hash)
    );
    CREATE INDEX idx_smoke_tests_recorded ON smoke_tests (recorded_at, content_hash);

    CREATE TABLE escalation_paths_before_4 AS SELECT * FROM escalation_paths;
    DROP TABLE escalation_paths;
    CREATE TABLE escalation_paths (
        id TEXT NOT NULL,
        version TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        document TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (id, content_hash)
    );
    INSERT OR IGNORE INTO escalation_paths (id, version, content_hash, document, recorded_at)
        SELECT id, version, content_hash, document, updated_at FROM escalation_paths_before_4;
    DROP TABLE escalation_paths_before_4;
    CREATE INDEX idx_escalation_paths_recorded ON escalation_paths (recorded_at, content_hash);

    ALTER TABLE agents ADD COLUMN type TEXT NOT NULL DEFAULT 'worker';
    ALTER TABLE agents ADD COLUMN capabilities TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE agents ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
    """,
    # --- 5: waivers, escalation decisions and silences (issue 15) ---------------------------
    # No foreign key to escalation_tracking: a waiver or decision copied by a sync is kept
    # where its escalation (live state, never copied) is not. The gate asks for the waivers
    # active now, and the engine for the silences active now: both are a range on expires_at.
    """
    CREATE TABLE waivers (
        id TEXT PRIMARY KEY,
        check_id TEXT NOT NULL,
        granted_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        granted_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        escalation_id TEXT,
        scope TEXT NOT NULL DEFAULT '{}',
        revoked_at REAL,
        revoked_by TEXT
    );
    CREATE INDEX idx_waivers_active ON waivers (expires_at, granted_at);
    CREATE INDEX idx_waivers_check ON waivers (check_id, expires_at);

    CREATE TABLE escalation_decisions (
        id TEXT PRIMARY KEY,
        escalation_id TEXT NOT NULL,
        level INTEGER NOT NULL,
        decision TEXT NOT NULL,
        decided_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        decided_at REAL NOT NULL
    );
    CREATE INDEX idx_decisions_escalation ON escalation_decisions (escalation_id, decided_at);

    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        check_id TEXT,
        path_id TEXT,
        created_by TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        expired_at REAL,
        expired_by TEXT
    );
    CREATE INDEX idx_silences_active ON silences (expires_at, created_at);
    """,
)

#: The version a database has once every migration here is applied.
SCHEMA_VERSION = len(MIGRATIONS)


class NewerSchemaError(Exception):
    """The database was written by a newer plugin (its version is above ``SCHEMA_VERSION``)."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"schema version {found} is newer than this plugin knows "
            f"({SCHEMA_VERSION}): newer schema"
        )
        self.found = found


def user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def statements(script: str) -> Iterator[str]:
    """The statements of ``script``, split where SQLite itself says a statement is complete."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer.strip()!r}")


def apply_migration(conn: sqlite3.Connection, version: int) -> bool:
    """Apply migration ``version`` in one transaction; False when the database already has it.

    The version is read again after ``BEGIN IMMEDIATE`` (which holds the write lock), so a
    step another process finished in the meantime is not applied twice.
    """
    if not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"no migration {version} (known: 1..{SCHEMA_VERSION})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = user_version(conn)
        if current > SCHEMA_VERSION:
            raise NewerSchemaError(current)
        if current >= version:
            conn.execute("ROLLBACK")
            return False
        if current != version - 1:
            raise ValueError(f"cannot apply migration {version} to schema version {current}")
        for statement in statements(MIGRATIONS[version - 1]):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
            (version, time.time()),
        )
        # PRAGMA takes no bound parameters; ``version`` is an int from this module.
        conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Bring the database up to ``target`` (default: ``SCHEMA_VERSION``); return the version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open transaction.
    Lock errors (``sqlite3.OperationalError``) propagate; the caller decides about retrying.
    """
    target = SCHEMA_VERSION if target is None else target
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"no schema version {target} (known: 0..{SCHEMA_VERSION})")
    if conn.in_transaction:
        raise ValueError("migrate() needs a connection without an open transaction")
    current = user_version(conn)
    if current > SCHEMA_VERSION:
        raise NewerSchemaError(current)
    for version in range(current + 1, target + 1):
        apply_migration(conn, version)
    return user_version(conn)
