"""What a gated session records in the runtime: one bundle, written once, by the controller."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..checks.base import CheckResult
from ..config.loader import LoadedConfig
from ..redaction import redact_mapping, redact_text
from ..runtime.records import (
    ConfigSnapshot,
    ConflictRecord,
    EscalationPathDefinition,
    ExecutionRecord,
    Message,
    SessionBundle,
    SessionRecord,
    SmokeTestDefinition,
    new_id,
    now,
)
from .barrier import is_rerun

if TYPE_CHECKING:
    # Annotations only: the guard (``maf-preflight guard check``) builds its bundle here, in a
    # git hook that must not pay for importing pytest.
    import pytest

    from ..checks.runner import PlannedCheck


@dataclasses.dataclass
class SmokeAttempt:
    """One run of a ``maf_smoke`` test's phases; a rerun plugin makes several."""

    outcome: str = "passed"
    duration: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"outcome": self.outcome, "duration": self.duration}
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclasses.dataclass
class SmokeOutcome:
    """A ``maf_smoke`` test's phases folded into one execution, each attempt kept.

    pytest-rerunfailures reports a failed attempt as ``outcome == "rerun"`` and runs the test
    again, setup first: every setup report begins an attempt. The execution's status is the last
    attempt's (what pytest reports); the earlier ones stay visible as a flake.
    """

    nodeid: str
    started_at: float = 0.0
    completed_at: float = 0.0
    duration: float = 0.0
    attempts: list[SmokeAttempt] = dataclasses.field(default_factory=list)
    #: ``smoke_definition`` of the item, carried by its reports (also from xdist workers).
    definition: Mapping[str, Any] | None = None

    @property
    def status(self) -> str:
        return self.attempts[-1].outcome if self.attempts else "passed"

    @property
    def error(self) -> str | None:
        return self.attempts[-1].error if self.attempts else None

    def add(self, report: pytest.TestReport, secrets: Sequence[str]) -> None:
        definition = getattr(report, SMOKE_DEFINITION_ATTRIBUTE, None)
        if isinstance(definition, dict):
            self.definition = definition
        start = getattr(report, "start", None) or now()
        stop = getattr(report, "stop", None) or start
        self.started_at = min(self.started_at or start, start)
        self.completed_at = max(self.completed_at, stop)
        self.duration += report.duration
        # A crashed xdist worker's report ("???") belongs to the attempt it interrupted.
        if report.when == "setup" or not self.attempts:
            self.attempts.append(SmokeAttempt())
        attempt = self.attempts[-1]
        attempt.duration += report.duration
        if report.failed or is_rerun(report):
            # A failure outside the test body (fixture setup, teardown) is an error, as pytest
            # itself counts it.
            attempt.outcome = "failed" if report.when == "call" else "error"
            crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", None)
            text = report.longreprtext.strip().splitlines()
            message = crash or (text[-1] if text else "failed")
            attempt.error = redact_text(f"{report.when}: {message}", secrets)[:500]
        elif report.skipped and attempt.outcome == "passed":
            attempt.outcome = "skipped"


#: The report attribute carrying a smoke test's definition: a plain dict, so it survives
#: pytest-xdist's report serialization (extra attributes travel as they are).
SMOKE_DEFINITION_ATTRIBUTE = "maf_smoke_definition"
#: How many hex digits of a smoke definition's hash its executions carry as config_version.
SMOKE_VERSION_DIGITS = 12


def _marker_value(value: Any, depth: int = 0) -> Any:
    # JSON data is kept (lists and string-keyed mappings of it, a few levels deep); anything
    # else (a function, an object) would be stored as a text holding a memory address, a new
    # definition on every run, so only its type is.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN is no JSON: the JSON runtime would refuse the session
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if depth < 4 and isinstance(value, (list, tuple)):
        return [_marker_value(v, depth + 1) for v in value]
    if depth < 4 and isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _marker_value(v, depth + 1) for k, v in sorted(value.items())}
    return f"<{type(value).__name__}>"


