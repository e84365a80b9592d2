"""Hooks other plugins implement to extend the preflight gate (SPEC S8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pytest
from pluggy import HookspecMarker

if TYPE_CHECKING:
    from .checks.base import CheckRegistry, CheckResult
    from .config.models import EscalationTarget
    from .escalation.channels.notice import Notice
    from .escalation.plugin_channels import ChannelResult
    from .gate.decision import GateDecision

spec = HookspecMarker("pytest")


@spec
def pytest_maf_preflight_register_check_types(
    registry: CheckRegistry, config: pytest.Config
) -> None:
    """Register check types (``test_type`` values) of your own.

    Called once per process that needs the registry (the controller before configs are
    validated; a worker or the ``maf_config`` fixture when they need it), so your types'
    definitions are validated and appear in the generated schema.

    :param registry: call ``registry.register(CheckType(name, DefinitionModel, run))``.
    :param config: the pytest config.

    .. versionadded:: 0.1
    """


@spec(firstresult=True)
def pytest_maf_preflight_gate_decision(
    config: pytest.Config,
    results: Mapping[str, CheckResult],
    smoke_failures: Sequence[str],
    default: GateDecision,
) -> GateDecision | None:
    """Decide whether the gate is open. Return a ``GateDecision`` to override the default.

    Called after the config checks ran and again whenever a ``maf_smoke`` test fails.
    Stops at the first non-None result.

    :param results: check id -> result of this session's config checks.
    :param smoke_failures: node ids of failed ``maf_smoke`` tests so far.
    :param default: the decision the plugin would take by itself.

    .. versionadded:: 0.1
    """


@spec
def pytest_maf_preflight_check_executed(config: pytest.Config, result: CheckResult) -> None:
    """Observe one config check's result, as soon as it is known (controller only under xdist).

    .. versionadded:: 0.1
    """


@spec
def pytest_maf_preflight_escalation_channels(config: pytest.Config) -> Sequence[str] | None:
    """Name the escalation channels your ``pytest_maf_preflight_deliver_escalation`` delivers.

    Called where configs are loaded and escalations delivered (the controller, a test's
    ``maf_escalate``): a target naming a channel that is neither built in, nor named here,
    nor an entry point of the group ``maf_preflight.channels`` is a config error (exit 11).
    Outside pytest (``maf-preflight escalations tick``, ``validate``) only the entry points
    are known: a channel that must work there too belongs in a package.

    :param config: the pytest config.
    :return: channel names (ids: letters, digits, ``_`` and ``-``), or None for none.

    .. versionadded:: 0.1
    """


@spec(firstresult=True)
def pytest_maf_preflight_deliver_escalation(
    config: pytest.Config,
    channel: str,
    notice: Notice,
    target: EscalationTarget,
    environ: Mapping[str, str],
) -> ChannelResult | None:
    """Deliver one escalation notice through a channel that is not built in.

    Called where escalations are delivered (the controller, a test's ``maf_escalate``) for
    each notice to a target whose ``channel`` is not ``mailbox``, ``webhook``, ``command`` or
    ``agent_mail``, before the channel's entry point (if any) is
    tried. Stops at the first non-None result: return None for channels that are not yours.
    An exception, or a result that is not a ``ChannelResult``, is recorded as a failed
    delivery; nothing is retried for you.

    :param channel: the target's ``channel``.
    :param notice: what to deliver: ``kind`` (``request`` or ``resolution``), ``escalation``,
        ``level``, ``target`` (its name), ``severity``, ``summary``, ``agent_id`` and the
        protocol ``message`` as JSON.
    :param target: the target's config: ``url``, ``token_env``, ``timeout_seconds`` and
        ``options`` (the channel's own settings); ``${ENV:NAME}`` references are not expanded.
    :param environ: the environment to read ``token_env`` and ``${ENV:NAME}`` from.
    :return: ``ChannelResult(delivered, error=None, response={})`` from
        ``pytest_maf_preflight.escalation.plugin_channels``, or None.

    .. versionadded:: 0.1
    """
