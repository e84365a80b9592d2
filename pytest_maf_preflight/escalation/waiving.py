"""Waivers (SPEC S4): what one covers, granting one, and how long an approval holds.

A waiver covers one check id. For a reservation check it also names the leases and paths of the
conflicts in the check's latest recorded execution (its ``scope``), so that a conflict found
later, with another lease or on another path, still closes the gate; for any other check the
scope is empty. ``maf-preflight waive`` and an approval (``EscalationEngine.decide``) both grant
them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..runtime.records import EscalationRecord, WaiverRecord, new_id

if TYPE_CHECKING:
    from ..runtime.interface import RuntimeState

#: How long an approval waives its check when neither the command nor the step says.
DEFAULT_WAIVER_MINUTES = 60.0


def waiver_scope(runtime: RuntimeState, check_id: str) -> dict[str, Any]:
    """The leases and paths of the conflicts the check's latest execution recorded
    (``{"leases": [...], "paths": [...]}``, each sorted), or ``{}`` when it recorded none."""
    latest = runtime.executions(config_id=check_id, limit=1)
    details = latest[0].result.get("details") if latest else None
    conflicts = details.get("conflicts") if isinstance(details, Mapping) else None
    if not isinstance(conflicts, list) or not conflicts:
        return {}
    found = [c for c in conflicts if isinstance(c, Mapping)]
    leases = _texts(c.get("lease_id") for c in found)
    # A lease overlap names a second holder; waiving the overlap names both leases.
    leases |= _texts(
        c["other"].get("lease_id") for c in found if isinstance(c.get("other"), Mapping)
    )
    return {"leases": sorted(leases), "paths": sorted(_texts(c.get("path") for c in found))}


def _texts(values: Iterable[object]) -> set[str]:
    return {str(v) for v in values if v is not None and v != ""}


def grant_waiver(
    runtime: RuntimeState,
    *,
    check_id: str,
    by: str,
    reason: str,
    minutes: float,
    now: float,
    escalation_id: str | None = None,
) -> WaiverRecord:
    """Record a waiver of ``check_id`` from ``now`` for ``minutes``, scoped by
    :func:`waiver_scope`; the record stored."""
    waiver = WaiverRecord(
        id=new_id(),
        check_id=check_id,
        granted_by=by,
        reason=reason,
        granted_at=now,
        expires_at=now + minutes * 60,
        escalation_id=escalation_id,
        scope=waiver_scope(runtime, check_id),
    )
    runtime.add_waiver(waiver)
    return waiver


def escalation_waivers(runtime: RuntimeState, escalation: EscalationRecord) -> list[WaiverRecord]:
    """The waivers approvals of ``escalation`` granted, newest first."""
    if escalation.check_id is None:
        return []
    return [
        w for w in runtime.waivers(check_id=escalation.check_id) if w.escalation_id == escalation.id
    ]


def approval_end(runtime: RuntimeState, escalation: EscalationRecord) -> float | None:
    """When the approval holding ``escalation`` acknowledged ends: the end (expiry or
    revocation) of the latest waiver granted to it since it was acknowledged; ``None`` when no
    approval came since (an acknowledgement by hand, or by a read receipt)."""
    since = escalation.acknowledged_at
    for waiver in escalation_waivers(runtime, escalation):
        if since is not None and waiver.granted_at >= since:
            if waiver.revoked_at is not None:
                return min(waiver.revoked_at, waiver.expires_at)
            return waiver.expires_at
    return None