def smoke_definition(item: pytest.Item) -> dict[str, Any]:
    """What defines a ``maf_smoke`` test: node id, file and markers (closest first)."""
    markers = [
        {
            "name": m.name,
            "args": [_marker_value(a) for a in m.args],
            "kwargs": {k: _marker_value(v) for k, v in sorted(m.kwargs.items())},
        }
        for m in item.iter_markers()
    ]
    return {"nodeid": item.nodeid, "file": item.location[0], "markers": markers}


def _content_hash(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


def smoke_test_of(
    outcome: SmokeOutcome, at: float, secrets: Sequence[str] = ()
) -> SmokeTestDefinition | None:
    """The stored definition of a smoke test; None when no report carried it (a test whose
    worker crashed)."""
    if outcome.definition is None:
        return None
    document = redact_mapping(outcome.definition, secrets)
    digest = _content_hash(document)
    return SmokeTestDefinition(
        nodeid=outcome.nodeid,
        version=digest[:SMOKE_VERSION_DIGITS],
        content_hash=digest,
        file=str(document.get("file", "")),
        document=document,
        recorded_at=at,
    )


def escalation_paths_of(
    loaded: Iterable[LoadedConfig], at: float, secrets: Sequence[str] = ()
) -> tuple[EscalationPathDefinition, ...]:
    """The active escalation paths loaded, as the snapshot an escalation on them keeps."""
    from ..escalation.session import paths_of

    out = []
    for path in paths_of(loaded).values():
        document = redact_mapping(path.snapshot(), secrets)
        out.append(
            EscalationPathDefinition(
                path_id=path.id,
                version=path.version,
                content_hash=_content_hash(document),
                document=document,
                recorded_at=at,
            )
        )
    return tuple(out)


def snapshot_of(loaded: LoadedConfig, at: float, secrets: Sequence[str] = ()) -> ConfigSnapshot:
    document = redact_mapping(loaded.document, secrets)
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode())
    return ConfigSnapshot(
        config_id=loaded.id,
        version=loaded.config.version,
        config_type=loaded.config_type,
        content_hash=digest.hexdigest(),
        document=document,
        recorded_at=at,
    )


#: Who let a run through by ``MAF_RESERVATION_OVERRIDE=1``: nobody approved it.
UNAPPROVED_OVERRIDE = {"approved": False, "by": "MAF_RESERVATION_OVERRIDE=1"}


def let_through(result: CheckResult) -> dict[str, Any]:
    """What let a failure through, for its execution's ``result``: ``waiver`` (the waiver
    that covered it; the status stays the check's own) or ``override`` (the unapproved
    ``MAF_RESERVATION_OVERRIDE``; the check then passed); empty for neither."""
    if result.waiver is not None:
        return {"waiver": dict(result.waiver)}
    if result.details.get("override"):
        return {"override": dict(UNAPPROVED_OVERRIDE)}
    return {}


def let_through_details(agent_id: str, results: Sequence[CheckResult]) -> dict[str, Any]:
    """The session's ``details`` entries naming the waived checks and the unapproved
    overrides (each key only when there is one)."""
    waived = [
        {"check_id": r.check_id, "status": r.status.value, "waiver_id": r.waiver["id"]}
        for r in results
        if r.waiver is not None
    ]
    overrides = [
        {
            "check_id": r.check_id,
            "agent_id": agent_id,
            "conflicts": len(r.details.get("conflicts") or ()),
            **UNAPPROVED_OVERRIDE,
        }
        for r in results
        if r.details.get("override")
    ]
    return {
        **({"waived": waived} if waived else {}),
        **({"unapproved_overrides": overrides} if overrides else {}),
    }


def check_execution(
    session_id: str, agent_id: str, result: CheckResult, execution_id: str | None = None
) -> ExecutionRecord:
    """The execution row of one check's result; ``execution_id`` is the id its
    ``PREFLIGHT_CHECK`` message announced (a new one without).

    A check that may be reused records what its pass is reused under (``content_hash``); a
    reused pass records the run it reused (``reused_from``), both in ``result``: older
    plugins sharing the store read these rows unchanged, and no schema migration is needed.
    """
    reuse: dict[str, Any] = {}
    if result.content_hash:
        reuse["content_hash"] = result.content_hash
    if result.reused_from is not None:
        reuse["reused_from"] = dict(result.reused_from)
    return ExecutionRecord(
        id=execution_id or new_id(),
        session_id=session_id,
        config_id=result.check_id,
        config_version=result.config_version,
        agent_id=agent_id,
        kind="check",
        status=result.status.value,
        started_at=result.started_at,
        completed_at=result.completed_at,
        duration=result.duration,
        attempts=result.attempts,
        result={
            "expected": result.expected,
            "observed": result.observed,
            "test_type": result.test_type,
            "severity": result.severity,
            "config_file": result.config_file,
            "details": result.details,
            **reuse,
            **let_through(result),
        },
        error_message=(result.message or result.observed) if not result.passed else None,
    )


