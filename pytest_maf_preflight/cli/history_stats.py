"""``maf-preflight history stats``: per check, runs, pass rate, flip rate and p50/p95 duration
over the recorded history (``RuntimeState.check_stats``, aggregated in the database by the SQL
modes), as an aligned table or JSON.

A subcommand of ``history`` that ``history`` does not require: ``maf-preflight history
[--config ...]`` still lists executions.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .common import (
    DB_URL_HELP,
    JSON_HELP,
    MODE_HELP,
    open_runtime,
    print_json,
    valid_agent_name,
)
from .since import SINCE_HELP, parse_since

if TYPE_CHECKING:
    from ..runtime.records import CheckStats

#: The table's columns: heading, and whether values are right-aligned (numbers).
COLUMNS: tuple[tuple[str, bool], ...] = (
    ("check", False),
    ("runs", True),
    ("pass rate", True),
    ("flip rate", True),
    ("p50", True),
    ("p95", True),
    ("last", False),
)


def register(history: argparse.ArgumentParser) -> None:
    # Optional: `history` alone still lists executions.
    actions = history.add_subparsers(dest="history_command", metavar="[ACTION]")
    stats = actions.add_parser(
        "stats",
        help="Per check: runs, pass rate, flip rate, p50 and p95 duration",
        description="Per check (and maf_smoke test), over every agent's recorded executions "
        "or one agent's: runs, pass rate, flip rate (how often passing turns to failing or "
        "back), p50 and p95 duration, the last outcome. Skipped executions do not count.",
    )
    stats.add_argument("--since", metavar="WHEN", help=SINCE_HELP)
    stats.add_argument(
        "--agent", metavar="NAME", help="Only this agent's executions (default: every agent's)"
    )
    stats.add_argument("--mode", metavar="MODES", help=MODE_HELP)
    stats.add_argument("--db-url", metavar="URL", help=DB_URL_HELP)
    stats.add_argument("--json", action="store_true", help=JSON_HELP)
    stats.set_defaults(handler=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    if args.agent is not None:
        valid_agent_name(args.agent, "--agent")
    since = parse_since(args.since, time.time())
    runtime, skipped = open_runtime(args.mode, db_url=args.db_url)
    with runtime:
        rows = runtime.check_stats(since=since, agent_id=args.agent)
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": skipped,
                "since": since,
                "agent": args.agent,
                "checks": [dataclasses.asdict(r) for r in rows],
            }
        )
        return 0
    for note in skipped:
        print(f"note: {note}")
    scope = f"{runtime.mode}, {_window(since)}, {_who(args.agent)}"
    if not rows:
        print(f"no executions recorded ({scope})")
        return 0
    runs = sum(r.runs for r in rows)
    print(f"{len(rows)} checks, {runs} runs ({scope})")
    for line in stats_table(rows):
        print(line)
    return 0


def stats_table(rows: Sequence[CheckStats]) -> list[str]:
    """The heading and one line per check, each column as wide as its widest cell."""
    cells = [[heading for heading, _ in COLUMNS]]
    cells.extend(
        [
            r.config_id,
            str(r.runs),
            _percent(r.pass_rate),
            _percent(r.flip_rate),
            duration_text(r.p50_duration),
            duration_text(r.p95_duration),
            r.last_status,
        ]
        for r in rows
    )
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return [
        "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, right) in zip(line, widths, COLUMNS, strict=True)
        ).rstrip()
        for line in cells
    ]


def duration_text(seconds: float) -> str:
    """Milliseconds under a second, seconds from there (``512.3 ms``, ``2.41 s``)."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _window(since: float | None) -> str:
    if since is None:
        return "all recorded"
    moment = datetime.datetime.fromtimestamp(since, datetime.timezone.utc)
    return "since " + moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _who(agent: str | None) -> str:
    return "every agent" if agent is None else f"agent {agent}"
