"""The ``memory`` runtime: for tests and dry runs; nothing outlives the process."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .agent_fields import agent_record, checked_agent
from .arguments import at_or_now, checked_limit, checked_time, required_time
from .escalation_rules import (
    EscalationClaim,
    EscalationOpening,
    EscalationTransition,
    another_occurrence,
    checked_delivery,
    open_for_key,
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
from .queries import (
    deliveries_in_order,
    due_in_order,
    filter_escalations,
    filter_executions,
    filter_leases,
    filter_silences,
    filter_waivers,
    messages_in_order,
    newest_check_execution,
    newest_conflicts,
    newest_decisions,
    newest_definitions,
    newest_sessions,
    newest_snapshots,
)
from .recent_outcomes import DEFAULT_PER_CHECK, checked_ids, checked_per_check, outcomes_of
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
    new_id,
    now,
)
from .waiver_rules import (
    checked_by,
    checked_decision,
    checked_silence,
    checked_waiver,
    ended,
    revoked,
)


class MemoryRuntime(RuntimeState):
    mode = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionRecord] = {}
        self._executions: dict[str, ExecutionRecord] = {}
        self._snapshots: dict[tuple[str, str], ConfigSnapshot] = {}
        self._smoke_tests: dict[tuple[str, str], SmokeTestDefinition] = {}
        self._escalation_paths: dict[tuple[str, str], EscalationPathDefinition] = {}
        self._messages: dict[str, Message] = {}
        self._agents: dict[str, AgentRecord] = {}
        self._leases: dict[str, Lease] = {}
        self._conflicts: dict[str, ConflictRecord] = {}
        #: The last fencing token handed out.
        self._fencing = 0
        self._escalations: dict[str, EscalationRecord] = {}
        self._deliveries: list[DeliveryRecord] = []
        self._waivers: dict[str, WaiverRecord] = {}
        self._decisions: dict[str, DecisionRecord] = {}
        self._silences: dict[str, SilenceRecord] = {}

    def record_session(self, bundle: SessionBundle) -> None:
        with self._lock:
            self._sessions.setdefault(bundle.session.id, bundle.session)
            for execution in bundle.executions:
                self._executions.setdefault(execution.id, execution)
            for snapshot in bundle.snapshots:
                self._snapshots.setdefault((snapshot.config_id, snapshot.content_hash), snapshot)
            for message in bundle.messages:
                self._messages.setdefault(message.id, message)
            for conflict in bundle.conflicts:
                self._conflicts.setdefault(conflict.id, conflict)
            for smoke in bundle.smoke_tests:
                self._smoke_tests.setdefault((smoke.nodeid, smoke.content_hash), smoke)
            for path in bundle.escalation_paths:
                self._escalation_paths.setdefault((path.path_id, path.content_hash), path)

    def sessions(
        self, limit: int | None = None, *, agent_id: str | None = None
    ) -> list[SessionRecord]:
        with self._lock:
            return newest_sessions(self._sessions.values(), limit, agent_id)

    def get_session(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            return self._sessions.get(session_id)

    def executions(
        self,
        *,
        config_id: str | None = None,
        status: str | None = None,
        session_id: str | None = None,
        limit: int | None = None,
    ) -> list[ExecutionRecord]:
        with self._lock:
            rows = list(self._executions.values())
        return filter_executions(
            rows, config_id=config_id, status=status, session_id=session_id, limit=limit
        )

    def latest_check_execution(
        self, config_id: str, *, agent_id: str, environment: str
    ) -> ExecutionRecord | None:
        with self._lock:
            return newest_check_execution(
                self._executions.values(),
                self._sessions,
                config_id=config_id,
                agent_id=agent_id,
                environment=environment,
            )

    def check_stats(
        self, *, since: float | None = None, agent_id: str | None = None
    ) -> list[CheckStats]:
        since = checked_time(since, "since")
        with self._lock:
            rows = list(self._executions.values())
        from .check_stats import stats_of  # for stats and pages only

        return stats_of(rows, since=since, agent_id=agent_id)

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
        with self._lock:
            rows = list(self._executions.values())
        return outcomes_of(
            rows, per_check=per_check, since=since, agent_id=agent_id, config_ids=wanted
        )

    def config_snapshots(self, config_id: str | None = None) -> list[ConfigSnapshot]:
        with self._lock:
            return newest_snapshots(self._snapshots.values(), config_id)

    def smoke_tests(self, nodeid: str | None = None) -> list[SmokeTestDefinition]:
        with self._lock:
            return newest_definitions(self._smoke_tests.values(), "nodeid", nodeid)

    def escalation_paths(self, path_id: str | None = None) -> list[EscalationPathDefinition]:
        with self._lock:
            return newest_definitions(self._escalation_paths.values(), "path_id", path_id)

    def _store_messages(self, records: Sequence[Message]) -> None:
        with self._lock:
            for message in records:
                self._messages.setdefault(message.id, message)

    def dequeue(self, recipient: str | None = None, limit: int = 1) -> list[Message]:
        with self._lock:
            queued = messages_in_order(self._messages.values(), "queued", recipient)[
                : checked_limit(limit)
            ]
            out = []
            for message in queued:
                delivered = dataclasses.replace(message, status="delivered")
                self._messages[message.id] = delivered
                out.append(delivered)
            return out

    def ack(self, message_id: str) -> bool:
        with self._lock:
            message = self._messages.get(message_id)
            if message is None:
                return False
            self._messages[message_id] = dataclasses.replace(message, status="acked")
            return True

    def messages(
        self,
        status: str | None = None,
        *,
        types: Sequence[str] | None = None,
        agent_id: str | None = None,
        since: float | None = None,
    ) -> list[Message]:
        with self._lock:
            return messages_in_order(
                self._messages.values(), status, types=types, agent_id=agent_id, since=since
            )

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
        record = agent_record(
            agent_id,
            now() if at is None else at,
            details,
            agent_type=agent_type,
            capabilities=capabilities,
            status=status,
        )
        with self._lock:
            self._agents[agent_id] = record
        return record

    def agents(self) -> list[AgentRecord]:
        with self._lock:
            return sorted(self._agents.values(), key=lambda a: a.id)

    # --- leases ----------------------------------------------------------------------------

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
        with self._lock:
            at = at_or_now(request.now)
            blocking = blocking_leases(
                self._leases.values(), request.agent_id, request.patterns, request.exclusive, at
            )
            if blocking:
                return LeaseGrant(granted=(), conflicts=tuple(blocking))
            granted = request.leases(ids, self._fencing + 1, at)
            self._fencing += len(granted)
            for lease in granted:
                self._leases[lease.id] = lease
        return LeaseGrant(granted=granted, conflicts=())

    def renew_lease(
        self, lease_id: str, agent_id: str, *, ttl: float, now: float | None = None
    ) -> Lease:
        agent_id, ttl, given = checked_agent(agent_id), checked_ttl(ttl), checked_time(now)
        with self._lock:
            lease = owned_lease(self._leases.get(lease_id), lease_id, agent_id)
            renewed = renewed_lease(
                lease, agent_id, ttl, at_or_now(given), self._fencing + 1, self._leases.values()
            )
            self._fencing += 1
            self._leases[lease_id] = renewed
        return renewed

    def release_lease(self, lease_id: str, agent_id: str, *, now: float | None = None) -> Lease:
        agent_id, given = checked_agent(agent_id), checked_time(now)
        with self._lock:
            lease = owned_lease(self._leases.get(lease_id), lease_id, agent_id)
            if lease.released_at is not None:
                return lease
            released = dataclasses.replace(lease, released_at=at_or_now(given))
            self._leases[lease_id] = released
        return released

    def release_stale_leases(
        self, *, now: float | None = None, idle_agent_seconds: float | None = None
    ) -> list[Lease]:
        given, idle = checked_time(now), checked_idle(idle_agent_seconds)
        with self._lock:
            at = at_or_now(given)
            stale = stale_leases(self._leases.values(), self._agents.values(), at, idle)
            out = [dataclasses.replace(lease, released_at=at) for lease in stale]
            for lease in out:
                self._leases[lease.id] = lease
        return out

    def leases(
        self, *, active_only: bool = True, agent_id: str | None = None, now: float | None = None
    ) -> list[Lease]:
        given = checked_time(now)
        with self._lock:
            return filter_leases(
                self._leases.values(),
                active_only=active_only,
                agent_id=agent_id,
                at=at_or_now(given),
            )

    # --- reservation conflicts -------------------------------------------------------------

    def record_conflicts(self, conflicts: Sequence[ConflictRecord]) -> None:
        with self._lock:
            for conflict in conflicts:
                self._conflicts.setdefault(conflict.id, conflict)

    def reservation_conflicts(
        self, *, session_id: str | None = None, limit: int | None = None
    ) -> list[ConflictRecord]:
        with self._lock:
            return newest_conflicts(self._conflicts.values(), session_id, limit)

    # --- escalations -----------------------------------------------------------------------

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
        with self._lock:
            at = at_or_now(opening.now)
            current = open_for_key(self._escalations.values(), opening.dedup_key)
            if current is not None:
                record, created = another_occurrence(current, at), False
            else:
                record, created = opening.record(escalation_id, at), True
            self._escalations[record.id] = record
        return record, created

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
        with self._lock:
            claimed = claim.apply(self._escalations.get(escalation_id), at_or_now(claim.now))
            if claimed is not None:
                self._escalations[escalation_id] = claimed
        return claimed

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
        with self._lock:
            moved = move.apply(self._escalations.get(escalation_id), at_or_now(move.now))
            if moved is not None:
                self._escalations[escalation_id] = moved
        return moved

    def get_escalation(self, escalation_id: str) -> EscalationRecord | None:
        with self._lock:
            return self._escalations.get(escalation_id)

    def escalations(
        self,
        *,
        states: Sequence[str] | None = None,
        path_id: str | None = None,
        check_id: str | None = None,
        limit: int | None = None,
    ) -> list[EscalationRecord]:
        with self._lock:
            rows = list(self._escalations.values())
        return filter_escalations(
            rows, states=states, path_id=path_id, check_id=check_id, limit=limit
        )

    def due_escalations(self, now: float) -> list[EscalationRecord]:
        at = required_time(now)
        with self._lock:
            return due_in_order(self._escalations.values(), at)

    def record_delivery(self, delivery: DeliveryRecord) -> None:
        delivery = checked_delivery(delivery)
        with self._lock:
            if delivery.escalation_id not in self._escalations:
                raise unknown_escalation(delivery.escalation_id)
            self._deliveries.append(delivery)

    def deliveries(self, escalation_id: str | None = None) -> list[DeliveryRecord]:
        with self._lock:
            return deliveries_in_order(self._deliveries, escalation_id)

    # --- waivers, decisions and silences ------------------------------------------------------

    def add_waiver(self, record: WaiverRecord) -> None:
        record = checked_waiver(record)
        with self._lock:
            self._waivers.setdefault(record.id, record)

    def waivers(
        self, active_at: float | None = None, check_id: str | None = None
    ) -> list[WaiverRecord]:
        at = checked_time(active_at, "active_at")
        with self._lock:
            return filter_waivers(self._waivers.values(), at, check_id)

    def revoke_waiver(
        self, waiver_id: str, by: str, now: float | None = None
    ) -> WaiverRecord | None:
        by, given = checked_by(by), checked_time(now)
        with self._lock:
            current = self._waivers.get(waiver_id)
            if current is None:
                return None
            self._waivers[waiver_id] = changed = revoked(current, by, at_or_now(given))
        return changed

    def record_decision(self, record: DecisionRecord) -> None:
        record = checked_decision(record)
        with self._lock:
            self._decisions.setdefault(record.id, record)

    def decisions(self, escalation_id: str | None = None) -> list[DecisionRecord]:
        with self._lock:
            return newest_decisions(self._decisions.values(), escalation_id)

    def add_silence(self, record: SilenceRecord) -> None:
        record = checked_silence(record)
        with self._lock:
            self._silences.setdefault(record.id, record)

    def silences(self, active_at: float | None = None) -> list[SilenceRecord]:
        at = checked_time(active_at, "active_at")
        with self._lock:
            return filter_silences(self._silences.values(), at)

    def expire_silence(
        self, silence_id: str, by: str, now: float | None = None
    ) -> SilenceRecord | None:
        by, given = checked_by(by), checked_time(now)
        with self._lock:
            current = self._silences.get(silence_id)
            if current is None:
                return None
            self._silences[silence_id] = changed = ended(current, by, at_or_now(given))
        return changed

    # --- the rest --------------------------------------------------------------------------

    def info(self) -> RuntimeInfo:
        with self._lock:
            counts = {
                "sessions": len(self._sessions),
                "executions": len(self._executions),
                "config_snapshots": len(self._snapshots),
                "messages": len(self._messages),
                "agents": len(self._agents),
                "leases": len(self._leases),
                "reservation_conflicts": len(self._conflicts),
                "escalations": len(self._escalations),
                "escalation_deliveries": len(self._deliveries),
                "smoke_tests": len(self._smoke_tests),
                "escalation_paths": len(self._escalation_paths),
                "waivers": len(self._waivers),
                "escalation_decisions": len(self._decisions),
                "silences": len(self._silences),
            }
        return RuntimeInfo(mode=self.mode, location="(memory)", schema_version=None, counts=counts)
