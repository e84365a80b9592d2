"""Records to SQL parameter tuples and rows back to records, for the ``sqlite`` and ``postgres``
runtimes.

Both stores hold the same columns in the same order and the same compact JSON text, so the
column lists (``Table``) live here, next to the functions that write and read their rows: a
column added to one without the other would misread every row. Booleans are written as Python
``bool`` (SQLite stores them as 1/0) and read back with ``bool()``. What differs between the two
stores (markers, ``INSERT OR IGNORE`` against ``ON CONFLICT``, locking, PostgreSQL's text
without NUL) is each store's dialect (:mod:`.sql_store`); ``text`` below is where a store cleans
its free text.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .records import (
    AgentRecord,
    ConfigSnapshot,
    ConflictRecord,
    DecisionRecord,
    DeliveryRecord,
    EscalationPathDefinition,
    EscalationRecord,
    ExecutionRecord,
    Lease,
    Message,
    SessionBundle,
    SessionRecord,
    SilenceRecord,
    SmokeTestDefinition,
    WaiverRecord,
)

#: A store's cleaning of free text (an error message) before it is written.
TextFilter = Callable[[str | None], str | None]

#: One encoder for every JSON column (building one per value costs a fifth of a bulk write).
#: ``default=str``: a value that is not JSON (a Path, a datetime) is stored as its text rather
#: than failing the whole session's record.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
dumps: Callable[[Mapping[str, Any]], str] = _ENCODER.encode
_LIST_ENCODER = json.JSONEncoder(separators=(",", ":"))


@dataclasses.dataclass(frozen=True)
class Table:
    """A table and its columns, in the order of the row tuples below: every ``SELECT`` and
    ``INSERT`` of it is built from these constants, so the two cannot name different columns.
    Values are never part of a statement; they are always bound parameters."""

    name: str
    columns: tuple[str, ...]

    @functools.cached_property
    def select(self) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {self.name}"  # noqa: S608 - constants

    def insert(self, verb: str = "INSERT", suffix: str = "") -> str:
        """The INSERT of a whole row; ``verb`` and ``suffix`` are a dialect's constants."""
        return (
            f"{verb} INTO {self.name} ({', '.join(self.columns)}) "
            f"VALUES ({marks(len(self.columns))}){suffix}"
        )


def marks(count: int) -> str:
    """``count`` parameter markers. Statements are written with ``?`` (sqlite3's marker); a
    store whose driver uses another turns them into its own (``SqlDialect.sql``)."""
    return ", ".join("?" * count)


SESSIONS = Table(
    "preflight_sessions",
    (
        "id",
        "agent_id",
        "environment",
        "started_at",
        "completed_at",
        "status",
        "exit_code",
        "runtime_mode",
        "hostname",
        "details",
    ),
)
EXECUTIONS = Table(
    "preflight_executions",
    (
        "id",
        "session_id",
        "config_id",
        "config_version",
        "agent_id",
        "kind",
        "status",
        "started_at",
        "completed_at",
        "duration",
        "attempts",
        "result",
        "error_message",
    ),
)
SNAPSHOTS = Table(
    "preflight_configs",
    ("config_id", "version", "config_type", "content_hash", "document", "recorded_at"),
)
MESSAGES = Table(
    "messages",
    ("id", "type", "agent_id", "payload", "created_at", "correlation_id", "recipient", "status"),
)
AGENTS = Table("agents", ("id", "last_heartbeat", "details", "type", "capabilities", "status"))
SMOKE_TESTS = Table(
    "smoke_tests", ("nodeid", "version", "content_hash", "file", "document", "recorded_at")
)
ESCALATION_PATHS = Table(
    "escalation_paths", ("id", "version", "content_hash", "document", "recorded_at")
)
LEASES = Table(
    "leases",
    (
        "id",
        "agent_id",
        "path_pattern",
        "exclusive",
        "reason",
        "created_at",
        "expires_at",
        "released_at",
        "fencing_token",
    ),
)
CONFLICTS = Table(
    "reservation_conflicts",
    (
        "id",
        "session_id",
        "conflict_type",
        "severity",
        "agent_id",
        "holder_agent_id",
        "path",
        "path_pattern",
        "lease_id",
        "expires_at",
        "status",
        "override",
        "detected_at",
        "details",
    ),
)
ESCALATIONS = Table(
    "escalation_tracking",
    (
        "id",
        "path_id",
        "dedup_key",
        "check_id",
        "failure_class",
        "state",
        "level",
        "occurrences",
        "path_snapshot",
        "created_at",
        "updated_at",
        "next_action_at",
        "acknowledged_by",
        "acknowledged_at",
        "resolved_by",
        "resolved_at",
        "details",
    ),
)
DELIVERIES = Table(
    "escalation_deliveries",
    (
        "escalation_id",
        "level",
        "channel",
        "target",
        "attempt",
        "status",
        "error",
        "response",
        "attempted_at",
    ),
)

