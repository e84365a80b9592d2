"""Escalations for a gate run or a test: which path each check uses, and the engine to run.

The engine (and its channels) is imported only when there is something to escalate: see
``has_work``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.models import EscalationPathBody
from ..runtime.records import OPEN_STATES
from .paths import PathRef

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from ..config.loader import LoadedConfig
    from ..runtime.interface import RuntimeState
    from .engine import EngineReport, EscalationEngine
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
    from .engine import EscalationEngine

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


def check_paths_of(loaded: Iterable[LoadedConfig], default_path: str | None) -> dict[str, str]:
    """Check id -> the path it escalates on: its own ``escalation_path``, else ``default_path``
    (ini ``maf_default_escalation``)."""
    return {
        c.id: path
        for c in loaded
        if c.config_type != "escalation_path" and (path := c.config.escalation_path or default_path)
    }


def watches_agents(loaded: Iterable[LoadedConfig]) -> bool:
    """Whether an active path has an ``agent_stale`` condition, which every gate run evaluates
    although no check names that path."""
    return any(
        condition.condition == "agent_stale"
        for path in paths_of(loaded).values()
        for condition in path.body.trigger_conditions
    )


def has_work(
    runtime: RuntimeState,
    settings: EscalationSettings,
    check_paths: Mapping[str, str],
    loaded: Iterable[LoadedConfig] = (),
) -> bool:
    """Whether the engine has anything to do after a gate run: a check names a path, a path
    watches agents (``agent_stale``), or the store holds an open escalation (a check that
    passes again resolves it, a tick climbs it, even once its path's config is gone: it keeps a
    snapshot). Without any of these the engine would only read the store and find nothing."""
    return (
        bool(check_paths)
        or watches_agents(loaded)
        or not settings.deliver  # the engine's report says that nothing was sent
        or bool(runtime.escalations(states=OPEN_STATES, limit=1))
    )


def escalate_session(
    runtime: RuntimeState,
    settings: EscalationSettings,
    loaded: Sequence[LoadedConfig],
    results: Iterable[CheckResult],
    session_id: str,
) -> EngineReport | None:
    """Run the engine for a recorded gate session: each check's own ``escalation_path``, else
    the settings' ``default_path`` (ini ``maf_default_escalation``). None, without importing
    the engine, when it has nothing to do (``has_work``)."""
    check_paths = check_paths_of(loaded, settings.default_path)
    if not has_work(runtime, settings, check_paths, loaded):
        return None
    engine = engine_for(runtime, settings, loaded)
    return engine.process_session(list(results), check_paths=check_paths, session_id=session_id)
