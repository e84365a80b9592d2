"""Names shared by the always-loaded plugin module and the gate (kept import-cheap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .check_run import CheckRun
    from .state import GateState

#: The gate's state in this process (controller or xdist worker), for items and fixtures.
GATE_KEY: pytest.StashKey[GateState] = pytest.StashKey()
#: The checks started before the session (``early_start``), until the controller takes them.
EARLY_RUN_KEY: pytest.StashKey[CheckRun] = pytest.StashKey()

#: The controller's check results in xdist's ``workerinput``; its presence makes a worker gated.
WORKER_KEY = "maf_preflight"
#: Why a worker could not enforce the gate, in its ``workeroutput`` (read by the controller).
WORKER_ERROR_KEY = "maf_preflight_gate_error"
