"""The gate as a pytest plugin object, registered only when ``--maf-preflight`` is on.

Flow: configs are loaded at session start (errors end the session with one clear message);
every active check runs once, concurrently, before the first test (on the controller under
xdist, whose workers receive the results); check items report those results; ``maf_smoke``
tests run next; a failure of either closes the gate and the rest is skipped.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ..atomic import write_atomic
from ..checks.base import CheckContext, CheckRegistry, CheckResult, CheckStatus
from ..checks.builtin import builtin_registry
from ..checks.runner import PlannedCheck, run_checks
from ..config.errors import ConfigError, ConfigLoadError
from ..config.loader import ConfigLoader, LoadedConfig, discover
from ..config.references import integration_cycles
from ..exitcodes import MafExitCode
from ..item_marks import MarkReader, mark_items, marks_of
from ..processes import groups
from ..redaction import is_secret_key
from ..runtime.base import RuntimeStateError, RuntimeUnavailable
from ..runtime.factory import OpenedRuntime, open_chain
from ..runtime.records import new_id
from ..settings import Settings
from .barrier import SAFE_DIST_MODES, SmokeBarrier, SmokeBarrierAborted, SmokeBarrierTimeout
from .decision import GateDecision, default_decision, is_blocking
from .items import CheckDescriptor, PreflightCheckItem, PreflightConfigFile
from .keys import GATE_KEY
from .messaging import GateMessages
from .planning import plan_check
from .recording import SmokeOutcome, build_bundle, smoke_definition

_WORKER_KEY = "maf_preflight"
_WORKER_ERROR_KEY = "maf_preflight_gate_error"


def gate_of(config: pytest.Config) -> PreflightGate:
    return config.stash[GATE_KEY]


SMOKE_PROPERTY = ("maf_smoke", "true")


def _is_smoke_report(report: pytest.TestReport) -> bool:
    # user_properties, not keywords: keywords also hold node names, so a directory called
    # maf_smoke would make every test under it a smoke test. (xdist turns tuples into lists.)
    return any(tuple(p) == SMOKE_PROPERTY for p in report.user_properties)


class PreflightGate:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.results: dict[str, CheckResult] = {}
        self.descriptors: list[CheckDescriptor] = []
        self.planned: list[PlannedCheck] = []
        self.loaded: list[LoadedConfig] = []
        self.smoke_failures: list[str] = []
        self.smoke_ids: list[str] = []
        #: While items are being selected: smoke tests that -k, -m, --lf or --deselect
        #: remove are put back (see pytest_maf_preflight_order_items).
        self.selecting = False
        #: Names of the plugin's markers found on the selected items; None until known.
        self.marked: set[str] | None = None
        #: Whether test reports can concern the gate (smoke tests, or xdist workers' reports
        #: on the controller); cleared when the test loop starts without either.
        self.watch_reports = True
        self.config_decision: GateDecision | None = None
        #: "" until gc.freeze(); then whether this session thaws at its end (see runtestloop).
        self.frozen = ""
        self.decision: GateDecision | None = None
        self.ran = False
        self.barrier: SmokeBarrier | None = None
        self.barrier_dir: Path | None = None
        self.barrier_error: str | None = None
        self.barrier_passed = False
        self.barrier_aborted = False
        self.dist_mode = "no"
        self.registry: CheckRegistry | None = None  # set at session start (not on workers)
        self.worker_errors: list[str] = []  # why workers closed the gate (controller only)
        self.session: pytest.Session | None = None
        self.hook_errors: list[str] = []  # observers that raised; shown in the summary
        self.opened: OpenedRuntime | None = None  # the runtime (controller only)
        self.runtime_notes: list[str] = []  # why modes were skipped, what was recorded
        self.store_notice: str | None = None  # an older store of this checkout, not imported
        self.smoke_outcomes: dict[str, SmokeOutcome] = {}
        #: Node id -> ``smoke_definition``, where the smoke items were collected (here, or on
        #: an xdist worker); their reports carry it to the controller.
        self.smoke_definitions: dict[str, dict[str, Any]] = {}
        self.escalation_lines: list[str] = []  # what the escalation engine did (summary)
        self.started_at = time.time()
        # Known from the start: the protocol messages written as checks run carry it.
        self.session_id = new_id()
        self.messages: GateMessages | None = None  # those messages (controller, once run)
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        if workerinput is not None:
            # Workers never load or run checks: the controller did, once, and sent the results.
            payload = workerinput[_WORKER_KEY]
            self.descriptors = [CheckDescriptor(d) for d in payload["descriptors"]]
            self.results = {d["check_id"]: CheckResult.from_dict(d) for d in payload["results"]}
            self.ran = True
            self.barrier = SmokeBarrier(Path(payload["barrier_dir"]))
            self.dist_mode = str(payload.get("dist", "load"))
            self._decide()
            self.config_decision = self.decision

    # --- decisions ------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        # Read each time: a test may set a secret variable after the session started.
        return [v for k, v in os.environ.items() if v and is_secret_key(k)]

    def is_blocking(self, result: CheckResult) -> bool:
        return is_blocking(result, self.settings.warnings_as_errors)

    def _decide(self) -> None:
        default = default_decision(self.results, self.smoke_failures,
                                   self.settings.warnings_as_errors)
        if self.worker_errors:
            default = dataclasses.replace(
                default, open=False, blocking=(*default.blocking, *self.worker_errors))
        override = self.config.hook.pytest_maf_preflight_gate_decision(
            config=self.config, results=self.results, smoke_failures=list(self.smoke_failures),
            default=default)
        if override is not None and not isinstance(override, GateDecision):
            # A broken hook must not open the gate: close it and say why.
            override = GateDecision(open=False, blocking=(
                *default.blocking, "pytest_maf_preflight_gate_decision returned "
                f"{type(override).__name__}, not a GateDecision"))
        self.decision = override if override is not None else default

    # --- loading and running --------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session
        if self.is_worker:
            return
        # Normally loaded (and validated) already by pytest_cmdline_main; see preload().
        registry, self.loaded = self.config.stash.get(_LOADED_KEY, None) or load_configs(
            self.config, self.settings)
        self.registry = registry
        self._open_runtime()
        for loaded in self.loaded:
            planned = plan_check(loaded, registry.get)
            if planned is None:
                continue
            self.planned.append(planned)
            self.descriptors.append(CheckDescriptor(
                id=loaded.id, name=loaded.config.name, file=str(loaded.file), line=loaded.line,
                severity=loaded.config.severity.value, test_type=planned.check_type.name))

    def _open_runtime(self) -> None:
        try:
            self.opened = open_chain(self.settings.runtime)
        except RuntimeUnavailable as exc:
            self.runtime_notes.append(f"nothing will be recorded: {exc}")
            return
        for note in self.opened.skipped:
            self.runtime_notes.append(f"runtime {note}; using the next mode")
        from ..runtime.checkout_store import old_store_notice

        # In the header only, next to where the store is: once a run, until imported.
        self.store_notice = old_store_notice(self.settings.runtime, self.settings.rootdir)

    def _record(self, exit_code: int) -> None:
        """Write the session's bundle once; a mode that fails now hands over to the next."""
        opened = self.opened
        if opened is None or not (self.ran or self.smoke_outcomes):
            return
        decision = self.decision
        bundle = build_bundle(
            agent_id=self.settings.agent_id, environment=self.settings.environment,
            runtime_mode=opened.mode, started_at=self.started_at,
            gate_open=decision.open if decision is not None else None, exit_code=exit_code,
            results=self.results.values(), smoke=self.smoke_outcomes.values(),
            loaded=self.loaded, secrets=self._secrets(),
            details={"blocking": list(decision.blocking) if decision else [],
                     "warnings": list(decision.warnings) if decision else [],
                     "rootdir": str(self.settings.rootdir)},
            session_id=self.session_id,
            execution_ids=self.messages.execution_ids if self.messages else None,
            conflicts=self.messages.conflicts if self.messages else None,
            messages=() if self.messages else None)
        while True:
            # The session says which mode holds it, also after a fallback.
            bundle = dataclasses.replace(
                bundle, session=dataclasses.replace(bundle.session, runtime_mode=opened.mode))
            if self.messages is not None:
                bundle = self.messages.carry(bundle, opened.runtime)
            try:
                opened.runtime.record_session(bundle)
            except (RuntimeStateError, OSError) as exc:
                opened.runtime.close()
                self.runtime_notes.append(f"runtime {opened.mode} could not record: {exc}")
                try:
                    opened = open_chain(self.settings.runtime, opened.remaining)
                except RuntimeUnavailable as unavailable:
                    self.runtime_notes.append(f"the session was not recorded: {unavailable}")
                    self.opened = None
                    return
                self.runtime_notes.extend(f"runtime {note}; using the next mode"
                                          for note in opened.skipped)
                self.opened = opened
                continue
            break
        self._after_record(opened, len(bundle.executions))
        self._escalate(opened, bundle.session.id)

    def _escalate(self, opened: OpenedRuntime, session_id: str) -> None:
        if not self.settings.escalate:
            self.escalation_lines.append("escalations: off for this run (--maf-no-escalate)")
            return
        if not self.ran:
            return
        if opened.mode == "memory" or opened.skipped:
            # Streaks, deduplication and levels live in the store: one that forgets them, or
            # a fallback beside the real one, would page someone again on every run.
            self.escalation_lines.append(
                f"escalations: not run, the runtime is {opened.mode}"
                + (" after a fallback" if opened.skipped else "")
                + " (they need the store that holds the open escalations)")
            return
        from ..escalation.session import escalate_session

        try:
            report = escalate_session(opened.runtime, self.settings, self.loaded,
                                      self.results.values(), session_id)
        except Exception as exc:  # the run's verdict stands; the failure is said, not raised
            self.escalation_lines.append(f"escalations failed: {type(exc).__name__}: {exc}")
            return
        self.escalation_lines.extend(report.lines())

    def _after_record(self, opened: OpenedRuntime, count: int) -> None:
        try:
            opened.runtime.heartbeat(self.settings.agent_id,
                                     details={"environment": self.settings.environment},
                                     agent_type=self.settings.agent_type,
                                     capabilities=self.settings.agent_capabilities)
            info = opened.runtime.info()
        except (RuntimeStateError, OSError) as exc:  # the session itself is recorded
            self.runtime_notes.append(f"recorded {count} execution(s) in {opened.mode}; "
                                      f"then: {exc}")
            return
        self.runtime_notes.extend(f"runtime {opened.mode}: {note}" for note in info.notes)
        if opened.mode == "memory":
            self.runtime_notes.append(f"recorded {count} execution(s) in memory only: they are "
                                      "lost when pytest exits")
        else:
            self.runtime_notes.append(f"recorded {count} execution(s) in {opened.mode} "
                                      f"({info.location})")

    def run_gate(self) -> None:
        if self.ran:
            return
        self.ran = True
        ctx = CheckContext(rootdir=self.settings.rootdir, environ=dict(os.environ),
                           environment=self.settings.environment,
                           agent_id=self.settings.agent_id, base_url=self.settings.base_url,
                           reservations=self._reservation_state())
        hook = self.config.hook

        opened = self.opened
        messages = self.messages = GateMessages(
            opened.runtime if opened is not None else None, agent_id=self.settings.agent_id,
            session_id=self.session_id)

        def observe(result: CheckResult) -> None:
            messages.poll()
            try:
                hook.pytest_maf_preflight_check_executed(config=self.config, result=result)
            except Exception as exc:  # an observer must not break the gate; it is reported
                self.hook_errors.append(
                    f"pytest_maf_preflight_check_executed raised {exc!r} for {result.check_id}")

        # Ctrl-C or SIGTERM while checks run must not leave their commands running.
        with groups.killed_when_interrupted():
            results = run_checks(self.planned, ctx, self.settings.max_concurrency,
                                 on_result=observe, on_start=messages.started)
        self.results = {r.check_id: r for r in results}
        messages.finished(results)
        self.runtime_notes.extend(messages.errors)
        self._decide()
        self.config_decision = self.decision

    def _reservation_state(self) -> Any:
        """The lease store as the gate starts, read here because the runtime's connection
        belongs to this thread; None (reservation checks then fail closed) without a store."""
        opened = self.opened
        if opened is None or not any(p.check_type.name.startswith("reservation_check/")
                                     for p in self.planned):
            return None
        from ..checks.reservation import reservation_state

        try:
            return reservation_state(opened.runtime, opened.mode, fell_back=bool(opened.skipped),
                                     agent_id=self.settings.agent_id)
        except (RuntimeStateError, OSError) as exc:
            self.runtime_notes.append(f"cannot read the lease store: {exc}")
            return None

    def worker_payload(self) -> dict[str, Any]:
        self.run_gate()
        if self.barrier_dir is None:
            self.barrier_dir = Path(tempfile.mkdtemp(prefix="maf-preflight-gate-"))
            self.barrier = SmokeBarrier(self.barrier_dir)
        return {"descriptors": [dict(d) for d in self.descriptors],
                "results": [r.to_dict() for r in self.results.values()],
                "barrier_dir": str(self.barrier_dir),
                "dist": str(self.config.getoption("dist", "no"))}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        option = session.config.option
        if option.collectonly:
            return
        if not self.is_worker:
            if session.testsfailed and not option.continue_on_collection_errors:
                return  # pytest interrupts the session for the collection errors
            self.run_gate()
        self._register_item_hooks()
        if self.settings.gc_freeze and not self.frozen and not gc.get_freeze_count():
            # What is alive now (pytest's collection, the gate's pydantic and jsonschema
            # objects) lives until the session ends, yet every full collection during the tests
            # would walk it again: a cost that grows with the number of tests. Not when
            # something else froze objects already (thawing would undo its freeze).
            from .. import plugin

            gc.freeze()
            # A session inside another one (pytester) thaws at its end, so the process goes on
            # as it was; the outermost one does not: thawing costs a full walk just before exit.
            self.frozen = "thaw" if plugin.open_sessions > 1 else "keep"

    def _register_item_hooks(self) -> None:
        """Hooks around each test only where some test needs them: the gate decided on the
        config checks and is open, and no selected test is a smoke test or names
        maf_requires, leaves nothing to decide per test."""
        marked = self.marked
        decision = self.config_decision
        idle = (marked is not None and not self.smoke_ids and "maf_requires" not in marked
                and decision is not None and decision.open)
        if not idle:
            from .item_hooks import GateItemHooks

            manager = self.config.pluginmanager
            if manager.get_plugin("maf_preflight_gate_items") is None:
                manager.register(GateItemHooks(self), "maf_preflight_gate_items")
        # The controller of xdist workers sees every report, its own smoke tests or not.
        self.watch_reports = not idle or (not self.is_worker and self.barrier is not None)

    # --- collection -----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        """Insert check items first, before -k/-m deselection sees the list."""
        by_file: dict[str, list[CheckDescriptor]] = {}
        for descriptor in self.descriptors:
            by_file.setdefault(descriptor["file"], []).append(descriptor)
        check_items: list[pytest.Item] = []
        for file, descriptors in by_file.items():
            collector = PreflightConfigFile.from_parent(session, path=Path(file))
            collector.descriptors = descriptors
            collected = list(collector.collect())
            # Reported like any collected file, so "collected N items" counts the checks.
            config.hook.pytest_collectreport(
                report=pytest.CollectReport(collector.nodeid, "passed", None, [*collected]))
            check_items.extend(collected)
        items[:0] = check_items

    # pytest only looks at attributes named "pytest_*" for hooks, hence the name. The
    # outermost wrapper, so the order holds after every other plugin (--ff, --nf, random
    # orders) reordered or deselected.
    @pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_collection_modifyitems")
    def pytest_maf_preflight_order_items(self, session: pytest.Session, config: pytest.Config,
                                         items: list[pytest.Item]) -> Any:
        """Checks, then maf_smoke tests, then the rest.

        maf_smoke tests that -k, -m, --lf or --deselect removed are put back: like the config
        checks, the gate runs in full whatever else is selected.
        """
        before = list(items)
        self.selecting = True
        try:
            result = yield
        finally:
            self.selecting = False
        # Each item's markers are read here, once, after every other plugin's selection and
        # marking; the hooks around each test read the stash (see item_marks).
        reader = MarkReader()
        present = {id(i) for i in items}
        items.extend(i for i in before if id(i) not in present and reader.read(i).smoke)
        checks: list[pytest.Item] = []
        tests: list[pytest.Item] = []
        for item in items:
            (checks if isinstance(item, PreflightCheckItem) else tests).append(item)
        self.marked = mark_items(tests, reader)
        smoke = [i for i in tests if marks_of(i).smoke] if "maf_smoke" in self.marked else []
        rest = [i for i in tests if not marks_of(i).smoke] if smoke else tests
        if self.settings.only and rest:
            config.hook.pytest_deselected(items=rest)
            rest = []
        items[:] = [*checks, *smoke, *rest]
        for item in smoke:
            if SMOKE_PROPERTY not in item.user_properties:
                item.user_properties.append(SMOKE_PROPERTY)
            self.smoke_definitions[item.nodeid] = smoke_definition(item)
        self.smoke_ids = [i.nodeid for i in smoke]
        if self.is_worker and self.barrier is not None:
            self.barrier.publish_smoke_ids(self.smoke_ids)
        if self.is_worker and self.smoke_ids:
            dist = self.dist_mode  # the worker's own --dist is always "no"
            if dist not in SAFE_DIST_MODES:
                # Waiting could deadlock, and an error raised here would crash the worker:
                # fail closed instead. Smoke tests still run; everything else is skipped, and
                # the controller learns why through workeroutput (see XdistController).
                self.barrier_error = (
                    f"maf_smoke tests cannot gate a session run with --dist {dist}, which can "
                    "queue a smoke test behind a test that waits for it; use --dist load "
                    "(the default of -n), worksteal or each")
        return result

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_deselected(self, items: Sequence[pytest.Item]) -> Any:
        """Smoke tests that -k, -m, --lf or --deselect remove are put back and run (see
        above): left in a deselection report, they would count as both run and deselected,
        and pytest's counts would not add up to what it collected."""
        if self.selecting and isinstance(items, list):
            # Filtered in place: a wrapper cannot hand the other implementations (the terminal
            # reporter) different arguments. Callers pass a list of their own (pytest's all do).
            reader = MarkReader()
            items[:] = [i for i in items if not reader.read(i).smoke]
        return (yield)

    # --- running tests --------------------------------------------------------------------

    def _decision_for(self, item: pytest.Item) -> GateDecision | None:
        if self.config_decision is None:
            return GateDecision(open=False, blocking=("the preflight gate did not run",))
        if not self.config_decision.open:
            return self.config_decision
        if marks_of(item).smoke:
            # Every smoke test runs, like every config check: the gate reports all its
            # failures at once, and the same ones with or without xdist.
            return self.config_decision
        if self.is_worker and self.barrier is not None:
            if self.barrier_error is None and not self.barrier_passed:
                try:
                    failed = self.barrier.wait(self.smoke_ids)
                except SmokeBarrierAborted as exc:
                    self.barrier_error = f"the session is stopping ({exc}) before every " \
                                         "maf_smoke test had an outcome"
                except SmokeBarrierTimeout as exc:
                    self.barrier_error = str(exc)
                else:
                    # Every smoke outcome is known now, from all workers: decide once. (This
                    # worker's own failures are already in smoke_failures; compare nothing.)
                    self.barrier_passed = True
                    self.smoke_failures = failed
                    self._decide()
            if self.barrier_error is not None:
                return GateDecision(open=False, blocking=(self.barrier_error,))
        return self.decision

    def skip_reason(self, item: pytest.Item) -> tuple[str | None, str | None]:
        """Why ``item`` must be skipped, or why it is in error; (None, None) lets it run."""
        decision = self._decision_for(item)
        if decision is not None and not decision.open:
            return decision.reason, None
        marker = marks_of(item).requires
        if marker is None:
            return None, None
        if not marker.args or not all(isinstance(cid, str) for cid in marker.args):
            return None, ("maf_requires takes one or more check ids as strings, e.g. "
                          f"@pytest.mark.maf_requires('git-available'); got {marker.args!r}")
        missing = [str(cid) for cid in marker.args if cid not in self.results]
        if missing:
            return None, (f"maf_requires names unknown check(s): {', '.join(missing)} "
                          f"(known: {', '.join(sorted(self.results)) or 'none'})")
        failed = [f"{cid} ({self.results[cid].status.value})" for cid in marker.args
                  if not self.results[cid].passed]
        if failed:
            return f"maf_requires: check(s) did not pass: {', '.join(failed)}", None
        return None, None

    # trylast: after pytest's Session counted the failure and set shouldfail for -x/--maxfail.
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.watch_reports:  # no smoke test, no xdist worker: nothing to record
            return
        barrier = self.barrier  # workers: from the payload; controller: once workers start
        smoke = _is_smoke_report(report) or (
            # A crashed worker's report is made by the controller and carries no properties;
            # it is a failure, so only failures need the (file-backed) list of smoke ids.
            report.failed and not self.is_worker and barrier is not None
            and report.nodeid in barrier.smoke_ids())
        if smoke and not self.is_worker:
            self.smoke_outcomes.setdefault(report.nodeid, SmokeOutcome(report.nodeid)).add(
                report, self._secrets())
        if smoke:
            if report.failed and report.nodeid not in self.smoke_failures:
                self.smoke_failures.append(report.nodeid)
                if not self.is_worker:
                    self._decide()
            if barrier is not None and barrier.settles(report):
                # The controller records too: it also sees crashed smoke tests, which never
                # reach a teardown on their worker.
                barrier.record(report.nodeid, report.nodeid in self.smoke_failures)
        session = self.session
        if (not self.is_worker and barrier is not None and session is not None
                and not self.barrier_aborted and (session.shouldfail or session.shouldstop)):
            barrier.abort(str(session.shouldfail or session.shouldstop))
            self.barrier_aborted = True

    # --- reporting ------------------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        files = len({d["file"] for d in self.descriptors})
        checks = len(self.descriptors)
        mode = self.opened.mode if self.opened is not None else "none"
        why = self.settings.runtime.source_of(mode)
        line = (f"maf-preflight: agent {self.settings.agent_id}, environment "
                f"{self.settings.environment}, runtime {mode}{f' ({why})' if why else ''}, "
                f"{checks} check{'s' if checks != 1 else ''} "
                f"from {files} config file{'s' if files != 1 else ''}")
        if not checks and not self.is_worker:
            where = ", ".join(_shown(p, self.settings.rootdir) for p in self.settings.config_paths)
            line += f" (no active checks in {where})"
        notes = [*self.runtime_notes, *([self.store_notice] if self.store_notice else [])]
        return [line, *(f"maf-preflight: WARNING {note}" for note in notes)]

    # trylast: the exit code we record and may replace is the one other plugins settled on.
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            workeroutput = getattr(self.config, "workeroutput", None)
            if self.barrier_error is not None and workeroutput is not None:
                workeroutput[_WORKER_ERROR_KEY] = self.barrier_error
            return
        if self.barrier_dir is not None:
            shutil.rmtree(self.barrier_dir, ignore_errors=True)
        # -x/--maxfail under xdist ends as "interrupted"; it is still the gate that closed.
        stopped_by_maxfail = (exitstatus == pytest.ExitCode.INTERRUPTED
                              and bool(session.shouldfail))
        if self.decision is not None and not self.decision.open and (exitstatus in (
                pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                pytest.ExitCode.NO_TESTS_COLLECTED) or stopped_by_maxfail):
            session.exitstatus = MafExitCode.GATE_CLOSED
        try:
            self._record(int(session.exitstatus))
        finally:
            if self.opened is not None:
                self.opened.runtime.close()
        if self.settings.report_path is not None:
            data = json.dumps(self.report(int(session.exitstatus)), indent=2, default=str)
            try:
                self.settings.report_path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self.settings.report_path, data.encode())
            except OSError as exc:
                # The run's outcome stands; the missing report is said, not raised.
                self.hook_errors.append(f"cannot write the report to "
                                        f"{self.settings.report_path}: {exc.strerror or exc}")

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.frozen == "thaw":
            gc.unfreeze()
            self.frozen = ""
        # Attempts abandoned at their deadline (or left queued by an interrupt) run on daemon
        # threads that may never get to kill their command: whatever still runs goes with the
        # session. Later commands of this process may run again (the next in-process session);
        # at interpreter exit none may (see processes.groups).
        groups.kill_all()
        groups.resume()

    def report(self, exit_code: int) -> dict[str, Any]:
        decision = self.decision
        return {
            "format": 1,
            "agent_id": self.settings.agent_id,
            "environment": self.settings.environment,
            "gate": {"ran": self.ran, "open": decision.open if decision else None,
                     "blocking": list(decision.blocking) if decision else [],
                     "warnings": list(decision.warnings) if decision else []},
            "checks": [r.to_dict() for r in self.results.values()],
            "smoke_failures": list(self.smoke_failures),
            "exit_code": exit_code,
        }

    def pytest_terminal_summary(self, terminalreporter: Any, exitstatus: int,
                                config: pytest.Config) -> None:
        if not self.ran:
            for message in self.hook_errors:
                terminalreporter.write_line(f"maf-preflight: {message}", yellow=True)
            return
        tr = terminalreporter
        tr.write_sep("=", "maf-preflight")
        width = max((len(r.check_id) for r in self.results.values()), default=10)
        for result in self.results.values():
            status = result.status.value.upper()
            if not result.passed and not self.is_blocking(result):
                status = f"WARN ({result.status.value})"
            line = f"{status:<16} {result.check_id:<{width}}  {result.duration * 1000:8.1f} ms"
            markup = {"green": True} if result.passed else (
                {"red": True} if self.is_blocking(result) else {"yellow": True})
            tr.write_line(line, **markup)
        for nodeid in self.smoke_failures:
            tr.write_line(f"{'FAILED':<16} {nodeid}  (maf_smoke)", red=True)
        for result in self.results.values():
            if result.passed and result.details.get("override"):
                count = len(result.details.get("conflicts", ()))
                tr.write_line(f"RESERVATION OVERRIDE {result.check_id}: {count} conflict(s) "
                              "let through by MAF_RESERVATION_OVERRIDE=1 (recorded as "
                              "overridden)", red=True, bold=True)
        for message in self.hook_errors:
            tr.write_line(f"maf-preflight: {message}", yellow=True)
        for line in self.escalation_lines:
            tr.write_line(f"maf-preflight: {line}", yellow=True)
        for note in self.runtime_notes:
            tr.write_line(f"maf-preflight: {note}",
                          **({} if note.startswith("recorded ") and "memory only" not in note
                             else {"yellow": True}))
        decision = self.decision
        if decision is not None:
            # Under xdist the controller collects nothing: smoke outcomes reach it as reports.
            checked = self.results or self.smoke_ids or self.smoke_outcomes
            if decision.open and not checked:
                tr.write_line("gate open: nothing was checked (no active checks, no maf_smoke "
                              "tests)", yellow=True, bold=True)
            elif decision.open:
                tr.write_line("gate open", green=True, bold=True)
            else:
                tr.write_line(f"gate CLOSED (exit code {int(MafExitCode.GATE_CLOSED)}): "
                              + ", ".join(decision.blocking), red=True, bold=True)


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


