"""An escalation path config, resolved: what the engine climbs, and what an escalation keeps of
it (its snapshot) so it can climb after the config changed or is gone."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..config.models import EscalationPathBody, EscalationStep


@dataclasses.dataclass(frozen=True)
class PathRef:
    """An escalation path config, resolved."""

    id: str
    version: str
    body: EscalationPathBody

    def snapshot(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "config": self.body.model_dump(mode="json")}

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> PathRef:
        return cls(
            str(snapshot["id"]),
            str(snapshot.get("version", "")),
            EscalationPathBody.model_validate(snapshot["config"]),
        )

    def steps(self) -> list[EscalationStep]:
        limit = self.body.max_escalation_level
        return sorted(
            (s for s in self.body.escalation_steps if limit is None or s.level <= limit),
            key=lambda s: s.level,
        )

    def after(self, level: int) -> EscalationStep | None:
        return next((s for s in self.steps() if s.level > level), None)

    def step_at(self, level: int) -> EscalationStep | None:
        return next((s for s in self.steps() if s.level == level), None)
