"""Running checks: concurrently in a bounded pool, each attempt with a hard deadline, retries
with exponential backoff, results in a stable order.

Attempts run on a pool of daemon worker threads that grows (quadrupling every few milliseconds)
while attempts are queued, up to the concurrency cap, except that an attempt of a type that
waits (``CheckType.waits``: a request, a command) gets a thread at once; the calling thread
schedules attempts and watches their deadlines. A thread cannot be killed, so an attempt that
overruns its deadline is abandoned: its result is ``timeout`` at the deadline, whatever it
returns later is ignored, and the pool may grow past the stuck worker. Daemon threads never
keep the interpreter alive, so a hung check cannot hang the session.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import heapq
import itertools
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..redaction import env_references, is_secret_key, redact_mapping, redact_text
from .base import (
    CheckContext,
    CheckFailure,
    CheckResult,
    CheckStatus,
    CheckTimeout,
    CheckType,
    Observation,
)
from .integration import GroupOrder, cycles, decide


@dataclasses.dataclass(frozen=True)
class PlannedCheck:
    """A check ready to run: everything the runner needs, nothing the plugin owns."""

    check_id: str
    name: str
    severity: str
    check_type: CheckType
    definition: Any
    timeout: float
    retry_count: int
    retry_delay: float
    config_file: str = ""
    config_version: str = ""
    #: For a group (``integration``): the ids of the checks whose results decide it.
    members: tuple[str, ...] = ()
    #: ``reuse_passed_for_seconds`` of its config, and what its pass is reused under
    #: (``gate.reuse``); the result carries ``content_hash``.
    reuse_seconds: float = 0.0
    content_hash: str = ""


@dataclasses.dataclass
class _Attempt:
    status: CheckStatus
    observation: Observation | None
    message: str = ""


def _definition_secrets(definition: Any, environ: Mapping[str, str]) -> set[str]:
    """Secret values a definition carries: strings under secret-looking keys (``env`` of a
    command, ``headers`` of a request) and the values of the ``${ENV:NAME}`` it refers to."""
    found: set[str] = set()

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            if key is not None and is_secret_key(key):
                found.add(value)
            found.update(environ[name] for name in env_references(value) if name in environ)

    if isinstance(definition, BaseModel):
        # A definition that cannot be dumped carries no secrets we can see.
        with contextlib.suppress(Exception):
            walk(definition.model_dump(by_alias=True), None)
    else:
        walk(definition, None)
    return {value for value in found if value}


def _attempt(check: PlannedCheck, ctx: CheckContext) -> _Attempt:
    run = check.check_type.run
    if run is None:
        return _Attempt(
            CheckStatus.ERROR,
            None,
            f"check type {check.check_type.name!r} cannot run in this version of "
            "pytest-maf-preflight; the check fails closed",
        )
    try:
        observation = run(check.definition, ctx)
    except CheckTimeout as exc:
        return _Attempt(CheckStatus.TIMEOUT, None, str(exc))
    except CheckFailure as exc:
        return _Attempt(CheckStatus.FAILED, Observation(False, exc.expected, exc.observed))
    except BaseException as exc:  # fail closed: a broken check is never a pass
        # BaseException too: pytest.skip()/fail() or SystemExit raised inside a check's thread
        # would otherwise end the thread silently and leave the runner waiting for the deadline.
        return _Attempt(CheckStatus.ERROR, None, f"{type(exc).__name__}: {exc}")
    if not isinstance(observation, Observation):
        return _Attempt(
            CheckStatus.ERROR,
            None,
            f"check type {check.check_type.name!r} returned "
            f"{type(observation).__name__}, not an Observation",
        )
    return _Attempt(CheckStatus.PASSED if observation.passed else CheckStatus.FAILED, observation)


def _group_cycles(
    checks: Sequence[PlannedCheck], groups: list[int]
) -> list[tuple[tuple[str, ...], list[int]]]:
    """Each cycle among the groups (its path), with the indexes of every group caught in it."""
    found = cycles({checks[i].check_id: checks[i].members for i in groups})
    return [
        (cycle.path, [i for i in groups if checks[i].check_id in cycle.groups]) for cycle in found
    ]


#: How long queued attempts may wait before the pool starts more workers.
_GROWTH_TICK = 0.005


@dataclasses.dataclass
class _State:
    attempts: int = 0
    started: float = 0.0
    started_wall: float = 0.0
    last: _Attempt | None = None
    done: bool = False


def run_checks(
    checks: Sequence[PlannedCheck],
    ctx: CheckContext,
    max_concurrency: int = 50,
    on_result: Callable[[CheckResult], None] | None = None,
    on_start: Callable[[Sequence[PlannedCheck]], None] | None = None,
    known: Mapping[str, CheckResult] | None = None,
) -> list[CheckResult]:
    """Run ``checks`` and return their results in the order given.

    A check whose id is in ``known`` (a pass reused from an earlier run) is not run: its
    result is that one, given to ``on_result`` first, and the groups naming it count it.

    At most ``max_concurrency`` attempts run at once (at least one). Each attempt has a hard
    deadline of the check's ``timeout`` seconds; a failed, erroring or timed-out attempt is
    retried up to ``retry_count`` times, retry *n* starting ``retry_delay * 2 ** (n - 1)``
    seconds after the attempt before it ended. ``on_result`` is called once per check, as soon
    as its final result is known. ``on_start`` is called once per check, before its result,
    when its first attempt starts (a group: when it is decided), with every check that started
    in the same pass at once, after their attempts are queued: a callback that writes them
    somewhere costs one write per pass and delays no attempt. Both run on the calling thread.
    """
    if not checks:
        return []
    max_concurrency = max(1, max_concurrency)
    secret_values = {v for k, v in ctx.environ.items() if is_secret_key(k) and v}
    for check in checks:
        secret_values |= _definition_secrets(check.definition, ctx.environ)
    secrets = sorted(secret_values)
    completions: queue.SimpleQueue[tuple[int, int, _Attempt]] = queue.SimpleQueue()
    jobs: queue.SimpleQueue[tuple[int, int, CheckContext] | None] = queue.SimpleQueue()
    workers = 0
    grown_at = 0.0
    abandoned = 0
    states = [_State() for _ in checks]
    results: list[CheckResult | None] = [None] * len(checks)
    # Groups are decided from their members' results, never run; everything else is queued.
    groups = [i for i, c in enumerate(checks) if c.members]
    known = known or {}
    reused = [i for i, c in enumerate(checks) if c.check_id in known and not c.members]
    for index in reused:
        states[index].done = True
        results[index] = known[checks[index].check_id]
    ready: list[tuple[float, int]] = [
        (0.0, i) for i, c in enumerate(checks) if not c.members and not states[i].done
    ]
    by_id = {c.check_id: i for i, c in enumerate(checks)}
    order = GroupOrder({checks[i].check_id: checks[i].members for i in groups}, by_id)
    running: dict[int, tuple[int, float]] = {}  # index -> (attempt number, deadline)
    tokens = itertools.count()

    def worker() -> None:
        while (job := jobs.get()) is not None:
            index, attempt_no, attempt_ctx = job
            completions.put((index, attempt_no, _attempt(checks[index], attempt_ctx)))

    def grow(waiting: int) -> bool:
        """Start more workers while attempts wait for one; True while some still wait.

        The pool quadruples each time work is still queued a tick later, so fast local checks
        share a few threads (a thread start costs more than such a check); the ``waiting``
        attempts just queued whose type waits (a request, a command) get a thread each at once,
        so slow network checks all start together rather than over the ticks.
        """
        nonlocal workers, grown_at
        backlog = jobs.qsize()
        limit = max_concurrency + abandoned  # abandoned attempts may hold a worker forever
        if backlog <= 0 or workers >= limit:
            return False
        now = time.monotonic()
        if workers and not waiting and now - grown_at < _GROWTH_TICK:
            return True
        grown_at = now
        for _ in range(min(max(3 * workers, 1, waiting), backlog, limit - workers)):
            threading.Thread(
                target=worker, name=f"maf-check-worker-{next(tokens)}", daemon=True
            ).start()
            workers += 1
        return True

    def finish(index: int, attempt: _Attempt) -> None:
        state = states[index]
        state.last = attempt
        check = checks[index]
        if (
            attempt.status is not CheckStatus.PASSED
            and state.attempts <= check.retry_count
            and not check.members
        ):  # a group is decided once, from its members
            delay = check.retry_delay * (2 ** (state.attempts - 1))
            heapq.heappush(ready, (time.monotonic() + delay, index))
            return
        state.done = True
        now = time.monotonic()
        obs = attempt.observation
        result = CheckResult(
            check_id=check.check_id,
            name=check.name,
            test_type=check.check_type.name,
            severity=check.severity,
            status=attempt.status,
            expected=redact_text(obs.expected if obs else "", secrets),
            observed=redact_text(obs.observed if obs else attempt.message, secrets),
            message=redact_text(attempt.message, secrets),
            attempts=state.attempts,
            duration=now - state.started,
            started_at=state.started_wall,
            completed_at=state.started_wall + (now - state.started),
            config_file=check.config_file,
            config_version=check.config_version,
            details=redact_mapping(dict(obs.details) if obs else {}, secrets),
            content_hash=check.content_hash,
        )
        results[index] = result
        if on_result is not None:
            on_result(result)
        if not check.members:  # settle decides groups in a loop, not by recursion
            settle(order.done(check.check_id))

    def decide_group(group: int, attempt: _Attempt) -> None:
        state = states[group]
        state.attempts, state.started, state.started_wall = 1, time.monotonic(), time.time()
        if on_start is not None:
            on_start([checks[group]])
        finish(group, attempt)

    def settle(freed: list[str]) -> None:
        """Decide the groups that wait for nothing more, then those their results free: a group
        may name groups, and a check may be named by many."""
        pending = collections.deque(freed)
        while pending:
            group = by_id[pending.popleft()]
            if states[group].done:  # on a cycle, failed closed already
                continue
            observation = decide(
                {
                    cid: results[by_id[cid]] if cid in by_id else None
                    for cid in checks[group].members
                }
            )
            decide_group(
                group,
                _Attempt(
                    CheckStatus.PASSED if observation.passed else CheckStatus.FAILED, observation
                ),
            )
            pending.extend(order.done(checks[group].check_id))

    # Groups on a cycle would wait for each other forever. Loading refuses them; a caller that
    # did not load configs gets them failed closed (groups naming such a group then fail too).
    for cycle, on_cycle in _group_cycles(checks, groups):
        for group in on_cycle:
            decide_group(
                group,
                _Attempt(
                    CheckStatus.ERROR,
                    None,
                    "integration checks name each other in a cycle ("
                    f"{' -> '.join(cycle)}), so this group can never be decided",
                ),
            )
        for group in on_cycle:
            settle(order.done(checks[group].check_id))
    for index in reused:
        if on_result is not None:
            on_result(known[checks[index].check_id])
        settle(order.done(checks[index].check_id))
    settle(order.free())  # groups naming no active check are decided at once
    while not all(s.done for s in states):
        now = time.monotonic()
        first: list[PlannedCheck] = []
        waiting = 0
        while ready and ready[0][0] <= now and len(running) < max_concurrency:
            _, index = heapq.heappop(ready)
            waiting += checks[index].check_type.waits
            state = states[index]
            if state.attempts == 0:
                state.started, state.started_wall = now, time.time()
                first.append(checks[index])
            state.attempts += 1
            deadline = now + checks[index].timeout
            running[index] = (state.attempts, deadline)
            jobs.put((index, state.attempts, dataclasses.replace(ctx, deadline=deadline)))
        wake = [deadline for _, deadline in running.values()]
        if ready and len(running) < max_concurrency:
            wake.append(ready[0][0])
        if grow(waiting):
            wake.append(time.monotonic() + _GROWTH_TICK)
        if first and on_start is not None:
            on_start(first)  # after grow(): the workers are already taking the attempts
        wait = max(0.0, min(wake) - time.monotonic()) if wake else None
        done: list[tuple[int, int, _Attempt]] = []
        try:
            done.append(completions.get(timeout=wait))
            while True:  # take every completion already there: one wake-up for a burst
                done.append(completions.get_nowait())
        except queue.Empty:
            pass
        for index, attempt_no, attempt in done:
            if running.get(index, (None,))[0] == attempt_no:
                del running[index]
                finish(index, attempt)
        now = time.monotonic()
        for index, (_, deadline) in list(running.items()):
            if deadline <= now:
                del running[index]  # abandoned: a late completion no longer matches
                abandoned += 1
                finish(
                    index,
                    _Attempt(
                        CheckStatus.TIMEOUT, None, f"no result within {checks[index].timeout:g} s"
                    ),
                )
    for _ in range(workers):
        jobs.put(None)  # idle workers exit; one stuck in an abandoned attempt is a daemon
    return [r for r in results if r is not None]
