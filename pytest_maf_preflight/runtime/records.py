"""The records a runtime stores: plain, frozen, JSON-able data shared by every mode."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal

ExecutionStatus = Literal["passed", "failed", "timeout", "error", "skipped"]
ExecutionKind = Literal["check", "smoke"]
SessionStatus = Literal["open", "closed", "config_error", "interrupted"]
MessageStatus = Literal["queued", "delivered", "acked"]
EscalationState = Literal["triggered", "acknowledged", "escalated", "resolved", "expired"]
DecisionKind = Literal["approved", "rejected"]

#: The states in which an escalation is still open: at most one open escalation per dedup key.
OPEN_STATES: tuple[EscalationState, ...] = ("triggered", "acknowledged", "escalated")
#: The states from which a tick may still move an escalation up (an acknowledged one stays put).
CLIMBING_STATES: tuple[EscalationState, ...] = ("triggered", "escalated")


def new_id() -> str:
    return uuid.uuid4().hex


def now() -> float:
    return time.time()


@dataclasses.dataclass(frozen=True)
class SessionRecord:
    """One gated pytest session. ``status`` is the gate's verdict: open or closed."""

    id: str
    agent_id: str
    environment: str
    started_at: float
    completed_at: float
    status: SessionStatus
    exit_code: int | None
    runtime_mode: str
    hostname: str = ""
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ExecutionRecord:
    """One execution of a config check or a ``maf_smoke`` test. Secrets already redacted."""

    id: str
    session_id: str
    config_id: str
    config_version: str
    agent_id: str
    kind: ExecutionKind
    status: ExecutionStatus
    started_at: float
    completed_at: float
    duration: float
    attempts: int
    result: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    error_message: str | None = None


@dataclasses.dataclass(frozen=True)
class RecentOutcome:
    """What the report page shows of one execution (``RuntimeState.recent_outcomes``)."""

    id: str
    config_id: str
    agent_id: str
    kind: ExecutionKind
    status: ExecutionStatus
    started_at: float
    duration: float
    attempts: int


@dataclasses.dataclass(frozen=True)
class ConfigSnapshot:
    """A config as it was when a session ran; stored once per (config id, content hash)."""

    config_id: str
    version: str
    config_type: str
    content_hash: str
    document: Mapping[str, Any]
    recorded_at: float


@dataclasses.dataclass(frozen=True)
class Message:
    """A protocol message in the runtime queue (S6): the envelope's fields plus its body."""

    id: str
    type: str
    agent_id: str
    payload: Mapping[str, Any]
    created_at: float
    correlation_id: str | None = None
    recipient: str | None = None
    status: MessageStatus = "queued"


@dataclasses.dataclass(frozen=True)
class AgentRecord:
    """An agent as its last heartbeat described it (each heartbeat replaces the whole record).

    ``agent_type`` is one of ``agent_fields.AGENT_TYPES``, ``status`` one of ``AGENT_STATUSES``;
    ``capabilities`` are free names (``"python"``, ``"review"``), each once, in the order given;
    ``details`` is the seed's ``metadata``.
    """

    id: str
    last_heartbeat: float
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    agent_type: str = "worker"
    capabilities: tuple[str, ...] = ()
    status: str = "active"

    def __post_init__(self) -> None:
        # Stores hand back JSON arrays as lists; a record compares equal however it was read.
        object.__setattr__(self, "capabilities", tuple(self.capabilities))


@dataclasses.dataclass(frozen=True)
class SmokeTestDefinition:
    """A ``maf_smoke`` test as a run collected it; stored once per (node id, content hash).

    ``version`` is what the test's executions carry as ``config_version`` (the start of
    ``content_hash``), so an execution names the definition it ran. ``document``:
    ``{"nodeid", "file", "markers": [{"name", "args", "kwargs"}, ...]}``, secrets redacted.
    """

    nodeid: str
    version: str
    content_hash: str
    file: str
    document: Mapping[str, Any]
    recorded_at: float


@dataclasses.dataclass(frozen=True)
class EscalationPathDefinition:
    """An escalation path as a run loaded it; stored once per (path id, content hash).

    ``document`` is the snapshot an escalation opened on this path keeps (``{"id", "version",
    "config"}``), secrets redacted.
    """

    path_id: str
    version: str
    content_hash: str
    document: Mapping[str, Any]
    recorded_at: float


@dataclasses.dataclass(frozen=True)
class Lease:
    """A claim of ``agent_id`` on the paths ``path_pattern`` covers (SPEC S3).

    ``path_pattern`` is a normalized gitignore-style pattern. A lease counts while it is not
    released and ``expires_at`` lies ahead; an expired lease blocks nobody, with or without a
    cleanup. ``fencing_token`` is new on every grant and renewal and only ever grows across
    the whole store, so a writer can reject work done under a token older than one it has
    already seen.
    """

    id: str
    agent_id: str
    path_pattern: str
    exclusive: bool
    reason: str
    created_at: float
    expires_at: float
    released_at: float | None
    fencing_token: int

    def active(self, at: float) -> bool:
        """Whether the lease still holds at ``at``: not released and not expired."""
        return self.released_at is None and self.expires_at > at


@dataclasses.dataclass(frozen=True)
class LeaseGrant:
    """The answer to one acquire: every requested pattern granted, or none of them."""

    #: One lease per distinct requested pattern (normalized, in the order asked), or empty
    #: when something blocked the request.
    granted: tuple[Lease, ...]
    #: Other agents' active leases that blocked it, newest first.
    conflicts: tuple[Lease, ...]

    @property
    def ok(self) -> bool:
        return bool(self.granted) and not self.conflicts


