"""``integration`` checks: a named group of other checks that must all pass.

An integration check runs nothing itself: the runner decides it from its members' results once
they are all known, so each member runs once however many groups name it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from .base import CheckContext, CheckResult, CheckType, Definition, Observation


class IntegrationDefinition(Definition):
    checks: list[str] = Field(min_length=1, description="Ids of the checks that must all pass "
                              "(smoke checks, not other groups)")


def run(definition: IntegrationDefinition, ctx: CheckContext) -> Observation:
    raise RuntimeError("an integration check is decided by the runner from its members")


def decide(members: Mapping[str, CheckResult | None]) -> Observation:
    """Passed when every member passed; the report lists each member and its status."""
    listed = ", ".join(f"{cid} {r.status.value if r else 'not an active check'}"
                       for cid, r in members.items())
    failed = [cid for cid, r in members.items() if r is None or not r.passed]
    return Observation(
        passed=not failed, expected=f"all of {', '.join(members)} pass",
        observed=(f"{len(failed)} of {len(members)} did not pass: {listed}" if failed
                  else f"all passed: {listed}"),
        details={"members": {cid: (r.status.value if r else "unknown")
                             for cid, r in members.items()}})


CHECK_TYPE = CheckType("integration", IntegrationDefinition, run,
                       "A group of other checks that must all pass")
