"""A path's optional ``permissions`` policy (SPEC S4): who may acknowledge, resolve, approve
(decide and waive), escalate.

No policy, or no list for an action, allows every agent. A list is an allowlist: only the agents
it names may act, and ``"*"`` in it names everyone. ``escalate_to`` maps an agent to the targets
it may escalate to; its ``"*"`` key applies to every agent (added to the agent's own entry), a
``"*"`` target means any target. Once ``escalate_to`` is given, an agent it does not cover may
escalate to no target. A refusal raises :class:`PermissionDenied` naming the rule.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config.models import EscalationPermissions

EVERYONE = "*"


class PermissionDenied(Exception):
    """An agent asked for something the path's ``permissions`` do not allow.

    ``rule`` is the policy entry that refused it (``permissions.acknowledge``,
    ``permissions.resolve``, ``permissions.escalate_to.<agent>``), ``allowed`` what it allows.
    """

    def __init__(self, message: str, *, rule: str, agent: str, allowed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.rule = rule
        self.agent = agent
        self.allowed = tuple(allowed)


def check_acknowledge(
    policy: EscalationPermissions | None, agent: str, *, path_id: str | None = None
) -> None:
    """Raise :class:`PermissionDenied` unless ``agent`` may acknowledge this path's
    escalations."""
    _check_action(policy.acknowledge if policy else None, "acknowledge", agent, path_id)


def check_resolve(
    policy: EscalationPermissions | None, agent: str, *, path_id: str | None = None
) -> None:
    """Raise :class:`PermissionDenied` unless ``agent`` may resolve this path's escalations."""
    _check_action(policy.resolve if policy else None, "resolve", agent, path_id)


def check_approve(
    policy: EscalationPermissions | None, agent: str, *, path_id: str | None = None
) -> None:
    """Raise :class:`PermissionDenied` unless ``agent`` may decide this path's escalations
    (approve or reject) and waive its checks."""
    _check_action(policy.approve if policy else None, "approve", agent, path_id)


def check_escalate_to(
    policy: EscalationPermissions | None, agent: str, target: str, *, path_id: str | None = None
) -> None:
    """Raise :class:`PermissionDenied` unless ``agent`` may escalate to ``target``."""
    rules = policy.escalate_to if policy else None
    if rules is None:
        return
    own, shared = rules.get(agent), rules.get(EVERYONE)
    allowed = [*(own or ()), *(shared or ())]
    if EVERYONE in allowed or target in allowed:
        return
    if own is not None:
        rule = f"permissions.escalate_to.{agent}"
    elif shared is not None:
        rule = f"permissions.escalate_to.{EVERYONE}"
    else:
        rule = "permissions.escalate_to"
    listed = ", ".join(allowed) if allowed else f"no entry for {agent!r}"
    raise PermissionDenied(
        f"agent {agent!r} may not escalate to {target!r}"
        f"{f' on path {path_id!r}' if path_id else ''} "
        f"({rule}: {listed})",
        rule=rule,
        agent=agent,
        allowed=allowed,
    )


def _check_action(
    allowed: Sequence[str] | None, action: str, agent: str, path_id: str | None
) -> None:
    if allowed is None or EVERYONE in allowed or agent in allowed:
        return
    rule = f"permissions.{action}"
    listed = ", ".join(allowed) if allowed else "nobody"
    raise PermissionDenied(
        f"agent {agent!r} may not {action} escalations{_of_path(path_id)} ({rule}: {listed})",
        rule=rule,
        agent=agent,
        allowed=allowed,
    )


def _of_path(path_id: str | None) -> str:
    return f" of path {path_id!r}" if path_id else ""
