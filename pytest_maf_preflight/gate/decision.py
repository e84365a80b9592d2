"""Whether the gate is open: the default rule, and the hook that may override it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from ..checks.base import CheckResult
from .waivers import until


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """``open`` False skips the rest of the session; ``blocking`` names what closed it;
    ``waived`` the failures an active waiver let through (each with who and until when)."""

    open: bool
    blocking: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    waived: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        if self.open:
            return "maf-preflight gate open"
        return "maf-preflight gate closed by: " + ", ".join(self.blocking)


def is_blocking(result: CheckResult, warnings_as_errors: bool) -> bool:
    return result.severity == "critical" or warnings_as_errors


def default_decision(
    results: Mapping[str, CheckResult], smoke_failures: Sequence[str], warnings_as_errors: bool
) -> GateDecision:
    """Closed by every failing blocking check and every failed ``maf_smoke`` test; a failure
    an active waiver covers (``CheckResult.waiver``, see ``gate.waivers``) closes nothing."""
    failing = [r for r in results.values() if not r.passed and r.waiver is None]
    blocking = [
        f"{r.check_id} ({r.status.value})" for r in failing if is_blocking(r, warnings_as_errors)
    ]
    blocking.extend(f"{nodeid} (maf_smoke failed)" for nodeid in smoke_failures)
    warned = tuple(r.check_id for r in failing if not is_blocking(r, warnings_as_errors))
    waived = tuple(
        f"{r.check_id} ({r.status.value}, waived by {r.waiver['granted_by']} until "
        f"{until(float(r.waiver['expires_at']))})"
        for r in results.values()
        if not r.passed and r.waiver is not None
    )
    return GateDecision(open=not blocking, blocking=tuple(blocking), warnings=warned, waived=waived)
