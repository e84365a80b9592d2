"""The gate on an xdist worker: the controller's results, and the smoke barrier.

Workers never load configs or run checks: the controller did, once, and sent the results
through ``workerinput`` (``controller.XdistController``). A worker runs its share of the tests
in collection order, smoke tests first; before its first ordinary test it waits until every
selected smoke test, on any worker, has an outcome (``barrier``). When it cannot enforce the
gate, it closes it for its tests and tells the controller why through ``workeroutput``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..checks.base import CheckResult
from ..processes import groups
from ..settings import Settings
from .barrier import SAFE_DIST_MODES, SmokeBarrier, SmokeBarrierAborted, SmokeBarrierTimeout
from .collection import COLLECTION_PLUGIN, GateCollection, is_smoke_report
from .decision import GateDecision
from .heap import NOT_FROZEN, freeze, thaw
from .item_hooks import register_item_hooks
from .keys import GATE_KEY, WORKER_ERROR_KEY
from .state import CheckDescriptor, GateState

WORKER_PLUGIN = "maf_preflight_gate_worker"


class GateWorker:
    def __init__(self, state: GateState, payload: dict[str, Any], *, nested: bool) -> None:
        self.state = state
        self.config = state.config
        self.nested = nested
        state.received(
            [CheckDescriptor(d) for d in payload["descriptors"]],
            [CheckResult.from_dict(d) for d in payload["results"]],
        )
        self.barrier = SmokeBarrier(Path(payload["barrier_dir"]))
        #: The session's --dist mode (the worker's own is always "no").
        self.dist_mode = str(payload.get("dist", "load"))
        #: Why this worker cannot enforce the gate; its ordinary tests are skipped.
        self.barrier_error: str | None = None
        self.barrier_passed = False
        #: Whether test reports can concern the gate (smoke tests run here).
        self.watch_reports = True
        self.frozen = NOT_FROZEN

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        smoke_ids = self.state.smoke_ids
        self.barrier.publish_smoke_ids(smoke_ids)
        if smoke_ids and self.dist_mode not in SAFE_DIST_MODES:
            # Waiting could deadlock, and an error raised here would crash the worker: fail
            # closed instead. Smoke tests still run; everything else is skipped, and the
            # controller learns why through workeroutput (see XdistController).
            self.barrier_error = (
                f"maf_smoke tests cannot gate a session run with --dist {self.dist_mode}, which "
                "can queue a smoke test behind a test that waits for it; use --dist load (the "
                "default of -n), worksteal or each"
            )

    def decision_after_smoke(self) -> GateDecision | None:
        """Waits, once, until every smoke test has an outcome on whichever worker ran it."""
        if self.barrier_error is None and not self.barrier_passed:
            try:
                failed = self.barrier.wait(self.state.smoke_ids)
            except SmokeBarrierAborted as exc:
                self.barrier_error = (
                    f"the session is stopping ({exc}) before every maf_smoke test had an outcome"
                )
            except SmokeBarrierTimeout as exc:
                self.barrier_error = str(exc)
            else:
                # Every smoke outcome is known now, from all workers: decide once. (This
                # worker's own failures are already in smoke_failures; compare nothing.)
                self.barrier_passed = True
                self.state.smoke_settled(failed)
        if self.barrier_error is not None:
            return GateDecision(open=False, blocking=(self.barrier_error,))
        return self.state.decision

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        if session.config.option.collectonly:
            return
        self.watch_reports = register_item_hooks(self.state, self)
        if not self.frozen:
            self.frozen = freeze(self.state.settings.gc_freeze, self.nested)

    # trylast: after pytest's Session counted the failure and set shouldfail for -x/--maxfail.
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.watch_reports or not is_smoke_report(report):
            return
        self.state.smoke_reported(report.nodeid, report.failed, decide=False)
        if self.barrier.settles(report):
            self.barrier.record(report.nodeid, report.nodeid in self.state.smoke_failures)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if self.barrier_error is not None and workeroutput is not None:
            workeroutput[WORKER_ERROR_KEY] = self.barrier_error

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        thaw(self.frozen)
        self.frozen = NOT_FROZEN
        # As on the controller: commands started in this process (a test's own checks) go
        # with the session.
        groups.kill_all()
        groups.resume()


def register_worker(
    config: pytest.Config, settings: Settings, payload: dict[str, Any], *, nested: bool
) -> None:
    """The gate of an xdist worker: its state from the controller's ``payload``, and as
    plugins its worker role and collection."""
    state = GateState(config, settings)
    config.stash[GATE_KEY] = state
    manager = config.pluginmanager
    manager.register(GateWorker(state, payload, nested=nested), WORKER_PLUGIN)
    manager.register(GateCollection(state), COLLECTION_PLUGIN)
