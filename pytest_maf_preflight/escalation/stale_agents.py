"""Agents that went silent while holding leases: the ``agent_stale`` trigger (SPEC S4).

Every gate run and every ``maf-preflight escalations tick`` reviews the agents holding active
leases against the paths with an ``agent_stale`` condition (``triggers.stale_agent`` measures
one agent). A stale agent gets one escalation per path, naming it and its leases; while that
one is open, later reviews add nothing to it (an occurrence per tick would count the cron
schedule, not the problem). It is resolved by the first review that finds the agent back (a
heartbeat newer than the one it was raised on) or holding no lease any more (released,
expired, or force-released), on the paths that still watch for stale agents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..runtime.records import OPEN_STATES
from .triggers import PER_AGENT, TriggerOutcome, stale_agent

if TYPE_CHECKING:
    from ..config.models import EscalationPathBody
    from ..runtime.interface import RuntimeState
    from ..runtime.records import EscalationRecord, Lease

FAILURE_CLASS = "agent_stale"


@dataclasses.dataclass(frozen=True)
class StaleReview:
    """What one review found."""

    #: (path id, outcome, summary) of each escalation to raise.
    stale: list[tuple[str, TriggerOutcome, str]]
    #: (open escalation, why it is over) of each escalation to resolve.
    over: list[tuple[EscalationRecord, str]]


def review(
    runtime: RuntimeState, paths: Mapping[str, EscalationPathBody], now: float
) -> StaleReview:
    """Stale agents to raise and escalations to resolve on ``paths`` at ``now``; nothing is
    read from the runtime unless a path has an ``agent_stale`` condition."""
    watching = {
        path_id: body
        for path_id, body in sorted(paths.items())
        if any(c.condition in PER_AGENT for c in body.trigger_conditions)
    }
    if not watching:
        return StaleReview([], [])
    held: dict[str, list[Lease]] = {}
    for lease in runtime.leases(active_only=True, now=now):
        held.setdefault(lease.agent_id, []).append(lease)
    heartbeats = {agent.id: agent.last_heartbeat for agent in runtime.agents()}
    stale: list[tuple[str, TriggerOutcome, str]] = []
    over: list[tuple[EscalationRecord, str]] = []
    for path_id, body in watching.items():
        raised: set[str] = set()
        for escalation in runtime.escalations(states=OPEN_STATES, path_id=path_id):
            agent = escalation.details.get("stale_agent")
            if escalation.failure_class != FAILURE_CLASS or not isinstance(agent, str):
                continue
            why = _over(agent, escalation, held, heartbeats)
            if why is None:
                raised.add(agent)
            else:
                over.append((escalation, why))
        for agent, leases in sorted(held.items()):
            if agent in raised:
                continue
            leases.sort(key=lambda lease: (lease.path_pattern, lease.id))  # a stable wording
            outcome = stale_agent(
                body,
                path_id,
                agent_id=agent,
                leases=leases,
                last_heartbeat=heartbeats.get(agent),
                now=now,
            )
            if outcome is not None:
                stale.append((path_id, outcome, _summary(agent, leases, outcome)))
    return StaleReview(stale, over)


def _over(
    agent: str,
    escalation: EscalationRecord,
    held: Mapping[str, list[Lease]],
    heartbeats: Mapping[str, float],
) -> str | None:
    """Why the agent of an open ``agent_stale`` escalation is no longer stale, or None."""
    if agent not in held:
        return f"agent {agent!r} holds no lease any more (released or expired)"
    raised_on = escalation.details.get("last_heartbeat")
    last = heartbeats.get(agent)
    if last is not None and (not isinstance(raised_on, (int, float)) or last > raised_on):
        return f"agent {agent!r} sent a heartbeat again"
    return None


def _summary(agent: str, leases: list[Lease], outcome: TriggerOutcome) -> str:
    count = len(leases)
    patterns = ", ".join(lease.path_pattern for lease in leases)
    return (
        f"agent {agent!r} has sent no heartbeat for {outcome.value:.0f} minutes and holds "
        f"{count} lease{'s' if count != 1 else ''}: {patterns}"
    )
