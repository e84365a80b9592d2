"""``RuntimeState``: the one interface every runtime mode implements.

What the modes share beyond the interface lives beside it, each in its own module: the errors
(:mod:`.errors`), the checks of shared arguments (:mod:`.arguments`) and of agent fields
(:mod:`.agent_fields`), the lease and escalation rules (:mod:`.lease_rules`,
:mod:`.escalation_rules`), the query rules of the modes that filter in Python
(:mod:`.queries`), and the SQL modes' common code (:mod:`.sql_store`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..protocol.messages import Envelope

from .recent_outcomes import DEFAULT_PER_CHECK
from .records import (
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
)


class RuntimeState(abc.ABC):
    """Record and query sessions, executions, config snapshots, messages, agents, leases,
    escalations, and the waivers, decisions and silences around them.

    Implementations: ``memory``, ``json``, ``sqlite`` and ``postgres``. Every write is
    atomic: a bundle is stored whole or not at all, and writing the same ids again changes
    nothing (so imports and retries are idempotent). Queries return newest first.
    """

    mode: str = ""

    # --- sessions and executions ------------------------------------------------------------

    @abc.abstractmethod
    def record_session(self, bundle: SessionBundle) -> None:
        """Store a session with its executions, snapshots, messages and conflicts, all or
        nothing."""

    @abc.abstractmethod
    def sessions(
        self, limit: int | None = None, *, agent_id: str | None = None
    ) -> list[SessionRecord]:
        """Sessions newest first (``started_at``, ``id``), optionally of one agent."""

    @abc.abstractmethod
    def get_session(self, session_id: str) -> SessionRecord | None: ...

    @abc.abstractmethod
    def executions(
        self,
        *,
        config_id: str | None = None,
        status: str | None = None,
        session_id: str | None = None,
        limit: int | None = None,
    ) -> list[ExecutionRecord]: ...

    @abc.abstractmethod
    def latest_check_execution(
        self, config_id: str, *, agent_id: str, environment: str
    ) -> ExecutionRecord | None:
        """The newest execution (``started_at``, then ``id``) of the config check
        ``config_id`` that ``agent_id`` recorded in a session of ``environment``, whatever its
        status; None when there is none. The gate reuses a recent pass only when it is this
        one (``gate.reuse``): a later failure, timeout or error disables the reuse."""

    @abc.abstractmethod
    def check_stats(
        self, *, since: float | None = None, agent_id: str | None = None
    ) -> list[CheckStats]:
        """Per check (or ``maf_smoke`` test), ordered by id: runs, outcomes, pass and flip
        rates, p50/p95 durations and the last outcome, over the executions started at or after
        ``since``, of one agent or of all (rules: :mod:`.check_stats`). The SQL modes aggregate
        in the database."""

    @abc.abstractmethod
    def recent_outcomes(
        self,
        *,
        per_check: int = DEFAULT_PER_CHECK,
        since: float | None = None,
        agent_id: str | None = None,
        config_ids: Sequence[str] | None = None,
    ) -> list[RecentOutcome]:
        """The last ``per_check`` executions of each check (or ``maf_smoke`` test) started at
        or after ``since``, of one agent or of all, of the checks ``config_ids`` or of every
        check: checks in id order, each newest first (rules: :mod:`.recent_outcomes`). The SQL
        modes read only those rows, through an index."""

    @abc.abstractmethod
    def config_snapshots(self, config_id: str | None = None) -> list[ConfigSnapshot]: ...

    @abc.abstractmethod
    def smoke_tests(self, nodeid: str | None = None) -> list[SmokeTestDefinition]:
        """Recorded ``maf_smoke`` definitions, newest first (``recorded_at``, hash)."""

    @abc.abstractmethod
    def escalation_paths(self, path_id: str | None = None) -> list[EscalationPathDefinition]:
        """Recorded escalation path definitions, newest first (``recorded_at``, hash)."""

    # --- messages --------------------------------------------------------------------------

    def enqueue(self, message: Message | Envelope | Mapping[str, Any]) -> None:
        """Queue one message: a ``Message`` record as it is, a protocol model, or a plain
        mapping such as the original MAF passes (``{"type": "PREFLIGHT_CHECK", "agentId": ...,
        "configId": ..., "executionId": ..., "checkType": ...}``; snake_case or camelCase),
        validated first: a bad one raises ``ProtocolError`` (a ``ValueError`` naming the field)
        and nothing is written. A message id already queued changes nothing."""
        self.enqueue_many((message,))

    def enqueue_many(self, messages: Iterable[Message | Envelope | Mapping[str, Any]]) -> None:
        """Queue several messages in one write, all or none (each checked as ``enqueue``
        checks it, every one before anything is written)."""
        records = [record_of(m) for m in messages]
        if records:
            self._store_messages(records)

    @abc.abstractmethod
    def _store_messages(self, records: Sequence[Message]) -> None:
        """Store records in one write (one transaction; in the json mode one append, so a
        writer killed half-way leaves whole messages only); ids already stored keep their row
        (status included)."""

    @abc.abstractmethod
    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        """Oldest queued messages (for ``recipient``, or any), marked ``delivered``."""

    @abc.abstractmethod
    def ack(self, message_id: str) -> bool:
        """Mark a message ``acked``, whatever its status; False when there is no such
        message."""

    @abc.abstractmethod
    def messages(
        self,
        status: str | None = None,
        *,
        types: Sequence[str] | None = None,
        agent_id: str | None = None,
        since: float | None = None,
    ) -> list[Message]:
        """Messages oldest first (``created_at``, ``id``), optionally only one status, some
        types, one sending agent, or those created at or after ``since``."""

    # --- agents ----------------------------------------------------------------------------

    @abc.abstractmethod
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
        """Record that the agent is alive, replacing what its previous heartbeat said.

        ``agent_type`` and ``status`` are the seed's (``AGENT_TYPES``, ``AGENT_STATUSES``);
        bad ones raise ``ValueError`` before any write (``agent_fields``).
        """

    @abc.abstractmethod
    def agents(self) -> list[AgentRecord]: ...

    # --- leases (SPEC S3) -------------------------------------------------------------------
    #
    # Leases are live state shared by every process of a project: each call below is one
    # atomic step across processes, and ``now`` (injectable for tests) defaults to the clock
    # read once the store is locked, so a caller that waited for the lock does not stamp its
    # lease with the moment it started waiting.

    @abc.abstractmethod
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
        """Lease every pattern for ``ttl`` seconds, or none of them.

        Blocked by another agent's active lease when at least one side is exclusive and the
        patterns overlap; the agent's own leases never block it, expired ones block nobody.
        Each granted lease gets a new fencing token. Bad patterns, a ``ttl`` that is not a
        positive finite number or an empty agent id raise ``ValueError`` before any write.
        """

    @abc.abstractmethod
    def renew_lease(
        self, lease_id: str, agent_id: str, *, ttl: float, now: float | None = None
    ) -> Lease:
        """Extend the owner's lease to ``max(now, expires_at) + ttl`` with a new fencing token.

        ``LeaseError`` when the lease is unknown, someone else's, released, or (an expired
        lease taken over meanwhile) blocked by another agent's active lease.
        """

    @abc.abstractmethod
    def release_lease(self, lease_id: str, agent_id: str, *, now: float | None = None) -> Lease:
        """Release the owner's lease; ``LeaseError`` when it is unknown or someone else's.

        Releasing a released lease again changes nothing and returns it as it is (so a
        retried release is harmless).
        """

    @abc.abstractmethod
    def release_stale_leases(
        self, *, now: float | None = None, idle_agent_seconds: float | None = None
    ) -> list[Lease]:
        """Force-release every expired lease and, with ``idle_agent_seconds``, every lease of
        an agent whose last heartbeat is older than that (agents that never sent one are left
        alone); the leases released, newest first."""

    @abc.abstractmethod
    def leases(
        self, *, active_only: bool = True, agent_id: str | None = None, now: float | None = None
    ) -> list[Lease]:
        """Leases newest first (``created_at``, ``id``); by default only those active now."""

    # --- reservation conflicts ---------------------------------------------------------------

    @abc.abstractmethod
    def record_conflicts(self, conflicts: Sequence[ConflictRecord]) -> None:
        """Store conflicts found outside a session (a git hook) in one write, idempotently by
        id (the first record of an id stays); inside a session they travel in its
        ``SessionBundle``."""

    @abc.abstractmethod
    def reservation_conflicts(
        self, *, session_id: str | None = None, limit: int | None = None
    ) -> list[ConflictRecord]:
        """Recorded conflicts newest first (``detected_at``, ``id``)."""

    # --- escalations (SPEC S4) ---------------------------------------------------------------
    #
    # Live state like leases: every call is one atomic step across processes, ``now`` defaults
    # to the clock read once the store is locked, and the rules (what may change, from which
    # state) live in ``escalation_rules``, so the modes cannot drift apart. Every mapping
    # stored (snapshot, details, response) is normalized to plain JSON first, so each mode
    # hands back the same data. Bad arguments raise ``ValueError`` before any write.

    @abc.abstractmethod
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
        """The open escalation of ``dedup_key`` with one more occurrence, ``(it, False)``; or,
        when none is open (a resolved or expired one does not count), a new one: state
        ``triggered``, level 1, one occurrence, ``(it, True)``."""

    @abc.abstractmethod
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
        """Compare-and-set: move the escalation to ``level``/``next_action_at``/``state`` (and
        ``details``, when given) only while it is still climbing (``triggered`` or
        ``escalated``) at ``expect_level`` with ``expect_next_action_at``; else ``None``.

        Of any number of callers expecting the same (level, deadline), exactly one wins: that
        is how a tick earns the right to deliver a level. ``state`` is ``triggered``,
        ``escalated`` or ``expired`` (which clears ``next_action_at``). Comparing the floats
        with ``==`` is safe: both sides are the value the store handed out.
        """

    @abc.abstractmethod
    def transition_escalation(
        self,
        escalation_id: str,
        *,
        state: EscalationState,
        by: str | None,
        from_states: Sequence[EscalationState],
        now: float | None = None,
    ) -> EscalationRecord | None:
        """Move the escalation to ``acknowledged`` (who and when; the climb stops),
        ``resolved`` (who and when) or ``expired``, each clearing ``next_action_at``; only
        from ``from_states``, else (or for an unknown id) ``None``. ``triggered`` is reached
        only from ``acknowledged`` (an acknowledgement that ran out): it is due at once
        (``next_action_at`` the time of the move), who acknowledged it last is kept."""

    @abc.abstractmethod
    def get_escalation(self, escalation_id: str) -> EscalationRecord | None: ...

    @abc.abstractmethod
    def escalations(
        self,
        *,
        states: Sequence[str] | None = None,
        path_id: str | None = None,
        check_id: str | None = None,
        limit: int | None = None,
    ) -> list[EscalationRecord]:
        """Escalations newest first (``created_at``, ``id``), optionally filtered."""

    @abc.abstractmethod
    def due_escalations(self, now: float) -> list[EscalationRecord]:
        """Climbing escalations whose ``next_action_at`` is at or before ``now``, the earliest
        deadline first (then ``created_at``, ``id``)."""

    @abc.abstractmethod
    def record_delivery(self, delivery: DeliveryRecord) -> None:
        """Log one delivery attempt; ``EscalationError`` when the escalation is unknown."""

    @abc.abstractmethod
    def deliveries(self, escalation_id: str | None = None) -> list[DeliveryRecord]:
        """Delivery attempts oldest first (``attempted_at``, then the order recorded)."""

    # --- waivers, decisions and silences ------------------------------------------------------
    #
    # Each record is checked first (``waiver_rules``: ``ValueError`` before any write) and
    # written once under its id: writing an id again changes nothing, so a sync or a retry is
    # harmless. Revoking a waiver and ending a silence early are the only changes; ``now``
    # defaults to the store's clock, and the first revocation (or end) stays.

    @abc.abstractmethod
    def add_waiver(self, record: WaiverRecord) -> None:
        """Store a waiver (its ``scope`` normalized to plain JSON)."""

    @abc.abstractmethod
    def waivers(
        self, active_at: float | None = None, check_id: str | None = None
    ) -> list[WaiverRecord]:
        """Waivers newest first (``granted_at``, ``id``); with ``active_at`` only those active
        then (``WaiverRecord.active``), with ``check_id`` only that check's."""

    @abc.abstractmethod
    def revoke_waiver(
        self, waiver_id: str, by: str, now: float | None = None
    ) -> WaiverRecord | None:
        """End a waiver now: the waiver as it is afterwards (a revoked one as it was), or
        ``None`` when there is no such waiver."""

    @abc.abstractmethod
    def record_decision(self, record: DecisionRecord) -> None:
        """Store an approval or rejection. Its escalation need not be in this store: a
        decision is kept for the record, also where a sync copies it without its escalation
        (escalations stay in the store that opened them)."""

    @abc.abstractmethod
    def decisions(self, escalation_id: str | None = None) -> list[DecisionRecord]:
        """Decisions newest first (``decided_at``, ``id``), optionally of one escalation."""

    @abc.abstractmethod
    def add_silence(self, record: SilenceRecord) -> None:
        """Store a silence."""

    @abc.abstractmethod
    def silences(self, active_at: float | None = None) -> list[SilenceRecord]:
        """Silences newest first (``created_at``, ``id``); with ``active_at`` only those active
        then (``SilenceRecord.active``)."""

    @abc.abstractmethod
    def expire_silence(
        self, silence_id: str, by: str, now: float | None = None
    ) -> SilenceRecord | None:
        """End a silence now: the silence as it is afterwards (an ended one as it was), or
        ``None`` when there is no such silence."""

    # --- the rest --------------------------------------------------------------------------

    @abc.abstractmethod
    def info(self) -> RuntimeInfo: ...

    def close(self) -> None:  # noqa: B027 - optional for modes holding nothing open
        """Release files and connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def record_of(message: Message | Envelope | Mapping[str, Any]) -> Message:
    """A message as the record a mode stores (``protocol.messages.as_record``); pydantic is
    imported only for what is not already a record."""
    if isinstance(message, Message):
        return message
    from ..protocol.messages import as_record

    return as_record(message)
