"""The PostgreSQL runtime's schema, as versioned migrations (SPEC S5).

The tables are the SQLite runtime's, in one schema of one database: times are ``double
precision`` epoch seconds (a float read back is the float written, so a claim can compare a
deadline with ``=``), JSON is ``text`` holding the same compact JSON the SQLite mode writes
(``jsonb`` would turn ``1e300`` into an integer and refuse ``\\u0000``; cast to ``jsonb`` to
query it).

Each migration runs in its own transaction together with its ``schema_migrations`` row, under
a transaction-level advisory lock keyed on the schema, and re-reads the version once it holds
the lock: two processes migrating a fresh schema at the same moment apply every step exactly
once, the second one waiting, then finding the step done. A schema already at the current
version is recognized without taking the lock or asking for any privilege, so a role that may
only read and write the tables can open it.

Migrations are append-only: never edit a released one, add the next.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

#: Migration ``n`` (1-based) is ``MIGRATIONS[n - 1]``. Each is one script of statements without
#: parameters, run in the schema being migrated.
MIGRATIONS: tuple[str, ...] = (
    # --- 1: the tables of SPEC S5, as the SQLite mode has them after its migration 3 ---------
    """
    CREATE TABLE preflight_configs (
        config_id text NOT NULL,
        version text NOT NULL,
        config_type text NOT NULL,
        content_hash text NOT NULL,
        document text NOT NULL,
        recorded_at double precision NOT NULL,
        PRIMARY KEY (config_id, content_hash)
    );
    CREATE INDEX idx_configs_recorded ON preflight_configs (recorded_at, content_hash);

    CREATE TABLE preflight_sessions (
        id text PRIMARY KEY,
        agent_id text NOT NULL,
        environment text NOT NULL,
        started_at double precision NOT NULL,
        completed_at double precision NOT NULL,
        status text NOT NULL,
        exit_code integer,
        runtime_mode text NOT NULL,
        hostname text NOT NULL DEFAULT '',
        details text NOT NULL DEFAULT '{}'
    );
    CREATE INDEX idx_sessions_started ON preflight_sessions (started_at, id);

    CREATE TABLE preflight_executions (
        id text PRIMARY KEY,
        session_id text NOT NULL REFERENCES preflight_sessions (id),
        config_id text NOT NULL,
        config_version text NOT NULL,
        agent_id text NOT NULL,
        kind text NOT NULL,
        status text NOT NULL,
        started_at double precision NOT NULL,
        completed_at double precision NOT NULL,
        duration double precision NOT NULL,
        attempts integer NOT NULL,
        result text NOT NULL,
        error_message text
    );
    CREATE INDEX idx_executions_started ON preflight_executions (started_at, id);
    CREATE INDEX idx_executions_config ON preflight_executions (config_id, started_at);
    CREATE INDEX idx_executions_status ON preflight_executions (status, started_at);
    CREATE INDEX idx_executions_session ON preflight_executions (session_id, started_at);

    CREATE TABLE smoke_tests (
        nodeid text PRIMARY KEY,
        first_seen double precision NOT NULL,
        last_seen double precision NOT NULL,
        last_status text,
        last_execution_id text
    );

    CREATE TABLE escalation_paths (
        id text PRIMARY KEY,
        version text NOT NULL,
        content_hash text NOT NULL,
        document text NOT NULL,
        updated_at double precision NOT NULL
    );

    CREATE TABLE escalation_tracking (
        id text PRIMARY KEY,
        path_id text NOT NULL,
        dedup_key text NOT NULL,
        check_id text,
        failure_class text,
        state text NOT NULL,
        level integer NOT NULL DEFAULT 0,
        occurrences integer NOT NULL DEFAULT 1,
        path_snapshot text NOT NULL,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        next_action_at double precision,
        acknowledged_by text,
        acknowledged_at double precision,
        resolved_by text,
        resolved_at double precision,
        details text NOT NULL DEFAULT '{}'
    );
    CREATE UNIQUE INDEX idx_escalations_open_key ON escalation_tracking (dedup_key)
        WHERE state IN ('triggered', 'acknowledged', 'escalated');
    CREATE INDEX idx_escalations_state ON escalation_tracking (state, next_action_at);
    CREATE INDEX idx_escalations_created ON escalation_tracking (created_at, id);

    CREATE TABLE escalation_deliveries (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        escalation_id text NOT NULL REFERENCES escalation_tracking (id),
        level integer NOT NULL,
        channel text NOT NULL,
        target text NOT NULL,
        attempt integer NOT NULL,
        status text NOT NULL,
        error text,
        response text NOT NULL DEFAULT '{}',
        attempted_at double precision NOT NULL
    );
    CREATE INDEX idx_deliveries_escalation ON escalation_deliveries (escalation_id, attempted_at);

    CREATE TABLE agents (
        id text PRIMARY KEY,
        last_heartbeat double precision NOT NULL,
        details text NOT NULL DEFAULT '{}'
    );

    CREATE TABLE leases (
        id text PRIMARY KEY,
        agent_id text NOT NULL,
        path_pattern text NOT NULL,
        exclusive boolean NOT NULL DEFAULT true,
        reason text NOT NULL DEFAULT '',
        created_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        released_at double precision,
        fencing_token bigint NOT NULL UNIQUE
    );
    CREATE INDEX idx_leases_active ON leases (released_at, expires_at);
    CREATE INDEX idx_leases_agent ON leases (agent_id);
    CREATE INDEX idx_leases_created ON leases (created_at, id);

    CREATE TABLE reservation_conflicts (
        id text PRIMARY KEY,
        session_id text,
        conflict_type text NOT NULL,
        severity text NOT NULL,
        agent_id text NOT NULL,
        holder_agent_id text,
        path text,
        path_pattern text,
        lease_id text,
        expires_at double precision,
        status text NOT NULL,
        override boolean NOT NULL DEFAULT false,
        detected_at double precision NOT NULL,
        details text NOT NULL DEFAULT '{}'
    );
    CREATE INDEX idx_conflicts_detected ON reservation_conflicts (detected_at);
    CREATE INDEX idx_conflicts_session ON reservation_conflicts (session_id, detected_at);

    CREATE TABLE messages (
        id text PRIMARY KEY,
        type text NOT NULL,
        agent_id text NOT NULL,
        payload text NOT NULL,
        created_at double precision NOT NULL,
        correlation_id text,
        recipient text,
        status text NOT NULL DEFAULT 'queued'
    );
    CREATE INDEX idx_messages_queue ON messages (status, recipient, created_at, id);

    -- The fencing counter's row is also the lease store's lock: every lease write locks it
    -- first, so the conflict check and the insert of one acquire are never interleaved with
    -- another's, on any host.
    CREATE TABLE counters (
        name text PRIMARY KEY,
        value bigint NOT NULL
    );
    INSERT INTO counters (name, value) VALUES ('fencing_token', 0);
    """,
    # --- 2: as the SQLite mode's migration 4: the definitions a session ran with, agents as
    # the seed describes them. Nothing wrote smoke_tests or escalation_paths before; a
    # hand-written escalation_paths row is carried over.
    """
    DROP TABLE smoke_tests;
    CREATE TABLE smoke_tests (
        nodeid text NOT NULL,
        version text NOT NULL,
        content_hash text NOT NULL,
        file text NOT NULL,
        document text NOT NULL,
        recorded_at double precision NOT NULL,
        PRIMARY KEY (nodeid, content_hash)
    );
    CREATE INDEX idx_smoke_tests_recorded ON smoke_tests (recorded_at, content_hash);

    CREATE TABLE escalation_paths_before_2 AS SELECT * FROM escalation_paths;
    DROP TABLE escalation_paths;
    CREATE TABLE escalation_paths (
        id text NOT NULL,
        version text NOT NULL,
        content_hash text NOT NULL,
        document text NOT NULL,
        recorded_at double precision NOT NULL,
        PRIMARY KEY (id, content_hash)
    );
    INSERT INTO escalation_paths (id, version, content_hash, document, recorded_at)
        SELECT id, version, content_hash, document, updated_at FROM escalation_paths_before_2
        ON CONFLICT DO NOTHING;
    DROP TABLE escalation_paths_before_2;
    CREATE INDEX idx_escalation_paths_recorded ON escalation_paths (recorded_at, content_hash);

    ALTER TABLE agents ADD COLUMN type text NOT NULL DEFAULT 'worker';
    ALTER TABLE agents ADD COLUMN capabilities text NOT NULL DEFAULT '[]';
    ALTER TABLE agents ADD COLUMN status text NOT NULL DEFAULT 'active';
    """,
    # --- 3: as the SQLite mode's migration 5: waivers, escalation decisions and silences ----
    """
    CREATE TABLE waivers (
        id text PRIMARY KEY,
        check_id text NOT NULL,
        granted_by text NOT NULL,
        reason text NOT NULL,
        granted_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        escalation_id text,
        scope text NOT NULL DEFAULT '{}',
        revoked_at double precision,
        revoked_by text
    );
    CREATE INDEX idx_waivers_active ON waivers (expires_at, granted_at);
    CREATE INDEX idx_waivers_check ON waivers (check_id, expires_at);

    CREATE TABLE escalation_decisions (
        id text PRIMARY KEY,
        escalation_id text NOT NULL,
        level integer NOT NULL,
        decision text NOT NULL,
        decided_by text NOT NULL,
        reason text NOT NULL,
        decided_at double precision NOT NULL
    );
    CREATE INDEX idx_decisions_escalation ON escalation_decisions (escalation_id, decided_at);

    CREATE TABLE silences (
        id text PRIMARY KEY,
        check_id text,
        path_id text,
        created_by text NOT NULL,
        reason text NOT NULL,
        created_at double precision NOT NULL,
        expires_at double precision NOT NULL,
        expired_at double precision,
        expired_by text
    );
    CREATE INDEX idx_silences_active ON silences (expires_at, created_at);
    """,
)

#: The version a schema has once every migration here is applied.
SCHEMA_VERSION = len(MIGRATIONS)

_TABLE_EXISTS = (
    "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %s AND tablename = 'schema_migrations'"
)
_SCHEMA_EXISTS = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s"
_CREATE_MIGRATIONS = (
    "CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
    "applied_at double precision NOT NULL)"
)


class NewerSchemaError(Exception):
    """The schema was written by a newer plugin (its version is above ``SCHEMA_VERSION``)."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"schema version {found} is newer than this plugin knows "
            f"({SCHEMA_VERSION}): newer schema"
        )
        self.found = found


