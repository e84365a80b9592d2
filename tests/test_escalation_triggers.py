"""Trigger conditions measured against history recorded in real runtimes (SPEC S4)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLES
from pytest_maf_preflight.checks.base import CheckResult, CheckStatus
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.config.loader import ConfigLoader
from pytest_maf_preflight.config.models import EscalationPathBody, TriggerCondition
from pytest_maf_preflight.escalation.triggers import (
    compare,
    dedup_key,
    evaluate,
    met_triggers,
)
from pytest_maf_preflight.gate.recording import build_bundle
from pytest_maf_preflight.reservations.conflicts import Conflict, Holding
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.records import (
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)

NOW = 100_000.0


@pytest.fixture(params=["memory", "sqlite"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeState]:
    state: RuntimeState
    if request.param == "memory":
        from pytest_maf_preflight.runtime.memory import MemoryRuntime

        state = MemoryRuntime()
    else:
        from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

        state = SqliteRuntime(tmp_path / "runtime.db")
    yield state
    state.close()


def result(
    check_id: str,
    status: str,
    started: float,
    *,
    severity: str = "critical",
    test_type: str = "command",
    details: dict[str, Any] | None = None,
) -> CheckResult:
    return CheckResult(
        check_id=check_id,
        name=check_id,
        test_type=test_type,
        severity=severity,
        status=CheckStatus(status),
        observed=status,
        started_at=started,
        completed_at=started + 0.5,
        duration=0.5,
        attempts=1,
        details=details or {},
    )


def record(runtime: RuntimeState, *results: CheckResult) -> str:
    """Record one gated session the way the gate does; returns its id."""
    bundle = build_bundle(
        agent_id="codex-1",
        environment="development",
        runtime_mode=runtime.mode,
        started_at=results[0].started_at,
        gate_open=all(r.passed for r in results),
        exit_code=0,
        results=results,
        smoke=(),
        loaded=(),
        details={},
    )
    runtime.record_session(bundle)
    return bundle.session.id


def history(runtime: RuntimeState, check_id: str, statuses: str, start: float = 1000.0) -> None:
    """One session per letter, oldest first: P passed, F failed, T timeout, E error, S skipped."""
    names = {"P": "passed", "F": "failed", "T": "timeout", "E": "error", "S": "skipped"}
    for offset, letter in enumerate(statuses):
        record(runtime, result(check_id, names[letter], start + offset * 100))


def cond(
    condition: str, operator: str = "gte", threshold: float = 1, window_minutes: float | None = None
) -> TriggerCondition:
    return TriggerCondition.model_validate(
        {
            "condition": condition,
            "operator": operator,
            "threshold": threshold,
            "window_minutes": window_minutes,
        }
    )


def conflict(path: str) -> dict[str, Any]:
    holder = Holding(
        agent="claude-2",
        pattern="src/**",
        exclusive=True,
        expires_at=NOW + 600,
        source="leases",
        lease_id=new_id(),
    )
    return Conflict(conflict_type="foreign_lease", path=path, holder=holder).to_dict()


def reservation_result(
    check_id: str, paths: Sequence[str], started: float, *, override: bool = False
) -> CheckResult:
    details: dict[str, Any] = {"conflicts": [conflict(p) for p in paths]}
    if override:
        details["override"] = True
    status = "passed" if override or not paths else "failed"
    return result(
        check_id, status, started, test_type="reservation_check/lock_validation", details=details
    )


# --- operators and keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "below", "equal", "above"),
    [
        ("gt", False, False, True),
        ("gte", False, True, True),
        ("lt", True, False, False),
        ("lte", True, True, False),
        ("eq", False, True, False),
        ("ne", True, False, True),
    ],
)
def test_every_operator_compares_value_with_threshold(
    operator: str, below: bool, equal: bool, above: bool
) -> None:
    assert compare(2, operator, 3) is below
    assert compare(3, operator, 3) is equal
    assert compare(4, operator, 3) is above
    assert compare(2.5, operator, 2.5) is equal


def test_an_unknown_operator_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown trigger operator 'approx'"):
        compare(1, "approx", 1)


def test_the_dedup_key_is_path_check_and_failure_class() -> None:
    assert (
        dedup_key("default-escalation", "api-health", "timeout")
        == "default-escalation:api-health:timeout"
    )
    assert dedup_key("critical", None, "system_down") == "critical:*:system_down"


# --- preflight_failure -------------------------------------------------------------------------


def test_consecutive_failures_across_sessions_meet_the_threshold_exactly(
    runtime: RuntimeState,
) -> None:
    history(runtime, "api-health", "PFF")
    now = result("api-health", "failed", 2000.0)
    session = record(runtime, now)
    outcome = evaluate(
        cond("preflight_failure", "gte", 3),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert outcome.met
    assert outcome.value == 3
    assert outcome.failure_class == "failed"
    assert outcome.check_id == "api-health"
    assert outcome.description == "preflight_failure: 3 consecutive failures of 'api-health' (>= 3)"
    above = evaluate(
        cond("preflight_failure", "gt", 3),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (above.met, above.value) == (False, 3)


def test_a_pass_breaks_the_streak(runtime: RuntimeState) -> None:
    history(runtime, "api-health", "FFFFPF")
    now = result("api-health", "failed", 2000.0)
    session = record(runtime, now)
    outcome = evaluate(
        cond("preflight_failure", "gte", 3),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value) == (False, 2)
    assert outcome.description == "preflight_failure: 2 consecutive failures of 'api-health' (>= 3)"


def test_skipped_runs_neither_count_nor_break_a_streak(runtime: RuntimeState) -> None:
    history(runtime, "api-health", "PFSFS")
    now = result("api-health", "error", 2000.0)
    session = record(runtime, now)
    outcome = evaluate(
        cond("preflight_failure", "eq", 3),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value, outcome.failure_class) == (True, 3, "error")


def test_a_check_skipped_or_passing_now_meets_no_failure_condition(runtime: RuntimeState) -> None:
    history(runtime, "api-health", "FFF")
    skipped = result("api-health", "skipped", 2000.0)
    session = record(runtime, skipped)
    outcome = evaluate(
        cond("preflight_failure", "gte", 3),
        check_id="api-health",
        results=[skipped],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value, outcome.failure_class) == (False, 3, None)
    assert outcome.description.endswith("; not met: 'api-health' did not fail in this run")
    passed = result("api-health", "passed", 3000.0)
    session = record(runtime, passed)
    for operator in ("lt", "lte", "eq"):
        outcome = evaluate(
            cond("preflight_failure", operator, 0),
            check_id="api-health",
            results=[passed],
            runtime=runtime,
            now=NOW,
            session_id=session,
        )
        assert (outcome.met, outcome.value) == (False, 0)


def test_other_checks_failures_are_not_counted(runtime: RuntimeState) -> None:
    for offset in range(4):
        record(
            runtime,
            result("db", "failed", 1000.0 + offset),
            result("api-health", "passed", 1000.0 + offset),
        )
    now = result("api-health", "timeout", 2000.0)
    session = record(runtime, now, result("db", "failed", 2000.0))
    outcome = evaluate(
        cond("preflight_failure", "gte", 2),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value, outcome.failure_class) == (False, 1, "timeout")


def test_this_run_counts_once_recorded_or_not(runtime: RuntimeState) -> None:
    history(runtime, "api-health", "FF")
    now = result("api-health", "failed", 2000.0)
    condition = cond("preflight_failure", "eq", 3)
    # Not recorded yet: this run's result is the newest run.
    for session_id in (None, new_id()):
        outcome = evaluate(
            condition,
            check_id="api-health",
            results=[now],
            runtime=runtime,
            now=NOW,
            session_id=session_id,
        )
        assert (outcome.met, outcome.value) == (True, 3)
    # Recorded: recognised by session, or without one by start time and status.
    session = record(runtime, now)
    for session_id in (None, session):
        outcome = evaluate(
            condition,
            check_id="api-health",
            results=[now],
            runtime=runtime,
            now=NOW,
            session_id=session_id,
        )
        assert (outcome.met, outcome.value) == (True, 3)


def test_without_a_result_the_newest_recorded_run_stands_for_now(runtime: RuntimeState) -> None:
    history(runtime, "api-health", "PTFS")
    outcome = evaluate(
        cond("preflight_failure", "gte", 2),
        check_id="api-health",
        results=[],
        runtime=runtime,
        now=NOW,
    )
    assert (outcome.met, outcome.value, outcome.failure_class) == (True, 2, "failed")
    nothing = evaluate(
        cond("preflight_failure"), check_id="never-ran", results=[], runtime=runtime, now=NOW
    )
    assert (nothing.met, nothing.value, nothing.failure_class) == (False, 0, None)


def test_a_history_longer_than_one_page_is_read_to_the_last_pass(runtime: RuntimeState) -> None:
    session = SessionRecord(
        id=new_id(),
        agent_id="codex-1",
        environment="development",
        started_at=0.0,
        completed_at=1.0,
        status="closed",
        exit_code=1,
        runtime_mode=runtime.mode,
    )
    runs = tuple(
        ExecutionRecord(
            id=new_id(),
            session_id=session.id,
            config_id="api-health",
            config_version="1.0.0",
            agent_id="codex-1",
            kind="check",
            status="passed" if i == 0 else "failed",
            started_at=float(i),
            completed_at=float(i) + 0.5,
            duration=0.5,
            attempts=1,
        )
        for i in range(300)
    )
    runtime.record_session(SessionBundle(session=session, executions=runs))
    outcome = evaluate(
        cond("preflight_failure", "eq", 299),
        check_id="api-health",
        results=[],
        runtime=runtime,
        now=NOW,
    )
    assert (outcome.met, outcome.value) == (True, 299)


# --- failure_count -----------------------------------------------------------------------------


def test_failure_count_includes_the_window_edge_and_nothing_older(runtime: RuntimeState) -> None:
    window_start = NOW - 60 * 60
    record(runtime, result("api-health", "failed", window_start - 0.001))
    record(runtime, result("api-health", "failed", window_start))
    record(runtime, result("api-health", "passed", window_start + 10))
    record(runtime, result("api-health", "timeout", window_start + 20))
    record(runtime, result("api-health", "skipped", window_start + 25))
    record(runtime, result("other", "failed", window_start + 30))
    now = result("api-health", "error", NOW - 5)
    session = record(runtime, now)
    outcome = evaluate(
        cond("failure_count", "gte", 3),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value, outcome.failure_class) == (True, 3, "error")
    assert (
        outcome.description
        == "failure_count: 3 failures of 'api-health' in the last 60 minutes (>= 3)"
    )
    wider = evaluate(
        cond("failure_count", "eq", 4, window_minutes=61),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert wider.met


def test_fractional_window_minutes(runtime: RuntimeState) -> None:
    record(runtime, result("api-health", "failed", NOW - 30.5))
    record(runtime, result("api-health", "failed", NOW - 30.0))
    now = result("api-health", "failed", NOW - 1)
    session = record(runtime, now)
    outcome = evaluate(
        cond("failure_count", "lt", 3, window_minutes=0.5),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value) == (True, 2)
    assert "in the last 0.5 minutes (< 3)" in outcome.description


def test_this_runs_failure_counts_in_the_window_whatever_its_timestamp(
    runtime: RuntimeState,
) -> None:
    record(runtime, result("api-health", "failed", NOW - 60))
    now = result("api-health", "failed", 0.0)  # a result that never got a start time
    session = record(runtime, now)
    outcome = evaluate(
        cond("failure_count", "gte", 2),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value) == (True, 2)


def test_failure_count_waits_for_a_failure_now(runtime: RuntimeState) -> None:
    for offset in range(3):
        record(runtime, result("api-health", "failed", NOW - 100 + offset))
    now = result("api-health", "passed", NOW - 1)
    session = record(runtime, now)
    outcome = evaluate(
        cond("failure_count", "gte", 3),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value) == (False, 3)
    assert outcome.description.endswith("not met: 'api-health' did not fail in this run")


# --- check_timeout -----------------------------------------------------------------------------


def test_check_timeout_counts_consecutive_timeouts_only(runtime: RuntimeState) -> None:
    history(runtime, "api-health", "TTFTS")
    now = result("api-health", "timeout", 2000.0)
    session = record(runtime, now)
    outcome = evaluate(
        cond("check_timeout", "gte", 2),
        check_id="api-health",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value, outcome.failure_class) == (True, 2, "timeout")
    assert outcome.description == "check_timeout: 2 consecutive timeouts of 'api-health' (>= 2)"
    failed = result("api-health", "failed", 3000.0)
    session = record(runtime, failed)
    outcome = evaluate(
        cond("check_timeout", "gte", 1),
        check_id="api-health",
        results=[failed],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value) == (False, 0)
    assert outcome.description.endswith("did not time out in this run")


# --- reservation_conflict ----------------------------------------------------------------------


def test_reservation_conflicts_of_this_check_in_this_session(runtime: RuntimeState) -> None:
    record(runtime, reservation_result("locks", ["src/a.py", "src/b.py", "src/c.py"], 1000.0))
    now = reservation_result("locks", ["src/a.py", "src/b.py"], 2000.0)
    other = reservation_result("other-locks", ["src/d.py"], 2000.0)
    session = record(runtime, now, other)
    assert len(runtime.reservation_conflicts(session_id=session)) == 3
    outcome = evaluate(
        cond("reservation_conflict", "gte", 2),
        check_id="locks",
        results=[now, other],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value, outcome.failure_class) == (True, 2, "reservation_conflict")
    assert outcome.description == (
        "reservation_conflict: 2 reservation conflicts found by 'locks' in this session (>= 2)"
    )
    # Not recorded (no session): this run's result carries them.
    unrecorded = evaluate(
        cond("reservation_conflict", "eq", 2),
        check_id="locks",
        results=[now],
        runtime=runtime,
        now=NOW,
    )
    assert unrecorded.met


def test_an_overridden_conflict_still_counts(runtime: RuntimeState) -> None:
    now = reservation_result("locks", ["src/a.py"], 2000.0, override=True)
    session = record(runtime, now)
    assert runtime.reservation_conflicts(session_id=session)[0].override
    outcome = evaluate(
        cond("reservation_conflict"),
        check_id="locks",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value) == (True, 1)


def test_no_conflict_meets_no_reservation_condition(runtime: RuntimeState) -> None:
    now = reservation_result("locks", [], 2000.0)
    session = record(runtime, now)
    outcome = evaluate(
        cond("reservation_conflict", "lt", 1),
        check_id="locks",
        results=[now],
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value) == (False, 0)


# --- system_down -------------------------------------------------------------------------------


def test_system_down_when_every_critical_check_that_ran_failed(runtime: RuntimeState) -> None:
    results = [
        result("api", "failed", 2000.0),
        result("db", "timeout", 2000.0),
        result("cache", "skipped", 2000.0),
        result("docs", "passed", 2000.0, severity="warning"),
    ]
    session = record(runtime, *results)
    outcome = evaluate(
        cond("system_down"),
        check_id="api",
        results=results,
        runtime=runtime,
        now=NOW,
        session_id=session,
    )
    assert (outcome.met, outcome.value, outcome.failure_class, outcome.check_id) == (
        True,
        1,
        "system_down",
        None,
    )
    assert outcome.description == "system_down: 2 of 2 critical checks failed (>= 1)"


@pytest.mark.parametrize(
    "statuses",
    [
        [("api", "failed", "critical"), ("db", "passed", "critical")],
        [("api", "skipped", "critical"), ("docs", "failed", "warning")],
        [],
    ],
)
def test_system_not_down(runtime: RuntimeState, statuses: list[tuple[str, str, str]]) -> None:
    results = [result(c, s, 2000.0, severity=sev) for c, s, sev in statuses]
    outcome = evaluate(
        cond("system_down", "lte", 1), check_id=None, results=results, runtime=runtime, now=NOW
    )
    assert (outcome.met, outcome.value) == (False, 0)
    assert outcome.description.endswith("not met: the system is not down")


def test_a_per_check_condition_needs_a_check(runtime: RuntimeState) -> None:
    with pytest.raises(ValueError, match="'preflight_failure' is measured per check"):
        evaluate(cond("preflight_failure"), check_id=None, results=[], runtime=runtime, now=NOW)


# --- met_triggers: what the engine opens -------------------------------------------------------


def example_path() -> EscalationPathBody:
    """The shipped original-format example, loaded and migrated like any config."""
    loader = ConfigLoader(builtin_registry(), "development")
    [loaded] = loader.load_files([EXAMPLES / "original-format" / "critical-system-escalation.json"])
    assert isinstance(loaded.body, EscalationPathBody)
    return loaded.body


def test_met_triggers_per_check_and_per_session(runtime: RuntimeState) -> None:
    path = example_path()  # preflight_failure >= 3, reservation_conflict >= 1, system_down >= 1
    history(runtime, "locks", "FF")
    locks = reservation_result("locks", ["src/a.py"], 2000.0)
    api = result("api", "failed", 2000.0)
    results = [locks, api]
    session = record(runtime, *results)
    kwargs: dict[str, Any] = {
        "results": results,
        "runtime": runtime,
        "now": NOW,
        "session_id": session,
    }
    per_check = met_triggers(path, "critical-system-escalation", check_id="locks", **kwargs)
    assert [(o.condition, o.failure_class, o.dedup_key) for o in per_check] == [
        ("preflight_failure", "failed", "critical-system-escalation:locks:failed"),
        (
            "reservation_conflict",
            "reservation_conflict",
            "critical-system-escalation:locks:reservation_conflict",
        ),
    ]
    assert met_triggers(path, "critical-system-escalation", check_id="api", **kwargs) == []
    [down] = met_triggers(path, "critical-system-escalation", check_id=None, **kwargs)
    assert (down.condition, down.check_id, down.dedup_key) == (
        "system_down",
        None,
        "critical-system-escalation:*:system_down",
    )


def test_several_met_conditions_of_one_class_give_one_escalation_the_first_describes(
    runtime: RuntimeState,
) -> None:
    path = EscalationPathBody.model_validate(
        {
            "trigger_conditions": [
                {"condition": "failure_count", "operator": "gte", "threshold": 2},
                {"condition": "preflight_failure", "operator": "gte", "threshold": 1},
                {"condition": "check_timeout", "operator": "gte", "threshold": 1},
                {"condition": "system_down"},
            ],
            "escalation_steps": [{"level": 1, "action": "notify", "target": "lead"}],
        }
    )
    history(runtime, "api", "T", start=NOW - 200)
    now = result("api", "timeout", NOW - 10)
    session = record(runtime, now)
    [outcome] = met_triggers(
        path, "p", check_id="api", results=[now], runtime=runtime, now=NOW, session_id=session
    )
    assert outcome.condition == "failure_count"
    assert outcome.dedup_key == "p:api:timeout"
    assert outcome.description == "failure_count: 2 failures of 'api' in the last 60 minutes (>= 2)"
