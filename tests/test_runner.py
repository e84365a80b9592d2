"""The runner: hard per-attempt deadlines, retries with exponential backoff, a bounded pool,
results in input order, failing closed.

Timing assertions are deliberately loose: upper bounds only where the point is "did not wait
for the hang", lower bounds only where the point is "did wait for the backoff".
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers_processes import gone, read_pid
from pytest_maf_preflight.checks import command
from pytest_maf_preflight.checks.base import (
    CheckContext,
    CheckFailure,
    CheckRegistry,
    CheckResult,
    CheckStatus,
    CheckType,
    Definition,
    Observation,
)
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.checks.command import CommandDefinition
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks


class Empty(Definition):
    """A definition with nothing in it, for check types defined by the tests."""


def _ctx(root: Path, **env: str) -> CheckContext:
    return CheckContext(
        rootdir=root, environ={**os.environ, **env}, environment="test", agent_id="agent-1"
    )


def _planned(
    run: Callable[[Any, CheckContext], Observation] | None,
    *,
    check_id: str = "c",
    timeout: float = 10.0,
    retry_count: int = 0,
    retry_delay: float = 0.0,
    definition: Any = None,
) -> PlannedCheck:
    return PlannedCheck(
        check_id=check_id,
        name=f"check {check_id}",
        severity="critical",
        check_type=CheckType(f"test-{check_id}", Empty, run),
        definition=Empty() if definition is None else definition,
        timeout=timeout,
        retry_count=retry_count,
        retry_delay=retry_delay,
        config_file="cfg.yaml",
        config_version="1.0",
    )


def _command(argv: list[str], timeout: float, check_id: str = "cmd") -> PlannedCheck:
    return PlannedCheck(
        check_id=check_id,
        name=check_id,
        severity="critical",
        check_type=command.CHECK_TYPE,
        definition=CommandDefinition.model_validate({"argv": argv}),
        timeout=timeout,
        retry_count=0,
        retry_delay=0.0,
    )


def _passing(_definition: Any, _ctx: CheckContext) -> Observation:
    return Observation(True, "ok", "ok")


# --- timeouts -------------------------------------------------------------------------------


def test_hung_command_times_out_and_its_process_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    check = _command(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], timeout=0.5)
    start = time.monotonic()
    [result] = run_checks([check], _ctx(tmp_path))
    elapsed = time.monotonic() - start
    assert result.status is CheckStatus.TIMEOUT
    assert elapsed < 10
    assert result.duration >= 0.4  # it did run until (about) its deadline
    assert result.attempts == 1
    pid = read_pid(pidfile)
    assert gone(pid), f"process {pid} still running after its check timed out"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    check = _command(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.5)
    [result] = run_checks([check], _ctx(tmp_path))
    assert result.status is CheckStatus.TIMEOUT
    pid = read_pid(pidfile)
    assert gone(pid), f"grandchild {pid} survived its check's timeout"


def test_hung_python_check_is_abandoned_at_its_deadline(tmp_path: Path) -> None:
    release = threading.Event()

    def hang(_definition: Any, _ctx: CheckContext) -> Observation:
        release.wait(30)  # time.sleep(30), but the test lets the thread go when it ends
        return Observation(True, "never", "seen")

    registry = CheckRegistry()
    registry.register(CheckType("hang", Empty, hang))
    check_type = registry.get("hang")
    assert check_type is not None
    check = PlannedCheck(
        check_id="hang",
        name="hang",
        severity="critical",
        check_type=check_type,
        definition=Empty(),
        timeout=0.5,
        retry_count=0,
        retry_delay=0.0,
    )
    start = time.monotonic()
    try:
        [result] = run_checks([check], _ctx(tmp_path))
    finally:
        release.set()
    assert time.monotonic() - start < 10
    assert result.status is CheckStatus.TIMEOUT
    assert result.observed == "no result within 0.5 s"
    assert result.message == "no result within 0.5 s"
    assert result.duration >= 0.4


def test_abandoned_attempt_finishing_late_does_not_change_the_result(tmp_path: Path) -> None:
    def slow_pass(_definition: Any, _ctx: CheckContext) -> Observation:
        time.sleep(0.8)
        return Observation(True, "ok", "ok")

    # The second check keeps the runner busy past the first one's late completion.
    results = run_checks(
        [
            _planned(slow_pass, check_id="slow", timeout=0.3),
            _planned(slow_pass, check_id="ok", timeout=5.0),
        ],
        _ctx(tmp_path),
    )
    assert [r.status for r in results] == [CheckStatus.TIMEOUT, CheckStatus.PASSED]


def test_attempt_sees_its_deadline_in_the_context(tmp_path: Path) -> None:
    seen: list[float] = []

    def look(_definition: Any, ctx: CheckContext) -> Observation:
        seen.append(ctx.remaining(default=-1.0))
        return Observation(True, "ok", "ok")

    run_checks([_planned(look, timeout=7.0)], _ctx(tmp_path))
    assert len(seen) == 1
    assert 5.0 < seen[0] <= 7.0


# --- retries and backoff --------------------------------------------------------------------


def test_fails_twice_then_passes_with_two_retries(tmp_path: Path) -> None:
    calls: list[int] = []

    def flaky(_definition: Any, _ctx: CheckContext) -> Observation:
        calls.append(1)
        return Observation(len(calls) >= 3, "third time lucky", f"call {len(calls)}")

    [result] = run_checks([_planned(flaky, retry_count=2, retry_delay=0.01)], _ctx(tmp_path))
    assert result.status is CheckStatus.PASSED
    assert result.attempts == 3
    assert result.observed == "call 3"
    assert len(calls) == 3


def test_retries_exhausted_reports_the_last_attempt(tmp_path: Path) -> None:
    calls: list[int] = []

    def failing(_definition: Any, _ctx: CheckContext) -> Observation:
        calls.append(1)
        return Observation(False, "pass", f"fail {len(calls)}")

    [result] = run_checks([_planned(failing, retry_count=2, retry_delay=0.01)], _ctx(tmp_path))
    assert result.status is CheckStatus.FAILED
    assert result.attempts == 3
    assert result.observed == "fail 3"
    assert len(calls) == 3


def test_no_retries_means_one_attempt(tmp_path: Path) -> None:
    calls: list[int] = []

    def failing(_definition: Any, _ctx: CheckContext) -> Observation:
        calls.append(1)
        return Observation(False, "pass", "fail")

    [result] = run_checks([_planned(failing, retry_count=0, retry_delay=0.01)], _ctx(tmp_path))
    assert result.status is CheckStatus.FAILED
    assert result.attempts == 1
    assert len(calls) == 1


def test_state_across_retries_in_a_file(tmp_path: Path) -> None:
    # A real command that fails until it has run twice: the state lives in a file.
    counter = tmp_path / "count"
    code = (
        "import pathlib, sys; p = pathlib.Path(sys.argv[1]); "
        "n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n)); "
        "sys.exit(0 if n >= 3 else 1)"
    )
    check = PlannedCheck(
        check_id="cmd",
        name="cmd",
        severity="critical",
        check_type=command.CHECK_TYPE,
        definition=CommandDefinition.model_validate(
            {"argv": [sys.executable, "-c", code, str(counter)]}
        ),
        timeout=10.0,
        retry_count=2,
        retry_delay=0.01,
    )
    [result] = run_checks([check], _ctx(tmp_path))
    assert result.status is CheckStatus.PASSED
    assert result.attempts == 3
    assert counter.read_text() == "3"


def test_backoff_is_exponential(tmp_path: Path) -> None:
    starts: list[float] = []

    def failing(_definition: Any, _ctx: CheckContext) -> Observation:
        starts.append(time.monotonic())
        return Observation(False, "pass", "fail")

    [result] = run_checks([_planned(failing, retry_count=2, retry_delay=0.3)], _ctx(tmp_path))
    assert result.attempts == 3
    first_gap, second_gap = starts[1] - starts[0], starts[2] - starts[1]
    assert first_gap >= 0.25  # retry 1 waits retry_delay
    assert second_gap >= 0.55  # retry 2 waits retry_delay * 2, not retry_delay again


def test_timed_out_attempt_is_retried(tmp_path: Path) -> None:
    calls: list[int] = []
    release = threading.Event()

    def hang_once(_definition: Any, _ctx: CheckContext) -> Observation:
        calls.append(1)
        if len(calls) == 1:
            release.wait(30)
        return Observation(True, "ok", "ok")

    try:
        [result] = run_checks([_planned(hang_once, timeout=0.3, retry_count=1)], _ctx(tmp_path))
    finally:
        release.set()
    assert result.status is CheckStatus.PASSED
    assert result.attempts == 2


def test_errors_are_retried_too(tmp_path: Path) -> None:
    calls: list[int] = []

    def broken_once(_definition: Any, _ctx: CheckContext) -> Observation:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("transient")
        return Observation(True, "ok", "ok")

    [result] = run_checks([_planned(broken_once, retry_count=1)], _ctx(tmp_path))
    assert result.status is CheckStatus.PASSED
    assert result.attempts == 2


# --- failing closed -------------------------------------------------------------------------


def test_exception_in_a_check_is_an_error_with_its_text(tmp_path: Path) -> None:
    def broken(_definition: Any, _ctx: CheckContext) -> Observation:
        raise RuntimeError("database driver exploded")

    [result] = run_checks([_planned(broken)], _ctx(tmp_path))
    assert result.status is CheckStatus.ERROR
    assert result.message == "RuntimeError: database driver exploded"
    assert result.observed == result.message


def test_base_exception_in_a_check_is_an_error_at_once(tmp_path: Path) -> None:
    def exits(_definition: Any, _ctx: CheckContext) -> Observation:
        raise SystemExit("bye")

    start = time.monotonic()
    [result] = run_checks([_planned(exits, timeout=30.0)], _ctx(tmp_path))
    assert result.status is CheckStatus.ERROR
    assert result.message == "SystemExit: bye"
    assert time.monotonic() - start < 10  # not left waiting for the 30 s deadline


def test_returning_something_else_than_an_observation_is_an_error(tmp_path: Path) -> None:
    def sloppy(_definition: Any, _ctx: CheckContext) -> Any:
        return True

    [result] = run_checks([_planned(sloppy, timeout=30.0)], _ctx(tmp_path))
    assert result.status is CheckStatus.ERROR
    assert "returned bool, not an Observation" in result.message


def test_type_without_a_runner_fails_closed(tmp_path: Path) -> None:
    [result] = run_checks([_planned(None, check_id="api")], _ctx(tmp_path))
    assert result.status is CheckStatus.ERROR
    assert "'test-api' cannot run" in result.message
    assert "fails closed" in result.message
    assert result.attempts == 1


def test_every_builtin_type_can_run() -> None:
    # run=None (failing closed) is left for types that load but cannot run: reservation
    # checks, until their work lands. Every smoke test_type has a runner.
    assert all(t.run is not None for t in builtin_registry())


def test_check_failure_exception_is_a_failed_result(tmp_path: Path) -> None:
    def unmet(_definition: Any, _ctx: CheckContext) -> Observation:
        raise CheckFailure("status 200", "status 503")

    [result] = run_checks([_planned(unmet)], _ctx(tmp_path))
    assert result.status is CheckStatus.FAILED
    assert (result.expected, result.observed) == ("status 200", "status 503")


# --- the pool, ordering, callbacks ----------------------------------------------------------


class _Gauge:
    """Counts checks running at the same time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def check(self, seconds: float) -> Callable[[Any, CheckContext], Observation]:
        def run(_definition: Any, _ctx: CheckContext) -> Observation:
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                time.sleep(seconds)
            finally:
                with self.lock:
                    self.now -= 1
            return Observation(True, "ok", "ok")

        return run