def _smoke_execution(
    session_id: str,
    agent_id: str,
    outcome: SmokeOutcome,
    definition: SmokeTestDefinition | None = None,
) -> ExecutionRecord:
    return ExecutionRecord(
        id=new_id(),
        session_id=session_id,
        config_id=outcome.nodeid,
        # The definition's version: with the node id, it names the smoke_tests row.
        config_version=definition.version if definition is not None else "",
        agent_id=agent_id,
        kind="smoke",
        status=outcome.status,  # type: ignore[arg-type]
        started_at=outcome.started_at,
        completed_at=outcome.completed_at,
        duration=outcome.duration,
        attempts=max(1, len(outcome.attempts)),
        result={
            "nodeid": outcome.nodeid,
            "attempts": [attempt.to_dict() for attempt in outcome.attempts],
        },
        error_message=outcome.error,
    )


# The gate builds its two per-check messages as records directly, not through the pydantic
# models: they are on the gate's path, once per check, at a tenth of the cost. Their payloads
# are what ``protocol.messages.to_record`` makes of a ``PreflightResult``/``PreflightCheck``,
# and tests parse every message a real gate run stores with ``from_record``.


def result_message(execution: ExecutionRecord) -> Message:
    """A ``PREFLIGHT_RESULT`` protocol message for one execution (S6)."""
    return Message(
        id=new_id(),
        type="PREFLIGHT_RESULT",
        agent_id=execution.agent_id,
        correlation_id=execution.session_id,
        created_at=now(),
        payload={
            "version": 1,
            "config_id": execution.config_id,
            "config_version": execution.config_version,
            "execution_id": execution.id,
            "session_id": execution.session_id,
            "status": execution.status,
            "duration": max(0.0, float(execution.duration)),
            "attempts": execution.attempts,
            "error_message": execution.error_message,
            "summary": f"{execution.kind} {execution.config_id}: {execution.status}"
            + _reused_text(execution.result.get("reused_from")),
        },
    )


def _reused_text(origin: Any) -> str:
    """`` (reused from <when the reused run ended>)``, or nothing for a check that ran."""
    if not isinstance(origin, Mapping):
        return ""
    from .reuse import reused_text

    return f" ({reused_text(origin)})"


def check_message(
    check: PlannedCheck, *, agent_id: str, session_id: str, execution_id: str
) -> Message:
    """A ``PREFLIGHT_CHECK`` protocol message: ``check`` is starting (S6)."""
    return Message(
        id=new_id(),
        type="PREFLIGHT_CHECK",
        agent_id=agent_id,
        correlation_id=session_id,
        created_at=now(),
        payload={
            "version": 1,
            "config_id": check.check_id,
            "execution_id": execution_id,
            "check_type": check.check_type.name,
            "context": {
                "name": check.name,
                "severity": check.severity,
                "config_version": check.config_version,
                "config_file": check.config_file,
            },
        },
    )


def conflict_message(conflict: ConflictRecord, execution_id: str | None) -> Message:
    """A ``RESERVATION_CONFLICT`` protocol message for one recorded conflict (S6)."""
    from ..protocol.messages import ReservationConflict, to_record

    config_id = conflict.details.get("check_id")
    return to_record(
        ReservationConflict(
            agent_id=conflict.agent_id,
            correlation_id=conflict.session_id,
            conflict_type=conflict.conflict_type,
            severity="warning" if conflict.severity == "warning" else "critical",
            holder_agent=conflict.holder_agent_id or None,
            path_pattern=conflict.path_pattern or None,
            expires_at=conflict.expires_at,
            paths=[conflict.path] if conflict.path else [],
            execution_id=execution_id,
            config_id=config_id if isinstance(config_id, str) and config_id else None,
            conflict_id=conflict.id,
            source=conflict.details.get("source"),
            message=str(conflict.details.get("message") or ""),
        )
    )


