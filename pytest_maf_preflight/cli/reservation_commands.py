"""``maf-preflight reservations list|acquire|renew|release``: the lease store (SPEC S3, S9).

- ``list [--all] [--agent NAME]``: active leases (``--all``: expired and released ones too),
  newest first: pattern, agent, exclusive or shared, time left, fencing token, id.
- ``acquire PATTERN... --ttl SECONDS [--shared] [--reason TEXT]``: every pattern or none;
  prints each lease id and fencing token. Exit 4 when another agent's active lease blocks it
  (each blocking lease is named: pattern, holder, expiry). Expiries are printed in UTC
  (``2025-01-02T03:04:05Z``), as the reservation checks print them.
- ``renew LEASE_ID --ttl SECONDS``: extends from ``max(now, expiry)``, with a new token.
- ``release LEASE_ID``: the owner releases its lease; ``release --stale
  [--idle-agent-seconds N]`` force-releases expired leases (and those of agents silent for N
  seconds), whoever holds them.

The agent is ``--agent``, else ``MAF_AGENT_ID``, else ``AGENT_NAME``; none is a usage error,
and so is ``anonymous``, the id of a gate run that names no agent (``names.is_anonymous``).
Patterns are gitignore-style and relative to the repository top level. The runtime is located as
``maf-preflight history`` locates it (the current directory is the rootdir;
``MAF_RUNTIME_MODE``, ``MAF_DB_PATH``, ``MAF_AGENT_MAIL_ROOT``, or ``--mode``). A lease taken in
the ``memory`` mode would end with this command, so acquire, renew and release refuse it.

Exit codes: 0 done; 2 usage (bad pattern, ttl, agent name, no runtime); 4 refused: a conflict
blocked the acquire or renewal, or the lease is unknown, someone else's or released.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..time_text import span
from .common import (
    AGENT_HELP,
    CliError,
    CliExit,
    agent_name,
    open_runtime,
    print_json,
    refused,
    runtime_arguments,
    table,
    utc,
    valid_agent_name,
)

if TYPE_CHECKING:
    from ..runtime.interface import RuntimeState
    from ..runtime.records import Lease

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

#: Exit code when the lease store refused: a conflict, or a lease that is not the agent's.
EXIT_REFUSED = int(CliExit.REFUSED)


def register(subparsers: Subparsers) -> None:
    reservations = subparsers.add_parser(
        "reservations",
        help="List, acquire, renew and release leases on paths",
        description="The lease store agents reserve paths in. Patterns are gitignore-style "
        "(a path, 'dir/', 'src/**/*.py'), relative to the repository top level. "
        f"Exit {EXIT_REFUSED}: refused (a conflicting lease of another agent, or a "
        "lease that is unknown, someone else's or released).",
    )
    actions = reservations.add_subparsers(
        dest="reservations_command", metavar="ACTION", required=True
    )

    listing = actions.add_parser("list", help="Active leases, newest first")
    listing.add_argument("--all", action="store_true", help="Expired and released leases too")
    listing.add_argument("--agent", metavar="NAME", help="Only this agent's leases")
    runtime_arguments(listing)
    listing.set_defaults(handler=run_list)

    acquire = actions.add_parser(
        "acquire",
        help="Lease every PATTERN, or none of them",
        description="Lease every PATTERN for SECONDS, or none: another agent's active lease "
        "on an overlapping pattern, with at least one side exclusive, blocks the "
        f"whole request (exit {EXIT_REFUSED}, each blocking lease named).",
    )
    acquire.add_argument(
        "patterns", nargs="+", metavar="PATTERN", help="Path or gitignore-style pattern"
    )
    acquire.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    acquire.add_argument(
        "--ttl", type=float, required=True, metavar="SECONDS", help="How long the leases last"
    )
    acquire.add_argument(
        "--shared", action="store_true", help="Shared leases (readers); exclusive by default"
    )
    acquire.add_argument("--reason", default="", metavar="TEXT", help="Why (shown to others)")
    runtime_arguments(acquire)
    acquire.set_defaults(handler=run_acquire)

    renew = actions.add_parser(
        "renew",
        help="Extend one of the agent's leases",
        description="Extend the lease to max(now, its expiry) + SECONDS, with a new fencing token.",
    )
    renew.add_argument("lease_id", metavar="LEASE_ID")
    renew.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    renew.add_argument("--ttl", type=float, required=True, metavar="SECONDS", help="Seconds to add")
    runtime_arguments(renew)
    renew.set_defaults(handler=run_renew)

    release = actions.add_parser(
        "release",
        help="Release a lease, or force-release stale ones",
        description="Release LEASE_ID (owner only; releasing it again changes nothing), or "
        "with --stale force-release every expired lease and, with "
        "--idle-agent-seconds, every lease of an agent whose last heartbeat is "
        "older than that.",
    )
    release.add_argument("lease_id", nargs="?", metavar="LEASE_ID")
    release.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    release.add_argument(
        "--stale", action="store_true", help="Force-release stale leases instead of one lease"
    )
    release.add_argument(
        "--idle-agent-seconds",
        type=float,
        metavar="N",
        help="With --stale: also leases of agents silent for N seconds",
    )
    runtime_arguments(release)
    release.set_defaults(handler=run_release)


# --- shared --------------------------------------------------------------------------------------


def _open(mode: str | None, *, writes: bool) -> tuple[RuntimeState, list[str]]:
    runtime, skipped = open_runtime(mode)
    if writes and skipped:
        # Other agents look for leases in the store that could not be opened.
        runtime.close()
        raise CliError(
            f"the runtime fell back to {runtime.mode} ({'; '.join(skipped)}), where "
            "no other agent would see the lease; fix it or choose the mode "
            "explicitly (MAF_RUNTIME_MODE or --mode)"
        )
    if writes and runtime.mode == "memory":
        runtime.close()
        raise CliError(
            "the runtime is memory, where a lease ends with this command; choose "
            "sqlite or json (MAF_RUNTIME_MODE or --mode)"
        )
    return runtime, skipped


def _positive(value: float, option: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise CliError(f"{option} must be a positive number of seconds, got {value:g}")
    return value


def lease_state(lease: Lease, at: float) -> str:
    """``in 5m00s``, ``expired 3s ago`` or ``released``: what a reader needs about a lease."""
    if lease.released_at is not None:
        return "released"
    if lease.expires_at > at:
        return f"in {span(lease.expires_at - at)}"
    return f"expired {span(at - lease.expires_at)} ago"


def lease_json(lease: Lease, at: float) -> dict[str, Any]:
    return {**dataclasses.asdict(lease), "active": lease.active(at)}


def describe_holder(lease: Lease, at: float) -> str:
    kind = "exclusive" if lease.exclusive else "shared"
    reason = f", reason: {lease.reason}" if lease.reason else ""
    return (
        f"{lease.path_pattern!r} held by agent {lease.agent_id!r} ({kind} lease {lease.id}, "
        f"expires {utc(lease.expires_at)}, {lease_state(lease, at)}{reason})"
    )


def _table(rows: Sequence[Lease], at: float) -> None:
    table(
        ("PATTERN", "AGENT", "KIND", "EXPIRES", "TOKEN", "ID"),
        [
            (
                lease.path_pattern,
                lease.agent_id,
                "exclusive" if lease.exclusive else "shared",
                lease_state(lease, at),
                str(lease.fencing_token),
                lease.id,
            )
            for lease in rows
        ],
    )


# --- commands ------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    # Only a filter, so ``anonymous`` may be asked for: leases granted before it was refused.
    agent = valid_agent_name(args.agent, "--agent") if args.agent else None
    runtime, skipped = _open(args.mode, writes=False)
    at = time.time()
    with runtime:
        rows = runtime.leases(active_only=not args.all, agent_id=agent, now=at)
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": skipped,
                "now": at,
                "leases": [lease_json(lease, at) for lease in rows],
            }
        )
        return 0
    for note in skipped:
        print(f"note: {note}")
    if not rows:
        which = "leases" if args.all else "active leases"
        print(f"no {which}{f' of agent {agent!r}' if agent else ''} ({runtime.mode})")
        return 0
    _table(rows, at)
    return 0


def run_acquire(args: argparse.Namespace) -> int:
    agent = agent_name(args.agent)
    ttl = _positive(args.ttl, "--ttl")
    runtime, skipped = _open(args.mode, writes=True)
    with runtime:
        try:
            grant = runtime.acquire_leases(
                agent, args.patterns, exclusive=not args.shared, ttl=ttl, reason=args.reason
            )
        except ValueError as exc:  # a bad pattern (PatternError), checked before any write
            raise CliError(str(exc)) from None
    at = time.time()
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": skipped,
                "agent": agent,
                "granted": grant.ok,
                "leases": [lease_json(lease, at) for lease in grant.granted],
                "conflicts": [lease_json(lease, at) for lease in grant.conflicts],
            }
        )
        return 0 if grant.ok else EXIT_REFUSED
    for note in skipped:
        print(f"note: {note}")
    if not grant.ok:
        for lease in grant.conflicts:
            print(f"blocked by: {describe_holder(lease, at)}")
        count = len(grant.conflicts)
        return refused(
            f"not granted to {agent!r}: {count} active lease"
            f"{'s' if count != 1 else ''} of other agents conflict; nothing was "
            "leased"
        )
    for lease in grant.granted:
        kind = "exclusive" if lease.exclusive else "shared"
        print(
            f"granted {lease.path_pattern!r} ({kind}) to {agent}: lease {lease.id}, "
            f"fencing token {lease.fencing_token}, expires {utc(lease.expires_at)}"
        )
    return 0


def run_renew(args: argparse.Namespace) -> int:
    from ..runtime.errors import LeaseError

    agent = agent_name(args.agent)
    ttl = _positive(args.ttl, "--ttl")
    runtime, _ = _open(args.mode, writes=True)
    with runtime:
        try:
            lease = runtime.renew_lease(args.lease_id, agent, ttl=ttl)
        except LeaseError as exc:
            return refused(str(exc))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    if args.json:
        print_json({"mode": runtime.mode, "lease": lease_json(lease, time.time())})
        return 0
    print(
        f"renewed lease {lease.id} on {lease.path_pattern!r}: fencing token "
        f"{lease.fencing_token}, expires {utc(lease.expires_at)}"
    )
    return 0


def run_release(args: argparse.Namespace) -> int:
    if args.stale:
        if args.lease_id is not None:
            raise CliError("give LEASE_ID or --stale, not both")
        return _release_stale(args)
    if args.lease_id is None:
        raise CliError("give the LEASE_ID to release, or --stale")
    if args.idle_agent_seconds is not None:
        raise CliError("--idle-agent-seconds only applies with --stale")
    from ..runtime.errors import LeaseError

    agent = agent_name(args.agent)
    runtime, _ = _open(args.mode, writes=True)
    with runtime:
        try:
            lease = runtime.release_lease(args.lease_id, agent)
        except LeaseError as exc:
            return refused(str(exc))
    if args.json:
        print_json({"mode": runtime.mode, "lease": lease_json(lease, time.time())})
        return 0
    print(f"released lease {lease.id} on {lease.path_pattern!r} ({lease.agent_id})")
    return 0


def _release_stale(args: argparse.Namespace) -> int:
    idle = args.idle_agent_seconds
    if idle is not None and (not math.isfinite(idle) or idle < 0):
        raise CliError(f"--idle-agent-seconds must be at least 0, got {idle:g}")
    runtime, _ = _open(args.mode, writes=True)
    with runtime:
        try:
            released = runtime.release_stale_leases(idle_agent_seconds=idle)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    at = time.time()
    if args.json:
        print_json({"mode": runtime.mode, "released": [lease_json(x, at) for x in released]})
        return 0
    for lease in released:
        print(
            f"released {lease.path_pattern!r} ({lease.agent_id}, lease {lease.id}, expired "
            f"{utc(lease.expires_at)})"
            if lease.expires_at <= at
            else f"released {lease.path_pattern!r} ({lease.agent_id}, lease {lease.id}; the agent "
            "is idle)"
        )
    count = len(released)
    print(f"released {count} stale lease{'s' if count != 1 else ''} ({runtime.mode})")
    return 0