def test_checks_run_concurrently(tmp_path: Path) -> None:
    gauge = _Gauge()
    checks = [_planned(gauge.check(0.3), check_id=str(i)) for i in range(20)]
    start = time.monotonic()
    results = run_checks(checks, _ctx(tmp_path), max_concurrency=20)
    assert time.monotonic() - start < 3  # 20 * 0.3 s = 6 s if they ran one after another
    assert all(r.passed for r in results)
    assert gauge.peak > 1


def test_max_concurrency_one_runs_one_at_a_time(tmp_path: Path) -> None:
    gauge = _Gauge()
    checks = [_planned(gauge.check(0.05), check_id=str(i)) for i in range(6)]
    results = run_checks(checks, _ctx(tmp_path), max_concurrency=1)
    assert all(r.passed for r in results)
    assert gauge.peak == 1


def test_max_concurrency_caps_the_pool(tmp_path: Path) -> None:
    gauge = _Gauge()
    checks = [_planned(gauge.check(0.1), check_id=str(i)) for i in range(10)]
    run_checks(checks, _ctx(tmp_path), max_concurrency=3)
    assert 1 < gauge.peak <= 3


def _workers() -> set[threading.Thread]:
    # Thread objects, not idents: a new thread may reuse the ident of one that just ended.
    return {t for t in threading.enumerate() if t.name.startswith("maf-check-worker-")}


