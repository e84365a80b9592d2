"""What a gated session records in the runtime: one bundle, written once, by the controller."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from ..checks.base import CheckResult
from ..config.loader import LoadedConfig
from ..redaction import redact_mapping, redact_text
from ..runtime.records import (
    ConfigSnapshot,
    ConflictRecord,
    ExecutionRecord,
    Message,
    SessionBundle,
    SessionRecord,
    new_id,
    now,
)


@dataclasses.dataclass
class SmokeOutcome:
    """A ``maf_smoke`` test's phases folded into one execution."""

    nodeid: str
    started_at: float = 0.0
    completed_at: float = 0.0
    duration: float = 0.0
    status: str = "passed"
    error: str | None = None

    def add(self, report: pytest.TestReport, secrets: Sequence[str]) -> None:
        start = getattr(report, "start", None) or now()
        stop = getattr(report, "stop", None) or start
        self.started_at = min(self.started_at or start, start)
        self.completed_at = max(self.completed_at, stop)
        self.duration += report.duration
        if report.failed:
            # A failure outside the test body (fixture setup, teardown) is an error, as pytest
            # itself counts it.
            self.status = "failed" if report.when == "call" else "error"
            crash = getattr(getattr(report.longrepr, "reprcrash", None), "message", None)
            text = report.longreprtext.strip().splitlines()
            message = crash or (text[-1] if text else "failed")
            self.error = redact_text(f"{report.when}: {message}", secrets)[:500]
        elif report.skipped and self.status == "passed":
            self.status = "skipped"


def snapshot_of(loaded: LoadedConfig, at: float, secrets: Sequence[str] = ()) -> ConfigSnapshot:
    document = redact_mapping(loaded.document, secrets)
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode())
    return ConfigSnapshot(config_id=loaded.id, version=loaded.config.version,
                          config_type=loaded.config_type, content_hash=digest.hexdigest(),
                          document=document, recorded_at=at)


def _check_execution(session_id: str, agent_id: str, result: CheckResult) -> ExecutionRecord:
    return ExecutionRecord(
        id=new_id(), session_id=session_id, config_id=result.check_id,
        config_version=result.config_version, agent_id=agent_id, kind="check",
        status=result.status.value, started_at=result.started_at,
        completed_at=result.completed_at, duration=result.duration, attempts=result.attempts,
        result={"expected": result.expected, "observed": result.observed,
                "test_type": result.test_type, "severity": result.severity,
                "config_file": result.config_file, "details": result.details},
        error_message=(result.message or result.observed) if not result.passed else None)


def _smoke_execution(session_id: str, agent_id: str, outcome: SmokeOutcome) -> ExecutionRecord:
    return ExecutionRecord(
        id=new_id(), session_id=session_id, config_id=outcome.nodeid, config_version="",
        agent_id=agent_id, kind="smoke", status=outcome.status,  # type: ignore[arg-type]
        started_at=outcome.started_at, completed_at=outcome.completed_at,
        duration=outcome.duration, attempts=1, result={"nodeid": outcome.nodeid},
        error_message=outcome.error)


def result_message(execution: ExecutionRecord) -> Message:
    """A ``PREFLIGHT_RESULT`` protocol message for one execution (S6)."""
    from ..protocol.messages import PreflightResult, to_record

    message = PreflightResult(
        agent_id=execution.agent_id, correlation_id=execution.session_id,
        config_id=execution.config_id, config_version=execution.config_version,
        execution_id=execution.id, session_id=execution.session_id, status=execution.status,
        duration=execution.duration, attempts=execution.attempts,
        error_message=execution.error_message,
        summary=f"{execution.kind} {execution.config_id}: {execution.status}")
    return to_record(message)


def conflict_records(session_id: str, agent_id: str, results: Iterable[CheckResult]
                     ) -> tuple[ConflictRecord, ...]:
    """One ``reservation_conflicts`` row per conflict a reservation check found (S3)."""
    rows: list[ConflictRecord] = []
    for result in results:
        if not result.test_type.startswith("reservation_check/"):
            continue
        override = bool(result.details.get("override"))
        for found in result.details.get("conflicts", ()):
            rows.append(ConflictRecord(
                id=new_id(), session_id=session_id, conflict_type=str(found["type"]),
                severity=result.severity, agent_id=agent_id,
                holder_agent_id=found.get("holder_agent_id"), path=found.get("path"),
                path_pattern=found.get("path_pattern"), lease_id=found.get("lease_id"),
                expires_at=found.get("expires_at"),
                status="overridden" if override else "open", override=override,
                detected_at=result.completed_at or now(),
                details={"check_id": result.check_id, "message": found.get("message"),
                         "source": found.get("source"), "exclusive": found.get("exclusive")}))
    return tuple(rows)


def build_bundle(*, agent_id: str, environment: str, runtime_mode: str, started_at: float,
                 gate_open: bool | None, exit_code: int, results: Iterable[CheckResult],
                 smoke: Iterable[SmokeOutcome], loaded: Iterable[LoadedConfig],
                 details: Mapping[str, Any], secrets: Sequence[str] = (),
                 status: str | None = None) -> SessionBundle:
    finished = now()
    if status is None:
        status = "open" if gate_open else ("closed" if gate_open is not None else "interrupted")
    session = SessionRecord(id=new_id(), agent_id=agent_id, environment=environment,
                            started_at=started_at, completed_at=finished,
                            status=status,  # type: ignore[arg-type]
                            exit_code=exit_code, runtime_mode=runtime_mode,
                            hostname=socket.gethostname(), details=dict(details))
    results = list(results)
    executions = tuple([*(_check_execution(session.id, agent_id, r) for r in results),
                        *(_smoke_execution(session.id, agent_id, s) for s in smoke)])
    return SessionBundle(
        session=session, executions=executions,
        snapshots=tuple(snapshot_of(c, finished, secrets) for c in loaded),
        messages=tuple(result_message(e) for e in executions),
        conflicts=conflict_records(session.id, agent_id, results))
