"""The escalation rules (SPEC S4) every mode applies the same way: which states a call may
move an escalation to, from which, the one open escalation of a dedup key, and the checks of
every argument and delivery, all before the store is touched.

Every mapping stored (snapshot, details, response) is normalized to plain JSON here first, so
each mode hands back the same data.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..escalation.errors import EscalationError
from .arguments import checked_text, checked_time, required_time
from .records import (
    CLIMBING_STATES,
    OPEN_STATES,
    DeliveryRecord,
    EscalationRecord,
    EscalationState,
)

ESCALATION_STATES: tuple[EscalationState, ...] = (
    "triggered",
    "acknowledged",
    "escalated",
    "resolved",
    "expired",
)
#: Where ``claim_escalation`` may move an escalation (the by/at states go through
#: ``transition_escalation``).
CLAIM_STATES: tuple[EscalationState, ...] = ("triggered", "escalated", "expired")
#: Where ``transition_escalation`` may move one. Never from a closed state back into an open
#: one: that could make two escalations of one dedup key open at once. ``triggered`` is the one
#: open state it moves to, and only from ``acknowledged`` (an acknowledgement that ran out).
TRANSITION_STATES: tuple[EscalationState, ...] = (
    "acknowledged",
    "resolved",
    "expired",
    "triggered",
)
#: ``silenced``: not sent, because a silence covered the escalation when it was due.
DELIVERY_STATUSES = ("delivered", "failed", "fallback", "silenced")

_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)


def plain_json(value: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``value`` as plain JSON data (what every mode stores and hands back).

    Values that are not JSON (a Path, a datetime) become their text, as in the SQLite mode's
    other records; NaN, infinities and cycles are refused.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a mapping, got {type(value).__name__}")
    try:
        out = json.loads(_JSON.encode(dict(value)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} cannot be stored as JSON: {exc}") from exc
    return dict(out)


def _checked_level(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _checked_state(value: Any, allowed: Sequence[str], name: str = "state") -> EscalationState:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value  # type: ignore[no-any-return]


def checked_states(
    states: Sequence[str] | None, name: str = "states"
) -> tuple[EscalationState, ...] | None:
    if states is None:
        return None
    if isinstance(states, (str, bytes)):
        # One string would otherwise be matched one character at a time.
        raise ValueError(f"{name} must be a list of states, not one string: {states!r}")
    return tuple(_checked_state(s, ESCALATION_STATES, f"each of {name}") for s in states)


@dataclasses.dataclass(frozen=True)
class EscalationOpening:
    """An ``open_escalation``'s arguments, checked and normalized before the store is touched."""

    path_id: str
    dedup_key: str
    check_id: str | None
    failure_class: str | None
    path_snapshot: dict[str, Any]
    next_action_at: float | None
    details: dict[str, Any]
    now: float | None

    @classmethod
    def check(
        cls,
        *,
        path_id: str,
        dedup_key: str,
        check_id: str | None,
        failure_class: str | None,
        path_snapshot: Mapping[str, Any],
        next_action_at: float | None,
        details: Mapping[str, Any],
        now: float | None,
    ) -> EscalationOpening:
        return cls(
            path_id=checked_text(path_id, "path_id", allow_nul=True),
            dedup_key=checked_text(dedup_key, "dedup_key", allow_nul=True),
            check_id=checked_text(check_id, "check_id", optional=True, allow_nul=True),
            failure_class=checked_text(
                failure_class, "failure_class", optional=True, allow_nul=True
            ),
            path_snapshot=plain_json(path_snapshot, "path_snapshot"),
            next_action_at=checked_time(next_action_at, "next_action_at"),
            details=plain_json(details, "details"),
            now=checked_time(now),
        )

    def record(self, escalation_id: str, at: float) -> EscalationRecord:
        return EscalationRecord(
            id=escalation_id,
            path_id=self.path_id,
            dedup_key=self.dedup_key,
            check_id=self.check_id,
            failure_class=self.failure_class,
            state="triggered",
            level=1,
            occurrences=1,
            path_snapshot=self.path_snapshot,
            created_at=at,
            updated_at=at,
            next_action_at=self.next_action_at,
            details=self.details,
        )


def open_for_key(rows: Iterable[EscalationRecord], dedup_key: str) -> EscalationRecord | None:
    """The open escalation of ``dedup_key`` (the oldest, should a store ever hold two)."""
    found = [r for r in rows if r.dedup_key == dedup_key and r.state in OPEN_STATES]
    return min(found, key=lambda r: (r.created_at, r.id)) if found else None