@pytest.mark.parametrize(("waits", "first_pass_threads"), [(True, 12), (False, 1)])
def test_checks_that_wait_get_a_thread_each_at_once(
    tmp_path: Path, waits: bool, first_pass_threads: int
) -> None:
    """A request or a command mostly waits: each gets its thread as it is queued, instead of
    waiting for the pool to quadruple every few milliseconds, as fast local checks do."""
    checks = [
        dataclasses.replace(c, check_type=dataclasses.replace(c.check_type, waits=waits))
        for c in (_planned(_passing, check_id=str(i)) for i in range(12))
    ]
    before = _workers()
    threads_at_start: list[int] = []
    # Called after the first pass's attempts are queued and the pool grew for them.
    results = run_checks(
        checks,
        _ctx(tmp_path),
        max_concurrency=50,
        on_start=lambda started: threads_at_start.append(len(_workers() - before)),
    )
    assert all(r.passed for r in results)
    assert threads_at_start[0] == first_pass_threads


def test_the_types_that_wait_are_those_of_requests_and_commands() -> None:
    registry = builtin_registry()
    waiting = {name for name in registry.names() if (t := registry.get(name)) and t.waits}
    assert waiting == {"api", "command", "database", "performance"}


def test_non_positive_max_concurrency_still_runs(tmp_path: Path) -> None:
    # In a thread of its own, so a regression fails this test instead of hanging the suite.
    results: list[CheckResult] = []
    thread = threading.Thread(
        target=lambda: results.extend(
            run_checks([_planned(_passing)], _ctx(tmp_path), max_concurrency=0)
        ),
        daemon=True,
    )
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "run_checks never started a check with max_concurrency=0"
    assert [r.status for r in results] == [CheckStatus.PASSED]


