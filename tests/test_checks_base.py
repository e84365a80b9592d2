"""The shared parts of checks: registry, context, result round trip."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_maf_preflight.checks.base import (
    CheckContext,
    CheckRegistry,
    CheckResult,
    CheckStatus,
    CheckType,
    Definition,
)
from pytest_maf_preflight.checks.builtin import builtin_registry


class Empty(Definition):
    pass


def test_builtin_registry_knows_every_documented_type() -> None:
    registry = builtin_registry()
    assert registry.names() == [
        "api",
        "command",
        "database",
        "environment",
        "file_system",
        "integration",
        "performance",
        "python",
    ]
    runnable = {t.name for t in registry if t.run is not None}
    assert {"api", "command", "database", "environment", "file_system", "python"} <= runnable


def test_registering_a_name_twice_is_refused() -> None:
    registry = CheckRegistry([CheckType("mine", Empty, None)])
    with pytest.raises(ValueError, match="'mine' is already registered"):
        registry.register(CheckType("mine", Empty, None))
    assert registry.get("other") is None


def test_context_paths_and_remaining_time(tmp_path: Path) -> None:
    ctx = CheckContext(rootdir=tmp_path, environ={}, environment="test", agent_id="a")
    assert ctx.path("sub/file") == tmp_path / "sub" / "file"
    assert ctx.path("/abs/file") == Path("/abs/file")
    assert ctx.path("~/x") == Path.home() / "x"
    assert ctx.remaining(default=12.5) == 12.5
    past = CheckContext(
        rootdir=tmp_path,
        environ={},
        environment="test",
        agent_id="a",
        deadline=time.monotonic() - 1,
    )
    assert past.remaining(default=12.5) == 0.0


def test_result_round_trips_through_a_dict() -> None:
    result = CheckResult(
        check_id="c",
        name="n",
        test_type="command",
        severity="warning",
        status=CheckStatus.TIMEOUT,
        attempts=2,
        details={"k": [1, 2]},
    )
    data = result.to_dict()
    assert data["status"] == "timeout"
    assert CheckResult.from_dict(data) == result
    assert not result.passed
