"""The last outcomes of each check (``RuntimeState.recent_outcomes``), defined once for every
mode: the SQL the ``sqlite`` and ``postgres`` runtimes run and the same rule in Python for the
``memory`` and ``json`` modes.

Every execution counts, of config checks and of ``maf_smoke`` tests (keyed by node id), skipped
ones included: the report page's strip shows each outcome as it was. Newest first within a
check (``started_at``, then id), checks in id order.

The SQL reads each check's newest rows through the index on ``(config_id, started_at)``: one
``LIMIT`` query per check, joined with ``UNION ALL`` into a few statements. Its cost follows
the number of checks times ``per_check``, not the history: a store of 10,000 sessions answers
as fast as one of ten. (A window function, ``row_number() OVER (PARTITION BY config_id ...)``,
would number every row of the history first.) The check ids are those asked for, or every id
recorded (with ``since`` and ``agent_id``), read from that index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .records import ExecutionRecord, RecentOutcome

#: How many outcomes per check the report page shows.
DEFAULT_PER_CHECK = 50
#: Checks per statement: SQLite allows 500 terms in a compound SELECT.
CHECKS_PER_STATEMENT = 200
_COLUMNS = "id, config_id, agent_id, kind, status, started_at, duration, attempts"


def _filters(since: float | None, agent_id: str | None) -> tuple[list[str], list[Any]]:
    given = [
        (c, v) for c, v in (("started_at >= ?", since), ("agent_id = ?", agent_id)) if v is not None
    ]
    return [c for c, _ in given], [v for _, v in given]


def ids_sql(since: float | None, agent_id: str | None) -> tuple[str, list[Any]]:
    """Every check id recorded (with the filters), and the statement's parameters."""
    clauses, params = _filters(since, agent_id)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return f"SELECT DISTINCT config_id FROM preflight_executions{where}", params  # noqa: S608 - constants and markers only


def outcomes_sql(
    config_ids: Sequence[str], since: float | None, agent_id: str | None, per_check: int
) -> list[tuple[str, list[Any]]]:
    """The statements (``?`` markers) reading the newest ``per_check`` rows of each check, and
    their parameters; rows in no particular order (``in_order`` sorts them)."""
    clauses, filters = _filters(since, agent_id)
    where = "".join(f" AND {c}" for c in clauses)
    part = (
        f"SELECT * FROM (SELECT {_COLUMNS} FROM preflight_executions WHERE config_id = ?{where} "  # noqa: S608 - constants and markers only
        "ORDER BY started_at DESC, id DESC LIMIT ?) AS r"
    )
    statements = []
    for start in range(0, len(config_ids), CHECKS_PER_STATEMENT):
        chunk = config_ids[start : start + CHECKS_PER_STATEMENT]
        params: list[Any] = []
        for config_id in chunk:
            params.extend((config_id, *filters, per_check))
        statements.append((" UNION ALL ".join(part for _ in chunk), params))
    return statements


def in_order(rows: Iterable[Sequence[Any]]) -> list[RecentOutcome]:
    """Rows of ``outcomes_sql`` as records: checks by id (Python's order, whatever the
    database's collation), each newest first."""
    ordered = sorted(rows, key=lambda r: (r[5], r[0]), reverse=True)
    ordered.sort(key=lambda r: r[1])
    return [
        RecentOutcome(
            id=str(row_id),
            config_id=str(config_id),
            agent_id=str(agent),
            kind=kind,
            status=status,
            started_at=float(started_at),
            duration=float(duration),
            attempts=int(attempts),
        )
        for row_id, config_id, agent, kind, status, started_at, duration, attempts in ordered
    ]


def checked_per_check(per_check: int) -> int:
    if isinstance(per_check, bool) or not isinstance(per_check, int) or per_check < 1:
        raise ValueError(f"per_check must be a whole number of at least 1, got {per_check!r}")
    return per_check


def checked_ids(config_ids: Iterable[str] | None) -> list[str] | None:
    """The ids asked for, each once, in order; a plain string is a caller's mistake."""
    if config_ids is None:
        return None
    if isinstance(config_ids, str):
        raise ValueError("config_ids must be a collection of ids, not one string")
    return list(dict.fromkeys(str(i) for i in config_ids))


def outcomes_of(
    rows: Iterable[ExecutionRecord],
    *,
    per_check: int,
    since: float | None,
    agent_id: str | None,
    config_ids: Sequence[str] | None,
) -> list[RecentOutcome]:
    """``outcomes_sql``'s answer, computed in Python (the ``memory`` and ``json`` modes)."""
    wanted = None if config_ids is None else set(config_ids)
    by_check: dict[str, list[ExecutionRecord]] = {}
    for r in rows:
        if (
            (since is None or r.started_at >= since)
            and agent_id in (None, r.agent_id)
            and (wanted is None or r.config_id in wanted)
        ):
            by_check.setdefault(r.config_id, []).append(r)
    newest = [
        r
        for config_id in by_check
        for r in sorted(by_check[config_id], key=lambda r: (r.started_at, r.id), reverse=True)[
            :per_check
        ]
    ]
    return in_order(
        (r.id, r.config_id, r.agent_id, r.kind, r.status, r.started_at, r.duration, r.attempts)
        for r in newest
    )
