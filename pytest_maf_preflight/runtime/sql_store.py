"""The SQL stores' common code: every method whose SQL and row mapping are the same in the
``sqlite`` and ``postgres`` runtimes, written once.

What really differs stays with each runtime, as a field of its :class:`SqlDialect` or a hook of
:class:`SqlStore`:

- spelling (dialect): the parameter marker (statements are written with sqlite3's ``?``;
  psycopg's is ``%s``), the INSERT that leaves a stored key alone (``INSERT OR IGNORE``
  against ``ON CONFLICT DO NOTHING``), row locks (none in SQLite, whose write transaction locks
  the whole database; ``FOR UPDATE`` in PostgreSQL), a null-safe comparison, and the cleaning
  of free text (PostgreSQL's text cannot hold NUL);
- connections and transactions (``_write``, ``_read``), and which errors are retried (both
  wait by :mod:`.backoff`);
- locking the lease store and a dedup key (``_lock_leases``, ``_lock_dedup_key``): SQLite's
  ``BEGIN IMMEDIATE`` holds the lock already, PostgreSQL locks a row or takes an advisory lock;
- the clock (``_clock``, ``_clock_sql``): SQLite's processes share this host's clock,
  PostgreSQL's hosts only the server's;
- bulk writes (``_driver_executemany``; PostgreSQL copies a large session's executions).

Every statement is a constant, or built from the constants of :mod:`.sql_rows` and a dialect's
spelling; values are always bound parameters. The rules (what a lease or an escalation may
become) are the ones every mode applies: :mod:`.lease_rules`, :mod:`.escalation_rules`.
"""

from __future__ import annotations

import abc
import dataclasses
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from .agent_fields import agent_record, checked_agent
from .arguments import checked_limit, checked_time, required_time
from .backoff import RETRY_BACKOFF
from .errors import RuntimeStateError
from .escalation_rules import (
    EscalationClaim,
    EscalationOpening,
    EscalationTransition,
    another_occurrence,
    checked_delivery,
    checked_states,
    unknown_escalation,
)
from .interface import RuntimeState
from .lease_rules import (
    LeaseRequest,
    blocking_leases,
    checked_idle,
    checked_ttl,
    owned_lease,
    renewed_lease,
    stale_leases,
)
from .recent_outcomes import (
    DEFAULT_PER_CHECK,
    checked_ids,
    checked_per_check,
    ids_sql,
    in_order,
    outcomes_sql,
)
from .records import (
    CLIMBING_STATES,
    OPEN_STATES,
    AgentRecord,
    CheckStats,
    ConfigSnapshot,
    ConflictRecord,
    DecisionRecord,
    DeliveryRecord,
    EscalationPathDefinition,
    EscalationRecord,
    EscalationState,
    ExecutionRecord,
    Lease,
    LeaseGrant,
    Message,
    RecentOutcome,
    RuntimeInfo,
    SessionBundle,
    SessionRecord,
    SilenceRecord,
    SmokeTestDefinition,
    WaiverRecord,
    new_id,
)
from .sql_rows import (
    AGENTS,
    CONFLICTS,
    COUNT_NAMES,
    COUNTS,
    DECISIONS,
    DELIVERIES,
    ESCALATION_PATHS,
    ESCALATIONS,
    EXECUTIONS,
    LEASES,
    MESSAGES,
    SESSIONS,
    SILENCES,
    SMOKE_TESTS,
    SNAPSHOTS,
    WAIVERS,
    PreparedBundle,
    Table,
    TextFilter,
    agent_row,
    as_is,
    conflict_row,
    decision_row,
    delivery_row,
    escalation_changes,
    escalation_row,
    lease_row,
    marks,
    message_row,
    prepare_bundle,
    read_agent,
    read_conflict,
    read_decision,
    read_delivery,
    read_escalation,
    read_escalation_path,
    read_execution,
    read_lease,
    read_message,
    read_session,
    read_silence,
    read_smoke_test,
    read_snapshot,
    read_waiver,
    silence_row,
    waiver_row,
)
from .waiver_rules import (
    checked_by,
    checked_decision,
    checked_silence,
    checked_waiver,
    ended,
    revoked,
)

T = TypeVar("T")

