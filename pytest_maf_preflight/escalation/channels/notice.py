"""What a channel delivers (a ``Notice``), the protocol message it carries, and the record each
delivery attempt leaves."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast

from ...protocol.messages import EscalationRequest, EscalationResponse, Severity
from ...redaction import ENV_REF, is_secret_key, redact_mapping
from ...runtime.records import DeliveryRecord, EscalationRecord

NoticeKind = Literal["request", "resolution"]
SEVERITIES = ("critical", "warning")


@dataclasses.dataclass(frozen=True)
class Notice:
    """One notice for one target, whatever the channel.

    ``message`` is the protocol message as JSON (``build_message``): an ``ESCALATION_REQUEST``,
    or an ``ESCALATION_RESPONSE`` with action ``resolve`` for a resolution notice.
    ``agent_id`` is the sending agent.
    """

    kind: NoticeKind
    escalation: EscalationRecord
    level: int
    target: str
    severity: str
    summary: str
    agent_id: str
    message: dict[str, Any]


def build_message(
    notice_kind: NoticeKind,
    escalation: EscalationRecord,
    *,
    level: int,
    target: str,
    severity: str,
    summary: str,
    agent_id: str,
    note: str | None = None,
) -> dict[str, Any]:
    """The protocol message of a notice, as ``model_dump(mode="json")`` gives it.

    Raises ``ValueError`` (pydantic's ``ValidationError`` is one) for values the protocol
    refuses: a severity other than critical or warning, an agent id that is not a name.
    """
    if notice_kind == "resolution":
        response = EscalationResponse(
            escalation_id=escalation.id,
            action="resolve",
            responder=agent_id,
            note=note,
            agent_id=agent_id,
            correlation_id=escalation.id,
        )
        return response.model_dump(mode="json")
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    request = EscalationRequest(
        escalation_id=escalation.id,
        path_id=escalation.path_id,
        level=level,
        target=target,
        severity=cast(Severity, severity),
        summary=summary,
        dedup_key=escalation.dedup_key,
        details=_details(escalation, note),
        agent_id=agent_id,
        correlation_id=escalation.id,
    )
    return request.model_dump(mode="json")


def _details(escalation: EscalationRecord, note: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "check_id": escalation.check_id,
        "failure_class": escalation.failure_class,
        "occurrences": escalation.occurrences,
        "opened_at": escalation.created_at,
        "context": redact_mapping(dict(escalation.details)),
    }
    if note:
        details["note"] = note
    return details


def environ_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of secret-looking environment variables: never shown in a record."""
    return [value for name, value in environ.items() if is_secret_key(name) and value]


def attempt_record(
    notice: Notice,
    *,
    channel: str,
    attempt: int,
    status: str,
    now: Callable[[], float],
    error: str | None = None,
    response: Mapping[str, Any] | None = None,
) -> DeliveryRecord:
    return DeliveryRecord(
        escalation_id=notice.escalation.id,
        level=notice.level,
        channel=channel,
        target=notice.target,
        attempt=attempt,
        status=status,
        error=error,
        response=dict(response or {}),
        attempted_at=now(),
    )


def expand_env(template: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """``template`` with each ``${ENV:NAME}`` replaced, and the values put in (secrets).

    ``KeyError(NAME)`` for the first variable that is not set or empty.
    """
    used: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        found = environ.get(name)
        if not found:
            raise KeyError(name)
        used.append(found)
        return found

    return ENV_REF.sub(value, template), used