WAIVERS = Table(
    "waivers",
    (
        "id",
        "check_id",
        "granted_by",
        "reason",
        "granted_at",
        "expires_at",
        "escalation_id",
        "scope",
        "revoked_at",
        "revoked_by",
    ),
)
DECISIONS = Table(
    "escalation_decisions",
    ("id", "escalation_id", "level", "decision", "decided_by", "reason", "decided_at"),
)
SILENCES = Table(
    "silences",
    (
        "id",
        "check_id",
        "path_id",
        "created_by",
        "reason",
        "created_at",
        "expires_at",
        "expired_at",
        "expired_by",
    ),
)

#: ``info()`` counts, by the same names the other modes use.
COUNTS = (
    "SELECT (SELECT count(*) FROM preflight_sessions), "
    "(SELECT count(*) FROM preflight_executions), (SELECT count(*) FROM preflight_configs), "
    "(SELECT count(*) FROM messages), (SELECT count(*) FROM agents), "
    "(SELECT count(*) FROM leases), (SELECT count(*) FROM reservation_conflicts), "
    "(SELECT count(*) FROM escalation_tracking), "
    "(SELECT count(*) FROM escalation_deliveries), (SELECT count(*) FROM smoke_tests), "
    "(SELECT count(*) FROM escalation_paths), (SELECT count(*) FROM waivers), "
    "(SELECT count(*) FROM escalation_decisions), (SELECT count(*) FROM silences)"
)
COUNT_NAMES = (
    "sessions",
    "executions",
    "config_snapshots",
    "messages",
    "agents",
    "leases",
    "reservation_conflicts",
    "escalations",
    "escalation_deliveries",
    "smoke_tests",
    "escalation_paths",
    "waivers",
    "escalation_decisions",
    "silences",
)


def as_is(value: str | None) -> str | None:
    return value


@dataclasses.dataclass
class PreparedBundle:
    """A bundle turned into SQL parameters before any lock or connection is taken (so a value
    that is not JSON fails before anything is written)."""

    session: tuple[Any, ...]
    #: Any iterable: SQLite's ``executemany`` streams it (a test feeds it rows without end).
    executions: Iterable[tuple[Any, ...]]
    snapshots: list[tuple[Any, ...]]
    messages: list[tuple[Any, ...]]
    conflicts: list[tuple[Any, ...]]
    smoke_tests: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    escalation_paths: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)


def prepare_bundle(bundle: SessionBundle, text: TextFilter = as_is) -> PreparedBundle:
    return PreparedBundle(
        session=session_row(bundle.session),
        executions=[execution_row(e, text) for e in bundle.executions],
        snapshots=[snapshot_row(c) for c in bundle.snapshots],
        messages=[message_row(m) for m in bundle.messages],
        conflicts=[conflict_row(c) for c in bundle.conflicts],
        smoke_tests=[smoke_test_row(d) for d in bundle.smoke_tests],
        escalation_paths=[escalation_path_row(d) for d in bundle.escalation_paths],
    )


def session_row(s: SessionRecord) -> tuple[Any, ...]:
    return (
        s.id,
        s.agent_id,
        s.environment,
        s.started_at,
        s.completed_at,
        s.status,
        s.exit_code,
        s.runtime_mode,
        s.hostname,
        dumps(s.details),
    )


def read_session(r: Sequence[Any]) -> SessionRecord:
    return SessionRecord(
        id=r[0],
        agent_id=r[1],
        environment=r[2],
        started_at=r[3],
        completed_at=r[4],
        status=r[5],
        exit_code=r[6],
        runtime_mode=r[7],
        hostname=r[8],
        details=json.loads(r[9]),
    )