def conflict_records(
    session_id: str, agent_id: str, results: Iterable[CheckResult]
) -> tuple[ConflictRecord, ...]:
    """One ``reservation_conflicts`` row per conflict a reservation check found (S3): status
    ``open``, ``overridden`` (``MAF_RESERVATION_OVERRIDE``) or ``waived`` (a waiver, named in
    its details)."""
    rows: list[ConflictRecord] = []
    for result in results:
        if not result.test_type.startswith("reservation_check/"):
            continue
        override = bool(result.details.get("override"))
        status = "overridden" if override else ("waived" if result.waiver else "open")
        waiver = {"waiver_id": result.waiver["id"]} if result.waiver else {}
        for found in result.details.get("conflicts", ()):
            rows.append(
                ConflictRecord(
                    id=new_id(),
                    session_id=session_id,
                    conflict_type=str(found["type"]),
                    severity=result.severity,
                    agent_id=agent_id,
                    holder_agent_id=found.get("holder_agent_id"),
                    path=found.get("path"),
                    path_pattern=found.get("path_pattern"),
                    lease_id=found.get("lease_id"),
                    expires_at=found.get("expires_at"),
                    status=status,
                    override=override,
                    detected_at=result.completed_at or now(),
                    details={
                        "check_id": result.check_id,
                        "message": found.get("message"),
                        "source": found.get("source"),
                        "exclusive": found.get("exclusive"),
                        **waiver,
                    },
                )
            )
    return tuple(rows)


def build_bundle(
    *,
    agent_id: str,
    environment: str,
    runtime_mode: str,
    started_at: float,
    gate_open: bool | None,
    exit_code: int,
    results: Iterable[CheckResult],
    smoke: Iterable[SmokeOutcome],
    loaded: Iterable[LoadedConfig],
    details: Mapping[str, Any],
    secrets: Sequence[str] = (),
    status: str | None = None,
    session_id: str | None = None,
    execution_ids: Mapping[str, str] | None = None,
    conflicts: Sequence[ConflictRecord] | None = None,
    messages: Sequence[Message] | None = None,
) -> SessionBundle:
    """The session's records. The gate passes what it already produced while checks ran
    (``gate.messaging``): the session id, each check's execution id, the conflicts, and the
    check messages (``messages``) that still have to be stored; smoke executions always get
    their ``PREFLIGHT_RESULT`` here. Without ``messages``, every execution gets its result
    message here."""
    finished = now()
    results = list(results)
    if status is None:
        status = "open" if gate_open else ("closed" if gate_open is not None else "interrupted")
    session = SessionRecord(
        id=session_id or new_id(),
        agent_id=agent_id,
        environment=environment,
        started_at=started_at,
        completed_at=finished,
        status=status,  # type: ignore[arg-type]
        exit_code=exit_code,
        runtime_mode=runtime_mode,
        hostname=socket.gethostname(),
        details={**details, **let_through_details(agent_id, results)},
    )
    ids = execution_ids or {}
    checks = [check_execution(session.id, agent_id, r, ids.get(r.check_id)) for r in results]
    loaded, smoke = list(loaded), list(smoke)
    definitions = {s.nodeid: smoke_test_of(s, finished, secrets) for s in smoke}
    smokes = [_smoke_execution(session.id, agent_id, s, definitions[s.nodeid]) for s in smoke]
    executions = (*checks, *smokes)
    produced = tuple(messages) if messages is not None else tuple(result_message(e) for e in checks)
    return SessionBundle(
        session=session,
        executions=executions,
        snapshots=tuple(snapshot_of(c, finished, secrets) for c in loaded),
        messages=(*produced, *(result_message(e) for e in smokes)),
        conflicts=(
            tuple(conflicts)
            if conflicts is not None
            else conflict_records(session.id, agent_id, results)
        ),
        smoke_tests=tuple(d for d in definitions.values() if d is not None),
        escalation_paths=escalation_paths_of(loaded, finished, secrets),
    )
