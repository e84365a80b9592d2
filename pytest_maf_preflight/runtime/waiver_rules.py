"""The rules of waivers, decisions and silences every mode applies the same way: what a record
may hold, checked before the store is touched, and how a revocation or an early end changes one.

A waiver, a decision and a silence are each written once under their id (writing the same id
again changes nothing, so a sync or a retry is harmless); only ``revoke_waiver`` and
``expire_silence`` change a stored one, and only once: the first revocation (or end) stays.
"""

from __future__ import annotations

import dataclasses

from .arguments import checked_text, checked_time, required_time
from .escalation_rules import plain_json
from .records import DecisionRecord, SilenceRecord, WaiverRecord

DECISIONS = ("approved", "rejected")


def _checked_span(start: float, end: float, start_name: str, end_name: str) -> tuple[float, float]:
    begin, until = required_time(start, start_name), required_time(end, end_name)
    if until <= begin:
        raise ValueError(f"{end_name} must be after {start_name}, got {until!r} <= {begin!r}")
    return begin, until


def _checked_end(at: float | None, by: str | None, at_name: str, by_name: str) -> float | None:
    """An early end is both who and when, or neither."""
    when = checked_time(at, at_name)
    checked_text(by, by_name, optional=True)
    if (when is None) != (by is None):
        raise ValueError(f"{at_name} and {by_name} go together: both set or neither")
    return when


def checked_waiver(record: WaiverRecord) -> WaiverRecord:
    """The waiver with its scope as plain JSON; ``ValueError`` for a malformed one."""
    if not isinstance(record, WaiverRecord):
        raise ValueError(f"a waiver must be a WaiverRecord, got {type(record).__name__}")
    checked_text(record.id, "id")
    checked_text(record.check_id, "check_id")
    checked_text(record.granted_by, "granted_by")
    checked_text(record.reason, "reason")
    checked_text(record.escalation_id, "escalation_id", optional=True)
    granted, expires = _checked_span(
        record.granted_at, record.expires_at, "granted_at", "expires_at"
    )
    revoked = _checked_end(record.revoked_at, record.revoked_by, "revoked_at", "revoked_by")
    return dataclasses.replace(
        record,
        granted_at=granted,
        expires_at=expires,
        revoked_at=revoked,
        scope=plain_json(record.scope, "scope"),
    )


def checked_decision(record: DecisionRecord) -> DecisionRecord:
    if not isinstance(record, DecisionRecord):
        raise ValueError(f"a decision must be a DecisionRecord, got {type(record).__name__}")
    checked_text(record.id, "id")
    checked_text(record.escalation_id, "escalation_id")
    if isinstance(record.level, bool) or not isinstance(record.level, int) or record.level < 1:
        raise ValueError(f"level must be a whole number of at least 1, got {record.level!r}")
    if record.decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}; got {record.decision!r}")
    checked_text(record.decided_by, "decided_by")
    checked_text(record.reason, "reason")
    return dataclasses.replace(record, decided_at=required_time(record.decided_at, "decided_at"))


def checked_silence(record: SilenceRecord) -> SilenceRecord:
    if not isinstance(record, SilenceRecord):
        raise ValueError(f"a silence must be a SilenceRecord, got {type(record).__name__}")
    checked_text(record.id, "id")
    checked_text(record.check_id, "check_id", optional=True)
    checked_text(record.path_id, "path_id", optional=True)
    if record.check_id is None and record.path_id is None:
        raise ValueError("a silence needs a check_id, a path_id or both")
    checked_text(record.created_by, "created_by")
    checked_text(record.reason, "reason")
    created, expires = _checked_span(
        record.created_at, record.expires_at, "created_at", "expires_at"
    )
    ended = _checked_end(record.expired_at, record.expired_by, "expired_at", "expired_by")
    return dataclasses.replace(record, created_at=created, expires_at=expires, expired_at=ended)


def checked_by(by: str) -> str:
    """Who revokes a waiver or ends a silence."""
    return checked_text(by, "by")  # type: ignore[no-any-return]


def revoked(record: WaiverRecord, by: str, at: float) -> WaiverRecord:
    """``record`` revoked by ``by`` at ``at``; a revoked one stays as it was."""
    if record.revoked_at is not None:
        return record
    return dataclasses.replace(record, revoked_at=at, revoked_by=by)


def ended(record: SilenceRecord, by: str, at: float) -> SilenceRecord:
    """``record`` ended by ``by`` at ``at``; an ended one stays as it was."""
    if record.expired_at is not None:
        return record
    return dataclasses.replace(record, expired_at=at, expired_by=by)
