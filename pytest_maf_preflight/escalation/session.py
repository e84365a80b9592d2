"""Escalations for a gate run or a test: which path each check uses, and the engine to run."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.models import EscalationPathBody
from .engine import EngineReport, EscalationEngine, PathRef

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from ..config.loader import LoadedConfig
    from ..runtime.interface import RuntimeState
    from .plugin_channels import PluginChannels


@dataclasses.dataclass(frozen=True)
class EscalationSettings:
    """What escalating needs of the plugin's settings."""

    #: The agent that raises the escalations.
    agent_id: str
    #: Where mailbox deliveries go.
    mail_root: Path
    #: The agent-mail project of deliveries that name none (the rootdir).
    project: str
    #: False (``--maf-no-escalate``): levels are recorded, nothing is delivered.
    deliver: bool = True
    #: The path of checks that name none (ini ``maf_default_escalation``).
    default_path: str | None = None
    #: The channels plugins add (None: the entry points alone).
    channels: PluginChannels | None = None


def paths_of(loaded: Iterable[LoadedConfig]) -> dict[str, PathRef]:
    """The active escalation paths among ``loaded``, by id."""
    return {
        c.id: PathRef(c.id, c.config.version, c.body)
        for c in loaded
        if c.config.is_active and isinstance(c.body, EscalationPathBody)
    }


def engine_for(
    runtime: RuntimeState, settings: EscalationSettings, loaded: Iterable[LoadedConfig]
) -> EscalationEngine:
    return EscalationEngine(
        runtime,
        paths_of(loaded),
        agent_id=settings.agent_id,
        mail_root=settings.mail_root,
        environ=dict(os.environ),
        deliver=settings.deliver,
        project_default=settings.project,
        channels=settings.channels,
    )


def escalate_session(
    runtime: RuntimeState,
    settings: EscalationSettings,
    loaded: Sequence[LoadedConfig],
    results: Iterable[CheckResult],
    session_id: str,
) -> EngineReport:
    """Run the engine for a recorded gate session: each check's own ``escalation_path``, else
    the settings' ``default_path`` (ini ``maf_default_escalation``)."""
    check_paths = {
        c.id: path
        for c in loaded
        if c.config_type != "escalation_path"
        and (path := c.config.escalation_path or settings.default_path)
    }
    engine = engine_for(runtime, settings, loaded)
    return engine.process_session(list(results), check_paths=check_paths, session_id=session_id)
