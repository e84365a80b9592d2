"""An agent's fields as every mode accepts them (id, type, capabilities, status): a heartbeat
with a bad one is refused with ``ValueError`` before any write.

Also what the settings and ``maf_agent`` check their agent fields with, so that a value the
configuration accepts is one every store accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings check agent fields before anything is recorded
    from .records import AgentRecord

#: The agent kinds and statuses of the seed's ``agents`` table (the original MAF's).
AGENT_TYPES = ("coordinator", "worker", "verifier", "escalation_manager")
AGENT_STATUSES = ("active", "inactive", "maintenance", "error")

#: Longest capability name, and most capabilities per agent: names, not documents.
MAX_CAPABILITY_LENGTH = 100
MAX_CAPABILITIES = 64


def checked_agent_fields(
    agent_type: str, capabilities: Sequence[str], status: str
) -> tuple[str, tuple[str, ...], str]:
    """A heartbeat's type, capabilities (each once, order kept) and status; ``ValueError`` for
    bad ones."""
    if agent_type not in AGENT_TYPES:
        raise ValueError(f"agent type must be one of {', '.join(AGENT_TYPES)}; got {agent_type!r}")
    if status not in AGENT_STATUSES:
        raise ValueError(f"agent status must be one of {', '.join(AGENT_STATUSES)}; got {status!r}")
    if isinstance(capabilities, (str, bytes)):
        # One string would otherwise become one capability per character.
        raise ValueError(f"capabilities must be a list of names, not one string: {capabilities!r}")
    out: list[str] = []
    for name in capabilities:
        if (
            not isinstance(name, str)
            or not name.strip()
            or name != name.strip()
            or len(name) > MAX_CAPABILITY_LENGTH
            or not name.isprintable()
        ):
            raise ValueError(
                f"a capability must be a printable name of 1 to "
                f"{MAX_CAPABILITY_LENGTH} characters without surrounding "
                f"spaces, got {name!r}"
            )
        if name not in out:
            out.append(name)
    if len(out) > MAX_CAPABILITIES:
        raise ValueError(f"an agent has at most {MAX_CAPABILITIES} capabilities, got {len(out)}")
    return agent_type, tuple(out), status


def agent_record(
    agent_id: str,
    at: float,
    details: Mapping[str, Any] | None,
    *,
    agent_type: str,
    capabilities: Sequence[str],
    status: str,
) -> AgentRecord:
    """A heartbeat's record, every field checked (``ValueError`` before any write)."""
    from .records import AgentRecord

    kind, names, state = checked_agent_fields(agent_type, capabilities, status)
    return AgentRecord(
        checked_agent(agent_id),
        at,
        dict(details or {}),
        agent_type=kind,
        capabilities=names,
        status=state,
    )


def checked_agent(agent_id: str) -> str:
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise ValueError(f"agent id must be a non-empty string, got {agent_id!r}")
    return agent_id