_LOADED_KEY = pytest.StashKey[tuple[CheckRegistry, list[LoadedConfig]]]()


def load_configs(config: pytest.Config, settings: Settings
                 ) -> tuple[CheckRegistry, list[LoadedConfig]]:
    """The check registry (with plugins' types) and every config; raises ``ConfigLoadError``."""
    registry = builtin_registry()
    config.hook.pytest_maf_preflight_register_check_types(registry=registry, config=config)
    files, errors = discover(settings.config_paths, required=settings.config_paths[1:])
    if errors:
        raise ConfigLoadError(errors)
    loader = ConfigLoader(registry, settings.environment, settings.max_config_bytes)
    loaded = loader.load_files(files)
    errors = _escalation_references(loaded, settings.default_escalation, config.inipath)
    errors += integration_cycles(loaded, settings.environment)
    if errors:
        raise ConfigLoadError(errors)
    return registry, loaded


def _escalation_references(loaded: list[LoadedConfig], default: str | None,
                           inipath: Path | None) -> list[ConfigError]:
    """A check whose escalation path does not exist would never escalate: a config error."""
    paths = {c.id for c in loaded if c.config_type == "escalation_path" and c.config.is_active}
    errors = [ConfigError(file=str(c.file), line=c.line, path=(*c.path, "escalation_path"),
                          message=f"names escalation path {c.config.escalation_path!r}, which "
                                  f"is not an active escalation_path config (known: "
                                  f"{', '.join(sorted(paths)) or 'none'})")
              for c in loaded if c.config.is_active and c.config_type != "escalation_path"
              and c.config.escalation_path and c.config.escalation_path not in paths]
    if default and default not in paths and any(
            c.config_type != "escalation_path" for c in loaded):
        errors.append(ConfigError(
            file=str(inipath or "ini"), path=("maf_preflight_default_escalation",),
            message=f"names escalation path {default!r}, which is not an active "
                    f"escalation_path config (known: {', '.join(sorted(paths)) or 'none'})"))
    return errors


