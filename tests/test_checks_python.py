"""``python`` checks: the running interpreter and the packages really installed."""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version
from pydantic import ValidationError

from pytest_maf_preflight.checks import python_env
from pytest_maf_preflight.checks.base import CheckContext, Observation
from pytest_maf_preflight.checks.python_env import PythonDefinition

PY = Version(platform.python_version())
PYDANTIC = metadata.version("pydantic")


def _run(tmp_path: Path, **definition: Any) -> Observation:
    ctx = CheckContext(rootdir=tmp_path, environ={}, environment="test", agent_id="agent-1")
    return python_env.run(PythonDefinition.model_validate(definition), ctx)


def test_interpreter_range_satisfied(tmp_path: Path) -> None:
    spec = f">={PY.major}.{PY.minor},<{PY.major}.{PY.minor + 1}"
    obs = _run(tmp_path, python=spec)
    assert obs.passed, obs.observed
    assert obs.details["found"] == {"python": platform.python_version()}
    assert obs.expected == f"python{spec}"


def test_interpreter_range_unsatisfied(tmp_path: Path) -> None:
    spec = f">={PY.major}.{PY.minor + 1}"
    obs = _run(tmp_path, python=spec)
    assert not obs.passed
    assert obs.observed == f"python {platform.python_version()} does not satisfy {spec}"


def test_package_with_satisfied_specifier(tmp_path: Path) -> None:
    major = Version(PYDANTIC).major
    obs = _run(tmp_path, packages={"pydantic": f">={major},<{major + 1}", "PyYAML": "*"})
    assert obs.passed, obs.observed
    assert obs.details["found"]["pydantic"] == PYDANTIC
    assert obs.details["found"]["PyYAML"] == metadata.version("PyYAML")


def test_package_with_unsatisfied_specifier(tmp_path: Path) -> None:
    spec = f">{PYDANTIC}"
    obs = _run(tmp_path, packages={"pydantic": spec})
    assert not obs.passed
    assert obs.observed == f"pydantic {PYDANTIC} does not satisfy {spec}"


def test_missing_package(tmp_path: Path) -> None:
    obs = _run(tmp_path, packages={"no-such-distribution-maf-xyz": ">=1"})
    assert not obs.passed
    assert obs.observed == "no-such-distribution-maf-xyz is not installed"
    assert obs.details["found"] == {"no-such-distribution-maf-xyz": None}


def test_package_names_are_normalised(tmp_path: Path) -> None:
    # PEP 503: "Pydantic_Core" and "pydantic-core" are the same distribution.
    obs = _run(tmp_path, packages={"Pydantic_Core": ""})
    assert obs.passed, obs.observed
    assert obs.details["found"]["Pydantic_Core"] == metadata.version("pydantic-core")


def test_every_problem_is_listed(tmp_path: Path) -> None:
    obs = _run(
        tmp_path,
        python=f"<{PY.major}",
        packages={"no-such-distribution-maf-xyz": "", "pydantic": "<1"},
    )
    assert not obs.passed
    assert obs.observed.split("; ") == [
        f"python {platform.python_version()} does not satisfy <{PY.major}",
        "no-such-distribution-maf-xyz is not installed",
        f"pydantic {PYDANTIC} does not satisfy <1",
    ]


@pytest.mark.parametrize("field", ["python", "package"])
def test_invalid_specifier_is_rejected_at_load(field: str) -> None:
    data: dict[str, Any] = (
        {"python": "3.10"} if field == "python" else {"packages": {"pydantic": "version two"}}
    )
    with pytest.raises(ValidationError, match="not a PEP 440 version specifier"):
        PythonDefinition.model_validate(data)
