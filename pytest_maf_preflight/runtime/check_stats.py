"""Per-check statistics over the recorded executions (``RuntimeState.check_stats``), defined
once for every mode: the SQL the ``sqlite`` and ``postgres`` runtimes run (aggregated in the
database, one statement) and the same rule in Python for the ``memory`` and ``json`` modes.

What counts:

- every execution of a config check (``kind`` ``check``) and of a ``maf_smoke`` test
  (``smoke``, keyed by its node id), except ``skipped`` ones: a skip says nothing about the
  check;
- a *flip* is a change between passing and not passing from one execution of a check to the
  next (ordered by ``started_at``, then id); ``failed`` followed by ``timeout`` is still
  failing and is no flip. ``flip_rate`` is flips per pair of consecutive executions;
- ``p50_duration`` and ``p95_duration`` interpolate linearly between the two nearest
  durations (PostgreSQL's ``percentile_cont``): the SQL picks the two, this module does the
  arithmetic, so every mode returns the same numbers to the last bit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from .records import CheckStats, ExecutionRecord, RecentOutcome

#: What the Python rule reads: stored executions, or the last outcomes the report page shows.
Run = ExecutionRecord | RecentOutcome

#: The percentiles reported, in whole percent (integer arithmetic, the same in every SQL).
PERCENTILES = (50, 95)


def stats_sql(*, since: bool, agent: bool) -> str:
    """The statement (``?`` markers: ``since``, then ``agent_id``, each only when asked for).

    One row per check, ordered by ``config_id``: the counts, the flips, ``n`` and, per
    percentile, the durations at its two nearest ranks (``lo``, ``hi``; ``hi`` is NULL at the
    top). Window functions (SQLite 3.25+, PostgreSQL) number the rows per check three ways:
    by time for flips, newest first for the last status, by duration for the percentiles.
    """
    where = ["status <> 'skipped'"]
    if since:
        where.append("started_at >= ?")
    if agent:
        where.append("agent_id = ?")
    ranks = "".join(
        f", max(CASE WHEN by_duration = {p} * (n - 1) / 100 + 1 THEN duration END)"
        f", max(CASE WHEN by_duration = {p} * (n - 1) / 100 + 2 THEN duration END)"
        for p in PERCENTILES
    )
    return (
        "WITH runs AS (SELECT config_id, status, started_at, duration, "
        "CASE WHEN status = 'passed' THEN 1 ELSE 0 END AS ok, "
        "lag(CASE WHEN status = 'passed' THEN 1 ELSE 0 END) "
        "OVER (PARTITION BY config_id ORDER BY started_at, id) AS prev_ok, "
        "row_number() OVER (PARTITION BY config_id ORDER BY started_at DESC, id DESC) AS newest, "
        "row_number() OVER (PARTITION BY config_id ORDER BY duration, id) AS by_duration, "
        "count(*) OVER (PARTITION BY config_id) AS n "
        "FROM preflight_executions WHERE " + " AND ".join(where) + ") "
        "SELECT config_id, count(*), sum(ok), "
        "sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'timeout' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN prev_ok IS NOT NULL AND prev_ok <> ok THEN 1 ELSE 0 END), "
        "max(CASE WHEN newest = 1 THEN status END), max(started_at)" + ranks + " "
        "FROM runs GROUP BY config_id ORDER BY config_id"
    )


def stats_params(since: float | None, agent_id: str | None) -> list[Any]:
    return [value for value in (since, agent_id) if value is not None]


def interpolated(percent: int, n: int, lo: float, hi: float | None) -> float:
    """The ``percent`` percentile of ``n`` sorted values whose ranks ``percent * (n - 1) //
    100`` and the next are worth ``lo`` and ``hi``."""
    fraction = (percent * (n - 1)) % 100
    if hi is None or not fraction:
        return float(lo)
    return float(lo) + (float(hi) - float(lo)) * fraction / 100


def read_stats(row: Sequence[Any]) -> CheckStats:
    """A row of ``stats_sql`` as a record."""
    config_id, runs, passed, failed, timeouts, errors, flips, last, last_at = row[:9]
    n = int(runs)
    p50, p95 = (
        interpolated(p, n, row[9 + 2 * i], row[10 + 2 * i]) for i, p in enumerate(PERCENTILES)
    )
    return check_stats_record(
        config_id,
        counts=(n, int(passed), int(failed), int(timeouts), int(errors), int(flips)),
        p50=p50,
        p95=p95,
        last_status=last,
        last_started_at=float(last_at),
    )


def check_stats_record(
    config_id: str,
    *,
    counts: tuple[int, int, int, int, int, int],
    p50: float,
    p95: float,
    last_status: str,
    last_started_at: float,
) -> CheckStats:
    """The record, its rates computed from its counts (runs, passed, failed, timeouts, errors,
    flips) the same way in every mode."""
    runs, passed, failed, timeouts, errors, flips = counts
    return CheckStats(
        config_id=config_id,
        runs=runs,
        passed=passed,
        failed=failed,
        timeouts=timeouts,
        errors=errors,
        pass_rate=passed / runs,
        flips=flips,
        flip_rate=flips / (runs - 1) if runs > 1 else 0.0,
        p50_duration=p50,
        p95_duration=p95,
        last_status=last_status,
        last_started_at=last_started_at,
    )


def stats_of(rows: Iterable[Run], *, since: float | None, agent_id: str | None) -> list[CheckStats]:
    """``stats_sql``'s answer, computed in Python (the ``memory`` and ``json`` modes, and the
    report page of a run over its checks' last outcomes)."""
    by_check: dict[str, list[Run]] = {}
    for r in rows:
        if (
            r.status != "skipped"
            and (since is None or r.started_at >= since)
            and (agent_id is None or r.agent_id == agent_id)
        ):
            by_check.setdefault(r.config_id, []).append(r)
    return [_one_check(config_id, by_check[config_id]) for config_id in sorted(by_check)]


def _one_check(config_id: str, runs: list[Run]) -> CheckStats:
    runs.sort(key=lambda r: (r.started_at, r.id))
    ok = [r.status == "passed" for r in runs]
    flips = sum(1 for before, after in itertools.pairwise(ok) if before != after)
    durations = sorted(r.duration for r in runs)
    n = len(runs)

    def percentile(p: int) -> float:
        rank = p * (n - 1) // 100
        return interpolated(p, n, durations[rank], durations[rank + 1] if rank + 1 < n else None)

    statuses = [r.status for r in runs]
    return check_stats_record(
        config_id,
        counts=(
            n,
            sum(ok),
            statuses.count("failed"),
            statuses.count("timeout"),
            statuses.count("error"),
            flips,
        ),
        p50=percentile(50),
        p95=percentile(95),
        last_status=runs[-1].status,
        last_started_at=runs[-1].started_at,
    )