def preload(config: pytest.Config, settings: Settings) -> str | None:
    """Load configs before the session starts; return the error report, or None when valid.

    Called from ``pytest_cmdline_main`` so that invalid configs end the run with our exit code
    and one clear message, before pytest prints a header or collects anything.
    """
    try:
        config.stash[_LOADED_KEY] = load_configs(config, settings)
    except ConfigLoadError as exc:
        return exc.format(settings.rootdir)
    except Exception as exc:  # a plugin's check type that cannot register or build a schema
        return f"cannot prepare the check types: {type(exc).__name__}: {exc}"
    return None


def record_config_error(settings: Settings, report: str) -> str | None:
    """Record a session that ended on invalid configs (no check ran); return a note or None.

    Best effort: the run ends with exit code 11 whatever happens here.
    """
    try:
        opened = open_chain(settings.runtime)
    except RuntimeUnavailable as exc:
        return f"the session was not recorded: {exc}"
    with opened.runtime as runtime:
        bundle = build_bundle(
            agent_id=settings.agent_id, environment=settings.environment,
            runtime_mode=opened.mode, started_at=time.time(), gate_open=False,
            exit_code=int(MafExitCode.CONFIG_ERROR), results=(), smoke=(), loaded=(),
            details={"config_errors": report.splitlines()[1:]}, status="config_error")
        try:
            runtime.record_session(bundle)
        except (RuntimeStateError, OSError) as exc:
            return f"the session was not recorded: {exc}"
    return None


class XdistController:
    """Hands the gate's results to each worker; registered only where xdist is installed."""

    def __init__(self, gate: PreflightGate) -> None:
        self.gate = gate

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_WORKER_KEY] = self.gate.worker_payload()

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """A worker that could not enforce the gate closed it there; close it here too."""
        message = getattr(node, "workeroutput", {}).get(_WORKER_ERROR_KEY)
        if message and message not in self.gate.worker_errors:
            self.gate.worker_errors.append(str(message))
            self.gate._decide()


__all__ = ["CheckStatus", "PreflightGate", "XdistController", "gate_of"]
