"""The query rules for the modes that hold their records in Python (memory, json): which
records each query returns, in which order. The SQL modes say the same in SQL
(:mod:`.sql_store`); ``tests/test_runtime_contract.py`` holds every mode to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .arguments import checked_limit
from .escalation_rules import checked_states
from .records import (
    CLIMBING_STATES,
    ConfigSnapshot,
    ConflictRecord,
    DecisionRecord,
    DeliveryRecord,
    EscalationRecord,
    ExecutionRecord,
    Lease,
    Message,
    SessionRecord,
    SilenceRecord,
    WaiverRecord,
)


def newest_sessions(
    rows: Iterable[SessionRecord], limit: int | None, agent_id: str | None = None
) -> list[SessionRecord]:
    out = sorted(
        (s for s in rows if agent_id is None or s.agent_id == agent_id),
        key=lambda s: (s.started_at, s.id),
        reverse=True,
    )
    return out[: checked_limit(limit)]


def newest_snapshots(rows: Iterable[ConfigSnapshot], config_id: str | None) -> list[ConfigSnapshot]:
    return sorted(
        (s for s in rows if config_id is None or s.config_id == config_id),
        key=lambda s: (s.recorded_at, s.content_hash),
        reverse=True,
    )


def messages_in_order(
    rows: Iterable[Message],
    status: str | None = None,
    recipient: str | None = None,
    *,
    types: Sequence[str] | None = None,
    agent_id: str | None = None,
    since: float | None = None,
) -> list[Message]:
    """Oldest first, optionally only one status, one recipient, some types, one sender, or
    created at or after ``since``."""
    return sorted(
        (
            m
            for m in rows
            if (status is None or m.status == status)
            and (recipient is None or m.recipient == recipient)
            and (types is None or m.type in types)
            and (agent_id is None or m.agent_id == agent_id)
            and (since is None or m.created_at >= since)
        ),
        key=lambda m: (m.created_at, m.id),
    )


def newest_definitions(rows: Iterable[Any], key: str, wanted: str | None) -> list[Any]:
    """Smoke test or escalation path definitions (``key``: the id field), newest first."""
    return sorted(
        (d for d in rows if wanted is None or getattr(d, key) == wanted),
        key=lambda d: (d.recorded_at, d.content_hash),
        reverse=True,
    )


def filter_executions(
    rows: Sequence[ExecutionRecord],
    *,
    config_id: str | None,
    status: str | None,
    session_id: str | None,
    limit: int | None,
) -> list[ExecutionRecord]:
    out = [
        r
        for r in rows
        if (config_id is None or r.config_id == config_id)
        and (status is None or r.status == status)
        and (session_id is None or r.session_id == session_id)
    ]
    out.sort(key=lambda r: (r.started_at, r.id), reverse=True)
    return out[: checked_limit(limit)]


def newest_check_execution(
    rows: Iterable[ExecutionRecord],
    sessions: Mapping[str, SessionRecord],
    *,
    config_id: str,
    agent_id: str,
    environment: str,
) -> ExecutionRecord | None:
    """The newest check execution of ``config_id`` by ``agent_id`` in a session of
    ``environment`` (``sessions``: by id), or None."""

    def matches(r: ExecutionRecord) -> bool:
        session = sessions.get(r.session_id)
        return (
            r.config_id == config_id
            and r.agent_id == agent_id
            and r.kind == "check"
            and session is not None
            and session.environment == environment
        )

    return max(filter(matches, rows), key=lambda r: (r.started_at, r.id), default=None)


def newest_leases(rows: Iterable[Lease]) -> list[Lease]:
    return sorted(rows, key=lambda lease: (lease.created_at, lease.id), reverse=True)


def filter_leases(
    rows: Iterable[Lease], *, active_only: bool, agent_id: str | None, at: float
) -> list[Lease]:
    return newest_leases(
        lease
        for lease in rows
        if (not active_only or lease.active(at))
        and (agent_id is None or lease.agent_id == agent_id)
    )


def newest_conflicts(
    rows: Iterable[ConflictRecord], session_id: str | None, limit: int | None
) -> list[ConflictRecord]:
    out = sorted(
        (c for c in rows if session_id is None or c.session_id == session_id),
        key=lambda c: (c.detected_at, c.id),
        reverse=True,
    )
    return out[: checked_limit(limit)]


def filter_escalations(
    rows: Iterable[EscalationRecord],
    *,
    states: Sequence[str] | None,
    path_id: str | None,
    check_id: str | None,
    limit: int | None,
) -> list[EscalationRecord]:
    wanted = checked_states(states)
    checked_limit(limit)
    out = sorted(
        (
            r
            for r in rows
            if (wanted is None or r.state in wanted)
            and (path_id is None or r.path_id == path_id)
            and (check_id is None or r.check_id == check_id)
        ),
        key=lambda r: (r.created_at, r.id),
        reverse=True,
    )
    return out[:limit]


def due_in_order(rows: Iterable[EscalationRecord], at: float) -> list[EscalationRecord]:
    due = [
        r
        for r in rows
        if r.state in CLIMBING_STATES and r.next_action_at is not None and r.next_action_at <= at
    ]
    return sorted(due, key=lambda r: (r.next_action_at, r.created_at, r.id))


def deliveries_in_order(
    rows: Iterable[DeliveryRecord], escalation_id: str | None
) -> list[DeliveryRecord]:
    """Oldest first; ``sorted`` is stable, so equal times keep the order they were recorded."""
    return sorted(
        (d for d in rows if escalation_id is None or d.escalation_id == escalation_id),
        key=lambda d: d.attempted_at,
    )


def filter_waivers(
    rows: Iterable[WaiverRecord], active_at: float | None, check_id: str | None
) -> list[WaiverRecord]:
    """Newest first (``granted_at``, ``id``), optionally only those active at ``active_at``,
    or of one check."""
    return sorted(
        (
            w
            for w in rows
            if (active_at is None or w.active(active_at))
            and (check_id is None or w.check_id == check_id)
        ),
        key=lambda w: (w.granted_at, w.id),
        reverse=True,
    )


def newest_decisions(
    rows: Iterable[DecisionRecord], escalation_id: str | None
) -> list[DecisionRecord]:
    return sorted(
        (d for d in rows if escalation_id is None or d.escalation_id == escalation_id),
        key=lambda d: (d.decided_at, d.id),
        reverse=True,
    )


def filter_silences(rows: Iterable[SilenceRecord], active_at: float | None) -> list[SilenceRecord]:
    """Newest first (``created_at``, ``id``), optionally only those active at ``active_at``."""
    return sorted(
        (s for s in rows if active_at is None or s.active(active_at)),
        key=lambda s: (s.created_at, s.id),
        reverse=True,
    )
