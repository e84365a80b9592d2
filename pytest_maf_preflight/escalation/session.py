"""Escalations for a gate run or a test: which path each check uses, and the engine to run."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..config.models import EscalationPathBody
from .engine import EngineReport, EscalationEngine, PathRef

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from ..config.loader import LoadedConfig
    from ..runtime.base import RuntimeState
    from ..settings import Settings


def paths_of(loaded: Iterable[LoadedConfig]) -> dict[str, PathRef]:
    """The active escalation paths among ``loaded``, by id."""
    return {c.id: PathRef(c.id, c.config.version, c.body) for c in loaded
            if c.config.is_active and isinstance(c.body, EscalationPathBody)}


def engine_for(runtime: RuntimeState, settings: Settings, loaded: Iterable[LoadedConfig]
               ) -> EscalationEngine:
    return EscalationEngine(runtime, paths_of(loaded), agent_id=settings.agent_id,
                            mail_root=settings.runtime.mail_root, environ=dict(os.environ),
                            deliver=settings.escalate, project_default=str(settings.rootdir))


def escalate_session(runtime: RuntimeState, settings: Settings, loaded: Sequence[LoadedConfig],
                     results: Iterable[CheckResult], session_id: str) -> EngineReport:
    """Run the engine for a recorded gate session: each check's own ``escalation_path``, else
    ini ``maf_preflight_default_escalation``."""
    check_paths = {c.id: path for c in loaded
                   if c.config_type != "escalation_path"
                   and (path := c.config.escalation_path or settings.default_escalation)}
    engine = engine_for(runtime, settings, loaded)
    return engine.process_session(list(results), check_paths=check_paths, session_id=session_id)
