"""The gate's hooks around each test, registered only when some test needs them.

With the gate open after the config checks, no ``maf_smoke`` test and no ``maf_requires``
marker, nothing is left to decide per test, and this object is not registered: a test then
costs the gate no hook call at all (see ``register_item_hooks``). Otherwise it skips what a
closed gate or an unmet ``maf_requires`` skips, and gives smoke tests' reports their definition.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from ..item_marks import REQUIRES, marks_of
from .decision import GateDecision
from .items import PreflightCheckItem
from .recording import SMOKE_DEFINITION_ATTRIBUTE

if TYPE_CHECKING:
    from .state import GateState

ITEM_HOOKS_PLUGIN = "maf_preflight_gate_items"


class SmokeVerdict(Protocol):
    """What the role object of the process tells the hooks around each test."""

    def decision_after_smoke(self) -> GateDecision | None:
        """The gate's decision for an ordinary test, which runs once every selected
        ``maf_smoke`` test has an outcome (in this process, or on every xdist worker)."""


class GateItemHooks:
    def __init__(self, state: GateState, verdict: SmokeVerdict) -> None:
        self.state = state
        self.verdict = verdict

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        if isinstance(item, PreflightCheckItem):
            return (yield)
        # Nothing may raise before the yield: pytest's own setup (capture, logging, fixtures)
        # must run, or its teardown breaks. Skips go through a mark, errors after the yield.
        try:
            reason, error = self.skip_reason(item)
        except Exception as exc:  # fail closed, and report it after pytest's own setup ran
            reason, error = None, f"maf-preflight could not decide on this test: {exc!r}"
        if reason is not None:
            # A skip mark lets pytest report the test's own location; the explicit skip
            # after the yield keeps the gate closed even if the skipping plugin is disabled.
            item.add_marker(pytest.mark.skip(reason=reason))
        result = yield
        if reason is not None:
            pytest.skip(reason)
        if error is not None:
            pytest.fail(error, pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        definition = self.state.smoke_definitions.get(item.nodeid)
        if definition is not None:
            setattr(report, SMOKE_DEFINITION_ATTRIBUTE, definition)
        return report

    def _decision_for(self, item: pytest.Item) -> GateDecision | None:
        config_decision = self.state.config_decision
        if config_decision is None:
            return GateDecision(open=False, blocking=("the preflight gate did not run",))
        if not config_decision.open:
            return config_decision
        if marks_of(item).smoke:
            # Every smoke test runs, like every config check: the gate reports all its
            # failures at once, and the same ones with or without xdist.
            return config_decision
        return self.verdict.decision_after_smoke()

    def skip_reason(self, item: pytest.Item) -> tuple[str | None, str | None]:
        """Why ``item`` must be skipped, or why it is in error; (None, None) lets it run."""
        decision = self._decision_for(item)
        if decision is not None and not decision.open:
            return decision.reason, None
        marker = marks_of(item).requires
        if marker is None:
            return None, None
        if not marker.args or not all(isinstance(cid, str) for cid in marker.args):
            return None, (
                "maf_requires takes one or more check ids as strings, e.g. "
                f"@pytest.mark.maf_requires('git-available'); got {marker.args!r}"
            )
        results = self.state.results
        missing = [str(cid) for cid in marker.args if cid not in results]
        if missing:
            return None, (
                f"maf_requires names unknown check(s): {', '.join(missing)} "
                f"(known: {', '.join(sorted(results)) or 'none'})"
            )
        failed = [
            f"{cid} ({results[cid].status.value})" for cid in marker.args if not results[cid].passed
        ]
        if failed:
            return f"maf_requires: check(s) did not pass: {', '.join(failed)}", None
        return None, None


def register_item_hooks(state: GateState, verdict: SmokeVerdict) -> bool:
    """Register the hooks around each test where some test needs them; return whether they
    are: the gate decided on the config checks and is open, and no selected test is a smoke
    test or names maf_requires, leaves nothing to decide per test."""
    marked = state.marked
    decision = state.config_decision
    idle = (
        marked is not None
        and not state.smoke_ids
        and REQUIRES not in marked
        and decision is not None
        and decision.open
    )
    if not idle:
        manager = state.config.pluginmanager
        if manager.get_plugin(ITEM_HOOKS_PLUGIN) is None:
            manager.register(GateItemHooks(state, verdict), ITEM_HOOKS_PLUGIN)
    return not idle
