"""Silences at delivery (SPEC S4): which silence covers an escalation, the record a suppressed
delivery leaves, and the mark that brings the escalation back when the silence is over.

A silenced escalation still opens and climbs; each request that would have gone out is recorded
with status ``silenced`` instead. Its ``details`` then carry a mark (``MARK``: the level, that
level's own deadline and the silence) and its ``next_action_at`` is the earlier of that
deadline and the silence's end, so the tick that finds it due at the silence's end delivers
the level it is at (the levels it climbed through while silenced are not sent afterwards).
A silence ended early (``silence expire``) is looked for by the next tick, among the
escalations it covered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..runtime.records import DeliveryRecord, EscalationRecord, SilenceRecord

MARK = "silenced"


def covering(
    silences: Sequence[SilenceRecord], path_id: str, check_id: str | None
) -> SilenceRecord | None:
    """The silence among ``silences`` (active ones) covering an escalation of ``check_id`` on
    ``path_id``: the one lasting longest, or ``None``."""
    found = [s for s in silences if s.covers(path_id, check_id)]
    return max(found, key=lambda s: (s.expires_at, s.id)) if found else None


def silenced_delivery(
    escalation: EscalationRecord,
    *,
    level: int,
    target: str,
    channel: str,
    silence: SilenceRecord,
    at: float,
) -> DeliveryRecord:
    return DeliveryRecord(
        escalation_id=escalation.id,
        level=level,
        channel=channel,
        target=target,
        attempt=1,
        status="silenced",
        error=None,
        response={"silence_id": silence.id, "silenced_until": silence.expires_at},
        attempted_at=at,
    )


def marked(
    details: Mapping[str, Any], level: int, deadline: float | None, silence: SilenceRecord | None
) -> dict[str, Any]:
    """``details`` with the mark of a silenced ``level`` (``silence`` None: without a mark)."""
    out = {key: value for key, value in details.items() if key != MARK}
    if silence is not None:
        out[MARK] = {"level": level, "deadline": deadline, "silence_id": silence.id}
    return out


def waiting(escalation: EscalationRecord, now: float) -> bool:
    """Whether ``escalation`` waits at a silenced level whose own deadline has not come: when
    due, it is delivered (the silence is over) or put back to sleep, not climbed."""
    mark = escalation.details.get(MARK)
    if not isinstance(mark, Mapping) or mark.get("level") != escalation.level:
        return False
    deadline = mark.get("deadline")
    return not isinstance(deadline, (int, float)) or now < deadline


def deadline_of(escalation: EscalationRecord) -> float | None:
    """The marked level's own deadline (``None``: it has none)."""
    mark = escalation.details.get(MARK)
    deadline = mark.get("deadline") if isinstance(mark, Mapping) else None
    return float(deadline) if isinstance(deadline, (int, float)) else None


def wake_time(deadline: float | None, silence: SilenceRecord | None) -> float | None:
    """When a level scheduled for ``deadline`` is next looked at: at the silence's end, if it
    comes first."""
    if silence is None:
        return deadline
    return silence.expires_at if deadline is None else min(deadline, silence.expires_at)


def ended_early(silences: Sequence[SilenceRecord], now: float) -> list[SilenceRecord]:
    """The silences ended by hand whose own end is still to come: the escalations they
    covered are scheduled for that end, so the tick must look for them."""
    return [s for s in silences if s.expired_at is not None and s.expired_at <= now < s.expires_at]
