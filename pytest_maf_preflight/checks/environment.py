"""``environment`` checks: required variables present, values matching patterns, never shown."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from .. import matching
from ..config.models import compile_regex
from .base import CheckContext, CheckType, Definition, Observation

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class EnvironmentDefinition(Definition):
    """What to check: ``required`` variables and ``patterns``; at least one must be given.

    ``optional`` variables are only reported (in the details) when unset; they check nothing,
    so a definition with only ``optional`` is a config error rather than a check that always
    passes.
    """

    required: list[EnvName] = Field(default_factory=list)
    optional: list[EnvName] = Field(
        default_factory=list, description="Reported when unset; never fails the check"
    )
    patterns: dict[
        EnvName,
        Annotated[str, AfterValidator(compile_regex), Field(json_schema_extra={"format": "regex"})],
    ] = Field(
        default_factory=dict, description="Variable -> regex its value must match (fullmatch)"
    )
    allow_empty: bool = False

    @model_validator(mode="after")
    def _checks_something(self) -> EnvironmentDefinition:
        if not self.required and not self.patterns:
            raise ValueError(
                "nothing to check: give at least one of required, patterns "
                "('optional' variables are only reported)"
            )
        return self


def run(definition: EnvironmentDefinition, ctx: CheckContext) -> Observation:
    env = ctx.environ
    missing = [
        name
        for name in definition.required
        if name not in env or (not definition.allow_empty and env[name] == "")
    ]
    mismatched = []
    for name, pattern in definition.patterns.items():
        # An empty value counts as unset unless ``allow_empty``; then it must match too.
        if (
            name in env
            and (env[name] or definition.allow_empty)
            and not matching.fullmatch(pattern, env[name], ctx.remaining(3600.0))
        ):
            mismatched.append(f"{name} does not match {pattern!r} (value redacted)")
    absent_optional = [name for name in definition.optional if not env.get(name)]
    expected = f"set: {', '.join(definition.required) or '(none)'}"
    if definition.patterns:
        expected += f"; matching patterns for {', '.join(definition.patterns)}"
    problems = []
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    problems.extend(mismatched)
    observed = "; ".join(problems) if problems else "all required variables set"
    return Observation(
        passed=not problems,
        expected=expected,
        observed=observed,
        details={
            "missing": missing,
            "optional_missing": absent_optional,
            "present": [n for n in definition.required if n not in missing],
        },
    )


CHECK_TYPE = CheckType(
    "environment",
    EnvironmentDefinition,
    run,
    "Environment variables present (values redacted), optional patterns",
)
