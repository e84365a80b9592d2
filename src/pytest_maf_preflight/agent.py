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
    runtime_settings: RuntimeSettings | None = dataclasses.field(default=None, repr=False,
                                                                 compare=False)

    def heartbeat(self, **details: Any) -> float:
        """Record that this agent is alive, in the configured runtime; return the time."""
        from .runtime.factory import open_chain

        if self.runtime_settings is None:
            raise RuntimeError("this MafAgent has no runtime to record heartbeats in")
        opened = open_chain(self.runtime_settings)
        with opened.runtime as runtime:
            return runtime.heartbeat(self.id, details=details).last_heartbeat
