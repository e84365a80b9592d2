"""``MafAgent``: the agent a session runs for, as the ``maf_agent`` fixture hands it out."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runtime.factory import RuntimeSettings


@dataclasses.dataclass(frozen=True)
class MafAgent:
    """The agent this session runs for."""

    id: str
    environment: str
    runtime_settings: RuntimeSettings | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    #: The seed's agent type and capabilities (``MAF_AGENT_TYPE``, ``MAF_AGENT_CAPABILITIES``
    #: or their ini keys), recorded with every heartbeat.
    agent_type: str = "worker"
    capabilities: tuple[str, ...] = ()

    def heartbeat(self, *, status: str = "active", **details: Any) -> float:
        """Record that this agent is alive (``status``: active, inactive, maintenance or
        error), with its type, capabilities and ``details``, in the configured runtime; return
        the time. Each heartbeat replaces what the previous one said."""
        from .runtime.agent_fields import checked_agent_fields
        from .runtime.factory import open_chain

        if self.runtime_settings is None:
            raise RuntimeError("this MafAgent has no runtime to record heartbeats in")
        # Checked before a store is opened: a bad status is the caller's mistake, not the store's.
        kind, names, status = checked_agent_fields(self.agent_type, self.capabilities, status)
        opened = open_chain(self.runtime_settings)
        with opened.runtime as runtime:
            return runtime.heartbeat(
                self.id, details=details, agent_type=kind, capabilities=names, status=status
            ).last_heartbeat
