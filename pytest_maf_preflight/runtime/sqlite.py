"""The ``sqlite`` runtime (SPEC S5): one database file shared by every process of a project.

WAL journal, a busy timeout, foreign keys on, ``synchronous=NORMAL``. Every write is one
``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error), retried on lock errors with
exponential backoff and jitter until the retry budget is spent. The schema comes from the
versioned migrations in :mod:`.sqlite_migrations`.

This module imports :mod:`sqlite3`, so it is imported only when the sqlite mode is chosen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

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
    at_or_now,
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
from .sqlite_migrations import NewerSchemaError, migrate, user_version

T = TypeVar("T")
#: The name tests/helpers_runtime_procs.py imports (its victim overrides ``_insert_bundle``).
_PreparedBundle = PreparedBundle

#: SQLite's primary result codes for "another connection holds the lock".
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_BACKOFF_FIRST = 0.005
_BACKOFF_MAX = 0.5

# Every statement is a constant; values are always bound parameters.
#: The open escalation of a dedup key (the unique index allows one; the oldest, to match the
#: other modes should a database ever hold two).
_SELECT_OPEN_FOR_KEY = (SELECT_ESCALATIONS + " WHERE dedup_key = ? AND state IN ("
                        + ", ".join("?" * len(OPEN_STATES)) + ") ORDER BY created_at, id")
_SELECT_DUE = (SELECT_ESCALATIONS + " WHERE state IN ("
               + ", ".join("?" * len(CLIMBING_STATES)) + ") AND next_action_at IS NOT NULL "
               "AND next_action_at <= ? ORDER BY next_action_at, created_at, id")
#: Other agents' active leases: the only ones that can block an acquire or a renewal.
_SELECT_OTHERS_ACTIVE = (SELECT_LEASES + " WHERE released_at IS NULL AND expires_at > ? "
                         "AND agent_id != ?")

_INSERT_SESSION = ("INSERT OR IGNORE INTO preflight_sessions (id, agent_id, environment, "
                   "started_at, completed_at, status, exit_code, runtime_mode, hostname, details) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_EXECUTION = ("INSERT OR IGNORE INTO preflight_executions (id, session_id, config_id, "
                     "config_version, agent_id, kind, status, started_at, completed_at, duration, "
                     "attempts, result, error_message) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_SNAPSHOT = ("INSERT OR IGNORE INTO preflight_configs (config_id, version, config_type, "
                    "content_hash, document, recorded_at) VALUES (?, ?, ?, ?, ?, ?)")
_INSERT_SMOKE_TEST = ("INSERT OR IGNORE INTO smoke_tests (nodeid, version, content_hash, file, "
                      "document, recorded_at) VALUES (?, ?, ?, ?, ?, ?)")
_INSERT_ESCALATION_PATH = ("INSERT OR IGNORE INTO escalation_paths (id, version, content_hash, "
                           "document, recorded_at) VALUES (?, ?, ?, ?, ?)")
_UPSERT_AGENT = UPSERT_AGENT.format("?")
_INSERT_MESSAGE = ("INSERT OR IGNORE INTO messages (id, type, agent_id, payload, created_at, "
                   "correlation_id, recipient, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_LEASE = ("INSERT INTO leases (id, agent_id, path_pattern, exclusive, reason, created_at, "
                 "expires_at, released_at, fencing_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_CONFLICT = ("INSERT OR IGNORE INTO reservation_conflicts (id, session_id, conflict_type, "
                    "severity, agent_id, holder_agent_id, path, path_pattern, lease_id, "
                    "expires_at, status, override, detected_at, details) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_INSERT_ESCALATION = ("INSERT INTO escalation_tracking (id, path_id, dedup_key, check_id, "
                      "failure_class, state, level, occurrences, path_snapshot, created_at, "
                      "updated_at, next_action_at, acknowledged_by, acknowledged_at, "
                      "resolved_by, resolved_at, details) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
#: Everything an escalation can change after it opened (``escalation_changes``).
_UPDATE_ESCALATION = ("UPDATE escalation_tracking SET state = ?, level = ?, occurrences = ?, "
                      "updated_at = ?, next_action_at = ?, acknowledged_by = ?, "
                      "acknowledged_at = ?, resolved_by = ?, resolved_at = ?, details = ? "
                      "WHERE id = ?")
_INSERT_DELIVERY = ("INSERT INTO escalation_deliveries (escalation_id, level, channel, target, "
                    "attempt, status, error, response, attempted_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
#: The last fencing token handed out: the counter, or a larger token already in the table
#: (rows written by hand or by an older plugin must not be handed their token again).
_LAST_FENCE = ("SELECT max(COALESCE((SELECT value FROM counters "
               "WHERE name = 'fencing_token'), 0), "
               "COALESCE((SELECT max(fencing_token) FROM leases), 0))")
_SET_LAST_FENCE = ("INSERT INTO counters (name, value) VALUES ('fencing_token', ?) "
                   "ON CONFLICT (name) DO UPDATE SET value = excluded.value")

def _is_lock_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteRuntime(RuntimeState):
    """Records in one SQLite file; safe across threads (one lock) and processes (SQLite locks)."""

    mode = "sqlite"

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000,
                 retry_budget_seconds: float = 10.0) -> None:
        self.retry_budget_seconds = float(retry_budget_seconds)
        #: The database found at the path asked for when it is not ours (the original MAF's
        #: ``.maf/runtime.db``, typically): never opened for writing; this store then lives
        #: in ``self.path``, the companion file beside it.
        self.original_path: Path | None = None
        self._original_tables: tuple[str, ...] = ()
        self.path = self._store_path(Path(path))
        # SQLite's own wait never outlasts the budget, so a held lock cannot hang a caller
        # longer than the budget promises.
        self.busy_timeout_ms = max(0, min(int(busy_timeout_ms),
                                          int(self.retry_budget_seconds * 1000)))
        self._lock = threading.RLock()
        self._random = random.Random()  # noqa: S311 - jitter, not security
        self._journal_mode = ""
        #: How many times a lock made this runtime wait and retry (opening included).
        self.lock_retries = 0
        self._conn: sqlite3.Connection | None = self._open()

    # --- opening ---------------------------------------------------------------------------

    def _store_path(self, requested: Path) -> Path:
        """``requested``, or its companion when ``requested`` holds another schema.

        The original MAF keeps its runtime at the same default path with tables of the same
        names (``leases``, ``agents``, ...): migrating it would fail, and writing to it at all
        would change a database other agents still use. It is looked at read-only, traceless
        (``sqlite_readonly``), before anything opens it for writing.
        """
        from .sqlite_readonly import foreign_tables

        try:
            tables = foreign_tables(requested, timeout=self.retry_budget_seconds)
        except (sqlite3.Error, OSError) as exc:
            # Never write into a file that could not be told apart from ours.
            raise RuntimeUnavailable(f"cannot tell whether {requested} is a preflight store "
                                     f"(read-only look failed: {exc})") from exc
        if not tables:
            return requested
        companion = companion_path(requested)
        try:
            companion_tables = foreign_tables(companion, timeout=self.retry_budget_seconds)
        except (sqlite3.Error, OSError) as exc:
            raise RuntimeUnavailable(f"cannot tell whether {companion} is a preflight store "
                                     f"(read-only look failed: {exc})") from exc
        if companion_tables:
            raise RuntimeUnavailable(
                f"{requested} and {companion} both hold another application's tables "
                f"({', '.join(companion_tables[:5])}); set MAF_DB_PATH to a file of its own")
        self.original_path, self._original_tables = requested, tables
        return companion

    def _coexistence_note(self) -> str | None:
        if self.original_path is None:
            return None
        known = [t for t in ORIGINAL_MAF_TABLES if t in self._original_tables]
        owner = "the original MAF" if known else "another application"
        shown = ", ".join((known or list(self._original_tables))[:4])
        return (f"{self.original_path} belongs to {owner} (tables {shown}, ...) and is never "
                f"written; this store lives beside it in {self.path.name}")

    def _open(self) -> sqlite3.Connection:
        """Connect, configure, migrate and prove the file writable, or raise RuntimeUnavailable."""
        where = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeUnavailable(
                f"cannot create the directory of {where}: {exc.strerror or exc}") from exc
        if self.path.is_dir():
            raise RuntimeUnavailable(f"{where} is a directory, not a database file")
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise RuntimeUnavailable(f"cannot write to the directory of {where}")
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise RuntimeUnavailable(f"{where} is not writable")

        deadline = time.monotonic() + self.retry_budget_seconds
        attempt = 0
        while True:
            conn: sqlite3.Connection | None = None
            try:
                conn = sqlite3.connect(where, timeout=self.busy_timeout_ms / 1000,
                                       isolation_level=None, check_same_thread=False)
                self._configure(conn)
                # Probe: the write lock can be had and the file takes writes.
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return conn
            except NewerSchemaError as exc:
                self._discard(conn)
                raise RuntimeUnavailable(f"{where}: {exc}") from exc
            except sqlite3.Error as exc:
                self._discard(conn)
                if not _is_lock_error(exc):
                    raise RuntimeUnavailable(self._describe_open_error(exc)) from exc
                attempt += 1
                if not self._backoff(attempt, deadline):
                    raise RuntimeUnavailable(
                        f"{where} is locked by another connection beyond the retry budget "
                        f"of {self.retry_budget_seconds:g}s ({exc})") from exc
            except BaseException:
                self._discard(conn)
                raise

    def _configure(self, conn: sqlite3.Connection) -> None:
        # PRAGMA takes no bound parameters; the value is an int computed in __init__.
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Reading the header here is also what tells a garbage file apart from a database.
        row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        self._journal_mode = str(row[0]).lower() if row else ""
        migrate(conn)

    def _describe_open_error(self, exc: sqlite3.Error) -> str:
        where = str(self.path)
        text = str(exc)
        lowered = text.lower()
        if "not a database" in lowered:
            return f"{where} is not a SQLite database (file is not a database)"
        if "malformed" in lowered or "corrupt" in lowered:
            return f"{where} is corrupt ({text})"
        if "readonly" in lowered or "read-only" in lowered:
            return f"{where} is not writable ({text})"
        if "unable to open" in lowered:
            return f"cannot open {where} ({text})"
        return f"cannot use {where} ({text})"

    @staticmethod
    def _discard(conn: sqlite3.Connection | None) -> None:
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _backoff(self, attempt: int, deadline: float) -> bool:
        """Sleep before retry ``attempt``; False when the budget is spent."""
        with self._lock:
            self.lock_retries += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ceiling = min(_BACKOFF_MAX, _BACKOFF_FIRST * (2 ** min(attempt, 16)))
        time.sleep(min(remaining, ceiling * (0.5 + self._random.random() / 2)))
        return True

    # --- running statements ----------------------------------------------------------------

    def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``work`` in one transaction, retrying the whole of it on lock errors."""
        deadline = time.monotonic() + self.retry_budget_seconds
        attempt = 0
        while True:
            with self._lock:
                conn = self._conn
                if conn is None:
                    raise RuntimeStateError(f"the sqlite runtime at {self.path} is closed")
                try:
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        result = work(conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    return result
                except sqlite3.Error as exc:
                    if not _is_lock_error(exc):
                        raise RuntimeStateError(f"{self.path}: {exc}") from exc
                    last: sqlite3.Error = exc
            attempt += 1
            if not self._backoff(attempt, deadline):
                raise RuntimeStateError(
                    f"{self.path} is locked by another connection beyond the retry budget of "
                    f"{self.retry_budget_seconds:g}s ({last})") from last

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._run(work, write=True)

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._run(work, write=False)

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(lambda conn: conn.execute(sql, params).fetchall())

    # --- sessions and executions -----------------------------------------------------------

    def record_session(self, bundle: SessionBundle) -> None:
        try:
            prepared = prepare_bundle(bundle)
        except (TypeError, ValueError) as exc:
            raise RuntimeStateError(
                f"session {bundle.session.id} cannot be stored as JSON: {exc}") from exc
        self._write(lambda conn: self._insert_bundle(conn, prepared))

    def _insert_bundle(self, conn: sqlite3.Connection, prepared: PreparedBundle) -> None:
        """The body of ``record_session``'s transaction (the session row first: foreign key)."""
        conn.execute(_INSERT_SESSION, prepared.session)
        conn.executemany(_INSERT_EXECUTION, prepared.executions)
        conn.executemany(_INSERT_SNAPSHOT, prepared.snapshots)
        conn.executemany(_INSERT_MESSAGE, prepared.messages)
        conn.executemany(_INSERT_CONFLICT, prepared.conflicts)
        conn.executemany(_INSERT_SMOKE_TEST, prepared.smoke_tests)
        conn.executemany(_INSERT_ESCALATION_PATH, prepared.escalation_paths)

    def sessions(self, limit: int | None = None) -> list[SessionRecord]:
        sql = SELECT_SESSIONS + " ORDER BY started_at DESC, id DESC"
        return [read_session(r) for r in self._select(*_limited(sql, [], limit))]

    def get_session(self, session_id: str) -> SessionRecord | None:
        rows = self._select(SELECT_SESSIONS + " WHERE id = ?", (session_id,))
        return read_session(rows[0]) if rows else None

    def executions(self, *, config_id: str | None = None, status: str | None = None,
                   session_id: str | None = None, limit: int | None = None
                   ) -> list[ExecutionRecord]:
        # Only the filters given go into the WHERE clause (so SQLite can use their indexes);
        # each is a constant text, each value a bound parameter.
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (("config_id = ?", config_id), ("status = ?", status),
                              ("session_id = ?", session_id)):
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
            sql += " WHERE config_id = ?"
            params.append(config_id)
        sql += " ORDER BY recorded_at DESC, content_hash DESC"
        return [read_snapshot(r) for r in self._select(sql, params)]

    def smoke_tests(self, nodeid: str | None = None) -> list[SmokeTestDefinition]:
        sql, params = definitions_query(SELECT_SMOKE_TESTS, "nodeid", nodeid, "?")
        return [read_smoke_test(r) for r in self._select(sql, params)]

    def escalation_paths(self, path_id: str | None = None) -> list[EscalationPathDefinition]:
        sql, params = definitions_query(SELECT_ESCALATION_PATHS, "id", path_id, "?")
        return [read_escalation_path(r) for r in self._select(sql, params)]

    # --- messages --------------------------------------------------------------------------

    def _store_messages(self, records: Sequence[Message]) -> None:
        rows = [message_row(m) for m in records]
        self._write(lambda conn: conn.executemany(_INSERT_MESSAGE, rows))

    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        def work(conn: sqlite3.Connection) -> list[Message]:
            sql = (SELECT_MESSAGES + " WHERE status = 'queued' "
                   "AND (? IS NULL OR recipient = ?) ORDER BY created_at, id")
            sql, params = _limited(sql, [recipient, recipient], limit)
            picked = [read_message(r) for r in conn.execute(sql, params)]
            conn.executemany("UPDATE messages SET status = 'delivered' WHERE id = ?",
                             [(m.id,) for m in picked])
            return [dataclasses.replace(m, status="delivered") for m in picked]

        return self._write(work)

    def ack(self, message_id: str) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute("UPDATE messages SET status = 'acked' WHERE id = ?",
                                  (message_id,))
            return cursor.rowcount > 0

        return self._write(work)

    def messages(self, status: str | None = None, *, types: Sequence[str] | None = None,
                 agent_id: str | None = None, since: float | None = None) -> list[Message]:
        where, params = message_filters(status, types, agent_id, since, "?")
        sql = SELECT_MESSAGES + where + " ORDER BY created_at, id"
        return [read_message(r) for r in self._select(sql, params)]

    # --- agents ----------------------------------------------------------------------------

    def heartbeat(self, agent_id: str, at: float | None = None,
                  details: dict[str, Any] | None = None, *, agent_type: str = "worker",
                  capabilities: Sequence[str] = (), status: str = "active") -> AgentRecord:
        record = agent_record(agent_id, now() if at is None else at, details,
                              agent_type=agent_type, capabilities=capabilities, status=status)
        row = agent_row(record)
        self._write(lambda conn: conn.execute(_UPSERT_AGENT, row))
        return record

    def agents(self) -> list[AgentRecord]:
        return [read_agent(r) for r in self._select(SELECT_AGENTS + " ORDER BY id")]

    # --- leases ----------------------------------------------------------------------------
    # Every lease operation is one BEGIN IMMEDIATE transaction: the write lock is held from the
    # first read of the leases to the last write, which is what makes acquire atomic across
    # processes. The work functions may run again after a lock error, so they only compute.

    def acquire_leases(self, agent_id: str, patterns: Sequence[str], *, exclusive: bool = True,
                       ttl: float, reason: str = "", now: float | None = None) -> LeaseGrant:
        request = LeaseRequest.check(agent_id, patterns, exclusive=exclusive, ttl=ttl,
                                     reason=reason, now=now)
        ids = [new_id() for _ in request.patterns]

        def work(conn: sqlite3.Connection) -> LeaseGrant:
            at = at_or_now(request.now)
            sql = _SELECT_OTHERS_ACTIVE
            if not request.exclusive:
                sql += " AND exclusive = 1"  # shared leases never block a shared request
            held = [read_lease(r) for r in conn.execute(sql, (at, request.agent_id))]
            blocking = blocking_leases(held, request.agent_id, request.patterns,
                                       request.exclusive, at)
            if blocking:
                return LeaseGrant(granted=(), conflicts=tuple(blocking))
            last = _last_token(conn)
            granted = request.leases(ids, last + 1, at)
            conn.executemany(_INSERT_LEASE, [lease_row(lease) for lease in granted])
            conn.execute(_SET_LAST_FENCE, (last + len(granted),))
            return LeaseGrant(granted=granted, conflicts=())

        return self._write(work)

    def renew_lease(self, lease_id: str, agent_id: str, *, ttl: float,
                    now: float | None = None) -> Lease:
        agent_id, ttl, given = checked_agent(agent_id), checked_ttl(ttl), checked_time(now)

        def work(conn: sqlite3.Connection) -> Lease:
            at = at_or_now(given)
            lease = owned_lease(_get_lease(conn, lease_id), lease_id, agent_id)
            held = [read_lease(r) for r in conn.execute(_SELECT_OTHERS_ACTIVE, (at, agent_id))]
            token = _last_token(conn) + 1
            renewed = renewed_lease(lease, agent_id, ttl, at, token, held)
            conn.execute("UPDATE leases SET expires_at = ?, fencing_token = ? WHERE id = ?",
                         (renewed.expires_at, renewed.fencing_token, lease_id))
            conn.execute(_SET_LAST_FENCE, (token,))
            return renewed

        return self._write(work)

    def release_lease(self, lease_id: str, agent_id: str, *, now: float | None = None) -> Lease:
        agent_id, given = checked_agent(agent_id), checked_time(now)

        def work(conn: sqlite3.Connection) -> Lease:
            lease = owned_lease(_get_lease(conn, lease_id), lease_id, agent_id)
            if lease.released_at is not None:
                return lease
            released = dataclasses.replace(lease, released_at=at_or_now(given))
            conn.execute("UPDATE leases SET released_at = ? WHERE id = ?",
                         (released.released_at, lease_id))
            return released

        return self._write(work)

    def release_stale_leases(self, *, now: float | None = None,
                             idle_agent_seconds: float | None = None) -> list[Lease]:
        given, idle = checked_time(now), checked_idle(idle_agent_seconds)

        def work(conn: sqlite3.Connection) -> list[Lease]:
            at = at_or_now(given)
            rows = [read_lease(r) for r in conn.execute(SELECT_LEASES
                                                        + " WHERE released_at IS NULL")]
            agents: list[AgentRecord] = []
            if idle is not None:
                agents = [AgentRecord(r[0], r[1]) for r in
                          conn.execute("SELECT id, last_heartbeat FROM agents")]
            stale = [dataclasses.replace(lease, released_at=at)
                     for lease in stale_leases(rows, agents, at, idle)]
            conn.executemany("UPDATE leases SET released_at = ? WHERE id = ?",
                             [(at, lease.id) for lease in stale])
            return stale

        return self._write(work)

    def leases(self, *, active_only: bool = True, agent_id: str | None = None,
               now: float | None = None) -> list[Lease]:
        given = checked_time(now)

        def work(conn: sqlite3.Connection) -> list[Lease]:
            where: list[str] = []
            params: list[Any] = []
            if active_only:
                where.append("released_at IS NULL AND expires_at > ?")
                params.append(at_or_now(given))
            if agent_id is not None:
                where.append("agent_id = ?")
                params.append(agent_id)
            sql = SELECT_LEASES
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY created_at DESC, id DESC"
            return [read_lease(r) for r in conn.execute(sql, params)]

        return self._read(work)

    # --- reservation conflicts -------------------------------------------------------------

    def record_conflicts(self, conflicts: Sequence[ConflictRecord]) -> None:
        try:
            rows = [conflict_row(c) for c in conflicts]
        except (TypeError, ValueError) as exc:
            raise RuntimeStateError(f"a conflict cannot be stored as JSON: {exc}") from exc
        if rows:
            self._write(lambda conn: conn.executemany(_INSERT_CONFLICT, rows))

    def reservation_conflicts(self, *, session_id: str | None = None,
                              limit: int | None = None) -> list[ConflictRecord]:
        sql = SELECT_CONFLICTS
        params: list[Any] = []
        if session_id is not None:
            sql += " WHERE session_id = ?"
            params.append(session_id)
        sql += " ORDER BY detected_at DESC, id DESC"
        return [read_conflict(r) for r in self._select(*_limited(sql, params, limit))]

    # --- escalations -----------------------------------------------------------------------
    # As with leases: one BEGIN IMMEDIATE transaction per call, the write lock held from the
    # read of the row to its write, and the rules applied in Python by the functions ``base``
    # shares with the other modes. The work functions may run again after a lock error.

    def open_escalation(self, *, path_id: str, dedup_key: str, check_id: str | None,
                        failure_class: str | None, path_snapshot: Mapping[str, Any],
                        next_action_at: float | None, details: Mapping[str, Any],
                        now: float | None = None) -> tuple[EscalationRecord, bool]:
        opening = EscalationOpening.check(
            path_id=path_id, dedup_key=dedup_key, check_id=check_id,
            failure_class=failure_class, path_snapshot=path_snapshot,
            next_action_at=next_action_at, details=details, now=now)
        escalation_id = new_id()

        def work(conn: sqlite3.Connection) -> tuple[EscalationRecord, bool]:
            at = at_or_now(opening.now)
            row = conn.execute(_SELECT_OPEN_FOR_KEY,
                               (opening.dedup_key, *OPEN_STATES)).fetchone()
            if row is not None:
                record = another_occurrence(read_escalation(row), at)
                _update_escalation(conn, record)
                return record, False
            record = opening.record(escalation_id, at)
            conn.execute(_INSERT_ESCALATION, escalation_row(record))
            return record, True

        return self._write(work)

    def claim_escalation(self, escalation_id: str, *, expect_level: int,
                         expect_next_action_at: float | None, level: int,
                         next_action_at: float | None, state: EscalationState,
                         details: Mapping[str, Any] | None = None,
                         now: float | None = None) -> EscalationRecord | None:
        claim = EscalationClaim.check(
            expect_level=expect_level, expect_next_action_at=expect_next_action_at,
            level=level, next_action_at=next_action_at, state=state, details=details, now=now)

        def work(conn: sqlite3.Connection) -> EscalationRecord | None:
            claimed = claim.apply(_get_escalation(conn, escalation_id), at_or_now(claim.now))
            if claimed is not None:
                _update_escalation(conn, claimed)
            return claimed

        return self._write(work)

    def transition_escalation(self, escalation_id: str, *, state: EscalationState,
                              by: str | None, from_states: Sequence[EscalationState],
                              now: float | None = None) -> EscalationRecord | None:
        move = EscalationTransition.check(state=state, by=by, from_states=from_states, now=now)

        def work(conn: sqlite3.Connection) -> EscalationRecord | None:
            moved = move.apply(_get_escalation(conn, escalation_id), at_or_now(move.now))
            if moved is not None:
                _update_escalation(conn, moved)
            return moved

        return self._write(work)

    def get_escalation(self, escalation_id: str) -> EscalationRecord | None:
        return self._read(lambda conn: _get_escalation(conn, escalation_id))

    def escalations(self, *, states: Sequence[str] | None = None, path_id: str | None = None,
                    check_id: str | None = None, limit: int | None = None
                    ) -> list[EscalationRecord]:
        wanted = checked_states(states)
        where: list[str] = []
        params: list[Any] = []
        if wanted is not None:
            # One placeholder per state: the text is built from a count, the values are bound.
            where.append("state IN (" + ", ".join("?" * len(wanted)) + ")" if wanted
                         else "0")
            params.extend(wanted)
        for clause, value in (("path_id = ?", path_id), ("check_id = ?", check_id)):
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
        return [read_escalation(r) for r in self._select(_SELECT_DUE, (*CLIMBING_STATES, at))]

    def record_delivery(self, delivery: DeliveryRecord) -> None:
        d = checked_delivery(delivery)
        row = delivery_row(d)

        def work(conn: sqlite3.Connection) -> None:
            # Asked first rather than left to the foreign key, for the same error as elsewhere.
            if conn.execute("SELECT 1 FROM escalation_tracking WHERE id = ?",
                            (d.escalation_id,)).fetchone() is None:
                raise unknown_escalation(d.escalation_id)
            conn.execute(_INSERT_DELIVERY, row)

        self._write(work)

    def deliveries(self, escalation_id: str | None = None) -> list[DeliveryRecord]:
        sql = SELECT_DELIVERIES
        params: list[Any] = []
        if escalation_id is not None:
            sql += " WHERE escalation_id = ?"
            params.append(escalation_id)
        sql += " ORDER BY attempted_at, id"
        return [read_delivery(r) for r in self._select(sql, params)]

    # --- the rest --------------------------------------------------------------------------

    def info(self) -> RuntimeInfo:
        def work(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
            row = conn.execute(COUNTS).fetchone()
            return user_version(conn), {n: int(c) for n, c in zip(COUNT_NAMES, row, strict=True)}

        version, counts = self._read(work)
        notes: tuple[str, ...] = ()
        if self._journal_mode != "wal":
            notes = (f"journal mode is {self._journal_mode or 'unknown'}, not wal",)
        coexistence = self._coexistence_note()
        if coexistence is not None:
            notes = (*notes, coexistence)
        return RuntimeInfo(mode=self.mode, location=str(self.path), schema_version=version,
                           counts=counts, notes=notes)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        self._discard(conn)


#: The tables the original MAF creates (its store/schema*.sql): a database holding them at
#: our path is its runtime, left alone.
ORIGINAL_MAF_TABLES = (
    "tasks", "leases", "file_reservations", "events", "evidence", "preflight_configs",
    "preflight_executions", "escalation_paths", "escalation_tracking", "smoke_tests", "agents",
    "reservation_conflicts")


def companion_path(path: Path) -> Path:
    """Where this store lives when ``path`` holds another schema: ``runtime.db`` ->
    ``runtime.preflight.db``, beside it."""
    return path.with_name(f"{path.stem}.preflight{path.suffix or '.db'}")


def _limited(sql: str, params: list[Any], limit: int | None) -> tuple[str, list[Any]]:
    if checked_limit(limit) is None:
        return sql, params
    return sql + " LIMIT ?", [*params, limit]


def _last_token(conn: sqlite3.Connection) -> int:
    return int(conn.execute(_LAST_FENCE).fetchone()[0])


def _get_lease(conn: sqlite3.Connection, lease_id: str) -> Lease | None:
    row = conn.execute(SELECT_LEASES + " WHERE id = ?", (lease_id,)).fetchone()
    return read_lease(row) if row else None


def _get_escalation(conn: sqlite3.Connection, escalation_id: str) -> EscalationRecord | None:
    row = conn.execute(SELECT_ESCALATIONS + " WHERE id = ?", (escalation_id,)).fetchone()
    return read_escalation(row) if row else None


def _update_escalation(conn: sqlite3.Connection, e: EscalationRecord) -> None:
    conn.execute(_UPDATE_ESCALATION, escalation_changes(e))
