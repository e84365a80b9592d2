"""The ``postgres`` runtime (SPEC S5): one schema of a PostgreSQL database, shared by the agents
and CI runners of a team across hosts.

psycopg 3 is an optional extra, imported when this mode is opened; without it the mode cannot
start, and says how to install it. One connection per runtime (autocommit; every write is one
explicit ``READ COMMITTED`` transaction), used by one thread at a time. The schema comes from
the versioned migrations in :mod:`.postgres_migrations`.

What makes the live state safe across hosts:

- leases: every lease write first locks the fencing counter's row (an upsert, so the row is
  there even if someone deleted it), then reads the other agents' leases, decides with the
  rules of :mod:`.base`, and writes. The lock is held to the commit, and under ``READ
  COMMITTED`` each statement after it sees what the previous holder committed, so the
  conflict check and the insert of two acquires never interleave. Fencing tokens come from
  that counter, inside the same transaction: strictly increasing in grant order, no gaps.
- escalations: opening one takes a transaction-level advisory lock on its dedup key; claims
  and transitions lock the row (``SELECT ... FOR UPDATE``), apply the rule of :mod:`.base`,
  and write with a compare-and-set ``UPDATE`` that still names the level and deadline the
  claimer expects, so of any number of ticks exactly one wins a level.

No password reaches a message: locations are built from the connection's user, host, port and
database, and every error text goes through :func:`redaction.redact_text` with the URL's
password and ``PGPASSWORD``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from ..redaction import redact_text
from .base import (
    EscalationClaim,
    EscalationOpening,
    EscalationTransition,
    LeaseRequest,
    RuntimeState,
    RuntimeStateError,
    RuntimeUnavailable,
    agent_record,
    another_occurrence,
    blocking_leases,
    checked_agent,
    checked_delivery,
    checked_idle,
    checked_limit,
    checked_states,
    checked_time,
    checked_ttl,
    message_filters,
    owned_lease,
    renewed_lease,
    required_time,
    stale_leases,
    unknown_escalation,
)
from .postgres_migrations import NewerSchemaError, advisory_key, migrate, schema_version
from .records import (
    CLIMBING_STATES,
    OPEN_STATES,
    AgentRecord,
    ConfigSnapshot,
    ConflictRecord,
    DeliveryRecord,
    EscalationPathDefinition,
    EscalationRecord,
    EscalationState,
    ExecutionRecord,
    Lease,
    LeaseGrant,
    Message,
    RuntimeInfo,
    SessionBundle,
    SessionRecord,
    SmokeTestDefinition,
    new_id,
    now,
)
from .sql_rows import (
    COUNT_NAMES,
    COUNTS,
    SELECT_AGENTS,
    SELECT_CONFLICTS,
    SELECT_DELIVERIES,
    SELECT_ESCALATION_PATHS,
    SELECT_ESCALATIONS,
    SELECT_EXECUTIONS,
    SELECT_LEASES,
    SELECT_MESSAGES,
    SELECT_SESSIONS,
    SELECT_SMOKE_TESTS,
    SELECT_SNAPSHOTS,
    UPSERT_AGENT,
    PreparedBundle,
    agent_row,
    conflict_row,
    definitions_query,
    delivery_row,
    escalation_changes,
    escalation_row,
    lease_row,
    message_row,
    prepare_bundle,
    read_agent,
    read_conflict,
    read_delivery,
    read_escalation,
    read_escalation_path,
    read_execution,
    read_lease,
    read_message,
    read_session,
    read_smoke_test,
    read_snapshot,
)

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.Connection[tuple[Any, ...]]

T = TypeVar("T")

INSTALL_HINT = ("the postgres runtime needs psycopg 3, which is not installed: "
                "pip install 'pytest-maf-preflight[postgres]'")
#: PostgreSQL truncates longer identifiers, which would put the tables somewhere else.
MAX_SCHEMA_BYTES = 63
_BACKOFF_FIRST = 0.005
_BACKOFF_MAX = 0.5

# Every statement is a constant; values are always bound parameters.
#: The open escalation of a dedup key, locked (the unique index allows one; the oldest, to
#: match the other modes should a database ever hold two).
_SELECT_OPEN_FOR_KEY = (SELECT_ESCALATIONS + " WHERE dedup_key = %s "
                        "AND state = ANY(%s::text[]) ORDER BY created_at, id LIMIT 1 FOR UPDATE")
_SELECT_DUE = (SELECT_ESCALATIONS + " WHERE state = ANY(%s::text[]) "
               "AND next_action_at IS NOT NULL AND next_action_at <= %s "
               "ORDER BY next_action_at, created_at, id")
#: Other agents' active leases: the only ones that can block an acquire or a renewal.
_SELECT_OTHERS_ACTIVE = (SELECT_LEASES + " WHERE released_at IS NULL AND expires_at > %s "
                         "AND agent_id <> %s")

_INSERT_SESSION = ("INSERT INTO preflight_sessions (id, agent_id, environment, started_at, "
                   "completed_at, status, exit_code, runtime_mode, hostname, details) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING")
_INSERT_EXECUTION = ("INSERT INTO preflight_executions (id, session_id, config_id, "
                     "config_version, agent_id, kind, status, started_at, completed_at, duration, "
                     "attempts, result, error_message) "
                     "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                     "ON CONFLICT DO NOTHING")
#: Large sessions go in by COPY into a temporary table of this connection (emptied at each
#: commit), then on into the table, ``ON CONFLICT DO NOTHING`` as ever: three times the rows
#: per second of ``executemany``. (Not ``pg_temp.preflight_executions``: a temporary table
#: comes first in every search_path and would hide the real one.)
_CREATE_INCOMING = ("CREATE TEMPORARY TABLE IF NOT EXISTS maf_incoming_executions "
                    "(LIKE preflight_executions) ON COMMIT DELETE ROWS")
_COPY_INCOMING = ("COPY maf_incoming_executions (id, session_id, config_id, config_version, "
                  "agent_id, kind, status, started_at, completed_at, duration, attempts, result, "
                  "error_message) FROM STDIN")
_INSERT_INCOMING = ("INSERT INTO preflight_executions (id, session_id, config_id, "
                    "config_version, agent_id, kind, status, started_at, completed_at, duration, "
                    "attempts, result, error_message) "
                    "SELECT id, session_id, config_id, config_version, agent_id, kind, status, "
                    "started_at, completed_at, duration, attempts, result, error_message "
                    "FROM maf_incoming_executions ON CONFLICT DO NOTHING")
_INSERT_SMOKE_TEST = ("INSERT INTO smoke_tests (nodeid, version, content_hash, file, document, "
                      "recorded_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING")
_INSERT_ESCALATION_PATH = ("INSERT INTO escalation_paths (id, version, content_hash, document, "
                           "recorded_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING")
_UPSERT_AGENT = UPSERT_AGENT.format("%s")
#: From how many executions on a session is written by COPY.
COPY_FROM = 64
_INSERT_SNAPSHOT = ("INSERT INTO preflight_configs (config_id, version, config_type, "
                    "content_hash, document, recorded_at) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING")
_INSERT_MESSAGE = ("INSERT INTO messages (id, type, agent_id, payload, created_at, "
                   "correlation_id, recipient, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                   "ON CONFLICT DO NOTHING")
_INSERT_LEASE = ("INSERT INTO leases (id, agent_id, path_pattern, exclusive, reason, created_at, "
                 "expires_at, released_at, fencing_token) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
_INSERT_CONFLICT = ("INSERT INTO reservation_conflicts (id, session_id, conflict_type, "
                    "severity, agent_id, holder_agent_id, path, path_pattern, lease_id, "
                    "expires_at, status, override, detected_at, details) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING")
_INSERT_ESCALATION = ("INSERT INTO escalation_tracking (id, path_id, dedup_key, check_id, "
                      "failure_class, state, level, occurrences, path_snapshot, created_at, "
                      "updated_at, next_action_at, acknowledged_by, acknowledged_at, "
                      "resolved_by, resolved_at, details) "
                      "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                      "%s)")
#: Everything an escalation can change after it opened (``escalation_changes``).
_UPDATE_ESCALATION = ("UPDATE escalation_tracking SET state = %s, level = %s, occurrences = %s, "
                      "updated_at = %s, next_action_at = %s, acknowledged_by = %s, "
                      "acknowledged_at = %s, resolved_by = %s, resolved_at = %s, details = %s "
                      "WHERE id = %s")
#: A claim's write: a compare-and-set on what the claimer read. The row is locked already, so
#: the guard never fails in practice; it keeps the write correct on its own.
_CLAIM_ESCALATION = (_UPDATE_ESCALATION + " AND state = ANY(%s::text[]) AND level = %s "
                     "AND next_action_at IS NOT DISTINCT FROM %s::double precision")
_INSERT_DELIVERY = ("INSERT INTO escalation_deliveries (escalation_id, level, channel, target, "
                    "attempt, status, error, response, attempted_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)")
#: The lease store's lock: locks the fencing counter's row until the commit (and creates it,
#: should it be missing); returns the counter.
_LOCK_LEASES = ("INSERT INTO counters (name, value) VALUES ('fencing_token', 0) "
                "ON CONFLICT (name) DO UPDATE SET value = counters.value RETURNING value")
#: The largest token in the table: rows written by hand must not be handed their token again.
_MAX_TOKEN = "SELECT COALESCE(max(fencing_token), 0) FROM leases"  # noqa: S105 - SQL
_SET_LAST_FENCE = "UPDATE counters SET value = %s WHERE name = 'fencing_token'"

def load_psycopg() -> ModuleType:
    """psycopg, or ``RuntimeUnavailable`` saying how to install it."""
    try:
        import psycopg
    except ImportError as exc:
        raise RuntimeUnavailable(INSTALL_HINT) from exc
    return psycopg


def url_secrets(url: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every form the password of ``url`` (a URL or a ``key=value`` string) may take in a
    message, and libpq's ``PGPASSWORD``."""
    env = os.environ if environ is None else environ
    found = [env.get("PGPASSWORD", "")]
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        password = None
    if password:
        found += [password, urllib.parse.unquote(password)]
    try:
        from psycopg.conninfo import conninfo_to_dict

        found.append(str(conninfo_to_dict(url).get("password") or ""))
    except Exception:  # noqa: S110 - an unparseable URL has no parsed password to hide
        pass
    return [s for s in found if s]


