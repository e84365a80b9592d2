"""The gate's hooks around each test, registered only when some test needs them.

With the gate open after the config checks, no ``maf_smoke`` test and no ``maf_requires``
marker, nothing is left to decide per test, and this object is not registered: a test then
costs the gate no hook call at all (see ``PreflightGate.pytest_runtestloop``). Otherwise it
skips what a closed gate or an unmet ``maf_requires`` skips, and gives smoke tests' reports
their definition.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from .items import PreflightCheckItem
from .recording import SMOKE_DEFINITION_ATTRIBUTE

if TYPE_CHECKING:
    from .session import PreflightGate


class GateItemHooks:
    def __init__(self, gate: PreflightGate) -> None:
        self.gate = gate

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Any:
        if isinstance(item, PreflightCheckItem):
            return (yield)
        # Nothing may raise before the yield: pytest's own setup (capture, logging, fixtures)
        # must run, or its teardown breaks. Skips go through a mark, errors after the yield.
        try:
            reason, error = self.gate.skip_reason(item)
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
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        definition = self.gate.smoke_definitions.get(item.nodeid)
        if definition is not None:
            setattr(report, SMOKE_DEFINITION_ATTRIBUTE, definition)
        return report
