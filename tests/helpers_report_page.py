"""Stores for the report page's tests, written through the runtime API as a gate writes them."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.records import (
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)

#: (check id, status, start offset, duration, attempts)
Run = tuple[str, str, float, float, int]

LADDER = {
    "trigger_conditions": [{"type": "check_failure"}],
    "escalation_steps": [
        {"level": 1, "action": "notify", "target": "on-call", "timeout_minutes": 15},
        {"level": 2, "action": "escalate", "target": "lead", "timeout_minutes": 30},
        {"level": 3, "action": "escalate", "target": "room"},
    ],
    "targets": {"lead": {"channel": "webhook", "url": "${ENV:HOOK}"}},
}


def record_run(
    runtime: RuntimeState,
    started: float,
    runs: Sequence[Run],
    *,
    agent: str = "codex-1",
    severity: str = "critical",
) -> str:
    """One gate session of ``runs``; its id. A failed critical check closes the gate."""
    session_id = new_id()
    executions = tuple(
        ExecutionRecord(
            id=new_id(),
            session_id=session_id,
            config_id=check_id,
            config_version="1.0.0",
            agent_id=agent,
            kind="check",
            status=status,  # type: ignore[arg-type]
            started_at=started + offset,
            completed_at=started + offset + took,
            duration=took,
            attempts=attempts,
            result={"test_type": "command", "severity": severity},
            error_message=None if status == "passed" else f"{check_id} said no",
        )
        for check_id, status, offset, took, attempts in runs
    )
    blocking = [f"{r[0]} ({r[1]})" for r in runs if r[1] != "passed" and severity == "critical"]
    runtime.record_session(
        SessionBundle(
            session=SessionRecord(
                id=session_id,
                agent_id=agent,
                environment="ci",
                started_at=started,
                completed_at=started + max((r[2] + r[3] for r in runs), default=0.0),
                status="closed" if blocking else "open",
                exit_code=10 if blocking else 0,
                runtime_mode=runtime.mode,
                details={"blocking": blocking, "warnings": []},
            ),
            executions=executions,
        )
    )
    return session_id
