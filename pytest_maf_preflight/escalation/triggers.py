"""Trigger conditions (SPEC S4) measured against the recorded history.

Each condition measures one number and compares it with its threshold (``value OP threshold``):

- ``preflight_failure``: consecutive non-passed runs of the check, newest first, across
  sessions, until the newest passed one.
- ``failure_count``: non-passed runs of the check that started within the last
  ``window_minutes`` (default 60; the window's edge, ``now - window``, is inside).
- ``check_timeout``: consecutive ``timeout`` runs of the check; any other outcome but a skip
  ends the streak.
- ``reservation_conflict``: conflicts this check found in this session (overridden ones
  included: an override lets the run pass, it does not make the conflict go away).
- ``system_down``: 1 when every critical check of this session that ran failed (and at least
  one ran), else 0.
- ``agent_stale``: minutes since the last heartbeat of an agent that holds active leases
  (:func:`stale_agent`, measured per agent rather than per check; ``stale_agents`` runs it).
  An agent that never sent a heartbeat is left alone, as ``release_stale_leases`` leaves it:
  there is no moment to measure from.

Decisions the numbers alone do not settle:

- A ``skipped`` run says nothing about health, so it neither counts as a failure nor breaks a
  streak; streaks and counts look through it.
- A condition only fires on a failure happening now: the per-check failure conditions need the
  check to have failed (``check_timeout``: timed out) in this run, ``reservation_conflict`` at
  least one conflict in this session, ``system_down`` the system to be down. Otherwise a
  passing check could meet ``lt``/``eq 0`` conditions and open an escalation that its own pass
  resolves at once. The value is still measured and reported.
- This run counts once, as the newest run, whether or not the session has been recorded yet:
  with ``session_id`` its recorded executions are recognised by session, without it by start
  time and status; this run's results count inside a ``failure_count`` window whatever
  timestamps they carry.
- The failure class is the current run's status (``failed``, ``timeout``, ``error``) for
  ``preflight_failure`` and ``failure_count``, else ``timeout``, ``reservation_conflict`` or
  ``system_down``.

Escalations: one per (path, check, failure class), keyed by :func:`dedup_key`. When several
conditions of one path are met for one check with the same failure class, :func:`met_triggers`
returns the first of them (in the path's order) and the engine puts its description in the
escalation's details; conditions met with another failure class give further escalations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..checks.base import CheckResult, CheckStatus
from ..config.models import EscalationPathBody, TriggerCondition
from ..runtime.interface import RuntimeState
from ..runtime.records import ExecutionRecord, Lease

#: Conditions measured for one check; ``system_down`` is measured once per session.
PER_CHECK = frozenset(
    {"preflight_failure", "failure_count", "check_timeout", "reservation_conflict"}
)
PER_SESSION = frozenset({"system_down"})
#: Conditions measured for each agent holding leases.
PER_AGENT = frozenset({"agent_stale"})

DEFAULT_WINDOW_MINUTES = 60.0

FAILED_STATUSES = frozenset({"failed", "timeout", "error"})

_SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "ne": "!="}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
}

#: Executions fetched at first; a history longer than that is fetched again, four times larger.
_FIRST_PAGE = 64


@dataclasses.dataclass(frozen=True)
class TriggerOutcome:
    """One condition measured for one check (``check_id`` None: the session)."""

    met: bool
    value: float
    failure_class: str | None
    description: str
    condition: str = ""
    check_id: str | None = None
    #: Set by :func:`met_triggers` (the escalation this outcome opens); empty from evaluate.
    dedup_key: str = ""
    #: Added to the details of the escalation it opens (``agent_stale``: the agent, its leases).
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def compare(value: float, operator: str, threshold: float) -> bool:
    """``value OP threshold`` for the operators gt, gte, lt, lte, eq, ne."""
    try:
        return _COMPARE[operator](value, threshold)
    except KeyError:
        raise ValueError(
            f"unknown trigger operator {operator!r}; expected one of {', '.join(_COMPARE)}"
        ) from None


def dedup_key(path_id: str, check_id: str | None, failure_class: str | None) -> str:
    """The key an open escalation is deduplicated on: path, check (``*``: none), class."""
    return f"{path_id}:{check_id or '*'}:{failure_class or '*'}"


def evaluate(
    condition: TriggerCondition,
    *,
    check_id: str | None,
    results: Sequence[CheckResult],
    runtime: RuntimeState,
    now: float,
    session_id: str | None = None,
) -> TriggerOutcome:
    """Measure ``condition`` for ``check_id`` (ignored by ``system_down``) at ``now``.

    ``results`` are this run's check results; ``session_id`` is this run's session, needed to
    find the reservation conflicts it recorded (without it they are read from ``results``).
    """
    name = condition.condition
    if name in PER_SESSION:
        return _system_down(condition, results)
    if name in PER_AGENT:
        raise ValueError(f"trigger condition {name!r} is measured per agent (stale_agent)")
    if check_id is None:
        raise ValueError(f"trigger condition {name!r} is measured per check; check_id is required")
    current = _result_for(results, check_id)
    if name == "reservation_conflict":
        return _reservation_conflict(condition, check_id, current, runtime, session_id)
    if name == "failure_count":
        return _failure_count(condition, check_id, current, runtime, now, session_id)
    if name == "check_timeout":
        return _streak(
            condition,
            check_id,
            current,
            runtime,
            session_id,
            counts=lambda status: status == "timeout",
            noun="timeout",
        )
    if name == "preflight_failure":
        return _streak(
            condition,
            check_id,
            current,
            runtime,
            session_id,
            counts=lambda status: status != "passed",
            noun="failure",
        )
    raise ValueError(f"unknown trigger condition {name!r}")


def met_triggers(
    path: EscalationPathBody,
    path_id: str,
    *,
    check_id: str | None,
    results: Sequence[CheckResult],
    runtime: RuntimeState,
    now: float,
    session_id: str | None = None,
) -> list[TriggerOutcome]:
    """The escalations ``path`` asks for: met outcomes, one per failure class.

    With a ``check_id``: the per-check conditions for that check. With None: the per-session
    ones (``system_down``), whose outcomes carry no check. Each condition is evaluated once, in
    the path's order; the first met condition of a failure class stands for it.
    """
    wanted = PER_SESSION if check_id is None else PER_CHECK
    met: dict[str | None, TriggerOutcome] = {}
    for condition in path.trigger_conditions:
        if condition.condition not in wanted:
            continue
        outcome = evaluate(
            condition,
            check_id=check_id,
            results=results,
            runtime=runtime,
            now=now,
            session_id=session_id,
        )
        if outcome.met and outcome.failure_class not in met:
            met[outcome.failure_class] = dataclasses.replace(
                outcome, dedup_key=dedup_key(path_id, outcome.check_id, outcome.failure_class)
            )
    return list(met.values())


def stale_agent(
    path: EscalationPathBody,
    path_id: str,
    *,
    agent_id: str,
    leases: Sequence[Lease],
    last_heartbeat: float | None,
    now: float,
) -> TriggerOutcome | None:
    """The escalation ``path``'s ``agent_stale`` conditions ask for about one agent holding
    ``leases`` (active ones), whose last heartbeat was at ``last_heartbeat``: the first met
    condition, or None. One escalation per path and agent (its dedup key names the agent)."""
    if not leases or last_heartbeat is None:
        return None
    minutes = max(0.0, now - last_heartbeat) / 60.0
    patterns = ", ".join(lease.path_pattern for lease in leases)
    what = (
        f"agent {agent_id!r} holding {len(leases)} {_plural('lease', len(leases))} ({patterns}) "
        f"sent no heartbeat for {minutes:.1f} minutes"
    )
    for condition in path.trigger_conditions:
        if condition.condition not in PER_AGENT:
            continue
        outcome = _outcome(condition, None, minutes, "agent_stale", True, what, why_not="")
        if outcome.met:
            return dataclasses.replace(
                outcome,
                dedup_key=dedup_key(path_id, f"@{agent_id}", "agent_stale"),
                details={
                    "stale_agent": agent_id,
                    "last_heartbeat": last_heartbeat,
                    "leases": [
                        {
                            "id": lease.id,
                            "path_pattern": lease.path_pattern,
                            "exclusive": lease.exclusive,
                            "expires_at": lease.expires_at,
                        }
                        for lease in leases
                    ],
                },
            )
    return None


# --- the conditions ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Run:
    status: str
    started_at: float
    now: bool  # this run's own result


def _streak(
    condition: TriggerCondition,
    check_id: str,
    current: CheckResult | None,
    runtime: RuntimeState,
    session_id: str | None,
    *,
    counts: Callable[[str], bool],
    noun: str,
) -> TriggerOutcome:
    def ends(run: ExecutionRecord) -> bool:
        return run.status != "skipped" and not counts(run.status)

    runs = _timeline(
        runtime, check_id, current, session_id, enough=lambda rows: any(ends(r) for r in rows)
    )
    value = 0
    for run in runs:
        if run.status == "skipped":
            continue
        if not counts(run.status):
            break
        value += 1
    status = _current_status(runs)
    live = status is not None and status != "skipped" and counts(status)
    failure_class = "timeout" if noun == "timeout" else (status if live else None)
    what = f"{_num(value)} consecutive {_plural(noun, value)} of {check_id!r}"
    return _outcome(
        condition,
        check_id,
        value,
        failure_class,
        live,
        what,
        why_not=f"{check_id!r} did not {_verb(noun)} in this run",
    )


def _failure_count(
    condition: TriggerCondition,
    check_id: str,
    current: CheckResult | None,
    runtime: RuntimeState,
    now: float,
    session_id: str | None,
) -> TriggerOutcome:
    window = condition.window_minutes or DEFAULT_WINDOW_MINUTES
    cutoff = now - window * 60.0
    runs = _timeline(
        runtime,
        check_id,
        current,
        session_id,
        enough=lambda rows: bool(rows) and rows[-1].started_at < cutoff,
    )
    value = sum(
        1 for run in runs if run.status in FAILED_STATUSES and (run.now or run.started_at >= cutoff)
    )
    status = _current_status(runs)
    live = status in FAILED_STATUSES
    what = (
        f"{_num(value)} {_plural('failure', value)} of {check_id!r} in the last "
        f"{_num(window)} {_plural('minute', window)}"
    )
    return _outcome(
        condition,
        check_id,
        value,
        status if live else None,
        live,
        what,
        why_not=f"{check_id!r} did not fail in this run",
    )


def _reservation_conflict(
    condition: TriggerCondition,
    check_id: str,
    current: CheckResult | None,
    runtime: RuntimeState,
    session_id: str | None,
) -> TriggerOutcome:
    recorded = 0
    if session_id is not None:
        recorded = sum(
            1
            for c in runtime.reservation_conflicts(session_id=session_id)
            if c.details.get("check_id") == check_id
        )
    # Not recorded yet (or no session given): this run's result carries the same conflicts.
    found = len(current.details.get("conflicts", ())) if current is not None else 0
    value = recorded or found
    what = (
        f"{_num(value)} reservation {_plural('conflict', value)} found by {check_id!r} "
        "in this session"
    )
    return _outcome(
        condition,
        check_id,
        value,
        "reservation_conflict",
        value > 0,
        what,
        why_not=f"{check_id!r} found no conflict in this session",
    )


def _system_down(condition: TriggerCondition, results: Sequence[CheckResult]) -> TriggerOutcome:
    ran = [r for r in results if r.severity == "critical" and r.status is not CheckStatus.SKIPPED]
    failed = [r for r in ran if r.status.value in FAILED_STATUSES]
    down = bool(ran) and len(failed) == len(ran)
    value = 1 if down else 0
    what = f"{len(failed)} of {len(ran)} critical {_plural('check', len(ran))} failed"
    return _outcome(
        condition, None, value, "system_down", down, what, why_not="the system is not down"
    )


# --- history -----------------------------------------------------------------------------------


def _timeline(
    runtime: RuntimeState,
    check_id: str,
    current: CheckResult | None,
    session_id: str | None,
    *,
    enough: Callable[[list[ExecutionRecord]], bool],
) -> list[_Run]:
    """The check's runs, newest first: this run's result, then the recorded history."""
    limit = _FIRST_PAGE
    while True:
        rows = runtime.executions(config_id=check_id, limit=limit)
        exhausted = len(rows) < limit
        past = [r for r in rows if r.kind == "check"]
        if current is not None:
            past = _without_current(past, current, session_id)
        if exhausted or enough(past):
            break
        limit *= 4
    runs = [_Run(r.status, r.started_at, now=False) for r in past]
    if current is not None:
        runs.insert(0, _Run(current.status.value, current.started_at, now=True))
    return runs


def _without_current(
    rows: list[ExecutionRecord], current: CheckResult, session_id: str | None
) -> list[ExecutionRecord]:
    if session_id is not None:
        return [r for r in rows if r.session_id != session_id]
    for index, row in enumerate(rows):
        if row.started_at == current.started_at and row.status == current.status.value:
            return rows[:index] + rows[index + 1 :]
    return rows


def _result_for(results: Sequence[CheckResult], check_id: str) -> CheckResult | None:
    found = [r for r in results if r.check_id == check_id]
    return found[-1] if found else None


def _current_status(runs: Sequence[_Run]) -> str | None:
    """This run's status; without a result for the check, the newest recorded one that ran."""
    if runs and runs[0].now:
        return runs[0].status
    return next((r.status for r in runs if r.status != "skipped"), None)


# --- wording -----------------------------------------------------------------------------------


def _outcome(
    condition: TriggerCondition,
    check_id: str | None,
    value: float,
    failure_class: str | None,
    live: bool,
    what: str,
    *,
    why_not: str,
) -> TriggerOutcome:
    rule = f"{_SYMBOLS.get(condition.operator, condition.operator)} {_num(condition.threshold)}"
    met = live and compare(value, condition.operator, condition.threshold)
    description = f"{condition.condition}: {what} ({rule})"
    if not live:
        description += f"; not met: {why_not}"
    return TriggerOutcome(
        met=met,
        value=float(value),
        failure_class=failure_class,
        description=description,
        condition=condition.condition,
        check_id=check_id,
    )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _plural(noun: str, count: float) -> str:
    return noun if count == 1 else f"{noun}s"


def _verb(noun: str) -> str:
    return "time out" if noun == "timeout" else "fail"
