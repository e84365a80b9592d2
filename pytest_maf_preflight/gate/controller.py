"""The gate's controller: loads the configs, runs the checks once, decides, records the session,
escalates, and sets the exit code.

Registered in every gated process that is not an xdist worker: a session without xdist, or
xdist's controller, which hands its results to the workers (``XdistController``) where
``worker.GateWorker`` takes over.

Flow: configs are loaded before the session starts (``loading.preload``: errors end it with one
clear message); every active check runs once, concurrently, on a background thread started as
pytest configures (``early_start``), or else as collection starts (under xdist, as the first
worker is set up), and the first test waits for them (under xdist, the set-up of the first
worker: see ``check_run``); check items report those results; ``maf_smoke``
tests run next; a failure of either closes the gate and the rest is skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..checks.base import CheckResult
from ..checks.runner import PlannedCheck
from ..exitcodes import MafExitCode
from ..processes import groups
from ..redaction import is_secret_key
from ..runtime.errors import RuntimeStateError
from ..runtime.records import WaiverRecord, new_id
from ..settings import Settings
from ..warning_types import MafRuntimeFallback
from .barrier import SmokeBarrier
from .check_run import CheckRun, check_context
from .collection import COLLECTION_PLUGIN, GateCollection, is_smoke_report
from .decision import GateDecision
from .early_start import take
from .escalating import escalate_recorded
from .heap import NOT_FROZEN, freeze, thaw
from .issued_warnings import issue
from .item_hooks import register_item_hooks
from .keys import GATE_KEY, WORKER_ERROR_KEY, WORKER_KEY
from .live_line import LIVE_TICK, live_line_for
from .loading import preloaded
from .messaging import GateMessages
from .recording import SmokeOutcome, build_bundle
from .report import REPORT_PLUGIN, GateReport
from .state import CheckDescriptor, GateState
from .store import GateStore
from .waivers import apply_waivers

if TYPE_CHECKING:
    from ..report_page.run import RunPage

CONTROLLER_PLUGIN = "maf_preflight_gate"
_FALLBACK_IS_AN_ERROR = "MafRuntimeFallback is an error by the warning filters"


def _secrets() -> list[str]:
    # Read each time: a test may set a secret variable after the session started.
    return [v for k, v in os.environ.items() if v and is_secret_key(k)]


class GateController:
    def __init__(self, state: GateState, report: GateReport, *, nested: bool) -> None:
        self.state = state
        self.config = state.config
        self.settings = state.settings
        self.report = report
        #: Whether this session runs inside another one (pytester): see heap.freeze.
        self.nested = nested
        self.store = GateStore(state.settings, state.notes)
        self.planned: list[PlannedCheck] = []
        self.session: pytest.Session | None = None
        self.started_at = time.time()
        # Known from the start: the protocol messages written as checks run carry it.
        self.session_id = new_id()
        self.messages: GateMessages | None = None  # those messages, once the checks ran
        #: The checks running on their thread; None until they start (see ``start_checks``,
        #: and ``early_start``: a run started before the session is taken over at its start).
        self.check_run: CheckRun | None = None
        self.smoke_outcomes: dict[str, SmokeOutcome] = {}
        #: The smoke barrier of xdist workers; None until the first worker is set up.
        self.barrier: SmokeBarrier | None = None
        self.barrier_dir: Path | None = None
        self.barrier_aborted = False
        #: Whether test reports can concern the gate (smoke tests, or xdist workers' reports);
        #: cleared when the test loop starts without either.
        self.watch_reports = True
        self.frozen = NOT_FROZEN
        #: The waivers active as the session started (newest first), read from the runtime.
        self.waivers: list[WaiverRecord] = []

    # --- session start ------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        # Normally loaded (and validated) already by pytest_cmdline_main; see loading.preload.
        found = preloaded(self.config, self.settings)
        self.check_run = take(self.config)
        if self.check_run is not None and self.check_run.started_at is not None:
            # The session began when its checks did, which was before this controller was.
            self.started_at = min(self.started_at, self.check_run.started_at)
        self.store.open()
        descriptors = []
        for entry, planned in found.plan:
            self.planned.append(planned)
            descriptors.append(
                CheckDescriptor(
                    id=entry.id,
                    name=entry.config.name,
                    file=str(entry.file),
                    line=entry.line,
                    severity=entry.config.severity.value,
                    test_type=planned.check_type.name,
                )
            )
        self.state.prepare(found.registry, found.loaded, descriptors)
        self.waivers = self._active_waivers()
        # Under xdist, checks that did not start early start when its controller sets up the
        # first worker (``worker_payload``): in its trylast pytest_sessionstart, after the
        # project's own, so that what a conftest sets up there is up when they look.

    def _active_waivers(self) -> list[WaiverRecord]:
        """The waivers active now, in one query; none without checks to waive or without a
        store that outlives the process (a memory store starts empty)."""
        opened = self.store.opened
        if opened is None or opened.mode == "memory" or not self.planned:
            return []
        try:
            return opened.runtime.waivers(active_at=time.time())
        except (RuntimeStateError, OSError) as exc:  # no waiver is safe: the gate stays strict
            self.state.notes.runtime.append(f"cannot read the waivers: {exc}")
            return []

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> None:
        # The runtime opened at session start; its fallbacks are warned about here, where
        # pytest captures warnings (those of collection) for its summary and its filters.
        error = self._warn_fallbacks()
        if error is not None:
            raise pytest.UsageError(f"{error} ({_FALLBACK_IS_AN_ERROR})")
        # The checks run while the tests are collected; --collect-only runs none, as pytest
        # runs no test then (nor do --fixtures and the like, which collect without this hook).
        if not session.config.option.collectonly:
            self.start_checks()

    def _warn_fallbacks(self) -> str | None:
        """A ``MafRuntimeFallback`` per fallback not warned about yet; the message of the first
        one a filter naming the plugin's warnings made an error, if any."""
        for note in self.store.take_fallbacks():
            message = f"maf-preflight: {note}"
            try:
                issue(MafRuntimeFallback(message))
            except MafRuntimeFallback:
                return message
        return None

    # --- the checks ---------------------------------------------------------------------------

    def start_checks(self) -> None:
        """Start every active check once, on a background thread (``check_run``), so that they
        run while pytest goes on; ``run_gate`` joins them. Later calls do nothing."""
        if self.check_run is None:
            self.check_run = self._check_run()
            self.check_run.start()

    def _check_run(self) -> CheckRun:
        settings, notes = self.settings, self.state.notes
        ctx = check_context(settings, self._reservation_state())
        opened = self.store.opened
        planned, reused = self.planned, dict[str, CheckResult]()
        if any(check.reuse_seconds > 0 for check in planned):
            from .reuse import reuse_recent_passes  # only for configs that ask for it

            planned, reused = reuse_recent_passes(
                planned, opened, settings, notes.reuse, ctx.environ
            )
        return CheckRun(planned, ctx, settings.max_concurrency, known=reused)

    def run_gate(self) -> None:
        """Wait for every active check (started now if they did not start early), and decide;
        later calls do nothing."""
        self.start_checks()
        if not self.state.start_checks():
            return
        run = self.check_run
        assert run is not None
        if run.ctx.environ != dict(os.environ):
            # Collection changed the environment (a conftest set a variable): the checks see it
            # as the tests will, as they did when they started only now.
            run.cancel()
            self.check_run = run = self._check_run()
            run.start()
        opened = self.store.opened
        messages = self.messages = GateMessages(
            opened.runtime if opened is not None else None,
            agent_id=self.settings.agent_id,
            session_id=self.session_id,
        )
        live = live_line_for(self.config)
        try:
            results, arrived = run.join(
                messages, on_tick=live.update if live else None, tick=LIVE_TICK
            )
        finally:
            if live is not None:
                live.close()
        notes = self.state.notes
        for result in arrived:  # on this thread, as the observers always were
            try:
                self.config.hook.pytest_maf_preflight_check_executed(
                    config=self.config, result=result
                )
            except Exception as exc:  # an observer must not break the gate; it is reported
                notes.hook_errors.append(
                    f"pytest_maf_preflight_check_executed raised {exc!r} for {result.check_id}"
                )
        # Marked before the messages: a waived conflict is recorded as such.
        results = apply_waivers(results, self.waivers, time.time())
        messages.finished(results)
        notes.runtime.extend(messages.errors)
        self.state.checked(results)

    def _reservation_state(self) -> Any:
        """The lease store as the gate starts, read here because the runtime's connection
        belongs to this thread; None (reservation checks then fail closed) without a store."""
        opened = self.store.opened
        if opened is None or not any(
            p.check_type.name.startswith("reservation_check/") for p in self.planned
        ):
            return None
        from ..checks.reservation import reservation_state

        try:
            return reservation_state(
                opened.runtime,
                opened.mode,
                fell_back=bool(opened.skipped),
                agent_id=self.settings.agent_id,
            )
        except (RuntimeStateError, OSError) as exc:
            self.state.notes.runtime.append(f"cannot read the lease store: {exc}")
            return None

    # --- xdist --------------------------------------------------------------------------------

    def worker_payload(self) -> dict[str, Any]:
        """What an xdist worker needs to enforce the gate, as plain builtins for its
        ``workerinput``: the checks and their results, the smoke barrier's directory and the
        ``--dist`` mode. Runs the checks first (once): workers are set up before the test loop.
        """
        self.run_gate()
        if self.barrier_dir is None:
            self.barrier_dir = Path(tempfile.mkdtemp(prefix="maf-preflight-gate-"))
            self.barrier = SmokeBarrier(self.barrier_dir)
        return {
            "descriptors": [dict(d) for d in self.state.descriptors],
            "results": [r.to_dict() for r in self.state.results.values()],
            "barrier_dir": str(self.barrier_dir),
            "dist": str(self.config.getoption("dist", "no")),
        }

    def close_gate(self, reason: str) -> None:
        """Close the gate for ``reason``: an xdist worker could not enforce it there."""
        self.state.close(reason)

    # --- the tests ----------------------------------------------------------------------------

    def decision_after_smoke(self) -> GateDecision | None:
        # Smoke tests run first in this process, so their outcomes are in already.
        return self.state.decision

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        option = session.config.option
        if option.collectonly:
            return
        if session.testsfailed and not option.continue_on_collection_errors:
            return  # pytest interrupts the session for the collection errors
        self.run_gate()
        if self.barrier is not None:
            # xdist workers run the tests; this controller sees every report they make.
            self.watch_reports = True
        else:
            self.watch_reports = register_item_hooks(self.state, self)
        if not self.frozen:
            self.frozen = freeze(self.settings.gc_freeze, self.nested)

    # trylast: after pytest's Session counted the failure and set shouldfail for -x/--maxfail.
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.watch_reports:  # no smoke test, no xdist worker: nothing to record
            return
        barrier = self.barrier
        smoke = is_smoke_report(report) or (
            # A crashed worker's report is made by the controller and carries no properties;
            # it is a failure, so only failures need the (file-backed) list of smoke ids.
            report.failed and barrier is not None and report.nodeid in barrier.smoke_ids()
        )
        if smoke:
            self.smoke_outcomes.setdefault(report.nodeid, SmokeOutcome(report.nodeid)).add(
                report, _secrets()
            )
            self.state.smoke_reported(report.nodeid, report.failed)
            if barrier is not None and barrier.settles(report):
                # The controller records too: it also sees crashed smoke tests, which never
                # reach a teardown on their worker.
                barrier.record(report.nodeid, report.nodeid in self.state.smoke_failures)
        session = self.session
        if (
            barrier is not None
            and session is not None
            and not self.barrier_aborted
            and (session.shouldfail or session.shouldstop)
        ):
            barrier.abort(str(session.shouldfail or session.shouldstop))
            self.barrier_aborted = True

    # --- session end --------------------------------------------------------------------------

    # trylast: the exit code we record and may replace is the one other plugins settled on.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self._cancel_checks()  # the session ends before its tests: their results count for none
        if self.barrier_dir is not None:
            shutil.rmtree(self.barrier_dir, ignore_errors=True)
        # -x/--maxfail under xdist ends as "interrupted"; it is still the gate that closed.
        stopped_by_maxfail = exitstatus == pytest.ExitCode.INTERRUPTED and bool(session.shouldfail)
        decision = self.state.decision
        if (
            decision is not None
            and not decision.open
            and (
                exitstatus
                in (
                    pytest.ExitCode.OK,
                    pytest.ExitCode.TESTS_FAILED,
                    pytest.ExitCode.NO_TESTS_COLLECTED,
                )
                or stopped_by_maxfail
            )
        ):
            session.exitstatus = MafExitCode.GATE_CLOSED
        page = self._report_page()
        try:
            self._record(int(session.exitstatus))
            if page is not None:  # after recording: the page counts this run
                page.read(self.store.opened)
        finally:
            self.store.close()
        error = self._warn_fallbacks()  # the fallbacks of the recording itself
        if error is not None:
            # Too late for a usage error: the run fails with its code, if it did not fail.
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
            self.state.notes.hook_errors.append(
                f"{_FALLBACK_IS_AN_ERROR}, exit code {int(session.exitstatus)}: "
                f"{error.removeprefix('maf-preflight: ')}"
            )
        if self.settings.report_path is not None:
            self.report.write_json(self.settings.report_path, int(session.exitstatus))
        if page is not None and self.settings.html_path is not None:
            page.write(self.settings.html_path, int(session.exitstatus))

    def _report_page(self) -> RunPage | None:
        """The report page of this run, when ``--maf-html`` asks for one (imported only then)."""
        if self.settings.html_path is None:
            return None
        from ..report_page.run import RunPage

        return RunPage(self.state, session_id=self.session_id, started_at=self.started_at)

    def _record(self, exit_code: int) -> None:
        """Write the session's bundle once, then the heartbeat and the escalations."""
        state, messages = self.state, self.messages
        if self.store.opened is None or not (state.ran or self.smoke_outcomes):
            return
        decision = state.decision
        bundle = build_bundle(
            agent_id=self.settings.agent_id,
            environment=self.settings.environment,
            runtime_mode=self.store.opened.mode,
            started_at=self.started_at,
            gate_open=decision.open if decision is not None else None,
            exit_code=exit_code,
            results=state.results.values(),
            smoke=self.smoke_outcomes.values(),
            loaded=state.loaded,
            secrets=_secrets(),
            details={
                "blocking": list(decision.blocking) if decision else [],
                "warnings": list(decision.warnings) if decision else [],
                "rootdir": str(self.settings.rootdir),
            },
            session_id=self.session_id,
            execution_ids=messages.execution_ids if messages else None,
            conflicts=messages.conflicts if messages else None,
            messages=() if messages else None,
        )
        recorded = self.store.record(bundle, messages.carry if messages else None)
        if recorded is None:
            return
        opened, bundle = recorded
        self.store.after_record(opened, len(bundle.executions))
        state.escalated(escalate_recorded(state, opened, bundle.session.id))

    def _cancel_checks(self) -> None:
        if self.check_run is not None and not self.check_run.finished:
            self.check_run.cancel()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._cancel_checks()  # a session that never finished (pytest_sessionfinish not run)
        thaw(self.frozen)
        self.frozen = NOT_FROZEN
        # Attempts abandoned at their deadline (or left queued by an interrupt) run on daemon
        # threads that may never get to kill their command: whatever still runs goes with the
        # session. Later commands of this process may run again (the next in-process session);
        # at interpreter exit none may (see processes.groups).
        groups.kill_all()
        groups.resume()