def execution_row(e: ExecutionRecord, text: TextFilter = as_is) -> tuple[Any, ...]:
    return (
        e.id,
        e.session_id,
        e.config_id,
        e.config_version,
        e.agent_id,
        e.kind,
        e.status,
        e.started_at,
        e.completed_at,
        e.duration,
        e.attempts,
        dumps(e.result),
        text(e.error_message),
    )


def read_execution(r: Sequence[Any]) -> ExecutionRecord:
    return ExecutionRecord(
        id=r[0],
        session_id=r[1],
        config_id=r[2],
        config_version=r[3],
        agent_id=r[4],
        kind=r[5],
        status=r[6],
        started_at=r[7],
        completed_at=r[8],
        duration=r[9],
        attempts=r[10],
        result=json.loads(r[11]),
        error_message=r[12],
    )


def snapshot_row(c: ConfigSnapshot) -> tuple[Any, ...]:
    return (c.config_id, c.version, c.config_type, c.content_hash, dumps(c.document), c.recorded_at)


def read_snapshot(r: Sequence[Any]) -> ConfigSnapshot:
    return ConfigSnapshot(
        config_id=r[0],
        version=r[1],
        config_type=r[2],
        content_hash=r[3],
        document=json.loads(r[4]),
        recorded_at=r[5],
    )


def message_row(m: Message) -> tuple[Any, ...]:
    return (
        m.id,
        m.type,
        m.agent_id,
        dumps(m.payload),
        m.created_at,
        m.correlation_id,
        m.recipient,
        m.status,
    )


def read_message(r: Sequence[Any]) -> Message:
    return Message(
        id=r[0],
        type=r[1],
        agent_id=r[2],
        payload=json.loads(r[3]),
        created_at=r[4],
        correlation_id=r[5],
        recipient=r[6],
        status=r[7],
    )


def smoke_test_row(d: SmokeTestDefinition) -> tuple[Any, ...]:
    return (d.nodeid, d.version, d.content_hash, d.file, dumps(d.document), d.recorded_at)


def read_smoke_test(r: Sequence[Any]) -> SmokeTestDefinition:
    return SmokeTestDefinition(
        nodeid=r[0],
        version=r[1],
        content_hash=r[2],
        file=r[3],
        document=json.loads(r[4]),
        recorded_at=r[5],
    )


def escalation_path_row(d: EscalationPathDefinition) -> tuple[Any, ...]:
    return (d.path_id, d.version, d.content_hash, dumps(d.document), d.recorded_at)


def read_escalation_path(r: Sequence[Any]) -> EscalationPathDefinition:
    return EscalationPathDefinition(
        path_id=r[0], version=r[1], content_hash=r[2], document=json.loads(r[3]), recorded_at=r[4]
    )


def agent_row(a: AgentRecord) -> tuple[Any, ...]:
    return (
        a.id,
        a.last_heartbeat,
        dumps(a.details),
        a.agent_type,
        _LIST_ENCODER.encode(list(a.capabilities)),
        a.status,
    )


def read_agent(r: Sequence[Any]) -> AgentRecord:
    return AgentRecord(
        r[0],
        r[1],
        json.loads(r[2]),
        agent_type=r[3],
        capabilities=tuple(json.loads(r[4])),
        status=r[5],
    )


def lease_row(lease: Lease) -> tuple[Any, ...]:
    return (
        lease.id,
        lease.agent_id,
        lease.path_pattern,
        bool(lease.exclusive),
        lease.reason,
        lease.created_at,
        lease.expires_at,
        lease.released_at,
        lease.fencing_token,
    )


def read_lease(r: Sequence[Any]) -> Lease:
    return Lease(
        id=r[0],
        agent_id=r[1],
        path_pattern=r[2],
        exclusive=bool(r[3]),
        reason=r[4],
        created_at=r[5],
        expires_at=r[6],
        released_at=r[7],
        fencing_token=int(r[8]),
    )


def conflict_row(c: ConflictRecord) -> tuple[Any, ...]:
    return (
        c.id,
        c.session_id,
        c.conflict_type,
        c.severity,
        c.agent_id,
        c.holder_agent_id,
        c.path,
        c.path_pattern,
        c.lease_id,
        c.expires_at,
        c.status,
        bool(c.override),
        c.detected_at,
        dumps(c.details),
    )


