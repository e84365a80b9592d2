"""``python`` checks: interpreter version range and installed packages with PEP 440 specifiers."""

from __future__ import annotations

import functools
import platform
from importlib import metadata
from typing import Annotated

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, Field, field_validator, model_validator

from .base import CheckContext, CheckType, Definition, Observation


def _specifier(value: str) -> str:
    if value.strip() in ("", "*"):
        return value
    try:
        SpecifierSet(value)
    except InvalidSpecifier:
        raise ValueError(f"{value!r} is not a PEP 440 version specifier (e.g. '>=3.10')") from None
    return value


class PythonDefinition(Definition):
    """What to check: the interpreter's version (``python``) and ``packages``; at least one."""

    python: str | None = Field(
        default=None, min_length=1, description="PEP 440 specifier for the interpreter"
    )
    packages: dict[str, Annotated[str, AfterValidator(_specifier)]] = Field(
        default_factory=dict, description="Distribution name -> PEP 440 specifier or '*'"
    )

    @field_validator("python")
    @classmethod
    def _python_spec(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                "expected a PEP 440 version specifier such as '>=3.10', got an empty string"
            )
        return None if value is None else _specifier(value)

    @model_validator(mode="after")
    def _checks_something(self) -> PythonDefinition:
        any_python = self.python is None or self.python.strip() == "*"
        if any_python and not self.packages:
            raise ValueError(
                "nothing to check: give at least one of python (a version range "
                "other than '*'), packages"
            )
        return self


@functools.cache
def _installed_version(name: str) -> str | None:
    # Cached: a gate often asks for the same distributions many times, and each
    # lookup walks sys.path. The set of installed packages does not change mid-run.
    try:
        return metadata.version(canonicalize_name(name))
    except metadata.PackageNotFoundError:
        return None


def _satisfies(version: str, spec: str) -> bool:
    if spec.strip() in ("", "*"):
        return True
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def run(definition: PythonDefinition, ctx: CheckContext) -> Observation:
    problems: list[str] = []
    found: dict[str, str | None] = {}
    wanted: list[str] = []
    if definition.python:
        current = platform.python_version()
        wanted.append(f"python{definition.python}")
        found["python"] = current
        if not _satisfies(current, definition.python):
            problems.append(f"python {current} does not satisfy {definition.python}")
    for name, spec in definition.packages.items():
        wanted.append(f"{name}{'' if spec.strip() in ('', '*') else spec}")
        version = _installed_version(name)
        found[name] = version
        if version is None:
            problems.append(f"{name} is not installed")
        elif not _satisfies(version, spec):
            problems.append(f"{name} {version} does not satisfy {spec}")
    observed = "; ".join(problems) if problems else ", ".join(f"{k} {v}" for k, v in found.items())
    return Observation(
        passed=not problems,
        expected=", ".join(wanted) or "(nothing)",
        observed=observed,
        details={"found": found},
    )


CHECK_TYPE = CheckType(
    "python", PythonDefinition, run, "Interpreter version range and installed packages (PEP 440)"
)