@dataclasses.dataclass(frozen=True)
class ConflictRecord:
    """One reservation conflict a check found (a row of ``reservation_conflicts``).

    ``status`` is ``"open"``, or ``"overridden"`` when ``MAF_RESERVATION_OVERRIDE`` let the run
    pass anyway (then ``override`` is true as well).
    """

    id: str
    session_id: str | None
    conflict_type: str
    severity: str
    agent_id: str
    holder_agent_id: str | None
    path: str | None
    path_pattern: str | None
    lease_id: str | None
    expires_at: float | None
    status: str
    override: bool
    detected_at: float
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EscalationRecord:
    """One escalation (SPEC S4): a met trigger, deduplicated on ``dedup_key`` while open.

    ``level`` is the level last delivered (1 once opened); ``next_action_at`` is when that
    level times out (``None``: nothing scheduled). ``path_snapshot`` is the escalation path as
    it was when the escalation opened: ``{"id", "version", "config"}``.
    """

    id: str
    path_id: str
    dedup_key: str
    check_id: str | None
    #: failed | timeout | error | reservation_conflict | system_down | manual
    failure_class: str | None
    state: EscalationState
    level: int
    occurrences: int
    path_snapshot: Mapping[str, Any]
    created_at: float
    updated_at: float
    next_action_at: float | None
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    #: summary, severity, agent_id, session_id, rounds...
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


@dataclasses.dataclass(frozen=True)
class DeliveryRecord:
    """One attempt to deliver one level of an escalation to one target."""

    escalation_id: str
    level: int
    channel: str
    target: str
    attempt: int
    #: "delivered" | "failed" | "fallback" (fallback: delivered through the mailbox instead)
    #: | "silenced" (not sent: a silence covered it)
    status: str
    error: str | None
    response: Mapping[str, Any]
    attempted_at: float


@dataclasses.dataclass(frozen=True)
class WaiverRecord:
    """A failing check that does not close the gate from ``granted_at`` until ``expires_at``.

    Granted by hand (``maf-preflight waive``) or by an approval (``escalation_id``). ``scope``
    narrows what is waived: for a reservation check ``{"leases": [...], "paths": [...]}``, the
    conflicts named when it was granted (a new conflict still closes the gate); ``{}`` for any
    other check. ``revoked_at``/``revoked_by`` end it early.
    """

    id: str
    check_id: str
    granted_by: str
    reason: str
    granted_at: float
    expires_at: float
    escalation_id: str | None = None
    scope: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    revoked_at: float | None = None
    revoked_by: str | None = None

    def active(self, at: float) -> bool:
        """Whether the waiver holds at ``at``: granted, not expired and not revoked by then."""
        return self.granted_at <= at < self.expires_at and (
            self.revoked_at is None or self.revoked_at > at
        )


@dataclasses.dataclass(frozen=True)
class DecisionRecord:
    """An approval or rejection of an escalation at one of its decision steps: who, when, why."""

    id: str
    escalation_id: str
    level: int
    decision: DecisionKind
    decided_by: str
    reason: str
    decided_at: float


@dataclasses.dataclass(frozen=True)
class SilenceRecord:
    """A maintenance window: escalations of ``check_id`` or of the path ``path_id`` (at least
    one is set; both: only that check on that path) are still opened and climbed, but not
    delivered, from ``created_at`` until ``expires_at`` or until someone ends it early
    (``expired_at``/``expired_by``)."""

    id: str
    check_id: str | None
    path_id: str | None
    created_by: str
    reason: str
    created_at: float
    expires_at: float
    expired_at: float | None = None
    expired_by: str | None = None

    def active(self, at: float) -> bool:
        """Whether the silence holds at ``at``: begun, not run out and not ended by then."""
        return self.created_at <= at < self.expires_at and (
            self.expired_at is None or self.expired_at > at
        )

    def covers(self, path_id: str | None, check_id: str | None) -> bool:
        """Whether an escalation of ``check_id`` on the path ``path_id`` falls under it."""
        return (self.path_id is None or self.path_id == path_id) and (
            self.check_id is None or self.check_id == check_id
        )


@dataclasses.dataclass(frozen=True)
class SessionBundle:
    """Everything one session records, written in one transaction: all of it or none."""

    session: SessionRecord
    executions: tuple[ExecutionRecord, ...] = ()
    snapshots: tuple[ConfigSnapshot, ...] = ()
    messages: tuple[Message, ...] = ()
    conflicts: tuple[ConflictRecord, ...] = ()
    #: The definitions in force for this session (deduplicated by content when stored).
    smoke_tests: tuple[SmokeTestDefinition, ...] = ()
    escalation_paths: tuple[EscalationPathDefinition, ...] = ()


@dataclasses.dataclass(frozen=True)
class CheckStats:
    """One check's recorded history in numbers (``RuntimeState.check_stats``; what counts,
    flips and percentiles: :mod:`.check_stats`). Durations in seconds, rates from 0 to 1."""

    #: The check's id, or a ``maf_smoke`` test's node id.
    config_id: str
    runs: int
    passed: int
    failed: int
    timeouts: int
    errors: int
    pass_rate: float
    #: Changes between passing and not passing from one execution to the next.
    flips: int
    #: ``flips`` per pair of consecutive executions (0 for a single run).
    flip_rate: float
    p50_duration: float
    p95_duration: float
    last_status: str
    last_started_at: float


@dataclasses.dataclass(frozen=True)
class RuntimeInfo:
    mode: str
    location: str
    schema_version: int | None
    counts: Mapping[str, int]
    notes: tuple[str, ...] = ()


def to_json(record: Any) -> dict[str, Any]:
    """A record as a JSON-able dict (mappings copied, tuples as lists)."""
    return dataclasses.asdict(record)
