"""Waivers in the gate: which failing check an active waiver covers, and how that is shown.

A waiver names one check id. Any failure of a check (failed, timeout, error) is covered whole,
except a reservation check's: that one is covered only when it failed on conflicts (an error
means it could not look, which hides what it would have found) and every conflict names only
leases and paths of the waiver's ``scope``, the conflicts it was granted for. A conflict with
another lease, or on another path, still closes the gate.

The controller reads the active waivers once, as the session starts (``GateController``), and
marks the results they cover (``CheckResult.waiver``) before the gate decides; the mark travels
with the result to xdist workers, the report and the records.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..checks.base import CheckResult, CheckStatus
from ..runtime.records import WaiverRecord

RESERVATION_TYPES = "reservation_check/"


def covers(waiver: WaiverRecord, result: CheckResult) -> bool:
    """Whether ``waiver`` lets ``result``'s failure through (activity aside)."""
    if result.passed or waiver.check_id != result.check_id:
        return False
    if not result.test_type.startswith(RESERVATION_TYPES):
        return True
    conflicts = result.details.get("conflicts")
    if result.status is not CheckStatus.FAILED or not isinstance(conflicts, list) or not conflicts:
        return False
    leases, paths = _named(waiver.scope.get("leases")), _named(waiver.scope.get("paths"))
    return all(_within(conflict, leases, paths) for conflict in conflicts)


def _named(values: Any) -> set[str]:
    return {str(v) for v in values} if isinstance(values, list) else set()


def _within(conflict: Any, leases: set[str], paths: set[str]) -> bool:
    """Whether every lease and the path ``conflict`` names are in the scope; a conflict that
    names neither cannot be told from a new one, so it is never covered."""
    if not isinstance(conflict, Mapping):
        return False
    other = conflict.get("other")
    named = [
        conflict.get("lease_id"),
        other.get("lease_id") if isinstance(other, Mapping) else None,
    ]
    held = [str(lease) for lease in named if lease]
    path = conflict.get("path")
    if not held and not path:
        return False
    return all(lease in leases for lease in held) and (not path or str(path) in paths)


def summary(waiver: WaiverRecord) -> dict[str, Any]:
    """What a covered result carries of its waiver (plain data: it crosses to xdist workers
    and into the JSON report and the execution's record)."""
    return {
        "id": waiver.id,
        "granted_by": waiver.granted_by,
        "reason": waiver.reason,
        "granted_at": waiver.granted_at,
        "expires_at": waiver.expires_at,
        "escalation_id": waiver.escalation_id,
    }


def apply_waivers(
    results: Iterable[CheckResult], waivers: Sequence[WaiverRecord], at: float
) -> list[CheckResult]:
    """``results``, each failure an active waiver covers marked with the newest such waiver
    (``waivers`` come newest first, as the runtime lists them)."""
    out = []
    for result in results:
        found = next((w for w in waivers if w.active(at) and covers(w, result)), None)
        out.append(result if found is None else dataclasses.replace(result, waiver=summary(found)))
    return out


def until(at: float) -> str:
    """A waiver's end as the reports show it (UTC)."""
    moment = datetime.datetime.fromtimestamp(at, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def described(waiver: Mapping[str, Any]) -> str:
    """``waived by lead until 2025-01-01T12:00:00Z (waiver 0123456789ab): the reason``."""
    return (
        f"waived by {waiver['granted_by']} until {until(float(waiver['expires_at']))} "
        f"(waiver {str(waiver['id'])[:12]}): {waiver['reason']}"
    )
