"""``maf-preflight agents``: the agents the runtime knows, as their last heartbeats describe them.

One line per agent, by id: type, status, capabilities, and when its last heartbeat came (UTC,
and how long ago). Heartbeats come from every gate run (the run's agent, with
``MAF_AGENT_TYPE``/``MAF_AGENT_CAPABILITIES`` or their ini keys) and from
``maf_agent.heartbeat()``. Reading changes nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import time
from typing import TYPE_CHECKING

from .common import open_runtime, print_json, runtime_arguments

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: Subparsers) -> None:
    agents = subparsers.add_parser(
        "agents", help="Agents known to the runtime: type, status, capabilities, last heartbeat"
    )
    runtime_arguments(agents)
    agents.set_defaults(handler=run_agents)


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def run_agents(args: argparse.Namespace) -> int:
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        rows = runtime.agents()
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": skipped,
                "agents": [dataclasses.asdict(a) for a in rows],
            }
        )
        return 0
    for note in skipped:
        print(f"note: {note}")
    if not rows:
        print(f"no agents recorded ({runtime.mode})")
        return 0
    at = time.time()
    width = max(len(a.id) for a in rows)
    for a in rows:
        seen = datetime.datetime.fromtimestamp(a.last_heartbeat, datetime.timezone.utc)
        print(
            f"{a.id:<{width}}  {a.agent_type:<18} {a.status:<11} "
            f"{seen.isoformat(timespec='seconds')} ({_age(at - a.last_heartbeat)})  "
            f"capabilities: {', '.join(a.capabilities) or '-'}"
        )
    return 0
