"""The page of one gate run (``--maf-html=PATH``), written by the controller at session end.

The run's timeline comes from its own check results (each has its start and duration); the
history, leases, escalations and agents from the runtime the session was recorded in, read
after recording (so the page counts this run and the escalations it opened) and before the
store closes. Writing is the very last step, with the run's final exit code; a page that cannot
be written is a note in the summary, never a changed outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..runtime.recent_outcomes import DEFAULT_PER_CHECK
from .gather import Sections, page_of, read_sections
from .model import PageData, RunHeader, Timeline, TimelineBar, timeline_of
from .render import write_page

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from ..gate.state import GateState
    from ..runtime.factory import OpenedRuntime


def run_timeline(
    results: Iterable[CheckResult], is_blocking: Callable[[CheckResult], bool]
) -> Timeline:
    """The run's checks on one axis, from the first start."""
    checked = list(results)
    if not checked:
        return Timeline()
    zero = min(r.started_at for r in checked)
    bars = [
        TimelineBar(
            check_id=r.check_id,
            name=f"{r.name} ({r.test_type}, {r.severity})",
            status=r.status.value,
            start=max(0.0, r.started_at - zero),
            duration=max(0.0, r.duration),
            attempts=r.attempts,
            blocking=is_blocking(r),
            message="" if r.passed else (r.message or r.observed),
        )
        for r in checked
    ]
    return timeline_of(bars)._replace(started_at=zero)


class RunPage:
    """Reads the runtime's sections while the store is open, then writes the page."""

    def __init__(self, state: GateState, *, session_id: str, started_at: float) -> None:
        self.state = state
        self.session_id = session_id
        self.started_at = started_at
        self.sections = Sections(store="no runtime (nothing was recorded)")

    def read(self, opened: OpenedRuntime | None) -> None:
        """The history (every agent's), leases, escalations and agents of ``opened``, the
        runtime holding the session."""
        if opened is None:
            return
        state, settings = self.state, self.state.settings
        why = settings.runtime.source_of(opened.mode)
        store = f"the {opened.mode} runtime" + (f" ({why})" if why else "")
        try:
            self.sections = read_sections(
                opened.runtime,
                store=store,
                since=None,
                agent_id=None,
                rootdir=settings.rootdir,
                now=time.time(),
                config_ids=[*state.results, *state.smoke_seen, *state.smoke_ids],
                # Read where the run's reservation checks read them already; elsewhere the
                # reader's imports alone would cost the page more than the rest of it.
                original_maf=any(
                    r.test_type.startswith("reservation_check/") for r in state.results.values()
                ),
            )
        except Exception as exc:  # the page must not break the run: it says what went wrong
            self.sections = Sections(
                store=store, notes=(f"the runtime could not be read: {exc!r}",)
            )

    def write(self, path: Path, exit_code: int) -> None:
        """Write the page; a failure is a note in the summary (the run's outcome stands)."""
        try:
            write_page(path, self.page(exit_code))
        except OSError as exc:
            self.state.notes.hook_errors.append(
                f"cannot write the report page to {path}: {exc.strerror or exc}"
            )
        except Exception as exc:  # a bug in the page must not change the run's outcome
            self.state.notes.hook_errors.append(f"cannot write the report page to {path}: {exc!r}")

    def page(self, exit_code: int) -> PageData:
        state = self.state
        decision = state.decision
        verdict = None if decision is None else ("open" if decision.open else "closed")
        run = RunHeader(
            title="This run",
            agent_id=state.settings.agent_id,
            environment=state.settings.environment,
            started_at=self.started_at,
            verdict=verdict,
            exit_code=exit_code,
            session_id=self.session_id,
            blocking=decision.blocking if decision else (),
            warnings=decision.warnings if decision else (),
            smoke_failures=tuple(state.smoke_failures),
        )
        return page_of(
            self.sections,
            generated_at=time.time(),
            scope=f"this run's checks, each over its last {DEFAULT_PER_CHECK} runs by any agent",
            run=run,
            timeline=run_timeline(state.results.values(), state.is_blocking),
        )
