"""``maf-preflight report --html PATH [--since WHEN] [--agent NAME]``: the report page of what
the runtime holds (``report_page``): the latest session's timeline (of ``--agent``, when
given), each check's last 50 outcomes and numbers, the flakiest checks, the active leases, the
open escalations and the agents.

``--since`` and ``--agent`` narrow the history (and ``--agent`` the timeline and the leases);
escalations and agents are shown whole. The runtime is located as ``maf-preflight history``
locates it (``--mode``, ``--db-url``, MAF_* variables; the current directory is the rootdir).

Exit codes: 0 written; 2 usage (bad option, no runtime, a file that cannot be written).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .common import (
    DB_URL_HELP,
    MODE_HELP,
    CliError,
    display_path,
    open_runtime,
    valid_agent_name,
)
from .since import SINCE_HELP, parse_since

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: Subparsers) -> None:
    report = subparsers.add_parser(
        "report",
        help="Write the report page of the runtime (one self-contained HTML file)",
        description="Write one self-contained HTML page (no network needed to read it): the "
        "latest session's checks on a timeline, each check's last 50 outcomes, duration trend "
        "and pass rate, the flakiest checks, active leases, open escalations with their "
        "ladders, and the agents with their last heartbeat.",
    )
    report.add_argument(
        "--html", metavar="PATH", required=True, type=Path, help="Write the page to this file"
    )
    report.add_argument("--since", metavar="WHEN", help=SINCE_HELP)
    report.add_argument(
        "--agent",
        metavar="NAME",
        help="Only this agent's history, latest session and leases (default: every agent's)",
    )
    report.add_argument("--mode", metavar="MODES", help=MODE_HELP)
    report.add_argument("--db-url", metavar="URL", help=DB_URL_HELP)
    report.set_defaults(handler=run_report)


def _scope(agent: str | None, since_text: str | None) -> str:
    who = f"agent {agent}" if agent else "all agents"
    return f"{who}, since {since_text.strip()}" if since_text else who


def run_report(args: argparse.Namespace) -> int:
    from ..report_page.gather import page_from_runtime
    from ..report_page.render import write_page

    if args.agent is not None:
        valid_agent_name(args.agent, "--agent")
    now = time.time()
    since = parse_since(args.since, now)
    runtime, skipped = open_runtime(args.mode, db_url=args.db_url)
    with runtime:
        info = runtime.info()
        page = page_from_runtime(
            runtime,
            store=f"the {info.mode} runtime ({info.location})",
            scope=_scope(args.agent, args.since),
            since=since,
            agent_id=args.agent,
            rootdir=Path.cwd(),
            now=now,
        )
    try:
        write_page(args.html, page)
    except OSError as exc:
        raise CliError(f"cannot write {args.html}: {exc.strerror or exc}") from None
    for note in (*skipped, *page.notes):
        print(f"note: {note}")
    latest = (
        f"latest session {page.run.session_id} ({page.run.agent_id}, gate {page.run.verdict})"
        if page.run is not None
        else "no session recorded"
    )
    print(
        f"wrote {display_path(args.html)}: {latest}, {len(page.timeline.bars)} check(s) on its "
        f"timeline, history of {len(page.histories)} check(s)"
    )
    return 0
