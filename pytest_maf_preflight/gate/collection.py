"""The gate's part in collection: check items first, then ``maf_smoke`` tests, then the rest.

Registered wherever tests are collected and run: a session without xdist, and each xdist
worker (an xdist controller collects nothing, so it stays idle there).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..item_marks import SMOKE, MarkReader, mark_items, marks_of
from .items import PreflightCheckItem, PreflightConfigFile
from .recording import smoke_definition

if TYPE_CHECKING:
    from .state import CheckDescriptor, GateState

COLLECTION_PLUGIN = "maf_preflight_collection"

#: Marks a smoke test's reports; user_properties travel with reports to the xdist controller.
SMOKE_PROPERTY = ("maf_smoke", "true")


def is_smoke_report(report: pytest.TestReport) -> bool:
    # user_properties, not keywords: keywords also hold node names, so a directory called
    # maf_smoke would make every test under it a smoke test. (xdist turns tuples into lists.)
    return any(tuple(p) == SMOKE_PROPERTY for p in report.user_properties)


class GateCollection:
    def __init__(self, state: GateState) -> None:
        self.state = state
        #: While items are being selected: smoke tests that -k, -m, --lf or --deselect
        #: remove are put back (see pytest_maf_preflight_order_items).
        self.selecting = False

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        """Insert check items first, before -k/-m deselection sees the list."""
        by_file: dict[str, list[CheckDescriptor]] = {}
        for descriptor in self.state.descriptors:
            by_file.setdefault(descriptor["file"], []).append(descriptor)
        check_items: list[pytest.Item] = []
        for file, descriptors in by_file.items():
            collector = PreflightConfigFile.from_parent(session, path=Path(file))
            collector.descriptors = descriptors
            collected = list(collector.collect())
            # Reported like any collected file, so "collected N items" counts the checks.
            config.hook.pytest_collectreport(
                report=pytest.CollectReport(collector.nodeid, "passed", None, [*collected])
            )
            check_items.extend(collected)
        items[:0] = check_items

    # pytest only looks at attributes named "pytest_*" for hooks, hence the name. The
    # outermost wrapper, so the order holds after every other plugin (--ff, --nf, random
    # orders) reordered or deselected.
    @pytest.hookimpl(wrapper=True, tryfirst=True, specname="pytest_collection_modifyitems")
    def pytest_maf_preflight_order_items(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> Any:
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
        marked = mark_items(tests, reader)
        smoke = [i for i in tests if marks_of(i).smoke] if SMOKE in marked else []
        rest = [i for i in tests if not marks_of(i).smoke] if smoke else tests
        if self.state.settings.only and rest:
            config.hook.pytest_deselected(items=rest)
            rest = []
        items[:] = [*checks, *smoke, *rest]
        for item in smoke:
            if SMOKE_PROPERTY not in item.user_properties:
                item.user_properties.append(SMOKE_PROPERTY)
        self.state.select(
            [i.nodeid for i in smoke], {i.nodeid: smoke_definition(i) for i in smoke}, marked
        )
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
