"""The gate in GitHub Actions' own terms: an annotation per check that did not pass, and the
gate's Markdown summary appended to the job's step summary.

Registered on the controller only, and only when ``GITHUB_ACTIONS`` is ``true`` (as GitHub
sets it on its runners), so xdist workers and runs elsewhere print nothing more. Both are
written at the end of the terminal summary, where the gate's results and decision are final:

- ``::error file=...,line=...,title=<check id>::<failure>`` for a blocking check that failed,
  timed out or errored (``::warning`` for one of severity warning), the file relative to the
  workspace (``GITHUB_WORKSPACE``, else the rootdir) and the line of the check's ``id``, so
  GitHub shows it on the config file in the pull request; a failed ``maf_smoke`` test is
  annotated on its test file. Values are escaped by the workflow-command rules (``%``, CR and
  LF in the message; also ``:`` and ``,`` in properties).
- ``$GITHUB_STEP_SUMMARY`` (when set) gets the gate's state, what closed it and a table of the
  checks with status and duration, appended (other steps' summaries stay). A file that cannot
  be written is said in the terminal summary; the run's outcome stands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .items import format_failure

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from .state import GateState

GITHUB_PLUGIN = "maf_preflight_github"


def on_github_actions(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS", "").strip().lower() == "true"


def register_github(config: pytest.Config, state: GateState) -> None:
    """Add the GitHub output to the controller's plugins when the run is on GitHub Actions."""
    if on_github_actions(os.environ):
        config.pluginmanager.register(GitHubOutput(state), GITHUB_PLUGIN)


# --- workflow commands ------------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A command's message as GitHub reads it back (``%`` first: the others add one)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A command property's value: the message's escapes, and ``:`` and ``,``, which end it."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(
    level: str, message: str, *, file: str, line: int | None = None, title: str = ""
) -> str:
    """One ``::error`` or ``::warning`` workflow command."""
    properties = [f"file={escape_property(file)}"]
    if line is not None:
        properties.append(f"line={line}")
    if title:
        properties.append(f"title={escape_property(title)}")
    return f"::{level} {','.join(properties)}::{escape_data(message)}"


def workspace_path(path: Path, workspace: Path) -> str:
    """``path`` as GitHub names files: relative to the workspace, with ``/``; a file outside it
    keeps its absolute path."""
    resolved = Path(os.path.realpath(path))
    try:
        return resolved.relative_to(os.path.realpath(workspace)).as_posix()
    except ValueError:
        return resolved.as_posix()


# --- the plugin -------------------------------------------------------------------------------


class GitHubOutput:
    def __init__(self, state: GateState) -> None:
        self.state = state

    # trylast: after the gate's own section of the summary.
    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.state.ran:
            return
        for line in self.annotations():
            terminalreporter.write_line(line)
        target = os.environ.get("GITHUB_STEP_SUMMARY", "").strip()
        if not target:
            return
        try:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(self.markdown())
        except OSError as exc:
            terminalreporter.write_line(
                f"maf-preflight: cannot append the gate's summary to GITHUB_STEP_SUMMARY "
                f"({target}): {exc.strerror or exc}",
                yellow=True,
            )

    @property
    def workspace(self) -> Path:
        given = os.environ.get("GITHUB_WORKSPACE", "").strip()
        return Path(given) if given else self.state.settings.rootdir

    def annotations(self) -> Iterator[str]:
        state, workspace = self.state, self.workspace
        rootdir = state.settings.rootdir
        id_lines = {entry.id: entry.id_line or entry.line for entry in state.loaded}
        for result in state.results.values():
            if result.passed:
                continue
            yield annotation(
                "error" if state.is_blocking(result) else "warning",
                format_failure(result, rootdir),
                file=workspace_path(Path(result.config_file), workspace),
                line=id_lines.get(result.check_id),
                title=result.check_id,
            )
        for nodeid in state.smoke_failures:
            yield annotation(
                "error",
                f"maf_smoke test {nodeid} failed: the gate is closed",
                file=workspace_path(rootdir / nodeid.split("::")[0], workspace),
                title=nodeid,
            )

    def markdown(self) -> str:
        """The gate's summary as a Markdown section, ending with a blank line."""
        state, decision = self.state, self.state.decision
        settings = state.settings
        heading = "gate open" if decision is None or decision.open else "gate CLOSED"
        lines = [
            f"## maf-preflight: {heading}",
            "",
            f"Agent {_cell(settings.agent_id)}, environment {_cell(settings.environment)}.",
            "",
        ]
        if decision is not None and not decision.open:
            lines += ["Closed by: " + ", ".join(_cell(b) for b in decision.blocking), ""]
        if decision is not None and decision.warnings:
            lines += ["Warnings: " + ", ".join(_cell(w) for w in decision.warnings), ""]
        if state.results:
            lines += ["| check | status | duration |", "| --- | --- | --- |"]
            lines += [
                f"| {_cell(r.check_id)} | {self._status(r)} | {_duration(r.duration)} |"
                for r in state.results.values()
            ]
            lines.append("")
        else:
            lines += ["No active checks.", ""]
        if state.smoke_failures:
            lines.append("Failed maf_smoke tests:")
            lines += [f"- {_cell(nodeid)}" for nodeid in state.smoke_failures]
            lines.append("")
        return "\n".join(lines) + "\n"

    def _status(self, result: CheckResult) -> str:
        if result.passed:
            return "passed"
        if self.state.is_blocking(result):
            return f"**{result.status.value.upper()}**"
        return f"warning ({result.status.value})"


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell or line: one line, no table pipes, no HTML."""
    one_line = " ".join(str(text).split())
    return one_line.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"
