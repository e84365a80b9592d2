"""Decision steps (SPEC S4): ``approve`` and ``reject`` steps ask their target to decide.

The request such a step delivers carries a note saying how (``maf-preflight escalations
approve|reject ID --reason TEXT``); the escalation waits for the decision as it waits for an
acknowledgement: up to the step's ``timeout_minutes`` when it has one (then it climbs, and the
decision may still be taken higher up), else until the path's own timeout. A decision is taken
on an open escalation at a decision step or above one (a step at or below its level); it is
recorded and answered with an ``ESCALATION_RESPONSE`` (``accepted`` true or false).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config.models import DECISION_ACTIONS, EscalationStep
from ..runtime.records import EscalationRecord, Message

if TYPE_CHECKING:
    from ..runtime.records import DecisionRecord


def decision_step(steps: Sequence[EscalationStep], level: int) -> EscalationStep | None:
    """The decision step an escalation at ``level`` has reached: the highest at or below it."""
    reached = [s for s in steps if s.action in DECISION_ACTIONS and s.level <= level]
    return max(reached, key=lambda s: s.level) if reached else None


def decision_note(escalation: EscalationRecord, step: EscalationStep, minutes: float) -> str:
    """What a decision step's request asks of its target."""
    waived = (
        f"waives check {escalation.check_id!r} for {minutes:g} minutes"
        if escalation.check_id
        else "acknowledges it (there is no check to waive)"
    )
    return (
        f"decision needed ({step.action} step): approve with `maf-preflight escalations approve "
        f"{escalation.id} --reason TEXT` (this {waived}), or reject with `maf-preflight "
        f"escalations reject {escalation.id} --reason TEXT`"
    )


def response_message(escalation: EscalationRecord, decision: DecisionRecord) -> Message:
    """The ``ESCALATION_RESPONSE`` that answers the escalation with ``decision``, as a queue
    record addressed to the agent that raised it; ``ValueError`` (``ProtocolError``) when the
    decider's name is not an agent name."""
    from ..protocol.messages import EscalationResponse, to_record

    approved = decision.decision == "approved"
    response = EscalationResponse(
        escalation_id=escalation.id,
        action="approve" if approved else "reject",
        responder=decision.decided_by,
        note=decision.reason,
        accepted=approved,
        agent_id=decision.decided_by,
        timestamp=decision.decided_at,
        correlation_id=escalation.id,
    )
    raiser = escalation.details.get("agent_id")
    return to_record(response, recipient=raiser if isinstance(raiser, str) else None)
