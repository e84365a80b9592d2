"""Hooks other plugins implement to extend the preflight gate (SPEC S8)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pytest
from pluggy import HookspecMarker

if TYPE_CHECKING:
    from .checks.base import CheckRegistry, CheckResult
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