def test_results_in_input_order_and_one_callback_per_check(tmp_path: Path) -> None:
    def sleeper(seconds: float) -> Callable[[Any, CheckContext], Observation]:
        def run(_definition: Any, _ctx: CheckContext) -> Observation:
            time.sleep(seconds)
            return Observation(True, "ok", f"slept {seconds}")

        return run

    # Later checks finish first.
    checks = [_planned(sleeper(0.1 * (5 - i)), check_id=f"c{i}") for i in range(5)]
    seen: list[CheckResult] = []
    results = run_checks(checks, _ctx(tmp_path), on_result=seen.append)
    assert [r.check_id for r in results] == ["c0", "c1", "c2", "c3", "c4"]
    assert sorted(r.check_id for r in seen) == ["c0", "c1", "c2", "c3", "c4"]
    assert seen[0].check_id == "c4"  # callbacks come as checks finish, not in input order
    assert [id(r) for r in sorted(seen, key=lambda r: r.check_id)] == [id(r) for r in results]


def test_on_result_only_for_final_results(tmp_path: Path) -> None:
    calls: list[int] = []

    def flaky(_definition: Any, _ctx: CheckContext) -> Observation:
        calls.append(1)
        return Observation(len(calls) == 2, "ok", "maybe")

    seen: list[CheckResult] = []
    run_checks([_planned(flaky, retry_count=3)], _ctx(tmp_path), on_result=seen.append)
    assert [(r.status, r.attempts) for r in seen] == [(CheckStatus.PASSED, 2)]


def test_no_checks_no_results(tmp_path: Path) -> None:
    assert run_checks([], _ctx(tmp_path)) == []


def test_result_carries_the_check_metadata(tmp_path: Path) -> None:
    before = time.time()
    [result] = run_checks([_planned(_passing, check_id="meta")], _ctx(tmp_path))
    assert (result.check_id, result.name, result.test_type, result.severity) == (
        "meta",
        "check meta",
        "test-meta",
        "critical",
    )
    assert (result.config_file, result.config_version) == ("cfg.yaml", "1.0")
    assert before <= result.started_at <= result.completed_at <= time.time()
    assert result.duration >= 0
    assert CheckResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


# --- redaction ------------------------------------------------------------------------------


