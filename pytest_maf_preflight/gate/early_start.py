"""The checks started as soon as the configs are valid, while pytest finishes starting up.

``pytest_cmdline_main`` loads and validates the configs (``loading.preload``); the gate's checks
start on their thread (``check_run.CheckRun``) as the plugin's ``pytest_configure`` begins, ahead
of pytest's own plugins' (only those registered after this one, conftests, configure first),
before the session opens and the tests are collected, and before the gate opens its runtime:
checks mostly wait (on a server, a command), and that start-up is time they can wait in. Not in
``pytest_cmdline_main`` itself: a Ctrl-C there is not yet pytest's to handle (it would end the
process with a traceback, not as an interrupted session). The controller takes the run over as
the session starts (``take``), and joins it as it would have joined a run it started itself.

The checks start later, when the runtime is open (at collection, as ``controller`` does), when
one of them needs the runtime before it runs: a reservation check (it reads the lease store
first) or one that may reuse a recent pass (``gate.reuse`` reads the store). They do not start
at all in the modes of pytest that run no test (``--collect-only``, ``--fixtures``,
``--fixtures-per-test``, ``--markers``, ``--cache-show``). A session that ends before its tests
for another reason (a usage error, another plugin's mode, Ctrl-C) cancels the run, as it
cancels one started at collection: its commands are killed, no attempt starts after that, and
nothing is written or recorded (the plugin's ``pytest_unconfigure`` cancels a run that no
controller took).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .check_run import CheckRun, check_context
from .keys import EARLY_RUN_KEY
from .loading import PRELOADED_KEY

if TYPE_CHECKING:
    from ..checks.runner import PlannedCheck
    from ..settings import Settings

#: pytest's options for its modes that run no test (the checks would only be cancelled).
NO_TEST_MODES = ("collectonly", "showfixtures", "show_fixtures_per_test", "markers", "cacheshow")


def needs_runtime(check: PlannedCheck) -> bool:
    """Whether ``check`` needs the runtime before it runs (its start then waits for it)."""
    return check.reuse_seconds > 0 or check.check_type.name.startswith("reservation_check/")


def start_early(config: pytest.Config, settings: Settings) -> bool:
    """Start the preloaded checks now, unless this run reaches no test or a check needs the
    runtime first; whether they started."""
    option = config.option
    preloaded = config.stash.get(PRELOADED_KEY, None)  # None: --help, or loaded only later
    checks = [check for _, check in preloaded.plan] if preloaded is not None else []
    if (
        not checks
        or any(getattr(option, name, False) for name in NO_TEST_MODES)
        or any(needs_runtime(check) for check in checks)
    ):
        return False
    run = CheckRun(checks, check_context(settings), settings.max_concurrency)
    config.stash[EARLY_RUN_KEY] = run
    run.start()
    return True


def take(config: pytest.Config) -> CheckRun | None:
    """The run started early, for the controller to own from now on (None: none started)."""
    early = config.stash.get(EARLY_RUN_KEY, None)
    if early is not None:
        del config.stash[EARLY_RUN_KEY]
    return early