def read_conflict(r: Sequence[Any]) -> ConflictRecord:
    return ConflictRecord(
        id=r[0],
        session_id=r[1],
        conflict_type=r[2],
        severity=r[3],
        agent_id=r[4],
        holder_agent_id=r[5],
        path=r[6],
        path_pattern=r[7],
        lease_id=r[8],
        expires_at=r[9],
        status=r[10],
        override=bool(r[11]),
        detected_at=r[12],
        details=json.loads(r[13]),
    )


def escalation_row(e: EscalationRecord) -> tuple[Any, ...]:
    return (
        e.id,
        e.path_id,
        e.dedup_key,
        e.check_id,
        e.failure_class,
        e.state,
        e.level,
        e.occurrences,
        dumps(e.path_snapshot),
        e.created_at,
        e.updated_at,
        e.next_action_at,
        e.acknowledged_by,
        e.acknowledged_at,
        e.resolved_by,
        e.resolved_at,
        dumps(e.details),
    )


def escalation_changes(e: EscalationRecord) -> tuple[Any, ...]:
    """The parameters of an escalation's ``UPDATE``: everything that can change after it
    opened (state, level, occurrences, updated_at, next_action_at, acknowledged_by,
    acknowledged_at, resolved_by, resolved_at, details), then the id."""
    return (
        e.state,
        e.level,
        e.occurrences,
        e.updated_at,
        e.next_action_at,
        e.acknowledged_by,
        e.acknowledged_at,
        e.resolved_by,
        e.resolved_at,
        dumps(e.details),
        e.id,
    )


def read_escalation(r: Sequence[Any]) -> EscalationRecord:
    return EscalationRecord(
        id=r[0],
        path_id=r[1],
        dedup_key=r[2],
        check_id=r[3],
        failure_class=r[4],
        state=r[5],
        level=r[6],
        occurrences=r[7],
        path_snapshot=json.loads(r[8]),
        created_at=r[9],
        updated_at=r[10],
        next_action_at=r[11],
        acknowledged_by=r[12],
        acknowledged_at=r[13],
        resolved_by=r[14],
        resolved_at=r[15],
        details=json.loads(r[16]),
    )


def delivery_row(d: DeliveryRecord, text: TextFilter = as_is) -> tuple[Any, ...]:
    return (
        d.escalation_id,
        d.level,
        d.channel,
        d.target,
        d.attempt,
        d.status,
        text(d.error),
        dumps(d.response),
        d.attempted_at,
    )


def read_delivery(r: Sequence[Any]) -> DeliveryRecord:
    return DeliveryRecord(
        escalation_id=r[0],
        level=r[1],
        channel=r[2],
        target=r[3],
        attempt=r[4],
        status=r[5],
        error=r[6],
        response=json.loads(r[7]),
        attempted_at=r[8],
    )


def waiver_row(w: WaiverRecord) -> tuple[Any, ...]:
    return (
        w.id,
        w.check_id,
        w.granted_by,
        w.reason,
        w.granted_at,
        w.expires_at,
        w.escalation_id,
        dumps(w.scope),
        w.revoked_at,
        w.revoked_by,
    )


def read_waiver(r: Sequence[Any]) -> WaiverRecord:
    return WaiverRecord(
        id=r[0],
        check_id=r[1],
        granted_by=r[2],
        reason=r[3],
        granted_at=r[4],
        expires_at=r[5],
        escalation_id=r[6],
        scope=json.loads(r[7]),
        revoked_at=r[8],
        revoked_by=r[9],
    )


def decision_row(d: DecisionRecord) -> tuple[Any, ...]:
    return (d.id, d.escalation_id, d.level, d.decision, d.decided_by, d.reason, d.decided_at)


def read_decision(r: Sequence[Any]) -> DecisionRecord:
    return DecisionRecord(
        id=r[0],
        escalation_id=r[1],
        level=r[2],
        decision=r[3],
        decided_by=r[4],
        reason=r[5],
        decided_at=r[6],
    )


def silence_row(s: SilenceRecord) -> tuple[Any, ...]:
    return (
        s.id,
        s.check_id,
        s.path_id,
        s.created_by,
        s.reason,
        s.created_at,
        s.expires_at,
        s.expired_at,
        s.expired_by,
    )


def read_silence(r: Sequence[Any]) -> SilenceRecord:
    return SilenceRecord(
        id=r[0],
        check_id=r[1],
        path_id=r[2],
        created_by=r[3],
        reason=r[4],
        created_at=r[5],
        expires_at=r[6],
        expired_at=r[7],
        expired_by=r[8],
    )
