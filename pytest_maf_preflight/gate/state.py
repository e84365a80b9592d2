"""What the gate knows in one process: the check results, the decision, the selected smoke tests.

One ``GateState`` per gated pytest process, in ``config.stash[GATE_KEY]``. The role object of
the process (``controller.GateController``, or ``worker.GateWorker`` on an xdist worker) fills
it; the check items, the hooks around each test, the report and the fixtures read it. Its
methods are its only writers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..checks.base import CheckResult
from .decision import GateDecision, default_decision, is_blocking

if TYPE_CHECKING:
    import pytest

    from ..checks.base import CheckRegistry
    from ..config.loader import LoadedConfig
    from ..settings import Settings


class CheckDescriptor(dict[str, Any]):
    """What an item needs to know of a check; plain data so it crosses to xdist workers.

    Keys: ``id``, ``name``, ``file``, ``line``, ``severity``, ``test_type``.
    """


@dataclasses.dataclass
class GateNotes:
    """What the header and the summary say besides the results (the controller's)."""

    #: The runtime the session records in, as it opened ("none": no mode could start).
    runtime_mode: str = "none"
    #: Why modes were skipped, what was recorded.
    runtime: list[str] = dataclasses.field(default_factory=list)
    #: An older store of this checkout, not imported (header only).
    store_notice: str | None = None
    #: Observers that raised, a report that could not be written.
    hook_errors: list[str] = dataclasses.field(default_factory=list)
    #: What the escalation engine did, for the session and for tests (``maf_escalate``).
    escalations: list[str] = dataclasses.field(default_factory=list)
    #: Why no recent pass could be reused (``reuse``), when some check would allow it.
    reuse: list[str] = dataclasses.field(default_factory=list)


class GateState:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        #: The check types and configs, loaded at session start (controller only).
        self.registry: CheckRegistry | None = None
        self.loaded: list[LoadedConfig] = []
        self.descriptors: list[CheckDescriptor] = []
        self.results: dict[str, CheckResult] = {}
        #: Whether the checks ran (here, or on the controller that sent their results).
        self.ran = False
        self.smoke_failures: list[str] = []
        #: Why something other than a check or a smoke test closed the gate (xdist workers
        #: that could not enforce it).
        self.closed_by: list[str] = []
        self.decision: GateDecision | None = None
        #: The decision on the config checks alone, before any smoke test ran.
        self.config_decision: GateDecision | None = None
        #: Names of the plugin's markers found on the selected items; None until known.
        self.marked: set[str] | None = None
        #: The selected ``maf_smoke`` tests (none on an xdist controller: it collects nothing).
        self.smoke_ids: list[str] = []
        #: Node id -> ``smoke_definition`` of the smoke items collected in this process; their
        #: reports carry it to the controller.
        self.smoke_definitions: dict[str, dict[str, Any]] = {}
        #: Smoke tests whose reports this process saw (an xdist controller: from its workers).
        self.smoke_seen: set[str] = set()
        self.notes = GateNotes()

    # --- written by the role objects --------------------------------------------------------

    def prepare(
        self,
        registry: CheckRegistry,
        loaded: Sequence[LoadedConfig],
        descriptors: Iterable[CheckDescriptor],
    ) -> None:
        """The controller loaded the configs and planned the checks."""
        self.registry = registry
        self.loaded = list(loaded)
        self.descriptors = list(descriptors)

    def start_checks(self) -> bool:
        """Mark the checks as run; False when they were already (they run once a session)."""
        if self.ran:
            return False
        self.ran = True
        return True

    def checked(self, results: Iterable[CheckResult]) -> None:
        """The checks' results are known: decide on them."""
        self.results = {r.check_id: r for r in results}
        self.decide()
        self.config_decision = self.decision

    def received(
        self, descriptors: Iterable[CheckDescriptor], results: Iterable[CheckResult]
    ) -> None:
        """An xdist worker got the checks and their results from the controller."""
        self.descriptors = list(descriptors)
        self.ran = True
        self.checked(results)

    def select(
        self, smoke_ids: Sequence[str], definitions: dict[str, dict[str, Any]], marked: set[str]
    ) -> None:
        """Collection chose the items: these smoke tests, these markers present."""
        self.smoke_ids = list(smoke_ids)
        self.smoke_definitions.update(definitions)
        self.marked = marked

    def smoke_reported(self, nodeid: str, failed: bool, *, decide: bool = True) -> None:
        """A report of a smoke test's phase; a failure counts once however many of its phases
        fail, and the gate decides again unless ``decide`` is False (a worker decides once
        every smoke test has an outcome)."""
        self.smoke_seen.add(nodeid)
        if not failed or nodeid in self.smoke_failures:
            return
        self.smoke_failures.append(nodeid)
        if decide:
            self.decide()

    def smoke_settled(self, failed: Sequence[str]) -> None:
        """Every smoke test has an outcome (from all xdist workers): ``failed`` failed."""
        self.smoke_failures = list(failed)
        self.decide()

    def close(self, reason: str) -> None:
        """Close the gate for a reason of its own (an xdist worker could not enforce it)."""
        if reason not in self.closed_by:
            self.closed_by.append(reason)
            self.decide()

    def escalated(self, lines: Iterable[str]) -> None:
        """What an escalation did, for the summary."""
        self.notes.escalations.extend(lines)

    # --- decisions ----------------------------------------------------------------------

    def is_blocking(self, result: CheckResult) -> bool:
        return is_blocking(result, self.settings.warnings_as_errors)

    def decide(self) -> None:
        default = default_decision(
            self.results, self.smoke_failures, self.settings.warnings_as_errors
        )
        if self.closed_by:
            default = dataclasses.replace(
                default, open=False, blocking=(*default.blocking, *self.closed_by)
            )
        override = self.config.hook.pytest_maf_preflight_gate_decision(
            config=self.config,
            results=self.results,
            smoke_failures=list(self.smoke_failures),
            default=default,
        )
        if override is not None and not isinstance(override, GateDecision):
            # A broken hook must not open the gate: close it and say why.
            override = GateDecision(
                open=False,
                blocking=(
                    *default.blocking,
                    "pytest_maf_preflight_gate_decision returned "
                    f"{type(override).__name__}, not a GateDecision",
                ),
            )
        self.decision = override if override is not None else default