class XdistController:
    """Hands the controller's results to each xdist worker, and hears why a worker closed
    the gate; registered only where xdist is installed (its hooks exist only there)."""

    def __init__(self, controller: GateController) -> None:
        self.controller = controller

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_KEY] = self.controller.worker_payload()

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """A worker that could not enforce the gate closed it there; close it here too."""
        message = getattr(node, "workeroutput", {}).get(WORKER_ERROR_KEY)
        if message:
            self.controller.close_gate(str(message))


def register_controller(config: pytest.Config, settings: Settings, *, nested: bool) -> None:
    """The gate of a process that is not an xdist worker: its state, and as plugins its
    controller, collection, report and (with xdist installed) the hand-over to workers."""
    state = GateState(config, settings)
    config.stash[GATE_KEY] = state
    gate_report = GateReport(state)
    controller = GateController(state, gate_report, nested=nested)
    manager = config.pluginmanager
    manager.register(controller, CONTROLLER_PLUGIN)
    manager.register(GateCollection(state), COLLECTION_PLUGIN)
    manager.register(gate_report, REPORT_PLUGIN)
    if "GITHUB_ACTIONS" in os.environ:  # imported only where it may speak; it decides
        from .github import register_github

        register_github(config, state)
    if manager.hasplugin("xdist"):
        manager.register(XdistController(controller), "maf_preflight_xdist")
