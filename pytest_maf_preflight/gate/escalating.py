"""A gated session's escalations, run by the controller once the session is recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from ..escalation.plugin_channels import PluginChannels
    from ..escalation.session import EscalationSettings
    from ..runtime.factory import OpenedRuntime
    from ..settings import Settings
    from .state import GateState


def escalation_settings(settings: Settings, config: pytest.Config) -> EscalationSettings:
    """What escalating takes of the plugin's settings (the gate's, and ``maf_escalate``'s),
    with the channels ``config``'s plugins add."""
    # Imported when escalating: the engine and its channels are not on the gate's path.
    from ..escalation.session import EscalationSettings

    return EscalationSettings(
        agent_id=settings.agent_id,
        mail_root=settings.runtime.mail_root,
        project=str(settings.rootdir),
        deliver=settings.escalate,
        default_path=settings.default_escalation,
        channels=plugin_channels(config),
    )


def plugin_channels(config: pytest.Config) -> PluginChannels:
    """The channels plugins add in this pytest run: the deliver hook, for the names the
    plugins give, then the entry points."""
    import functools

    from ..escalation.plugin_channels import PluginChannels

    named = config.hook.pytest_maf_preflight_escalation_channels(config=config)
    return PluginChannels(
        hook=functools.partial(config.hook.pytest_maf_preflight_deliver_escalation, config=config),
        # A plugin returning one name rather than a list of them means that name.
        hook_names=frozenset(
            name for names in named for name in ([names] if isinstance(names, str) else names)
        ),
    )


def escalate_recorded(state: GateState, opened: OpenedRuntime, session_id: str) -> list[str]:
    """Run the escalation engine on the session recorded in ``opened``; the summary's lines."""
    if not state.settings.escalate:
        return ["escalations: off for this run (--maf-no-escalate)"]
    if not state.ran:
        return []
    if opened.mode == "memory" or opened.skipped:
        # Streaks, deduplication and levels live in the store: one that forgets them, or
        # a fallback beside the real one, would page someone again on every run.
        return [
            f"escalations: not run, the runtime is {opened.mode}"
            + (" after a fallback" if opened.skipped else "")
            + " (they need the store that holds the open escalations)"
        ]
    from ..escalation.session import escalate_session

    try:
        report = escalate_session(
            opened.runtime,
            escalation_settings(state.settings, state.config),
            state.loaded,
            state.results.values(),
            session_id,
        )
    except Exception as exc:  # the run's verdict stands; the failure is said, not raised
        return [f"escalations failed: {type(exc).__name__}: {exc}"]
    return report.lines() if report is not None else []
