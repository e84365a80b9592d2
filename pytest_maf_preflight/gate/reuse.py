"""Reusing a recent pass (``reuse_passed_for_seconds``): a check that passed recently, as the
runtime recorded it, is reported as passed, marked as reused, instead of running again.

A pass is reused only when all of this holds:

- the check's config has ``reuse_passed_for_seconds`` above 0 (``reservation_check`` configs
  and ``integration`` groups cannot have it: the loader refuses it there);
- the run does not say ``--maf-no-reuse`` (ini ``maf_no_reuse``, env ``MAF_NO_REUSE``);
- the newest execution of the check by this agent in this environment is a pass (a later
  failure, timeout or error disables the reuse until the check passes again), recorded under
  the same :func:`content_hash`;
- the run that really ran it (a reused execution names it) ended at most that many seconds
  ago, by this host's clock, which also stamped the record.

Imported by the controller only when a loaded check has the setting, so the common path pays
for neither this module nor a query. Every answer comes from the controller's thread, before
the checks run, over the runtime the session records in; xdist workers receive the reused
results with the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..checks.base import CheckResult, CheckStatus
from ..redaction import ENV_REF, is_secret_key
from ..runtime.errors import RuntimeStateError

if TYPE_CHECKING:
    from ..checks.runner import PlannedCheck
    from ..runtime.factory import OpenedRuntime
    from ..runtime.records import ExecutionRecord
    from ..settings import Settings


def content_hash(check: PlannedCheck, base_url: str | None, environ: Mapping[str, str]) -> str:
    """What a pass of ``check`` is reused under: its effective config as the runner runs it
    (type, definition after the environment's overrides, deadline, retries), the base URL, and
    the values of the ``${ENV:NAME}`` variables it names, secret ones excepted (a stored hash
    of a short secret could be guessed back). Empty when the definition is not plain data:
    such a check is never reused."""
    dump = getattr(check.definition, "model_dump", None)
    if dump is None:
        return ""
    try:
        document: dict[str, Any] = {
            "test_type": check.check_type.name,
            "definition": dump(mode="json"),
            "timeout": check.timeout,
            "retry_count": check.retry_count,
            "retry_delay": check.retry_delay,
            "base_url": base_url,
        }
        text = json.dumps(document, sort_keys=True)
    except (TypeError, ValueError):  # pydantic's serialization errors are ValueErrors
        return ""
    names = sorted({name for name in ENV_REF.findall(text) if not is_secret_key(name)})
    if names:
        document["environ"] = {name: environ.get(name) for name in names}
        text = json.dumps(document, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def reuse_recent_passes(
    planned: Sequence[PlannedCheck],
    opened: OpenedRuntime | None,
    settings: Settings,
    notes: list[str],
    environ: Mapping[str, str],
) -> tuple[list[PlannedCheck], dict[str, CheckResult]]:
    """The checks with the hash their results are recorded under, and the passes reused for
    some of them (by check id: the runner does not run those). Why nothing could be reused,
    when that is not the common case, is added to ``notes``."""
    hashed = [
        dataclasses.replace(c, content_hash=content_hash(c, settings.base_url, environ))
        if c.reuse_seconds > 0
        else c
        for c in planned
    ]
    if not settings.reuse:
        _note(notes, "reuse: off for this run (--maf-no-reuse); every check ran")
        return hashed, {}
    if opened is None:
        _note(notes, "reuse: no runtime to read earlier runs from; every check ran")
        return hashed, {}
    if opened.mode == "memory":
        _note(notes, "reuse: the memory runtime holds no earlier runs; every check ran")
        return hashed, {}
    known: dict[str, CheckResult] = {}
    now = time.time()
    for check in hashed:
        if check.reuse_seconds <= 0 or not check.content_hash:
            continue
        try:
            latest = opened.runtime.latest_check_execution(
                check.check_id, agent_id=settings.agent_id, environment=settings.environment
            )
        except (RuntimeStateError, OSError) as exc:
            _note(notes, f"reuse: cannot read earlier runs of {check.check_id}, so it ran: {exc}")
            continue
        origin = reusable_origin(latest, check.content_hash, check.reuse_seconds, now)
        if origin is not None and latest is not None:
            known[check.check_id] = reused_result(check, latest, origin, now)
    return hashed, known


def _note(notes: list[str], note: str) -> None:
    # Once: the controller may plan the checks again (the environment changed meanwhile).
    if note not in notes:
        notes.append(note)


def reusable_origin(
    latest: ExecutionRecord | None, wanted_hash: str, seconds: float, now: float
) -> dict[str, Any] | None:
    """The run whose pass ``latest`` (a check's newest execution) lets this run reuse:
    ``{"execution_id", "session_id", "completed_at"}``, or None. A reused execution points at
    the run that really ran, so the window counts from there and a reuse never extends it."""
    if latest is None or latest.status != "passed":
        return None
    result = latest.result
    if result.get("content_hash") != wanted_hash:
        return None
    origin = result.get("reused_from")
    if origin is None:
        origin = {
            "execution_id": latest.id,
            "session_id": latest.session_id,
            "completed_at": latest.completed_at,
        }
    if not (
        isinstance(origin, Mapping)
        and isinstance(origin.get("execution_id"), str)
        and isinstance(origin.get("session_id"), str)
        and isinstance(origin.get("completed_at"), (int, float))
        and not isinstance(origin.get("completed_at"), bool)
    ):
        return None  # not what the gate writes: never trusted
    completed_at = float(origin["completed_at"])
    # A time ahead of the clock (set back since) must not stretch the window.
    if not 0 <= now - completed_at <= seconds:
        return None
    return {
        "execution_id": origin["execution_id"],
        "session_id": origin["session_id"],
        "completed_at": completed_at,
    }


def reused_result(
    check: PlannedCheck, latest: ExecutionRecord, origin: dict[str, Any], now: float
) -> CheckResult:
    """This run's result for ``check``: passed, as ``latest`` observed it, taking no time."""
    result = latest.result
    details = result.get("details")
    return CheckResult(
        check_id=check.check_id,
        name=check.name,
        test_type=check.check_type.name,
        severity=check.severity,
        status=CheckStatus.PASSED,
        expected=str(result.get("expected", "")),
        observed=str(result.get("observed", "")),
        attempts=0,
        duration=0.0,
        started_at=now,
        completed_at=now,
        config_file=check.config_file,
        config_version=check.config_version,
        details=dict(details) if isinstance(details, Mapping) else {},
        content_hash=check.content_hash,
        reused_from=origin,
    )


def reused_text(origin: Mapping[str, Any]) -> str:
    """``reused from 2026-12-05T09:30:12Z``: when the run whose pass was reused ended (UTC)."""
    at = time.gmtime(float(origin["completed_at"]))
    return f"reused from {time.strftime('%Y-%m-%dT%H:%M:%SZ', at)}"
