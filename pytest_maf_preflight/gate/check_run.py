"""The gate's checks on a background thread, so that they run while pytest starts up and
collects the tests.

A ``CheckRun`` starts as pytest begins to configure its plugins (``early_start``), or as
collection starts (under xdist, as the first worker is set up) when the project may still set
up what the checks look at or a check needs the runtime before it runs. The controller joins it
where the results are first needed: the test loop, or the set-up of the first xdist worker.
Checks mostly wait (on a server, a command), so pytest's start-up and collection cost the run
little more than the longer of the two.

What the main thread did when the checks ran on it, it still does:

- the pytest hooks: ``pytest_maf_preflight_check_executed`` observers are called at the join,
  on the main thread, in the order the results came (and the gate decides there);
- the SIGTERM handler that kills the checks' process groups first (``processes.groups``): it is
  installed when the run starts and restored when it ends, so a SIGTERM during collection leaves
  no command behind either.

The protocol messages of the checks that start are written by the background thread (every
runtime mode is thread-safe), but only once the run is joined (the runtime may open after the
checks start): those of checks that started earlier wait for it, and ``join`` is given the
``GateMessages`` that writes them. A session that never reaches its tests (a collection error,
Ctrl-C, a usage error) cancels the run instead: its commands are killed, no attempt starts after
that, and nothing is written or recorded, as when the checks started only with the test loop.

An exception that ends the runner on its thread is raised again at the join, on the main thread,
as when the runner ran there: no result, no open gate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..checks.base import CheckContext
from ..checks.runner import PlannedCheck, run_checks
from ..processes import groups

if TYPE_CHECKING:
    from ..checks.base import CheckResult
    from ..settings import Settings
    from .messaging import GateMessages


def check_context(settings: Settings, reservations: Any = None) -> CheckContext:
    """What the gate's checks see: the environment as it is now (a copy), and the lease store
    read before they start (None without reservation checks: see ``CheckContext``)."""
    return CheckContext(
        rootdir=settings.rootdir,
        environ=dict(os.environ),
        environment=settings.environment,
        agent_id=settings.agent_id,
        base_url=settings.base_url,
        reservations=reservations,
    )


#: The longest ``start`` waits for the first attempts to be under way.
_UNDER_WAY_WAIT = 0.1


class CheckCancelled(Exception):
    """Raised instead of running an attempt of a run that was cancelled."""


class CheckRun:
    """One run of the gate's checks on its own thread: ``start``, then ``join`` or ``cancel``,
    each called on the main thread."""

    def __init__(
        self,
        checks: Sequence[PlannedCheck],
        ctx: CheckContext,
        max_concurrency: int,
        known: Mapping[str, CheckResult] | None = None,
    ) -> None:
        self.ctx = ctx
        #: When ``start`` was called (wall clock); None before.
        self.started_at: float | None = None
        #: Writes the protocol messages; given by ``join`` (None: not joined yet).
        self.messages: GateMessages | None = None
        self._cancelled = threading.Event()
        self._checks = [_unless_cancelled(check, self._cancelled) for check in checks]
        self._max_concurrency = max_concurrency
        self._known = known
        #: Guards ``messages`` and what waits for the join; a write under way ends before
        #: ``cancel`` returns (and the runtime may close).
        self._lock = threading.Lock()
        self._held: list[PlannedCheck] = []
        #: Check id -> when its first attempt started (monotonic): the live line's clock.
        self._started_at: dict[str, float] = {}
        #: Every result as it came: the observers see them in this order.
        self._arrived: list[CheckResult] = []
        self._results: list[CheckResult] | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        #: Set once the runner's first pass is under way (its attempts have their threads).
        self._under_way = threading.Event()
        self._signals = contextlib.ExitStack()
        self._thread = threading.Thread(target=self._run, name="maf-preflight-checks", daemon=True)

    @property
    def finished(self) -> bool:
        """Whether the run was joined or cancelled."""
        return self.messages is not None or self._cancelled.is_set()

    def start(self) -> None:
        self.started_at = time.time()
        # Installed here, on the main thread: from now on SIGTERM kills the checks' commands.
        self._signals.enter_context(groups.killed_when_interrupted())
        self._thread.start()
        # This thread gives way until the first attempts are under way: they only start their
        # waits (connect, send a request, spawn a command) and would otherwise each wait for a
        # switch of the GIL away from what this thread does next (pytest's start-up).
        self._under_way.wait(_UNDER_WAY_WAIT)

    def _run(self) -> None:
        try:
            self._results = run_checks(
                self._checks,
                self.ctx,
                self._max_concurrency,
                on_result=self._result,
                on_start=self._started,
                known=self._known,
            )
        except BaseException as exc:  # raised again on the main thread, by join
            self._error = exc
        finally:
            self._under_way.set()
            self._done.set()

    def _started(self, checks: Sequence[PlannedCheck]) -> None:
        at = time.monotonic()
        self._under_way.set()
        with self._lock:
            for check in checks:
                self._started_at.setdefault(check.check_id, at)
            if self._cancelled.is_set():
                return
            if self.messages is not None:
                self.messages.started(checks)
            else:
                self._held.extend(checks)

    def _result(self, result: CheckResult) -> None:
        with self._lock:
            self._arrived.append(result)
            if self.messages is not None and not self._cancelled.is_set():
                self.messages.poll()

    def join(
        self,
        messages: GateMessages,
        on_tick: Callable[[Mapping[str, float], Collection[str]], None] | None = None,
        tick: float = 0.1,
    ) -> tuple[list[CheckResult], list[CheckResult]]:
        """Wait for every result: (in the order the checks were given, in the order they came).

        ``messages`` writes the protocol messages from now on: first those of the checks that
        started before, in one write.

        ``on_tick`` (a progress display) is called on this thread at least every ``tick``
        seconds while waiting, with when each started check began (monotonic) and the ids of
        those with a result. Ctrl-C while waiting cancels the run (its commands are killed) and
        is raised again; so is an exception of the runner.
        """
        with self._lock:
            self.messages = messages
            if self._held:  # the checks that started before: one write, as the first pass's
                messages.started(self._held)
                self._held = []
        try:
            while not self._done.wait(tick if on_tick is not None else None):
                if on_tick is not None:
                    with self._lock:
                        started = dict(self._started_at)
                        finished = {result.check_id for result in self._arrived}
                    on_tick(started, finished)
        except BaseException:
            self.cancel()
            raise
        self._signals.close()
        if self._error is not None:
            groups.kill_all(stop=True)  # as when the runner failed on the main thread
            raise self._error
        assert self._results is not None
        return self._results, list(self._arrived)

    def cancel(self) -> None:
        """The session ends without these results: kill the checks' commands, start no more
        attempts, write no more messages. The thread, a daemon, ends with its last attempt."""
        self._cancelled.set()
        groups.kill_all(stop=True)
        with self._lock:  # a message write under way is over once this is taken
            self._held = []
        self._signals.close()


def _unless_cancelled(check: PlannedCheck, cancelled: threading.Event) -> PlannedCheck:
    """``check``, whose attempts raise ``CheckCancelled`` instead of running once ``cancelled``
    is set: an attempt queued before the run was cancelled must not start a command after."""
    run = check.check_type.run
    if run is None:
        return check

    def attempt(definition: Any, ctx: CheckContext) -> Any:
        if cancelled.is_set():
            raise CheckCancelled("the session ended before this check ran")
        return run(definition, ctx)

    return dataclasses.replace(check, check_type=dataclasses.replace(check.check_type, run=attempt))