# Every statement is a constant written with ``?`` markers (no literal in them holds a ``?``);
# values are always bound parameters.
_SELECT_SESSION = SESSIONS.select + " WHERE id = ?"
_SELECT_LEASE = LEASES.select + " WHERE id = ?"
_SELECT_ESCALATION = ESCALATIONS.select + " WHERE id = ?"
#: Other agents' active leases: the only ones that can block an acquire or a renewal.
_SELECT_OTHERS_ACTIVE = (
    LEASES.select + " WHERE released_at IS NULL AND expires_at > ? AND agent_id <> ?"
)
#: The open escalation of a dedup key (the unique index allows one; the oldest, to match the
#: other modes should a database ever hold two).
_SELECT_OPEN_FOR_KEY = (
    ESCALATIONS.select
    + " WHERE dedup_key = ? AND state IN ("
    + marks(len(OPEN_STATES))
    + ") ORDER BY created_at, id LIMIT 1"
)
_SELECT_DUE = (
    ESCALATIONS.select
    + " WHERE state IN ("
    + marks(len(CLIMBING_STATES))
    + ") AND next_action_at IS NOT NULL AND next_action_at <= ? "
    "ORDER BY next_action_at, created_at, id"
)
_SELECT_QUEUED = MESSAGES.select + " WHERE status = 'queued'"
#: The newest check execution of a config by an agent in an environment (the session's):
#: walked newest first on the (config_id, started_at) index, one row read.
_SELECT_LATEST_CHECK = (
    "SELECT "  # noqa: S608 - constants
    + ", ".join(f"e.{column}" for column in EXECUTIONS.columns)
    + f" FROM {EXECUTIONS.name} e JOIN {SESSIONS.name} s ON s.id = e.session_id"
    " WHERE e.config_id = ? AND e.agent_id = ? AND e.kind = 'check' AND s.environment = ?"
    " ORDER BY e.started_at DESC, e.id DESC LIMIT 1"
)
_DELIVER_MESSAGE = "UPDATE messages SET status = 'delivered' WHERE id = ?"
_ACK_MESSAGE = "UPDATE messages SET status = 'acked' WHERE id = ?"
#: A heartbeat replaces the whole record (``excluded``: the row the insert would have written).
_UPSERT_AGENT = AGENTS.insert(
    suffix=(
        " ON CONFLICT (id) DO UPDATE SET last_heartbeat = excluded.last_heartbeat, "
        "details = excluded.details, type = excluded.type, "
        "capabilities = excluded.capabilities, status = excluded.status"
    )
)
_RENEW_LEASE = "UPDATE leases SET expires_at = ?, fencing_token = ? WHERE id = ?"
_RELEASE_LEASE = "UPDATE leases SET released_at = ? WHERE id = ?"
#: The last fencing token handed out, from the counter and from the table: rows written by hand
#: or by an older plugin must not be handed their token again.
_LAST_FENCE = (
    "SELECT (SELECT value FROM counters WHERE name = 'fencing_token'), "
    "(SELECT max(fencing_token) FROM leases)"
)
_SET_LAST_FENCE = (
    "INSERT INTO counters (name, value) VALUES ('fencing_token', ?) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
#: Everything an escalation can change after it opened (``escalation_changes``).
_UPDATE_ESCALATION = (
    "UPDATE escalation_tracking SET state = ?, level = ?, occurrences = ?, "
    "updated_at = ?, next_action_at = ?, acknowledged_by = ?, "
    "acknowledged_at = ?, resolved_by = ?, resolved_at = ?, details = ? "
    "WHERE id = ?"
)
#: A claim's guard: a compare-and-set on what the claimer read. The row is locked already, so
#: it never fails in practice; it keeps the write correct on its own.
_CLAIM_GUARD = (
    " AND state IN (" + marks(len(CLIMBING_STATES)) + ") AND level = ? AND next_action_at "
)
_ESCALATION_KNOWN = "SELECT 1 FROM escalation_tracking WHERE id = ?"
_SELECT_WAIVER = WAIVERS.select + " WHERE id = ?"
_SELECT_SILENCE = SILENCES.select + " WHERE id = ?"
#: ``WaiverRecord.active`` and ``SilenceRecord.active`` in SQL, each with three ``?`` (the
#: moment); the range on ``expires_at`` comes first, for its index.
_WAIVER_ACTIVE = "expires_at > ? AND granted_at <= ? AND (revoked_at IS NULL OR revoked_at > ?)"
_SILENCE_ACTIVE = "expires_at > ? AND created_at <= ? AND (expired_at IS NULL OR expired_at > ?)"
_REVOKE_WAIVER = "UPDATE waivers SET revoked_at = ?, revoked_by = ? WHERE id = ?"
_END_SILENCE = "UPDATE silences SET expired_at = ?, expired_by = ? WHERE id = ?"
_AGENT_HEARTBEATS = "SELECT id, last_heartbeat FROM agents"


class SqlCursor(Protocol):
    """What the common code uses of a cursor (``sqlite3.Cursor``, ``psycopg.Cursor``)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class SqlConnection(Protocol):
    """What the common code uses of a connection (``sqlite3``'s, ``psycopg``'s)."""

    def execute(self, sql: str, params: Any = ..., /) -> SqlCursor: ...


ConnT = TypeVar("ConnT", bound=SqlConnection)


@dataclasses.dataclass(frozen=True)
class SqlDialect:
    """How a store spells what the two spell differently."""

    #: The driver's parameter marker: ``?`` (sqlite3) or ``%s`` (psycopg).
    placeholder: str
    #: The INSERT that leaves a row alone when its key is stored already: its verb and suffix.
    keep_stored: tuple[str, str]
    #: ``next_action_at`` compared with a ``?`` parameter, equal when both are NULL.
    same_next_action_at: str
    #: Appended to a read whose rows the transaction then changes, to lock them to the commit.
    lock_rows: str = ""
    #: Appended to the queue's read: rows another transaction has locked are its dequeue's.
    lock_queue: str = ""
    #: How free text (an error message) is cleaned before it is written.
    text: TextFilter = as_is

    def sql(self, statement: str) -> str:
        """``statement``, written with ``?`` markers, with this driver's markers."""
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def insert(self, table: Table, *, keep_stored: bool = False) -> str:
        """``table``'s INSERT (``?`` markers); with ``keep_stored``, one that leaves stored keys
        alone, so that writing the same ids again changes nothing."""
        return table.insert(*self.keep_stored) if keep_stored else table.insert()


def message_filters(
    status: str | None, types: Sequence[str] | None, agent_id: str | None, since: float | None
) -> tuple[str, list[Any]]:
    """``messages()``'s filters as a SQL ``WHERE`` clause (empty for none) and its
    parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if types is not None:
        if not types:
            return " WHERE 1 = 0", []
        clauses.append(f"type IN ({marks(len(types))})")
        params.extend(types)
    if agent_id is not None:
        clauses.append("agent_id = ?")
        params.append(agent_id)
    if since is not None:
        clauses.append("created_at >= ?")
        params.append(since)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params


def filtered(select: str, filters: Iterable[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """``select`` with a ``WHERE`` of those ``(clause, value)`` pairs whose value is given
    (only those: the database can use their indexes), and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    for clause, value in filters:
        if value is not None:
            where.append(clause)
            params.append(value)
    return (select + " WHERE " + " AND ".join(where) if where else select), params


def limited(sql: str, params: list[Any], limit: int | None) -> tuple[str, list[Any]]:
    if checked_limit(limit) is None:
        return sql, params
    return sql + " LIMIT ?", [*params, limit]


class SqlStore(RuntimeState, Generic[ConnT]):
    """The methods both SQL runtimes share, over the hooks each implements."""

    dialect: ClassVar[SqlDialect]

    def __init__(self, retry_budget_seconds: float) -> None:
        self.retry_budget_seconds = float(retry_budget_seconds)
        self._lock = threading.RLock()
        self._random = random.Random()  # noqa: S311 - jitter, not security
        #: How many times a lock (SQLite), a serialization failure or a deadlock (PostgreSQL)
        #: made this store wait to try again, opening included.
        self.retries = 0
        self._conn: ConnT | None = None

    # --- hooks ------------------------------------------------------------------------------

    @abc.abstractmethod
    def _write(self, work: Callable[[ConnT], T]) -> T:
        """``work`` in one write transaction, committed, or rolled back on any error; run again
        after a retryable error, so work functions only compute and write."""

    @abc.abstractmethod
    def _read(self, work: Callable[[ConnT], T]) -> T:
        """``work``, reading only."""

    @abc.abstractmethod
    def _driver_executemany(self, conn: ConnT, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """``sql`` (the driver's markers) once per row of ``rows``, any iterable."""

    @abc.abstractmethod
    def _clock(self, conn: ConnT, given: float | None) -> float:
        """``given``, or the store's clock, read inside the transaction (after its locks)."""

    @abc.abstractmethod
    def _clock_sql(self, given: float | None) -> tuple[str, Any]:
        """An SQL expression (``?`` markers) worth ``given``, or the store's clock when the
        statement runs, and its one parameter."""

    @abc.abstractmethod
    def _lock_leases(self, conn: ConnT) -> None:
        """Lock the lease store until the commit: no other lease write runs meanwhile."""

    @abc.abstractmethod
    def _lock_dedup_key(self, conn: ConnT, dedup_key: str) -> None:
        """Lock ``dedup_key`` until the commit, before its open escalation is looked up (the
        row may not exist yet, so a row lock cannot do it)."""

    @abc.abstractmethod
    def _discard(self, conn: ConnT | None) -> None:
        """Close ``conn`` when there is one, whatever state it is in."""

    @abc.abstractmethod
    def _schema_version(self, conn: ConnT) -> int: ...

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where the store is, as it may be shown (no password)."""

    def _notes(self) -> tuple[str, ...]:
        """What ``info()`` says about this store besides its counts."""
        return ()

    def _backoff(self, attempt: int, deadline: float) -> bool:
        """Count a retry and sleep before retry ``attempt``; False when the budget is spent."""
        with self._lock:
            self.retries += 1
        return RETRY_BACKOFF.wait(attempt, deadline, self._random.random())

    # --- statements (``?`` markers, turned into the driver's here) --------------------------

    def _execute(self, conn: ConnT, sql: str, params: Sequence[Any] = ()) -> SqlCursor:
        return conn.execute(self.dialect.sql(sql), params)

    def _executemany(self, conn: ConnT, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._driver_executemany(conn, self.dialect.sql(sql), rows)

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._read(lambda conn: self._execute(conn, sql, params).fetchall())

    # --- sessions and executions ------------------------------------------------------------

    def record_session(self, bundle: SessionBundle) -> None:
        try:
            prepared = prepare_bundle(bundle, self.dialect.text)
        except (TypeError, ValueError) as exc:
            raise RuntimeStateError(
                f"session {bundle.session.id} cannot be stored as JSON: {exc}"
            ) from exc
        self._write(lambda conn: self._insert_bundle(conn, prepared))

    def _insert_bundle(self, conn: ConnT, prepared: PreparedBundle) -> None:
        """The body of ``record_session``'s transaction (the session row first: foreign key)."""
        insert = self.dialect.insert
        self._execute(conn, insert(SESSIONS, keep_stored=True), prepared.session)
        self._insert_executions(conn, prepared.executions)
        for table, rows in (
            (SNAPSHOTS, prepared.snapshots),
            (MESSAGES, prepared.messages),
            (CONFLICTS, prepared.conflicts),
            (SMOKE_TESTS, prepared.smoke_tests),
            (ESCALATION_PATHS, prepared.escalation_paths),
        ):
            if rows:
                self._executemany(conn, insert(table, keep_stored=True), rows)

    def _insert_executions(self, conn: ConnT, rows: Iterable[tuple[Any, ...]]) -> None:
        self._executemany(conn, self.dialect.insert(EXECUTIONS, keep_stored=True), rows)

    def sessions(
        self, limit: int | None = None, *, agent_id: str | None = None
    ) -> list[SessionRecord]:
        sql, params = filtered(SESSIONS.select, (("agent_id = ?", agent_id),))
        sql += " ORDER BY started_at DESC, id DESC"
        return [read_session(r) for r in self._select(*limited(sql, params, limit))]

    def get_session(self, session_id: str) -> SessionRecord | None:
        rows = self._select(_SELECT_SESSION, (session_id,))
        return read_session(rows[0]) if rows else None

    def executions(
        self,
        *,
        config_id: str | None = None,
        status: str | None = None,
        session_id: str | None = None,
        limit: int | None = None,
    ) -> list[ExecutionRecord]:
        sql, params = filtered(
            EXECUTIONS.select,
            (("config_id = ?", config_id), ("status = ?", status), ("session_id = ?", session_id)),
        )
        sql += " ORDER BY started_at DESC, id DESC"
        return [read_execution(r) for r in self._select(*limited(sql, params, limit))]

    def latest_check_execution(
        self, config_id: str, *, agent_id: str, environment: str
    ) -> ExecutionRecord | None:
        rows = self._select(_SELECT_LATEST_CHECK, (config_id, agent_id, environment))
        return read_execution(rows[0]) if rows else None

    def check_stats(
        self, *, since: float | None = None, agent_id: str | None = None
    ) -> list[CheckStats]:
        since = checked_time(since, "since")
        from .check_stats import read_stats, stats_params, stats_sql  # for stats and pages only

        sql = stats_sql(since=since is not None, agent=agent_id is not None)
        return [read_stats(r) for r in self._select(sql, stats_params(since, agent_id))]

    def recent_outcomes(
        self,
        *,
        per_check: int = DEFAULT_PER_CHECK,
        since: float | None = None,
        agent_id: str | None = None,
        config_ids: Sequence[str] | None = None,
    ) -> list[RecentOutcome]:
        per_check, since = checked_per_check(per_check), checked_time(since, "since")
        wanted = checked_ids(config_ids)

        def work(conn: ConnT) -> list[tuple[Any, ...]]:
            ids = wanted
            if ids is None:
                ids = [r[0] for r in self._execute(conn, *ids_sql(since, agent_id))]
            rows: list[tuple[Any, ...]] = []
            for sql, params in outcomes_sql(ids, since, agent_id, per_check):
                rows.extend(self._execute(conn, sql, params).fetchall())
            return rows

        return in_order(self._read(work))

    def config_snapshots(self, config_id: str | None = None) -> list[ConfigSnapshot]:
        sql, params = filtered(SNAPSHOTS.select, (("config_id = ?", config_id),))
        sql += " ORDER BY recorded_at DESC, content_hash DESC"
        return [read_snapshot(r) for r in self._select(sql, params)]

    def _definitions(self, table: Table, clause: str, value: str | None) -> list[tuple[Any, ...]]:
        """Smoke test or escalation path definitions, newest first, optionally of one id."""
        sql, params = filtered(table.select, ((clause, value),))
        return self._select(sql + " ORDER BY recorded_at DESC, content_hash DESC", params)

    def smoke_tests(self, nodeid: str | None = None) -> list[SmokeTestDefinition]:
        return [read_smoke_test(r) for r in self._definitions(SMOKE_TESTS, "nodeid = ?", nodeid)]

    def escalation_paths(self, path_id: str | None = None) -> list[EscalationPathDefinition]:
        return [
            read_escalation_path(r) for r in self._definitions(ESCALATION_PATHS, "id = ?", path_id)
        ]

    # --- messages ---------------------------------------------------------------------------

    def _store_messages(self, records: Sequence[Message]) -> None:
        rows = [message_row(m) for m in records]
        sql = self.dialect.insert(MESSAGES, keep_stored=True)
        self._write(lambda conn: self._executemany(conn, sql, rows))

    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        sql, params = _SELECT_QUEUED, []
        if recipient is not None:
            sql += " AND recipient = ?"
            params.append(recipient)
        sql, params = limited(sql + " ORDER BY created_at, id", params, limit)
        sql += self.dialect.lock_queue

        def work(conn: ConnT) -> list[Message]:
            picked = [read_message(r) for r in self._execute(conn, sql, params)]
            if picked:
                self._executemany(conn, _DELIVER_MESSAGE, [(m.id,) for m in picked])
            return [dataclasses.replace(m, status="delivered") for m in picked]

        return self._write(work)

    def ack(self, message_id: str) -> bool:
        return self._write(
            lambda conn: self._execute(conn, _ACK_MESSAGE, (message_id,)).rowcount > 0
        )

    def messages(
        self,
        status: str | None = None,
        *,
        types: Sequence[str] | None = None,
        agent_id: str | None = None,
        since: float | None = None,
    ) -> list[Message]:
        where, params = message_filters(status, types, agent_id, since)
        sql = MESSAGES.select + where + " ORDER BY created_at, id"
        return [read_message(r) for r in self._select(sql, params)]

    # --- agents -----------------------------------------------------------------------------

    def heartbeat(
        self,
        agent_id: str,
        at: float | None = None,
        details: dict[str, Any] | None = None,
        *,
        agent_type: str = "worker",
        capabilities: Sequence[str] = (),
        status: str = "active",
    ) -> AgentRecord:
        checked = agent_record(
            agent_id, 0.0, details, agent_type=agent_type, capabilities=capabilities, status=status
        )

        def work(conn: ConnT) -> AgentRecord:
            # Stamped by the store's clock: idle-agent sweeps elsewhere compare with it.
            record = dataclasses.replace(checked, last_heartbeat=self._clock(conn, at))
            self._execute(conn, _UPSERT_AGENT, agent_row(record))
            return record

        return self._write(work)

    def agents(self) -> list[AgentRecord]:
        return [read_agent(r) for r in self._select(AGENTS.select + " ORDER BY id")]

    # --- leases -----------------------------------------------------------------------------
    # Every lease write is one transaction that starts by locking the lease store: from there
    # to the commit no other lease write of this store runs, in any process (on any host).

    def _last_token(self, conn: ConnT) -> int:
        counter, largest = self._execute(conn, _LAST_FENCE).fetchone()
        return max(int(counter or 0), int(largest or 0))

    def _get_lease(self, conn: ConnT, lease_id: str) -> Lease | None:
        row = self._execute(conn, _SELECT_LEASE, (lease_id,)).fetchone()
        return read_lease(row) if row else None

    def _others_active(
        self, conn: ConnT, agent_id: str, at: float, *, exclusive_only: bool
    ) -> list[Lease]:
        """Other agents' active leases; ``exclusive_only`` for a shared request, which shared
        leases never block."""
        sql = _SELECT_OTHERS_ACTIVE + (" AND exclusive" if exclusive_only else "")
        return [read_lease(r) for r in self._execute(conn, sql, (at, agent_id))]

    def acquire_leases(
        self,
        agent_id: str,
        patterns: Sequence[str],
        *,
        exclusive: bool = True,
        ttl: float,
        reason: str = "",
        now: float | None = None,
    ) -> LeaseGrant:
        request = LeaseRequest.check(
            agent_id, patterns, exclusive=exclusive, ttl=ttl, reason=reason, now=now
        )
        ids = [new_id() for _ in request.patterns]

        def work(conn: ConnT) -> LeaseGrant:
            self._lock_leases(conn)
            at = self._clock(conn, request.now)
            held = self._others_active(
                conn, request.agent_id, at, exclusive_only=not request.exclusive
            )
            blocking = blocking_leases(
                held, request.agent_id, request.patterns, request.exclusive, at
            )
            if blocking:
                return LeaseGrant(granted=(), conflicts=tuple(blocking))
            last = self._last_token(conn)
            granted = request.leases(ids, last + 1, at)
            self._executemany(
                conn, self.dialect.insert(LEASES), [lease_row(lease) for lease in granted]
            )
            self._execute(conn, _SET_LAST_FENCE, (last + len(granted),))
            return LeaseGrant(granted=granted, conflicts=())

        return self._write(work)

    def renew_lease(
        self, lease_id: str, agent_id: str, *, ttl: float, now: float | None = None
    ) -> Lease:
        agent_id, ttl, given = checked_agent(agent_id), checked_ttl(ttl), checked_time(now)

        def work(conn: ConnT) -> Lease:
            self._lock_leases(conn)
            at = self._clock(conn, given)
            lease = owned_lease(self._get_lease(conn, lease_id), lease_id, agent_id)
            held = self._others_active(conn, agent_id, at, exclusive_only=False)
            token = self._last_token(conn) + 1
            renewed = renewed_lease(lease, agent_id, ttl, at, token, held)
            self._execute(conn, _RENEW_LEASE, (renewed.expires_at, renewed.fencing_token, lease_id))
            self._execute(conn, _SET_LAST_FENCE, (token,))
            return renewed

        return self._write(work)

    def release_lease(self, lease_id: str, agent_id: str, *, now: float | None = None) -> Lease:
        agent_id, given = checked_agent(agent_id), checked_time(now)

        def work(conn: ConnT) -> Lease:
            self._lock_leases(conn)  # a renewal running meanwhile must not revive the lease
            lease = owned_lease(self._get_lease(conn, lease_id), lease_id, agent_id)
            if lease.released_at is not None:
                return lease
            released = dataclasses.replace(lease, released_at=self._clock(conn, given))
            self._execute(conn, _RELEASE_LEASE, (released.released_at, lease_id))
            return released

        return self._write(work)

    def release_stale_leases(
        self, *, now: float | None = None, idle_agent_seconds: float | None = None
    ) -> list[Lease]:
        given, idle = checked_time(now), checked_idle(idle_agent_seconds)

        def work(conn: ConnT) -> list[Lease]:
            self._lock_leases(conn)
            at = self._clock(conn, given)
            rows = [
                read_lease(r)
                for r in self._execute(conn, LEASES.select + " WHERE released_at IS NULL")
            ]
            agents: list[AgentRecord] = []
            if idle is not None:
                agents = [AgentRecord(r[0], r[1]) for r in self._execute(conn, _AGENT_HEARTBEATS)]
            stale = [
                dataclasses.replace(lease, released_at=at)
                for lease in stale_leases(rows, agents, at, idle)
            ]
            if stale:
                self._executemany(conn, _RELEASE_LEASE, [(at, lease.id) for lease in stale])
            return stale

        return self._write(work)

    def leases(
        self, *, active_only: bool = True, agent_id: str | None = None, now: float | None = None
    ) -> list[Lease]:
        given = checked_time(now)
        where: list[str] = []
        params: list[Any] = []
        if active_only:
            clock, value = self._clock_sql(given)
            where.append(f"released_at IS NULL AND expires_at > {clock}")
            params.append(value)
        if agent_id is not None:
            where.append("agent_id = ?")
            params.append(agent_id)
        sql = LEASES.select
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC"
        return [read_lease(r) for r in self._select(sql, params)]

    # --- reservation conflicts --------------------------------------------------------------

    def record_conflicts(self, conflicts: Sequence[ConflictRecord]) -> None:
        try:
            rows = [conflict_row(c) for c in conflicts]
        except (TypeError, ValueError) as exc:
            raise RuntimeStateError(f"a conflict cannot be stored as JSON: {exc}") from exc
        if rows:
            sql = self.dialect.insert(CONFLICTS, keep_stored=True)
            self._write(lambda conn: self._executemany(conn, sql, rows))

    def reservation_conflicts(
        self, *, session_id: str | None = None, limit: int | None = None
    ) -> list[ConflictRecord]:
        sql, params = filtered(CONFLICTS.select, (("session_id = ?", session_id),))
        sql += " ORDER BY detected_at DESC, id DESC"
        return [read_conflict(r) for r in self._select(*limited(sql, params, limit))]

    # --- escalations ------------------------------------------------------------------------
    # One transaction per call, the row it changes locked from its read to its write (in
    # SQLite by the transaction itself), and the rules of ``escalation_rules`` applied in
    # Python in between.

    def _get_escalation(
        self, conn: ConnT, escalation_id: str, *, lock: bool = False
    ) -> EscalationRecord | None:
        sql = _SELECT_ESCALATION + self.dialect.lock_rows if lock else _SELECT_ESCALATION
        row = self._execute(conn, sql, (escalation_id,)).fetchone()
        return read_escalation(row) if row else None

    def _update_escalation(self, conn: ConnT, e: EscalationRecord) -> None:
        self._execute(conn, _UPDATE_ESCALATION, escalation_changes(e))

    def open_escalation(
        self,
        *,
        path_id: str,
        dedup_key: str,
        check_id: str | None,
        failure_class: str | None,
        path_snapshot: Mapping[str, Any],
        next_action_at: float | None,
        details: Mapping[str, Any],
        now: float | None = None,
    ) -> tuple[EscalationRecord, bool]:
        opening = EscalationOpening.check(
            path_id=path_id,
            dedup_key=dedup_key,
            check_id=check_id,
            failure_class=failure_class,
            path_snapshot=path_snapshot,
            next_action_at=next_action_at,
            details=details,
            now=now,
        )
        escalation_id = new_id()

        def work(conn: ConnT) -> tuple[EscalationRecord, bool]:
            # Two processes failing at once must not both find no open escalation and both
            # insert one.
            self._lock_dedup_key(conn, opening.dedup_key)
            at = self._clock(conn, opening.now)
            row = self._execute(
                conn,
                _SELECT_OPEN_FOR_KEY + self.dialect.lock_rows,
                (opening.dedup_key, *OPEN_STATES),
            ).fetchone()
            if row is not None:
                record = another_occurrence(read_escalation(row), at)
                self._update_escalation(conn, record)
                return record, False
            record = opening.record(escalation_id, at)
            self._execute(conn, self.dialect.insert(ESCALATIONS), escalation_row(record))
            return record, True

        return self._write(work)

    def claim_escalation(
        self,
        escalation_id: str,
        *,
        expect_level: int,
        expect_next_action_at: float | None,
        level: int,
        next_action_at: float | None,
        state: EscalationState,
        details: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> EscalationRecord | None:
        claim = EscalationClaim.check(
            expect_level=expect_level,
            expect_next_action_at=expect_next_action_at,
            level=level,
            next_action_at=next_action_at,
            state=state,
            details=details,
            now=now,
        )
        claim_sql = _UPDATE_ESCALATION + _CLAIM_GUARD + self.dialect.same_next_action_at

        def work(conn: ConnT) -> EscalationRecord | None:
            current = self._get_escalation(conn, escalation_id, lock=True)
            claimed = claim.apply(current, self._clock(conn, claim.now))
            if claimed is None:
                return None
            cursor = self._execute(
                conn,
                claim_sql,
                (
                    *escalation_changes(claimed),
                    *CLIMBING_STATES,
                    claim.expect_level,
                    claim.expect_next_action_at,
                ),
            )
            return claimed if cursor.rowcount == 1 else None

        return self._write(work)

    def transition_escalation(
        self,
        escalation_id: str,
        *,
        state: EscalationState,
        by: str | None,
        from_states: Sequence[EscalationState],
        now: float | None = None,
    ) -> EscalationRecord | None:
        move = EscalationTransition.check(state=state, by=by, from_states=from_states, now=now)

        def work(conn: ConnT) -> EscalationRecord | None:
            moved = move.apply(
                self._get_escalation(conn, escalation_id, lock=True), self._clock(conn, move.now)
            )
            if moved is not None:
                self._update_escalation(conn, moved)
            return moved

        return self._write(work)

    def get_escalation(self, escalation_id: str) -> EscalationRecord | None:
        return self._read(lambda conn: self._get_escalation(conn, escalation_id))

    def escalations(
        self,
        *,
        states: Sequence[str] | None = None,
        path_id: str | None = None,
        check_id: str | None = None,
        limit: int | None = None,
    ) -> list[EscalationRecord]:
        wanted = checked_states(states)
        sql, params = filtered(
            ESCALATIONS.select, (("path_id = ?", path_id), ("check_id = ?", check_id))
        )
        if wanted is not None:
            # One marker per state: the text is built from a count, the values are bound.
            state_in = f"state IN ({marks(len(wanted))})" if wanted else "1 = 0"
            sql += (" AND " if params else " WHERE ") + state_in
            params.extend(wanted)
        sql += " ORDER BY created_at DESC, id DESC"
        return [read_escalation(r) for r in self._select(*limited(sql, params, limit))]

    def due_escalations(self, now: float) -> list[EscalationRecord]:
        at = required_time(now)
        return [read_escalation(r) for r in self._select(_SELECT_DUE, (*CLIMBING_STATES, at))]

    def record_delivery(self, delivery: DeliveryRecord) -> None:
        d = checked_delivery(delivery)
        row = delivery_row(d, self.dialect.text)

        def work(conn: ConnT) -> None:
            # Asked first rather than left to the foreign key, for the same error as elsewhere.
            if self._execute(conn, _ESCALATION_KNOWN, (d.escalation_id,)).fetchone() is None:
                raise unknown_escalation(d.escalation_id)
            self._execute(conn, self.dialect.insert(DELIVERIES), row)

        self._write(work)

    def deliveries(self, escalation_id: str | None = None) -> list[DeliveryRecord]:
        sql, params = filtered(DELIVERIES.select, (("escalation_id = ?", escalation_id),))
        sql += " ORDER BY attempted_at, id"
        return [read_delivery(r) for r in self._select(sql, params)]

    # --- waivers, decisions and silences -----------------------------------------------------

    def add_waiver(self, record: WaiverRecord) -> None:
        row = waiver_row(checked_waiver(record))
        sql = self.dialect.insert(WAIVERS, keep_stored=True)
        self._write(lambda conn: self._execute(conn, sql, row))

    def waivers(
        self, active_at: float | None = None, check_id: str | None = None
    ) -> list[WaiverRecord]:
        at = checked_time(active_at, "active_at")
        sql, params = filtered(WAIVERS.select, (("check_id = ?", check_id),))
        if at is not None:
            sql += (" AND " if params else " WHERE ") + _WAIVER_ACTIVE
            params.extend((at, at, at))
        sql += " ORDER BY granted_at DESC, id DESC"
        return [read_waiver(r) for r in self._select(sql, params)]

    def revoke_waiver(
        self, waiver_id: str, by: str, now: float | None = None
    ) -> WaiverRecord | None:
        by, given = checked_by(by), checked_time(now)

        def work(conn: ConnT) -> WaiverRecord | None:
            sql = _SELECT_WAIVER + self.dialect.lock_rows
            row = self._execute(conn, sql, (waiver_id,)).fetchone()
            if row is None:
                return None
            current = read_waiver(row)
            changed = revoked(current, by, self._clock(conn, given))
            if changed is not current:
                self._execute(
                    conn, _REVOKE_WAIVER, (changed.revoked_at, changed.revoked_by, waiver_id)
                )
            return changed

        return self._write(work)

    def record_decision(self, record: DecisionRecord) -> None:
        row = decision_row(checked_decision(record))
        sql = self.dialect.insert(DECISIONS, keep_stored=True)
        self._write(lambda conn: self._execute(conn, sql, row))

    def decisions(self, escalation_id: str | None = None) -> list[DecisionRecord]:
        sql, params = filtered(DECISIONS.select, (("escalation_id = ?", escalation_id),))
        sql += " ORDER BY decided_at DESC, id DESC"
        return [read_decision(r) for r in self._select(sql, params)]

    def add_silence(self, record: SilenceRecord) -> None:
        row = silence_row(checked_silence(record))
        sql = self.dialect.insert(SILENCES, keep_stored=True)
        self._write(lambda conn: self._execute(conn, sql, row))

    def silences(self, active_at: float | None = None) -> list[SilenceRecord]:
        at = checked_time(active_at, "active_at")
        sql, params = SILENCES.select, []
        if at is not None:
            sql += " WHERE " + _SILENCE_ACTIVE
            params = [at, at, at]
        sql += " ORDER BY created_at DESC, id DESC"
        return [read_silence(r) for r in self._select(sql, params)]

    def expire_silence(
        self, silence_id: str, by: str, now: float | None = None
    ) -> SilenceRecord | None:
        by, given = checked_by(by), checked_time(now)

        def work(conn: ConnT) -> SilenceRecord | None:
            sql = _SELECT_SILENCE + self.dialect.lock_rows
            row = self._execute(conn, sql, (silence_id,)).fetchone()
            if row is None:
                return None
            current = read_silence(row)
            changed = ended(current, by, self._clock(conn, given))
            if changed is not current:
                self._execute(
                    conn, _END_SILENCE, (changed.expired_at, changed.expired_by, silence_id)
                )
            return changed

        return self._write(work)

    # --- the rest ---------------------------------------------------------------------------

    def info(self) -> RuntimeInfo:
        def work(conn: ConnT) -> tuple[int, dict[str, int]]:
            row = self._execute(conn, COUNTS).fetchone()
            counts = {n: int(c) for n, c in zip(COUNT_NAMES, row, strict=True)}
            return self._schema_version(conn), counts

        version, counts = self._read(work)
        return RuntimeInfo(
            mode=self.mode,
            location=self.where,
            schema_version=version,
            counts=counts,
            notes=self._notes(),
        )

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        self._discard(conn)