def describe_url(url: str) -> str:
    """Where ``url`` points, as it may be shown: user, host, port and database, nothing else."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
    except Exception:  # the message would repeat the URL, password and all
        return "the database URL given (it cannot be parsed)"
    return _location(str(params.get("user") or ""), str(params.get("host") or ""),
                     str(params.get("port") or ""), str(params.get("dbname") or ""))


def _location(user: str, host: str, port: str, dbname: str) -> str:
    who = f"{user}@" if user else ""
    if host.startswith("/"):  # a Unix socket directory
        return f"postgresql://{who}/{dbname}?host={host}" + (f"&port={port}" if port else "")
    return f"postgresql://{who}{host}" + (f":{port}" if port else "") + f"/{dbname}"


def one_line(text: str) -> str:
    """libpq's multi-line messages (a ``DETAIL``, a ``HINT``) as one line."""
    return "; ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _pg_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; an error message quoting binary output would otherwise
    cost the whole record. Shown the way JSON shows it."""
    return value.replace("\x00", "\\u0000") if value is not None and "\x00" in value else value


def _checked_schema(schema: str | None) -> str | None:
    if schema is None:
        return None
    if not isinstance(schema, str) or not schema.strip():
        raise ValueError(f"schema must be a non-empty string, got {schema!r}")
    if len(schema.encode()) > MAX_SCHEMA_BYTES or "\x00" in schema:
        raise ValueError(f"schema must be at most {MAX_SCHEMA_BYTES} bytes without NUL, "
                         f"got {schema!r}")
    return schema


class PostgresRuntime(RuntimeState):
    """Records in one schema of a PostgreSQL database; safe across threads, processes and hosts.

    ``url``: a libpq URL or ``key=value`` string; what it leaves out (password, host, ...) comes
    from libpq's environment (``PGPASSWORD``, ``PGHOST``, ``~/.pgpass``). ``schema``: where the
    tables live, created when missing; by default the first existing schema of the
    connection's ``search_path``. Either way the connection's ``search_path`` is pinned to it.
    """

    mode = "postgres"

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 5.0,
                 lock_timeout: float = 30.0, retry_budget_seconds: float = 10.0) -> None:
        self._psycopg = load_psycopg()
        if not isinstance(url, str) or not url.strip():
            raise RuntimeUnavailable("no database URL: set MAF_DB_URL, --maf-db-url or "
                                     "maf_db_url")
        self._url = url
        self._requested_schema = _checked_schema(schema)
        self.connect_timeout = max(1, round(connect_timeout))
        self.lock_timeout = float(lock_timeout)
        self.retry_budget_seconds = float(retry_budget_seconds)
        self._secrets = url_secrets(url)
        self._lock = threading.RLock()
        self._random = random.Random()  # noqa: S311 - jitter, not security
        #: Where the runtime is, without a password; exact once connected.
        self.location = describe_url(url)
        self.schema = self._requested_schema or ""
        #: How many times a serialization failure or deadlock made this runtime retry.
        self.retries = 0
        self._conn: Conn | None = self._open()

    # --- opening ---------------------------------------------------------------------------

    def _open(self) -> Conn:
        """Connect, choose and migrate the schema, or raise ``RuntimeUnavailable`` saying why."""
        psycopg = self._psycopg
        conn: Conn | None = None
        try:
            conn = psycopg.connect(self._url, autocommit=True, **self._connect_options())
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            info = conn.info
            self.location = _location(info.user, info.host, str(info.port), info.dbname)
            # On a reconnect, the schema chosen the first time.
            schema = self._requested_schema or self.schema or None
            if schema is None:
                row = conn.execute("SELECT current_schema()").fetchone()
                if row is None or row[0] is None:
                    raise RuntimeUnavailable(
                        f"{self.location}: the search_path names no existing schema; create "
                        "one or give the runtime a schema")
                schema = str(row[0])
            self.schema = schema
            # Set before migrating, so a stuck migrator cannot hold every other host forever;
            # a client that stalls inside a transaction (a host cut off while holding the lease
            # lock) is cut off by the server after a minute.
            conn.execute("SELECT set_config('lock_timeout', %s, false), "
                         "set_config('idle_in_transaction_session_timeout', '60s', false)",
                         (f"{max(1, round(self.lock_timeout * 1000))}ms",))
            migrate(conn, schema)
            # Pinned for the life of the connection: a schema created later, earlier in the
            # search_path, must not move the tables under a running runtime.
            conn.execute("SELECT set_config('search_path', %s, false)",
                         (psycopg.sql.Identifier(schema).as_string(conn),))
            return conn
        except NewerSchemaError as exc:
            self._discard(conn)
            raise RuntimeUnavailable(f"{self.where}: {exc}") from exc
        except psycopg.Error as exc:
            self._discard(conn)
            raise RuntimeUnavailable(self._say(exc, "cannot use")) from exc
        except BaseException:
            self._discard(conn)
            raise

    def _connect_options(self) -> dict[str, Any]:
        """Defaults for what neither the URL nor libpq's environment says."""
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self._url)
        options: dict[str, Any] = {}
        if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
            options["connect_timeout"] = self.connect_timeout
        if "application_name" not in given and not os.environ.get("PGAPPNAME"):
            options["application_name"] = "pytest-maf-preflight"
        if "keepalives" not in given:
            # A dead peer is noticed within a minute or so, not after the kernel's two hours.
            options.update(keepalives=1, keepalives_idle=30, keepalives_interval=10,
                           keepalives_count=3)
        return options

    @property
    def where(self) -> str:
        return f"{self.location}, schema {self.schema}" if self.schema else self.location

    def _say(self, exc: BaseException, doing: str) -> str:
        """``exc`` as one line naming the database, with no password in it."""
        return redact_text(f"{doing} {self.where}: {one_line(str(exc)) or type(exc).__name__}",
                           self._secrets)

    @staticmethod
    def _discard(conn: Conn | None) -> None:
        if conn is not None:
            # Closing a broken connection may fail too; there is nothing left to release.
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self) -> Conn:
        """The open connection; a broken one (the server restarted) is replaced first."""
        conn = self._conn
        if conn is None:
            raise RuntimeStateError(f"the postgres runtime at {self.where} is closed")
        if conn.closed:
            self._discard(conn)
            self._conn = None
            try:
                self._conn = conn = self._open()
            except RuntimeUnavailable as exc:
                raise RuntimeStateError(f"lost the connection and cannot reconnect: {exc}"
                                        ) from exc
        return conn

    def _backoff(self, attempt: int, deadline: float) -> bool:
        """Sleep before retry ``attempt``; False when the budget is spent."""
        self.retries += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        delay = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (attempt - 1))
        time.sleep(min(remaining, delay * (0.5 + self._random.random())))
        return True

    # --- running statements ----------------------------------------------------------------

    def _run(self, work: Callable[[Conn], T], *, transaction: bool = True) -> T:
        """``work`` in one transaction (rolled back on any error), retried after a serialization
        failure or a deadlock (PostgreSQL rolled it back; nothing was written); other database
        errors become ``RuntimeStateError``. The work functions may run again, so they only
        compute and write."""
        psycopg = self._psycopg
        deadline = time.monotonic() + self.retry_budget_seconds
        attempt = 0
        while True:
            with self._lock:
                conn = self._connection()
                try:
                    if not transaction:
                        return work(conn)
                    with conn.transaction():
                        return work(conn)
                except (psycopg.errors.SerializationFailure,
                        psycopg.errors.DeadlockDetected) as exc:
                    last: Exception = exc
                except psycopg.errors.LockNotAvailable as exc:
                    raise RuntimeStateError(self._say(
                        exc, f"waited longer than {self.lock_timeout:g}s for a lock in")
                    ) from exc
                except psycopg.Error as exc:
                    raise RuntimeStateError(self._say(exc, "failed in")) from exc
            attempt += 1
            if not self._backoff(attempt, deadline):
                raise RuntimeStateError(self._say(
                    last, f"gave up after retrying for {self.retry_budget_seconds:g}s in")
                ) from last

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        # One statement sees one snapshot: no transaction needed around it.
        return self._run(lambda conn: conn.execute(sql, params).fetchall(), transaction=False)

    # --- sessions and executions -----------------------------------------------------------

    def record_session(self, bundle: SessionBundle) -> None:
        try:
            prepared = prepare_bundle(bundle, _pg_text)
        except (TypeError, ValueError) as exc:
            raise RuntimeStateError(
                f"session {bundle.session.id} cannot be stored as JSON: {exc}") from exc
        self._run(lambda conn: self._insert_bundle(conn, prepared))

    @staticmethod
    def _insert_bundle(conn: Conn, prepared: PreparedBundle) -> None:
        """The body of ``record_session``'s transaction (the session row first: foreign key)."""
        with conn.cursor() as cur:
            cur.execute(_INSERT_SESSION, prepared.session)
            executions = list(prepared.executions)  # counted: the count chooses COPY
            if len(executions) >= COPY_FROM:
                cur.execute(_CREATE_INCOMING)
                with cur.copy(_COPY_INCOMING) as copy:
                    for row in executions:
                        copy.write_row(row)
                cur.execute(_INSERT_INCOMING)
                executions = []
            for sql, rows in ((_INSERT_EXECUTION, executions),
                              (_INSERT_SNAPSHOT, prepared.snapshots),
                              (_INSERT_MESSAGE, prepared.messages),
                              (_INSERT_CONFLICT, prepared.conflicts),
                              (_INSERT_SMOKE_TEST, prepared.smoke_tests),
                              (_INSERT_ESCALATION_PATH, prepared.escalation_paths)):
                if rows:
                    cur.executemany(sql, rows)

    def sessions(self, limit: int | None = None) -> list[SessionRecord]:
        sql = SELECT_SESSIONS + " ORDER BY started_at DESC, id DESC"
        return [read_session(r) for r in self._select(*_limited(sql, [], limit))]

    def get_session(self, session_id: str) -> SessionRecord | None:
        rows = self._select(SELECT_SESSIONS + " WHERE id = %s", (session_id,))
        return read_session(rows[0]) if rows else None

    def executions(self, *, config_id: str | None = None, status: str | None = None,
                   session_id: str | None = None, limit: int | None = None
                   ) -> list[ExecutionRecord]:
        # Only the filters given go into the WHERE clause (so their indexes can be used); each
        # is a constant text, each value a bound parameter.
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (("config_id = %s", config_id), ("status = %s", status),
                              ("session_id = %s", session_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = SELECT_EXECUTIONS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        return [read_execution(r) for r in self._select(*_limited(sql, params, limit))]

    def config_snapshots(self, config_id: str | None = None) -> list[ConfigSnapshot]:
        sql = SELECT_SNAPSHOTS
        params: list[Any] = []
        if config_id is not None:
            sql += " WHERE config_id = %s"
            params.append(config_id)
        sql += " ORDER BY recorded_at DESC, content_hash DESC"
        return [read_snapshot(r) for r in self._select(sql, params)]

    def smoke_tests(self, nodeid: str | None = None) -> list[SmokeTestDefinition]:
        sql, params = definitions_query(SELECT_SMOKE_TESTS, "nodeid", nodeid, "%s")
        return [read_smoke_test(r) for r in self._select(sql, params)]

    def escalation_paths(self, path_id: str | None = None) -> list[EscalationPathDefinition]:
        sql, params = definitions_query(SELECT_ESCALATION_PATHS, "id", path_id, "%s")
        return [read_escalation_path(r) for r in self._select(sql, params)]

    # --- messages --------------------------------------------------------------------------

    def _store_messages(self, records: Sequence[Message]) -> None:
        rows = [message_row(m) for m in records]

        def work(conn: Conn) -> None:
            with conn.cursor() as cur:
                cur.executemany(_INSERT_MESSAGE, rows)

        self._run(work)

    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        checked_limit(limit)

        def work(conn: Conn) -> list[Message]:
            sql = SELECT_MESSAGES + " WHERE status = 'queued'"
            params: list[Any] = []
            if recipient is not None:
                sql += " AND recipient = %s"
                params.append(recipient)
            # SKIP LOCKED: two hosts dequeuing at once each take other messages, never one
            # message twice.
            sql += " ORDER BY created_at, id LIMIT %s FOR UPDATE SKIP LOCKED"
            picked = [read_message(r) for r in conn.execute(sql, [*params, limit])]
            if picked:
                conn.execute("UPDATE messages SET status = 'delivered' WHERE id = ANY(%s::text[])",
                             ([m.id for m in picked],))
            return [dataclasses.replace(m, status="delivered") for m in picked]

        return self._run(work)

    def ack(self, message_id: str) -> bool:
        def work(conn: Conn) -> bool:
            cursor = conn.execute("UPDATE messages SET status = 'acked' WHERE id = %s",
                                  (message_id,))
            return cursor.rowcount > 0

        return self._run(work)

    def messages(self, status: str | None = None, *, types: Sequence[str] | None = None,
                 agent_id: str | None = None, since: float | None = None) -> list[Message]:
        where, params = message_filters(status, types, agent_id, since, "%s")
        sql = SELECT_MESSAGES + where + " ORDER BY created_at, id"
        return [read_message(r) for r in self._select(sql, params)]

    # --- agents ----------------------------------------------------------------------------

    def heartbeat(self, agent_id: str, at: float | None = None,
                  details: dict[str, Any] | None = None, *, agent_type: str = "worker",
                  capabilities: Sequence[str] = (), status: str = "active") -> AgentRecord:
        checked = agent_record(agent_id, 0.0, details, agent_type=agent_type,
                               capabilities=capabilities, status=status)

        def work(conn: Conn) -> AgentRecord:
            # Stamped by the server's clock: idle-agent sweeps on other hosts compare with it.
            record = dataclasses.replace(checked, last_heartbeat=_clock(conn, at))
            conn.execute(_UPSERT_AGENT, agent_row(record))
            return record

        return self._run(work)

    def agents(self) -> list[AgentRecord]:
        return [read_agent(r) for r in self._select(SELECT_AGENTS + " ORDER BY id")]

    # --- leases ----------------------------------------------------------------------------
    # Every lease write is one transaction that starts by locking the fencing counter's row
    # (``_lock_leases``): from there to the commit no other lease write of this schema runs,
    # on any host. The rules are the ones ``base`` shares with the other modes.

    def acquire_leases(self, agent_id: str, patterns: Sequence[str], *, exclusive: bool = True,
                       ttl: float, reason: str = "", now: float | None = None) -> LeaseGrant:
        request = LeaseRequest.check(agent_id, patterns, exclusive=exclusive, ttl=ttl,
                                     reason=reason, now=now)
        ids = [new_id() for _ in request.patterns]

        def work(conn: Conn) -> LeaseGrant:
            counter = _lock_leases(conn)
            at = _clock(conn, request.now)
            sql = _SELECT_OTHERS_ACTIVE
            if not request.exclusive:
                sql += " AND exclusive"  # shared leases never block a shared request
            held = [read_lease(r) for r in conn.execute(sql, (at, request.agent_id))]
            blocking = blocking_leases(held, request.agent_id, request.patterns,
                                       request.exclusive, at)
            if blocking:
                return LeaseGrant(granted=(), conflicts=tuple(blocking))
            last = _last_token(conn, counter)
            granted = request.leases(ids, last + 1, at)
            with conn.cursor() as cur:
                cur.executemany(_INSERT_LEASE, [lease_row(lease) for lease in granted])
            conn.execute(_SET_LAST_FENCE, (last + len(granted),))
            return LeaseGrant(granted=granted, conflicts=())

        return self._run(work)

    def renew_lease(self, lease_id: str, agent_id: str, *, ttl: float,
                    now: float | None = None) -> Lease:
        agent_id, ttl, given = checked_agent(agent_id), checked_ttl(ttl), checked_time(now)

        def work(conn: Conn) -> Lease:
            counter = _lock_leases(conn)
            at = _clock(conn, given)
            lease = owned_lease(_get_lease(conn, lease_id), lease_id, agent_id)
            held = [read_lease(r) for r in conn.execute(_SELECT_OTHERS_ACTIVE, (at, agent_id))]
            token = _last_token(conn, counter) + 1
            renewed = renewed_lease(lease, agent_id, ttl, at, token, held)
            conn.execute("UPDATE leases SET expires_at = %s, fencing_token = %s WHERE id = %s",
                         (renewed.expires_at, renewed.fencing_token, lease_id))
            conn.execute(_SET_LAST_FENCE, (token,))
            return renewed

        return self._run(work)

    def release_lease(self, lease_id: str, agent_id: str, *, now: float | None = None) -> Lease:
        agent_id, given = checked_agent(agent_id), checked_time(now)

        def work(conn: Conn) -> Lease:
            _lock_leases(conn)  # a renewal running meanwhile must not revive the lease
            lease = owned_lease(_get_lease(conn, lease_id), lease_id, agent_id)
            if lease.released_at is not None:
                return lease
            released = dataclasses.replace(lease, released_at=_clock(conn, given))
            conn.execute("UPDATE leases SET released_at = %s WHERE id = %s",
                         (released.released_at, lease_id))
            return released

        return self._run(work)

    def release_stale_leases(self, *, now: float | None = None,
                             idle_agent_seconds: float | None = None) -> list[Lease]:
        given, idle = checked_time(now), checked_idle(idle_agent_seconds)

        def work(conn: Conn) -> list[Lease]:
            _lock_leases(conn)
            at = _clock(conn, given)
            rows = [read_lease(r) for r in conn.execute(SELECT_LEASES
                                                        + " WHERE released_at IS NULL")]
            agents: list[AgentRecord] = []
            if idle is not None:
                agents = [AgentRecord(r[0], r[1]) for r in
                          conn.execute("SELECT id, last_heartbeat FROM agents")]
            stale = [dataclasses.replace(lease, released_at=at)
                     for lease in stale_leases(rows, agents, at, idle)]
            if stale:
                conn.execute("UPDATE leases SET released_at = %s WHERE id = ANY(%s::text[])",
                             (at, [lease.id for lease in stale]))
            return stale

        return self._run(work)

    def leases(self, *, active_only: bool = True, agent_id: str | None = None,
               now: float | None = None) -> list[Lease]:
        given = checked_time(now)
        where: list[str] = []
        params: list[Any] = []
        if active_only:
            # The server's clock, not this host's: hosts' clocks drift apart.
            where.append("released_at IS NULL AND expires_at > "
                         "COALESCE(%s::double precision, extract(epoch FROM clock_timestamp()))")
            params.append(given)
        if agent_id is not None:
            where.append("agent_id = %s")
            params.append(agent_id)
        sql = SELECT_LEASES
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC"
        return [read_lease(r) for r in self._select(sql, params)]

    # --- reservation conflicts -------------------------------------------------------------

    def record_conflicts(self, conflicts: Sequence[ConflictRecord]) -> None:
        try:
            rows = [conflict_row(c) for c in conflicts]
        except (TypeError, ValueError) as exc:
            raise RuntimeStateError(f"a conflict cannot be stored as JSON: {exc}") from exc
        if rows:
            def work(conn: Conn) -> None:
                with conn.cursor() as cur:
                    cur.executemany(_INSERT_CONFLICT, rows)

            self._run(work)

    def reservation_conflicts(self, *, session_id: str | None = None,
                              limit: int | None = None) -> list[ConflictRecord]:
        sql = SELECT_CONFLICTS
        params: list[Any] = []
        if session_id is not None:
            sql += " WHERE session_id = %s"
            params.append(session_id)
        sql += " ORDER BY detected_at DESC, id DESC"
        return [read_conflict(r) for r in self._select(*_limited(sql, params, limit))]

    # --- escalations -----------------------------------------------------------------------
    # One transaction per call; the rules applied in Python by the functions ``base`` shares
    # with the other modes, on rows this transaction holds locked.

    def open_escalation(self, *, path_id: str, dedup_key: str, check_id: str | None,
                        failure_class: str | None, path_snapshot: Mapping[str, Any],
                        next_action_at: float | None, details: Mapping[str, Any],
                        now: float | None = None) -> tuple[EscalationRecord, bool]:
        opening = EscalationOpening.check(
            path_id=path_id, dedup_key=dedup_key, check_id=check_id,
            failure_class=failure_class, path_snapshot=path_snapshot,
            next_action_at=next_action_at, details=details, now=now)
        escalation_id = new_id()

        def work(conn: Conn) -> tuple[EscalationRecord, bool]:
            # Two hosts failing at once must not both find no open escalation and both insert
            # one: the key is locked before it is looked up (the row may not exist yet, so a
            # row lock cannot do it).
            conn.execute("SELECT pg_advisory_xact_lock(%s)",
                         (advisory_key("escalation", self.schema, opening.dedup_key),))
            at = _clock(conn, opening.now)
            row = conn.execute(_SELECT_OPEN_FOR_KEY,
                               (opening.dedup_key, list(OPEN_STATES))).fetchone()
            if row is not None:
                record = another_occurrence(read_escalation(row), at)
                _update_escalation(conn, record)
                return record, False
            record = opening.record(escalation_id, at)
            conn.execute(_INSERT_ESCALATION, escalation_row(record))
            return record, True

        return self._run(work)

    def claim_escalation(self, escalation_id: str, *, expect_level: int,
                         expect_next_action_at: float | None, level: int,
                         next_action_at: float | None, state: EscalationState,
                         details: Mapping[str, Any] | None = None,
                         now: float | None = None) -> EscalationRecord | None:
        claim = EscalationClaim.check(
            expect_level=expect_level, expect_next_action_at=expect_next_action_at,
            level=level, next_action_at=next_action_at, state=state, details=details, now=now)

        def work(conn: Conn) -> EscalationRecord | None:
            current = _get_escalation(conn, escalation_id, lock=True)
            claimed = claim.apply(current, _clock(conn, claim.now))
            if claimed is None:
                return None
            cursor = conn.execute(_CLAIM_ESCALATION, (
                *escalation_changes(claimed), list(CLIMBING_STATES), claim.expect_level,
                claim.expect_next_action_at))
            return claimed if cursor.rowcount == 1 else None

        return self._run(work)

    def transition_escalation(self, escalation_id: str, *, state: EscalationState,
                              by: str | None, from_states: Sequence[EscalationState],
                              now: float | None = None) -> EscalationRecord | None:
        move = EscalationTransition.check(state=state, by=by, from_states=from_states, now=now)

        def work(conn: Conn) -> EscalationRecord | None:
            moved = move.apply(_get_escalation(conn, escalation_id, lock=True),
                               _clock(conn, move.now))
            if moved is not None:
                _update_escalation(conn, moved)
            return moved

        return self._run(work)

    def get_escalation(self, escalation_id: str) -> EscalationRecord | None:
        return self._run(lambda conn: _get_escalation(conn, escalation_id), transaction=False)

    def escalations(self, *, states: Sequence[str] | None = None, path_id: str | None = None,
                    check_id: str | None = None, limit: int | None = None
                    ) -> list[EscalationRecord]:
        wanted = checked_states(states)
        where: list[str] = []
        params: list[Any] = []
        if wanted is not None:
            where.append("state = ANY(%s::text[])")
            params.append(list(wanted))
        for clause, value in (("path_id = %s", path_id), ("check_id = %s", check_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = SELECT_ESCALATIONS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC"
        return [read_escalation(r) for r in self._select(*_limited(sql, params, limit))]

    def due_escalations(self, now: float) -> list[EscalationRecord]:
        at = required_time(now)
        return [read_escalation(r) for r in self._select(_SELECT_DUE, (list(CLIMBING_STATES), at))]

    def record_delivery(self, delivery: DeliveryRecord) -> None:
        d = checked_delivery(delivery)
        row = delivery_row(d, _pg_text)

        def work(conn: Conn) -> None:
            # Asked first rather than left to the foreign key, for the same error as elsewhere.
            if conn.execute("SELECT 1 FROM escalation_tracking WHERE id = %s",
                            (d.escalation_id,)).fetchone() is None:
                raise unknown_escalation(d.escalation_id)
            conn.execute(_INSERT_DELIVERY, row)

        self._run(work)

    def deliveries(self, escalation_id: str | None = None) -> list[DeliveryRecord]:
        sql = SELECT_DELIVERIES
        params: list[Any] = []
        if escalation_id is not None:
            sql += " WHERE escalation_id = %s"
            params.append(escalation_id)
        sql += " ORDER BY attempted_at, id"
        return [read_delivery(r) for r in self._select(sql, params)]

    # --- the rest --------------------------------------------------------------------------

    def info(self) -> RuntimeInfo:
        def work(conn: Conn) -> tuple[int, dict[str, int]]:
            row = conn.execute(COUNTS).fetchone()
            assert row is not None
            return (schema_version(conn, self.schema),
                    {n: int(c) for n, c in zip(COUNT_NAMES, row, strict=True)})

        version, counts = self._run(work)
        return RuntimeInfo(mode=self.mode, location=self.where, schema_version=version,
                           counts=counts)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        self._discard(conn)


def _clock(conn: Conn, given: float | None) -> float:
    """``given``, or the server's time: on many hosts, only the server's clock is shared."""
    if given is not None:
        return given
    row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::double precision"
                       ).fetchone()
    return float(row[0]) if row else now()


def _limited(sql: str, params: list[Any], limit: int | None) -> tuple[str, list[Any]]:
    if checked_limit(limit) is None:
        return sql, params
    return sql + " LIMIT %s", [*params, limit]


def _lock_leases(conn: Conn) -> int:
    """Lock the lease store until the commit; the fencing counter."""
    row = conn.execute(_LOCK_LEASES).fetchone()
    assert row is not None
    return int(row[0])


def _last_token(conn: Conn, counter: int) -> int:
    """The last fencing token handed out: the counter, or a larger token already in the table."""
    row = conn.execute(_MAX_TOKEN).fetchone()
    return max(counter, int(row[0]) if row else 0)


def _get_lease(conn: Conn, lease_id: str) -> Lease | None:
    row = conn.execute(SELECT_LEASES + " WHERE id = %s", (lease_id,)).fetchone()
    return read_lease(row) if row else None


def _get_escalation(conn: Conn, escalation_id: str, *, lock: bool = False
                    ) -> EscalationRecord | None:
    sql = SELECT_ESCALATIONS + " WHERE id = %s" + (" FOR UPDATE" if lock else "")
    row = conn.execute(sql, (escalation_id,)).fetchone()
    return read_escalation(row) if row else None


def _update_escalation(conn: Conn, e: EscalationRecord) -> None:
    conn.execute(_UPDATE_ESCALATION, escalation_changes(e))