def another_occurrence(record: EscalationRecord, at: float) -> EscalationRecord:
    return dataclasses.replace(record, occurrences=record.occurrences + 1, updated_at=at)


@dataclasses.dataclass(frozen=True)
class EscalationClaim:
    """A ``claim_escalation``'s arguments, checked."""

    expect_level: int
    expect_next_action_at: float | None
    level: int
    next_action_at: float | None
    state: EscalationState
    details: dict[str, Any] | None
    now: float | None

    @classmethod
    def check(
        cls,
        *,
        expect_level: int,
        expect_next_action_at: float | None,
        level: int,
        next_action_at: float | None,
        state: EscalationState,
        details: Mapping[str, Any] | None,
        now: float | None,
    ) -> EscalationClaim:
        state = _checked_state(state, CLAIM_STATES)
        next_at = checked_time(next_action_at, "next_action_at")
        return cls(
            expect_level=_checked_level(expect_level, "expect_level"),
            expect_next_action_at=checked_time(expect_next_action_at, "expect_next_action_at"),
            level=_checked_level(level, "level"),
            next_action_at=None if state == "expired" else next_at,
            state=state,
            details=None if details is None else plain_json(details, "details"),
            now=checked_time(now),
        )

    def apply(self, record: EscalationRecord | None, at: float) -> EscalationRecord | None:
        """The claimed record, or ``None`` when ``record`` is not what the claimer expected."""
        if (
            record is None
            or record.state not in CLIMBING_STATES
            or record.level != self.expect_level
            or record.next_action_at != self.expect_next_action_at
        ):
            return None
        return dataclasses.replace(
            record,
            level=self.level,
            next_action_at=self.next_action_at,
            state=self.state,
            details=record.details if self.details is None else self.details,
            updated_at=at,
        )


@dataclasses.dataclass(frozen=True)
class EscalationTransition:
    """A ``transition_escalation``'s arguments, checked."""

    state: EscalationState
    by: str | None
    from_states: tuple[EscalationState, ...]
    now: float | None

    @classmethod
    def check(
        cls,
        *,
        state: EscalationState,
        by: str | None,
        from_states: Sequence[EscalationState],
        now: float | None,
    ) -> EscalationTransition:
        froms = checked_states(from_states, "from_states")
        if not froms:
            raise ValueError("from_states must name at least one state")
        if state == "triggered" and set(froms) != {"acknowledged"}:
            raise ValueError(
                f"state triggered is reached only from acknowledged; got from_states {froms!r}"
            )
        return cls(
            state=_checked_state(state, TRANSITION_STATES),
            by=checked_text(by, "by", optional=True, allow_nul=True),
            from_states=froms,
            now=checked_time(now),
        )

    def apply(self, record: EscalationRecord | None, at: float) -> EscalationRecord | None:
        if record is None or record.state not in self.from_states:
            return None
        # Back to triggered, it is due at once: the caller claims it to deliver its level again.
        due = at if self.state == "triggered" else None
        changed = dataclasses.replace(record, state=self.state, next_action_at=due, updated_at=at)
        if self.state == "acknowledged":
            return dataclasses.replace(changed, acknowledged_by=self.by, acknowledged_at=at)
        if self.state == "resolved":
            return dataclasses.replace(changed, resolved_by=self.by, resolved_at=at)
        return changed


def checked_delivery(delivery: DeliveryRecord) -> DeliveryRecord:
    """The delivery with its response as plain JSON; ``ValueError`` for a malformed one."""
    if not isinstance(delivery, DeliveryRecord):
        raise ValueError(f"a delivery must be a DeliveryRecord, got {type(delivery).__name__}")
    checked_text(delivery.escalation_id, "escalation_id", allow_nul=True)
    _checked_level(delivery.level, "level")
    checked_text(delivery.channel, "channel", allow_nul=True)
    checked_text(delivery.target, "target", allow_nul=True)
    _checked_level(delivery.attempt, "attempt")
    if delivery.status not in DELIVERY_STATUSES:
        raise ValueError(
            f"delivery status must be one of {', '.join(DELIVERY_STATUSES)}; "
            f"got {delivery.status!r}"
        )
    if delivery.error is not None and not isinstance(delivery.error, str):
        raise ValueError(f"error must be a string or None, got {delivery.error!r}")
    at = required_time(delivery.attempted_at, "attempted_at")
    return dataclasses.replace(
        delivery, response=plain_json(delivery.response, "response"), attempted_at=at
    )


def unknown_escalation(escalation_id: str) -> EscalationError:
    return EscalationError(f"no escalation {escalation_id!r} to record a delivery for")
