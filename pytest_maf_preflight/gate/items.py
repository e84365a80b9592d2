"""Preflight checks as pytest items: one collector per config file, one item per check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..checks.base import CheckResult
from ..warning_types import MafCheckWarning, MafReservationOverride
from .issued_warnings import issue
from .keys import GATE_KEY
from .state import CheckDescriptor
from .waivers import described, until


class PreflightCheckFailed(Exception):
    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.check_id)
        self.result = result


class PreflightConfigFile(pytest.File):
    """A preflight config file; its children are the smoke checks it defines."""

    descriptors: list[CheckDescriptor]

    def collect(self) -> Iterator[PreflightCheckItem]:
        for descriptor in self.descriptors:
            yield PreflightCheckItem.from_parent(self, name=descriptor["id"], descriptor=descriptor)


class PreflightCheckItem(pytest.Item):
    """Reports one config check's result; the gate ran every check before items run."""

    def __init__(self, *, descriptor: CheckDescriptor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.descriptor = descriptor
        self.check_id: str = descriptor["id"]
        self.user_properties.append(("maf_check_id", self.check_id))
        self.add_marker("maf_preflight_check")

    def runtest(self) -> None:
        gate = self.config.stash[GATE_KEY]
        result = gate.results.get(self.check_id)
        if result is None:  # only when the gate could not run (e.g. --collect-only paths)
            pytest.fail(f"preflight check {self.check_id!r} has no result", pytrace=False)
        self.user_properties.append(("maf_check_status", result.status.value))
        self.user_properties.append(("maf_check_duration", f"{result.duration:.3f}"))
        if result.reused_from is not None:  # a recent pass, not run again (gate.reuse)
            reused = result.reused_from["execution_id"]
            self.user_properties.append(("maf_check_reused_from", str(reused)))
        if result.passed:
            if result.details.get("override"):
                message = (
                    f"preflight check {self.check_id!r}: reservation conflicts let "
                    f"through by MAF_RESERVATION_OVERRIDE=1 (recorded as an unapproved "
                    f"override): "
                    f"{result.observed}"
                )
                try:
                    issue(MafReservationOverride(message))
                except MafReservationOverride:  # a filter naming the class made it an error
                    pytest.fail(message, pytrace=False)
            return
        if result.waiver is not None:
            self._waived(result.waiver)
        if gate.is_blocking(result):
            raise PreflightCheckFailed(result)
        try:
            issue(
                MafCheckWarning(
                    f"preflight check {self.check_id!r} {result.status.value} (severity warning): "
                    f"{result.observed or result.message}"
                )
            )
        except MafCheckWarning:
            # A filter naming MafCheckWarning made it an error (a generic ``error`` does not,
            # see issued_warnings): report the check's short failure, not a traceback through
            # pytest's internals. The gate stays open: the severity decides the gate.
            raise PreflightCheckFailed(result) from None

    def _waived(self, waiver: dict[str, Any]) -> None:
        """A failure a waiver lets through: an expected failure (xfail) saying whose waiver and
        until when, also as properties for JUnit XML. Under ``--runxfail`` it fails, as every
        xfail does there: that option asks to see the real failures."""
        self.user_properties.append(("maf_check_waived", "true"))
        self.user_properties.append(("maf_waiver_id", waiver["id"]))
        self.user_properties.append(("maf_waived_by", waiver["granted_by"]))
        self.user_properties.append(("maf_waived_until", until(float(waiver["expires_at"]))))
        pytest.xfail(f"WAIVED: {described(waiver)}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, PreflightCheckFailed):
            return format_failure(excinfo.value.result, self.config.rootpath)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        line = self.descriptor.get("line")
        return self.path, (line - 1 if line else None), f"preflight check {self.check_id}"


def format_failure(result: CheckResult, root: Path) -> str:
    try:
        file = str(Path(result.config_file).relative_to(root))
    except ValueError:
        file = result.config_file
    lines = [
        f"preflight check {result.check_id!r} ({result.test_type}, {result.severity}) "
        f"{result.status.value.upper()} after {result.attempts} attempt"
        f"{'s' if result.attempts != 1 else ''} in {result.duration:.2f}s",
    ]
    if result.expected:
        lines.append(f"  expected: {result.expected}")
    lines.append(f"  observed: {result.observed or result.message}")
    request = result.details.get("request")
    if isinstance(request, dict):  # api checks: what was asked, and the start of the answer
        lines.append(f"  request:  {request.get('method', '')} {request.get('url', '')}")
        if "status" in result.details:
            body = str(result.details.get("body", ""))
            shown = body[:200] + ("..." if len(body) > 200 else "")
            lines.append(f"  response: {result.details['status']} {shown!r}")
    if result.message and result.message != result.observed:
        lines.append(f"  error:    {result.message}")
    lines.append(f"  config:   {file}")
    return "\n".join(lines)