def advisory_key(kind: str, schema: str, key: str = "") -> int:
    """A signed 64-bit advisory lock key for ``key`` of ``kind`` in ``schema``.

    Advisory locks are database-wide, so the key names the schema: migrating one schema never
    waits for another (a hash collision only makes two keys take turns).
    """
    text = f"pytest-maf-preflight\x00{kind}\x00{schema}\x00{key}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def schema_version(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> int:
    """The highest migration applied to ``schema``; 0 when it has none (or does not exist)."""
    if conn.execute(_TABLE_EXISTS, (schema,)).fetchone() is None:
        return 0
    row = conn.execute(
        _in_schema(conn, schema, "SELECT max(version) FROM {}.schema_migrations")
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _in_schema(conn: psycopg.Connection[tuple[Any, ...]], schema: str, template: str) -> str:
    from psycopg import sql

    # The schema is an identifier, quoted by psycopg; ``template`` is a constant of this module.
    return sql.SQL(template).format(sql.Identifier(schema)).as_string(conn)


def apply_migration(conn: psycopg.Connection[tuple[Any, ...]], schema: str, version: int) -> bool:
    """Apply migration ``version`` to ``schema`` in one transaction; False when it has it.

    Creates the schema and the ``schema_migrations`` table when they are missing. The version
    is read again once the advisory lock is held, so a step another process finished in the
    meantime is not applied twice.
    """
    if not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"no migration {version} (known: 1..{SCHEMA_VERSION})")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("migrate", schema),))
        if conn.execute(_SCHEMA_EXISTS, (schema,)).fetchone() is None:
            conn.execute(_in_schema(conn, schema, "CREATE SCHEMA {}"))
        # Local to this transaction: the migration's unqualified names land in ``schema``.
        conn.execute(
            "SELECT set_config('search_path', %s, true)", (_in_schema(conn, schema, "{}"),)
        )
        if conn.execute(_TABLE_EXISTS, (schema,)).fetchone() is None:
            conn.execute(_CREATE_MIGRATIONS)
        current = schema_version(conn, schema)
        if current > SCHEMA_VERSION:
            raise NewerSchemaError(current)
        if current >= version:
            return False
        if current != version - 1:
            raise ValueError(f"cannot apply migration {version} to schema version {current}")
        # A script of constant statements without parameters: psycopg sends it as one simple
        # query, inside the transaction.
        conn.execute(MIGRATIONS[version - 1].encode())
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
            (version, time.time()),
        )
    return True


def migrate(
    conn: psycopg.Connection[tuple[Any, ...]], schema: str, target: int | None = None
) -> int:
    """Bring ``schema`` up to ``target`` (default: ``SCHEMA_VERSION``); return its version.

    ``conn`` must be in autocommit mode with no open transaction. Database errors propagate;
    the caller decides what they mean.
    """
    target = SCHEMA_VERSION if target is None else target
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"no schema version {target} (known: 0..{SCHEMA_VERSION})")
    if not conn.autocommit:
        raise ValueError("migrate() needs a connection in autocommit mode")
    current = schema_version(conn, schema)
    if current > SCHEMA_VERSION:
        raise NewerSchemaError(current)
    for version in range(current + 1, target + 1):
        apply_migration(conn, schema, version)
    return schema_version(conn, schema)
