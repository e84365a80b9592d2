"""Test outcomes read from pytest's JUnit XML, and the differences between two runs.

A test is named by ``classname::name`` from its ``<testcase>`` (JUnit XML holds no node id; the
pair is as unique as one); a name that repeats is one test reported twice (a failed call, then
an error in teardown), and its outcomes are joined. The gate's own check items carry a
``maf_check_id`` property: they are kept apart, since only the gated runs have them.

Standard library only, like the rest of ``compat/``.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

#: The reason the gate gives every test it skips.
GATE_CLOSED_REASON = "maf-preflight gate closed"


class JUnitError(Exception):
    """A JUnit XML file that is missing or cannot be read as one."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    #: passed, failed, error, skipped, xfailed, or two joined by ``+`` (a failed call and an
    #: error in teardown, say).
    kind: str
    #: The first line of the failure, error or skip message, when there is one.
    message: str = ""


@dataclasses.dataclass(frozen=True)
class CheckItem:
    #: How the check's item ended (a failing ``warning`` check's item passes, with a warning).
    outcome: Outcome
    #: What the check found (``maf_check_status``: passed, failed, timeout, error, ...).
    status: str


@dataclasses.dataclass(frozen=True)
class RunOutcomes:
    #: Every test but the gate's check items, in the order the file lists them.
    tests: dict[str, Outcome]
    #: The gate's check items by check id.
    checks: dict[str, CheckItem]


@dataclasses.dataclass(frozen=True)
class Difference:
    test: str
    #: ``None``: the test is missing from that run.
    expected: Outcome | None
    actual: Outcome | None

    def describe(self) -> str:
        return f"{self.test}: {_show(self.expected)} -> {_show(self.actual)}"


def _show(outcome: Outcome | None) -> str:
    if outcome is None:
        return "(not run)"
    return f"{outcome.kind} ({outcome.message})" if outcome.message else outcome.kind


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:200] if (text or "").strip() else ""


def _outcome(case: ET.Element) -> Outcome:
    kinds: list[str] = []
    message = ""
    for child in case:
        if child.tag in ("failure", "error"):
            kinds.append("failed" if child.tag == "failure" else "error")
        elif child.tag == "skipped":
            kinds.append("xfailed" if child.get("type") == "pytest.xfail" else "skipped")
        else:
            continue
        message = message or _first_line(child.get("message"))
    return Outcome("+".join(kinds) if kinds else "passed", message)


def _properties(case: ET.Element) -> dict[str, str]:
    return {prop.get("name", ""): prop.get("value", "") for prop in case.iter("property")}


def read_junit(path: Path) -> RunOutcomes:
    """The outcomes a JUnit XML file records; ``JUnitError`` when it cannot be read."""
    try:
        # Written by pytest, in a run this machine made: not untrusted input.
        root = ET.parse(path).getroot()  # noqa: S314
    except FileNotFoundError:
        raise JUnitError(f"{path}: no JUnit XML was written") from None
    except (OSError, ET.ParseError) as exc:
        raise JUnitError(f"{path}: not JUnit XML: {exc}") from None
    tests: dict[str, Outcome] = {}
    checks: dict[str, CheckItem] = {}
    for case in root.iter("testcase"):
        properties = _properties(case)
        if "maf_check_id" in properties:
            checks[properties["maf_check_id"]] = CheckItem(
                _outcome(case), properties.get("maf_check_status", "")
            )
            continue
        classname, name = case.get("classname", ""), case.get("name", "")
        key = f"{classname}::{name}" if classname else name
        tests[key] = _merged(tests[key], _outcome(case)) if key in tests else _outcome(case)
    return RunOutcomes(tests, checks)


def _merged(first: Outcome, second: Outcome) -> Outcome:
    """One test reported twice: pytest writes an error in teardown as a testcase of its own."""
    kinds = [kind for kind in (first.kind, second.kind) if kind != "passed"] or ["passed"]
    return Outcome("+".join(kinds), first.message or second.message)


def differences(expected: RunOutcomes, actual: RunOutcomes) -> list[Difference]:
    """Every test whose outcome differs between two runs, or that only one of them ran.

    Only the kind counts: messages carry addresses, timings and temporary paths that differ
    from run to run anyway.
    """
    found = []
    for test in sorted(expected.tests.keys() | actual.tests.keys()):
        want, got = expected.tests.get(test), actual.tests.get(test)
        if want is None or got is None or want.kind != got.kind:
            found.append(Difference(test, want, got))
    return found


def order_difference(expected: RunOutcomes, actual: RunOutcomes) -> str | None:
    """Where two runs of the same tests first ran them in a different order, if they did."""
    if expected.tests.keys() != actual.tests.keys():
        return None  # differences() reports the tests themselves
    for position, (want, got) in enumerate(zip(expected.tests, actual.tests, strict=True)):
        if want != got:
            return f"order differs from test {position + 1}: {want} expected, {got} ran"
    return None


def closed_gate_problems(expected: RunOutcomes, closed: RunOutcomes) -> list[str]:
    """What is wrong with a run whose gate closed: every test must be there, skipped by the
    gate, or by its own ``skip``/``skipif`` when it skips without the gate too (pytest decides
    those first, with their own reason)."""
    problems = [
        f"{test}: not in the closed-gate run" for test in expected.tests if test not in closed.tests
    ]
    for test, outcome in closed.tests.items():
        if outcome.kind == "skipped" and GATE_CLOSED_REASON in outcome.message:
            continue
        before = expected.tests.get(test)
        if outcome.kind == "skipped" and before is not None and before.kind == "skipped":
            continue
        problems.append(f"{test}: {_show(outcome)}, expected skipped by the gate")
    return problems
