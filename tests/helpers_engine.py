"""The escalation engine's test world: a runtime, a mail root and a clock the tests move, gate
runs recorded the way the gate records them, and paths built from short step lists."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_maf_preflight.checks.base import CheckResult, CheckStatus
from pytest_maf_preflight.config.models import EscalationPathBody
from pytest_maf_preflight.escalation.engine import EngineReport, EscalationEngine
from pytest_maf_preflight.escalation.paths import PathRef
from pytest_maf_preflight.gate.recording import build_bundle
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.records import EscalationPathDefinition, EscalationRecord

NOW = 1_700_000_000.0
AGENT = "gate-agent"


class Clock:
    """The engine's clock: tests move ``now`` instead of sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class World:
    """One project: a runtime, a mail root, the clock and the sleeps the engine asked for."""

    def __init__(self, runtime: RuntimeState, tmp_path: Path) -> None:
        self.runtime = runtime
        self.mail_root = tmp_path / "mail"
        self.clock = Clock(NOW)
        self.sleeps: list[float] = []

    def engine(
        self,
        *paths: PathRef,
        deliver: bool = True,
        agent_id: str = AGENT,
        environ: dict[str, str] | None = None,
    ) -> EscalationEngine:
        return EscalationEngine(
            self.runtime,
            {p.id: p for p in paths},
            agent_id=agent_id,
            mail_root=self.mail_root,
            environ=environ or {},
            deliver=deliver,
            clock=self.clock,
            sleep=self.sleeps.append,
            project_default="/srv/project",
        )

    def result(
        self,
        check_id: str,
        status: str,
        *,
        severity: str = "critical",
        details: dict[str, Any] | None = None,
        test_type: str = "command",
    ) -> CheckResult:
        return CheckResult(
            check_id=check_id,
            name=check_id,
            test_type=test_type,
            severity=severity,
            status=CheckStatus(status),
            observed=f"{check_id} {status}",
            started_at=self.clock.now,
            completed_at=self.clock.now + 0.5,
            duration=0.5,
            attempts=1,
            details=details or {},
        )

    def gate(
        self,
        engine: EscalationEngine,
        *results: CheckResult,
        check_paths: dict[str, str] | None = None,
        path_id: str = "oncall",
        recorded: Sequence[PathRef] = (),
    ) -> EngineReport:
        """One gate run: record the session the way the gate does (with ``recorded`` as the
        escalation paths it loaded), then run the engine."""
        bundle = build_bundle(
            agent_id=AGENT,
            environment="development",
            runtime_mode=self.runtime.mode,
            started_at=self.clock.now,
            gate_open=all(r.passed for r in results),
            exit_code=0,
            results=results,
            smoke=(),
            loaded=(),
            details={},
        )
        definitions = tuple(
            EscalationPathDefinition(
                path_id=p.id,
                version=p.version,
                content_hash=p.id,
                document=p.snapshot(),
                recorded_at=self.clock.now,
            )
            for p in recorded
        )
        self.runtime.record_session(dataclasses.replace(bundle, escalation_paths=definitions))
        paths = check_paths if check_paths is not None else {r.check_id: path_id for r in results}
        return engine.process_session(results, check_paths=paths, session_id=bundle.session.id)

    def inbox(self, target: str) -> list[dict[str, Any]]:
        folder = self.mail_root / "mailboxes" / target / "inbox"
        if not folder.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(folder.iterdir())]

    def stored(self, escalation_id: str) -> EscalationRecord:
        found = self.runtime.get_escalation(escalation_id)
        assert found is not None
        return found

    def deliveries(self, escalation_id: str | None = None) -> list[tuple[str, int, str, str]]:
        return [
            (d.target, d.level, d.channel, d.status) for d in self.runtime.deliveries(escalation_id)
        ]


def path(
    path_id: str = "oncall",
    *,
    steps: list[tuple[int, str, float | None] | dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **more: Any,
) -> PathRef:
    """A path: (level, target, timeout minutes) ``notify`` steps, each climbing when it times
    out (or a step written out as a dict); by default on-call for half a minute, then lead for
    a minute."""
    body: dict[str, Any] = {
        "trigger_conditions": conditions or [{"condition": "preflight_failure", "threshold": 1}],
        "escalation_steps": [
            step
            if isinstance(step, dict)
            else {
                "level": step[0],
                "action": "notify",
                "target": step[1],
                "timeout_minutes": step[2],
            }
            for step in (steps or [(1, "on-call", 0.5), (2, "lead", 1)])
        ],
        **more,
    }
    return PathRef(path_id, "1.0.0", EscalationPathBody.model_validate(body))


def kinds(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(type, level or action) of each message in an inbox, oldest first."""
    return [(m["type"], m.get("level", m.get("action"))) for m in messages]
