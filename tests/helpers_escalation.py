"""An escalation and its notices, as the channel tests (mailbox, command, webhook, agent_mail)
deliver them: fixed ids, a fixed clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_maf_preflight.escalation.channels import Notice, NoticeKind, build_message
from pytest_maf_preflight.runtime.records import EscalationRecord

NOW = 1_790_000_000.0


def escalation(**changes: Any) -> EscalationRecord:
    fields: dict[str, Any] = dict(
        id="e5c41a7e",
        path_id="default-escalation",
        dedup_key="default-escalation:db-check:failed",
        check_id="db-check",
        failure_class="failed",
        state="triggered",
        level=1,
        occurrences=3,
        path_snapshot={"id": "default-escalation", "version": "1.0.0", "config": {}},
        created_at=NOW - 60,
        updated_at=NOW - 60,
        next_action_at=NOW + 840,
        details={
            "summary": "db-check failed 3 times",
            "severity": "critical",
            "agent_id": "BlueLake",
            "session_id": "s1",
        },
    )
    fields.update(changes)
    return EscalationRecord(**fields)


def notice(
    kind: NoticeKind = "request",
    target: str = "on-call-agent",
    severity: str = "critical",
    summary: str = "db-check failed 3 times in a row",
    **changes: Any,
) -> Notice:
    record = escalation(**changes)
    message = build_message(
        kind,
        record,
        level=record.level,
        target=target,
        severity=severity,
        summary=summary,
        agent_id="BlueLake",
    )
    return Notice(
        kind=kind,
        escalation=record,
        level=record.level,
        target=target,
        severity=severity,
        summary=summary,
        agent_id="BlueLake",
        message=message,
    )


def clock() -> float:
    return NOW


def inbox_files(root: Path, target: str = "on-call-agent") -> list[Path]:
    inbox = root / "mailboxes" / target / "inbox"
    return sorted(inbox.iterdir()) if inbox.is_dir() else []
