"""What the gate tells the user: the header line, the terminal summary and the JSON report.

Registered on the controller only (xdist workers' terminals are not shown). The header and the
summary follow pytest's verbosity, as pytest's own plugins do:

- ``-q``: no header line; the summary is one line, the gate's state with the checks' counts,
  after any line that says something the user must know (an observer hook that raised, an
  escalation, a runtime that fell back or recorded nothing);
- default: the header line, and the summary with one line per check, the failed ``maf_smoke``
  tests, those notes and the gate's state;
- ``-v`` and more: the summary adds under each check what it is and what it observed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..atomic import write_atomic
from ..exitcodes import MafExitCode
from .waivers import described

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from .state import GateState

REPORT_PLUGIN = "maf_preflight_report"
#: Width of the status column of the summary's check lines.
_STATUS_WIDTH = 16


class GateReport:
    def __init__(self, state: GateState) -> None:
        self.state = state

    # --- header ---------------------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        if config.get_verbosity() < 0:
            return []
        state, settings, notes = self.state, self.state.settings, self.state.notes
        files = len({d["file"] for d in state.descriptors})
        checks = len(state.descriptors)
        why = settings.runtime.source_of(notes.runtime_mode)
        line = (
            f"maf-preflight: agent {settings.agent_id}, environment "
            f"{settings.environment}, runtime {notes.runtime_mode}"
            f"{f' ({why})' if why else ''}, {_plural(checks, 'check')} "
            f"from {_plural(files, 'config file')}"
        )
        if not checks:
            where = ", ".join(_shown(p, settings.rootdir) for p in settings.config_paths)
            line += f" (no active checks in {where})"
        shown = [*notes.runtime, *([notes.store_notice] if notes.store_notice else [])]
        return [line, *(f"maf-preflight: WARNING {note}" for note in shown)]

    # --- terminal summary -------------------------------------------------------------------

    def pytest_terminal_summary(
        self, terminalreporter: Any, exitstatus: int, config: pytest.Config
    ) -> None:
        tr = terminalreporter
        notes = self.state.notes
        if not self.state.ran:
            for message in notes.hook_errors:
                tr.write_line(f"maf-preflight: {message}", yellow=True)
            return
        verbosity = config.get_verbosity()
        if verbosity >= 0:
            tr.write_sep("=", "maf-preflight")
            self._write_results(tr, details=verbosity > 0)
        for message in notes.hook_errors:
            tr.write_line(f"maf-preflight: {message}", yellow=True)
        for line in (*notes.escalations, *notes.reuse):
            tr.write_line(f"maf-preflight: {line}", yellow=True)
        for note in notes.runtime:
            routine = note.startswith("recorded ") and "memory only" not in note
            if routine and verbosity < 0:
                continue
            tr.write_line(f"maf-preflight: {note}", **({} if routine else {"yellow": True}))
        self._write_gate(tr, quiet=verbosity < 0)

    def _write_results(self, tr: Any, *, details: bool) -> None:
        """A line per check, then the failed smoke tests and the reservation overrides."""
        state = self.state
        width = max((len(r.check_id) for r in state.results.values()), default=10)
        for result in state.results.values():
            waiver = result.waiver
            blocking = state.is_blocking(result) and waiver is None
            status = result.status.value.upper()
            if waiver is not None:
                status = f"WAIVED ({result.status.value})"
            elif not result.passed and not blocking:
                status = f"WARN ({result.status.value})"
            took = f"{result.duration * 1000:8.1f} ms"
            if result.reused_from is not None:
                from .reuse import reused_text

                took = f"({reused_text(result.reused_from)})"
            line = f"{status:<{_STATUS_WIDTH}} {result.check_id:<{width}}  {took}"
            markup = (
                {"green": True}
                if result.passed
                else ({"red": True} if blocking else {"yellow": True})
            )
            tr.write_line(line, **markup)
            if waiver is not None:  # who and until when, at every verbosity but -q
                tr.write_line(f"{'':<{_STATUS_WIDTH}} {described(waiver)}", yellow=True)
            if details:
                tr.write_line(f"{'':<{_STATUS_WIDTH}} {self._details(result)}")
        for nodeid in state.smoke_failures:
            tr.write_line(f"{'FAILED':<{_STATUS_WIDTH}} {nodeid}  (maf_smoke)", red=True)
        for result in state.results.values():
            if result.passed and result.details.get("override"):
                count = len(result.details.get("conflicts", ()))
                tr.write_line(
                    f"RESERVATION OVERRIDE {result.check_id}: {count} conflict(s) "
                    "let through by MAF_RESERVATION_OVERRIDE=1 (recorded as an "
                    "unapproved override)",
                    red=True,
                    bold=True,
                )

    def _details(self, result: CheckResult) -> str:
        """What a check is and what it observed, in one line (``-v``)."""
        shown = _shown(Path(result.config_file), self.state.settings.rootdir)
        observed = (result.observed or result.message).strip().splitlines()
        ran = _plural(result.attempts, "attempt")
        if result.reused_from is not None:
            ran = f"reused, execution {str(result.reused_from['execution_id'])[:12]}"
        text = f"{result.name} ({result.test_type}, {result.severity}), {ran}, {shown}"
        if observed:
            first = observed[0]
            text += f": {first[:120]}{'...' if len(first) > 120 or len(observed) > 1 else ''}"
        return text

    def _write_gate(self, tr: Any, *, quiet: bool) -> None:
        state = self.state
        decision = state.decision
        if decision is None:
            return
        # Without the section's separator (-q) the line says whose it is, and counts.
        prefix = "maf-preflight: " if quiet else ""
        counts = self._counts() if quiet else ""
        # Under xdist the controller collects nothing: smoke outcomes reach it as reports.
        checked = state.results or state.smoke_ids or state.smoke_seen
        if decision.open and not checked:
            tr.write_line(
                f"{prefix}gate open: nothing was checked (no active checks, no maf_smoke tests)",
                yellow=True,
                bold=True,
            )
        elif decision.open:
            waived = f"; waived: {', '.join(decision.waived)}" if decision.waived else ""
            tr.write_line(
                f"{prefix}gate open{f' ({counts})' if counts else ''}{waived}",
                green=True,
                bold=True,
            )
        else:
            tr.write_line(
                f"{prefix}gate CLOSED (exit code {int(MafExitCode.GATE_CLOSED)}"
                f"{f'; {counts}' if counts else ''}): " + ", ".join(decision.blocking),
                red=True,
                bold=True,
            )

    def _counts(self) -> str:
        state = self.state
        results = list(state.results.values())
        passed = sum(r.passed for r in results)
        reused = sum(r.reused_from is not None for r in results)
        waived = sum(r.waiver is not None for r in results)
        failed = sum(not r.passed and r.waiver is None and state.is_blocking(r) for r in results)
        warned = len(results) - passed - failed - waived
        parts = [
            f"{passed} passed" + (f" ({reused} reused)" if reused else ""),
            *([f"{failed} failed"] if failed else []),
            *([f"{warned} warned"] if warned else []),
            *([f"{waived} waived"] if waived else []),
        ]
        text = f"{_plural(len(results), 'check')}: {', '.join(parts)}" if results else "no checks"
        if state.smoke_failures:
            text += f", {_plural(len(state.smoke_failures), 'maf_smoke test')} failed"
        return text

    # --- JSON report ------------------------------------------------------------------------

    def document(self, exit_code: int) -> dict[str, Any]:
        state, decision = self.state, self.state.decision
        return {
            "format": 1,
            "agent_id": state.settings.agent_id,
            "environment": state.settings.environment,
            "gate": {
                "ran": state.ran,
                "open": decision.open if decision else None,
                "blocking": list(decision.blocking) if decision else [],
                "warnings": list(decision.warnings) if decision else [],
                "waived": list(decision.waived) if decision else [],
            },
            "checks": [r.to_dict() for r in state.results.values()],
            "smoke_failures": list(state.smoke_failures),
            "exit_code": exit_code,
        }

    def write_json(self, path: Path, exit_code: int) -> None:
        """Write the JSON report; a failure is said in the summary, not raised (the run's
        outcome stands)."""
        data = json.dumps(self.document(exit_code), indent=2, default=str)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data.encode())
        except OSError as exc:
            self.state.notes.hook_errors.append(
                f"cannot write the report to {path}: {exc.strerror or exc}"
            )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
