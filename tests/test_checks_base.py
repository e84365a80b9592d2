"""The shared parts of checks: registry, context, result round trip."""

from __future__ import annotations

import importlib
import sys
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
from pytest_maf_preflight.checks.builtin import BUILTIN_MODULES, builtin_registry


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


def test_a_type_registered_by_module_is_imported_when_first_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "maf_lazy_type.py").write_text(
        "from pytest_maf_preflight.checks.base import CheckType, Definition\n"
        "class Nothing(Definition):\n    pass\n"
        "CHECK_TYPE = CheckType('lazy', Nothing, None)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = CheckRegistry(modules={"lazy": "maf_lazy_type"})

    assert registry.names() == ["lazy"]
    assert registry.is_builtin("lazy")
    assert "maf_lazy_type" not in sys.modules  # knowing the name imports nothing
    with pytest.raises(ValueError, match="'lazy' is already registered"):
        registry.register(CheckType("lazy", Empty, None))

    check_type = registry.get("lazy")
    assert check_type is not None
    assert check_type is sys.modules["maf_lazy_type"].CHECK_TYPE
    assert registry.get("lazy") is check_type
    registry.register(CheckType("mine", Empty, None))
    assert [t.name for t in registry] == ["lazy", "mine"]
    assert not registry.is_builtin("mine")


def test_a_module_holding_another_type_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "maf_other_type.py").write_text(
        "from pytest_maf_preflight.checks.base import CheckType, Definition\n"
        "CHECK_TYPE = CheckType('other', Definition, None)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = CheckRegistry(modules={"lazy": "maf_other_type"})
    with pytest.raises(TypeError, match=r"maf_other_type\.CHECK_TYPE is not the check type 'lazy'"):
        registry.get("lazy")


def test_every_builtin_module_holds_its_type() -> None:
    registry = builtin_registry()
    for name, module in BUILTIN_MODULES.items():
        assert registry.get(name) is importlib.import_module(module).CHECK_TYPE
