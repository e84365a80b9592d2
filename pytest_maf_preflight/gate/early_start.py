"""The checks started as soon as the configs are valid, while pytest finishes starting up.

``pytest_cmdline_main`` loads and validates the configs (``loading.preload``); the gate's checks
start on their thread (``check_run.CheckRun``) as the plugin's ``pytest_configure`` begins, ahead
of pytest's own plugins' (only those registered after this one, conftests, configure first),
before the session opens and the tests are collected, and before the gate opens its runtime:
checks mostly wait (on a server, a command), and that start-up is time they can wait in. Not in
``pytest_cmdline_main`` itself: a Ctrl-C there is not yet pytest's to handle (it would end the
process with a traceback, not as an interrupted session). The controller takes the run over as
the session starts (``take``), and joins it as it would have joined a run it started itself.

The checks start later, as collection starts (as ``controller`` does; under xdist, as its
controller sets up the first worker, after every other ``pytest_sessionstart``), when something
they look at may not be set up yet, or when they need the runtime first:

- the project may still set something up before the session: a conftest, or another plugin
  module of the project (a file under the rootdir that is not in an installed package, say one
  given with ``-p``), has a ``pytest_sessionstart``, or a ``pytest_configure`` that pytest calls
  after this plugin's (a conftest's comes before it). A service it starts there, a file it
  writes, is then up when the checks look. Installed plugins' hooks are not waited for: they
  keep their own books (hypothesis, pytest-cov, xdist), and waiting for them would take the
  early start from nearly every environment;
- a reservation check reads the lease store before it runs, and a check that may reuse a recent
  pass reads its last pass (``gate.reuse``): the runtime opens as the session starts.

They do not start at all in the modes of pytest that run no test (``--collect-only``,
``--fixtures``, ``--fixtures-per-test``, ``--markers``, ``--cache-show``). A session that ends
before its tests for another reason (a usage error, another plugin's mode, Ctrl-C) cancels the
run, as it cancels one started at collection: its commands are killed, no attempt starts after
that, and nothing is written or recorded (a cleanup of the config cancels a run that no
controller took).
"""

from __future__ import annotations

import inspect
import types
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ..processes import groups
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


def set_up_by_project(config: pytest.Config, plugin: object) -> str | None:
    """The project's module that may still set something up before the session once
    ``plugin`` (this one) configures: it has a ``pytest_sessionstart``, or a
    ``pytest_configure`` that pytest calls after ``plugin``'s; None when there is none."""
    sessionstart = config.hook.pytest_sessionstart.get_hookimpls()
    configure = config.hook.pytest_configure.get_hookimpls()
    # pluggy calls a hook's implementations from the last of this list to the first.
    mine = next((i for i, impl in enumerate(configure) if impl.plugin is plugin), len(configure))
    for impl in [*sessionstart, *configure[:mine]]:
        found = _project_file(impl.plugin, config.rootpath)
        if found is not None:
            return found
    return None


def _project_file(plugin: object, rootdir: Path) -> str | None:
    """The file of the module that defines ``plugin`` when it is part of the project: under
    ``rootdir`` and not in an installed package (a virtualenv inside the project)."""
    module = plugin if isinstance(plugin, types.ModuleType) else inspect.getmodule(plugin)
    file = getattr(module, "__file__", None)
    if not file or getattr(module, "__name__", "").startswith(__package__.split(".")[0]):
        return None  # none, or this plugin's own (a checkout of it is a project too)
    path = Path(file)
    if not path.is_relative_to(rootdir) or {"site-packages", "dist-packages"} & set(path.parts):
        return None
    return str(path)


def start_early(config: pytest.Config, settings: Settings, plugin: object) -> None:
    """Start the preloaded checks now, unless this run reaches no test, the project may still
    set up what they look at, or a check needs the runtime first (the controller starts them
    later then).
    ``plugin`` is this plugin's module, which is configuring."""
    option = config.option
    preloaded = config.stash.get(PRELOADED_KEY, None)  # None: --help, or loaded only later
    checks = [check for _, check in preloaded.plan] if preloaded is not None else []
    if (
        not checks
        or any(getattr(option, name, False) for name in NO_TEST_MODES)
        or any(needs_runtime(check) for check in checks)
        or set_up_by_project(config, plugin) is not None
    ):
        return
    run = CheckRun(checks, check_context(settings), settings.max_concurrency)
    config.stash[EARLY_RUN_KEY] = run
    # A cleanup runs after every pytest_unconfigure, even when one of them raised.
    config.add_cleanup(lambda: _cancel_unclaimed(config))
    run.start()


def _cancel_unclaimed(config: pytest.Config) -> None:
    """Cancel the run if no controller took it over: the session ended before it started."""
    run = take(config)
    if run is not None:
        run.cancel()
        # Cancelling stops new commands in this process; the next session here may run some.
        groups.resume()


def take(config: pytest.Config) -> CheckRun | None:
    """The run started early, for the controller to own from now on (None: none started)."""
    early = config.stash.get(EARLY_RUN_KEY, None)
    if early is not None:
        del config.stash[EARLY_RUN_KEY]
    return early