def test_secrets_are_redacted_in_every_field(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"

    def leaky(_definition: Any, ctx: CheckContext) -> Observation:
        value = ctx.environ["MY_PASSWORD"]
        return Observation(
            False,
            f"expected {value}",
            f"observed {value}",
            {"nested": {"list": [value, "fine"]}, "text": value},
        )

    def leaky_error(_definition: Any, ctx: CheckContext) -> Observation:
        raise ValueError(f"bad {ctx.environ['MY_PASSWORD']}")

    results = run_checks(
        [_planned(leaky, check_id="a"), _planned(leaky_error, check_id="b")],
        _ctx(tmp_path, MY_PASSWORD=secret),
    )
    everything = json.dumps([r.to_dict() for r in results])
    assert secret not in everything
    assert results[0].expected == "expected ***"
    assert results[0].details == {"nested": {"list": ["***", "fine"]}, "text": "***"}
    assert results[1].message == "ValueError: bad ***"


def test_values_of_env_references_in_a_definition_are_redacted(tmp_path: Path) -> None:
    # The variable's name does not look secret; the ${ENV:...} reference makes it one.
    secret = "bearer-value-123"

    class WithHeaders(Definition):
        headers: dict[str, str]

    def echo(definition: Any, ctx: CheckContext) -> Observation:
        return Observation(False, "ok", f"sent {ctx.environ['UPSTREAM_CRED_X']}")

    check = _planned(echo, definition=WithHeaders(headers={"X-Id": "${ENV:UPSTREAM_CRED_X}"}))
    [result] = run_checks([check], _ctx(tmp_path, UPSTREAM_CRED_X=secret))
    assert result.observed == "sent ***"


def test_url_passwords_printed_by_a_command_are_redacted(tmp_path: Path) -> None:
    # DATABASE_URL does not look secret by name; the password in the URL still must not leak.
    url = "postgres://u:pw123456@h/db"
    definition = CommandDefinition.model_validate(
        {
            "argv": [
                sys.executable,
                "-c",
                "import os; print('DATABASE_URL=' + os.environ['DATABASE_URL'])",
            ],
            "expected_exit_code": 3,
            "stdout_contains": "postgres://u:pw123456@h/other",
        }
    )
    check = PlannedCheck(
        check_id="db-url",
        name="db-url",
        severity="critical",
        check_type=command.CHECK_TYPE,
        definition=definition,
        timeout=30.0,
        retry_count=0,
        retry_delay=0.0,
    )
    [result] = run_checks([check], _ctx(tmp_path, DATABASE_URL=url))
    assert result.status is CheckStatus.FAILED
    assert "pw123456" not in json.dumps(result.to_dict())
    assert result.details["stdout"] == "DATABASE_URL=postgres://u:***@h/db\n"
    assert "stdout containing 'postgres://u:***@h/other'" in result.expected


@pytest.mark.parametrize("retry_delay", [0.0, 0.05])
def test_retry_delay_zero_or_small_does_not_spin_forever(
    tmp_path: Path, retry_delay: float
) -> None:
    def failing(_definition: Any, _ctx: CheckContext) -> Observation:
        return Observation(False, "pass", "fail")

    start = time.monotonic()
    [result] = run_checks(
        [_planned(failing, retry_count=5, retry_delay=retry_delay)], _ctx(tmp_path)
    )
    assert result.attempts == 6
    assert time.monotonic() - start < 10


def test_on_start_reports_each_check_once_before_its_result_in_passes(tmp_path: Path) -> None:
    """The hook the gate's PREFLIGHT_CHECK messages hang on: once per check (not per retry),
    before ``on_result``, the checks of one scheduling pass together, while the attempt runs."""
    events: list[tuple[str, tuple[str, ...]]] = []
    release = threading.Event()

    def waits(_definition: Any, _ctx: CheckContext) -> Observation:
        # Still running when on_start is called: the start is reported, not inferred.
        assert release.wait(10)
        return Observation(True, "ok", "ok")

    flaky_calls = []

    def flaky(_definition: Any, _ctx: CheckContext) -> Observation:
        flaky_calls.append(1)
        return Observation(len(flaky_calls) > 1, "ok", "not yet")

    def started(checks: Any) -> None:
        events.append(("start", tuple(c.check_id for c in checks)))
        release.set()

    checks = [
        _planned(waits, check_id="slow"),
        _planned(_passing, check_id="fast"),
        _planned(flaky, check_id="flaky", retry_count=1),
        _planned(_passing, check_id="late"),
    ]
    results = run_checks(
        checks,
        _ctx(tmp_path),
        max_concurrency=3,
        on_start=started,
        on_result=lambda r: events.append(("result", (r.check_id,))),
    )
    assert [r.check_id for r in results] == ["slow", "fast", "flaky", "late"]
    assert results[2].attempts == 2
    assert events[0] == ("start", ("slow", "fast", "flaky"))  # the first pass, at once
    starts = [c for kind, ids in events if kind == "start" for c in ids]
    assert sorted(starts) == ["fast", "flaky", "late", "slow"]  # once each, retries not again
    for check_id in starts:
        assert events.index(
            next(e for e in events if e[0] == "start" and check_id in e[1])
        ) < events.index(("result", (check_id,)))
