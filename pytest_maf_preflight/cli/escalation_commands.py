"""``maf-preflight escalations list|ack|resolve|approve|reject|tick``: the escalations of the
runtime (SPEC S4).

- ``list [--state S ...|--all] [--path ID]``: open escalations (triggered, acknowledged,
  escalated) by default, newest first: short id, state, level, occurrences, path, check,
  failure class, when opened, the next action, and who acknowledged or resolved it and when.
  ``--json`` prints the full records with their delivery attempts.
- ``ack ID --agent NAME``: the escalation climbs no further; who and when are recorded.
- ``resolve ID --agent NAME [--note TEXT]``: closes it and sends a resolution notice to every
  target told so far (one line per delivery attempt).
- ``approve|reject ID --reason TEXT [--for DURATION] [--agent NAME]``: the decision an
  approve or reject step waits for (``EscalationEngine.decide``), recorded and answered with an
  ``ESCALATION_RESPONSE``; an approval waives the escalation's check for ``--for``.
- ``tick``: moves every overdue escalation up one level (or expires it), as each gate run
  does; for cron or CI. Concurrent ticks deliver each level once. It also reviews the agents
  holding leases against the configured paths with an ``agent_stale`` condition (read as
  ``project_paths`` says: ``--config-dir``, ``--env``).

ID may be any unique prefix of an escalation id. The agent is ``--agent``, else
``MAF_AGENT_ID``, else ``AGENT_NAME`` (``tick`` falls back to ``maf-preflight``). The runtime is
located as ``maf-preflight history`` locates it (the current directory is the rootdir;
``MAF_RUNTIME_MODE``, ``MAF_DB_PATH``, ``--mode``); mailbox deliveries go under
``MAF_AGENT_MAIL_ROOT`` (default ``.agent-mail``). Every escalation carries the path it was
opened with, so no config is read here but by ``tick``, for the stale agents.

Exit codes: 0 done (``tick`` also when nothing was due, and whatever the deliveries' outcome:
each attempt is printed and logged); 1 ``tick``: the configs are invalid (overdue escalations
were still advanced; stale agents were not reviewed); 2 usage (bad argument, agent name,
ambiguous ID, no runtime); 4 refused: the escalation is unknown, not open, or the path's
``permissions`` do not allow the agent (the refusal names the rule).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..time_text import span
from . import project_paths
from .common import (
    AGENT_HELP,
    SHORT_ID,
    CliExit,
    agent_name,
    error_line,
    find_by_prefix,
    notes,
    open_runtime,
    print_json,
    reason_text,
    refused,
    runtime_arguments,
    runtime_settings,
    table,
    utc,
)
from .durations import EXAMPLES, parse_duration

if TYPE_CHECKING:
    from ..escalation.engine import EngineReport, EscalationEngine
    from ..escalation.paths import PathRef
    from ..runtime.interface import RuntimeState
    from ..runtime.records import DeliveryRecord, EscalationRecord

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

#: Exit code when the escalation is unknown or closed, or the path's permissions refuse.
EXIT_REFUSED = int(CliExit.REFUSED)
#: The agent ``tick`` delivers as when none is set: a cron job is rarely an agent.
TICK_AGENT = "maf-preflight"
#: As ``runtime.records``; repeated here so ``--help`` does not import the runtime.
STATES = ("triggered", "acknowledged", "escalated", "resolved", "expired")
OPEN_STATES = ("triggered", "acknowledged", "escalated")

ID_HELP = "Escalation id, or a unique prefix of one"


def register(subparsers: Subparsers) -> None:
    escalations = subparsers.add_parser(
        "escalations",
        help="List, acknowledge, resolve and advance escalations",
        description="Escalations opened by preflight gate runs (or raised by tests). ID may be "
        "a unique prefix of an escalation id. Exit 2: usage (also an ambiguous "
        f"ID); exit {EXIT_REFUSED}: refused (the escalation is unknown or not open, "
        "or the path's permissions do not allow the agent; the rule is named).",
    )
    actions = escalations.add_subparsers(
        dest="escalations_command", metavar="ACTION", required=True
    )

    listing = actions.add_parser(
        "list",
        help="Open escalations, newest first",
        description="Open escalations (triggered, acknowledged, escalated), newest first; "
        "--state or --all for others. --json adds every delivery attempt.",
    )
    which = listing.add_mutually_exclusive_group()
    which.add_argument(
        "--state",
        action="append",
        choices=STATES,
        metavar="STATE",
        help=f"Only this state (repeatable; one of {', '.join(STATES)})",
    )
    which.add_argument("--all", action="store_true", help="Every state, closed ones too")
    listing.add_argument("--path", metavar="ID", help="Only escalations of this path")
    runtime_arguments(listing)
    listing.set_defaults(handler=run_list)

    ack = actions.add_parser(
        "ack",
        help="Acknowledge an escalation: it climbs no further",
        description="Record that AGENT has taken the escalation: it stays open at its level "
        "and is not escalated further.",
    )
    ack.add_argument("escalation_id", metavar="ID", help=ID_HELP)
    ack.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    runtime_arguments(ack)
    ack.set_defaults(handler=run_ack)

    resolve = actions.add_parser(
        "resolve",
        help="Resolve an escalation and notify its targets",
        description="Close the escalation and send a resolution notice to every target told "
        "about it so far.",
    )
    resolve.add_argument("escalation_id", metavar="ID", help=ID_HELP)
    resolve.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    resolve.add_argument("--note", metavar="TEXT", help="What was done (sent with the notice)")
    runtime_arguments(resolve)
    resolve.set_defaults(handler=run_resolve)

    for verb, handler, outcome in (
        (
            "approve",
            run_approve,
            "accepted true. The approval waives the escalation's check for --for, else the "
            "step's waiver_minutes, else 60 minutes, and holds the escalation acknowledged "
            "meanwhile.",
        ),
        ("reject", run_reject, "accepted false. The escalation goes on as before."),
    ):
        decide = actions.add_parser(
            verb,
            help=f"{verb.capitalize()} an escalation waiting at a decision step",
            description=f"{verb.capitalize()} the escalation. The decision (who, when, why) is "
            "recorded and answered with an ESCALATION_RESPONSE, the path's permissions.approve "
            f"permitting the agent: {outcome}",
        )
        decide.add_argument("escalation_id", metavar="ID", help=ID_HELP)
        decide.add_argument("--reason", required=True, metavar="TEXT", help="Why (on the record)")
        if verb == "approve":
            decide.add_argument(
                "--for",
                dest="duration",
                type=parse_duration,
                metavar="DURATION",
                help=f"How long the waiver holds ({EXAMPLES})",
            )
        decide.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
        runtime_arguments(decide)
        decide.set_defaults(handler=handler)

    tick = actions.add_parser(
        "tick",
        help="Advance overdue escalations one level (for cron or CI)",
        description="Move every overdue escalation up one level, delivering it, or expire it, "
        "as each gate run does. Safe to run concurrently: each level is delivered "
        "once. Delivers as MAF_AGENT_ID, else AGENT_NAME, else "
        f"'{TICK_AGENT}'. Agents holding leases are reviewed against the paths with an "
        "agent_stale condition in the configs. Exit 0 also when nothing was due; exit 1: the "
        "configs are invalid (overdue escalations are still advanced).",
    )
    project_paths.add_arguments(tick)
    runtime_arguments(tick)
    tick.set_defaults(handler=run_tick)


# --- shared --------------------------------------------------------------------------------------


class UnknownEscalation(Exception):
    """No escalation id starts with what was given (exit 4, as the engine's refusals)."""


def _engine(
    runtime: RuntimeState, agent: str, mode: str | None, paths: Mapping[str, PathRef] | None = None
) -> EscalationEngine:
    from ..escalation.engine import EscalationEngine

    # An escalation carries the snapshot of the path it was opened with; ``paths`` are only
    # for what opens escalations here (a tick's stale agents).
    return EscalationEngine(
        runtime,
        paths or {},
        agent_id=agent,
        mail_root=runtime_settings(mode).mail_root,
        environ=dict(os.environ),
        deliver=True,
        project_default=str(Path.cwd()),
    )


def find_escalation(runtime: RuntimeState, given: str) -> EscalationRecord:
    """The escalation whose id is ``given`` or starts with it.

    ``CliError`` (usage) for an empty or ambiguous prefix; ``UnknownEscalation`` when none
    matches.
    """
    wanted = given.strip()
    return find_by_prefix(
        "escalation",
        given,
        runtime.get_escalation(wanted) if wanted else None,
        runtime.escalations,
        lambda e: f"{e.dedup_key}, {e.state}",
        UnknownEscalation(
            f"no escalation with id {wanted!r} in the {runtime.mode} runtime "
            "('maf-preflight escalations list --all' shows every one)"
        ),
    )


def next_action(escalation: EscalationRecord, at: float) -> str:
    """``in 14m59s``, ``due 3s ago`` (the next tick moves it) or ``-`` (nothing scheduled)."""
    if escalation.next_action_at is None:
        return "-"
    if escalation.next_action_at > at:
        return f"in {span(escalation.next_action_at - at)}"
    return f"due {span(at - escalation.next_action_at)} ago"


def who(escalation: EscalationRecord) -> str:
    """Who acknowledged and resolved it, and when (``-`` when nobody has yet)."""
    parts = []
    if escalation.acknowledged_by is not None or escalation.acknowledged_at is not None:
        parts.append(
            f"acknowledged by {escalation.acknowledged_by or '?'} at "
            f"{_when(escalation.acknowledged_at)}"
        )
    if escalation.resolved_by is not None or escalation.resolved_at is not None:
        parts.append(
            f"resolved by {escalation.resolved_by or '?'} at {_when(escalation.resolved_at)}"
        )
    return "; ".join(parts) or "-"


def _when(epoch: float | None) -> str:
    return "?" if epoch is None else utc(epoch)


def escalation_json(
    escalation: EscalationRecord, deliveries: Sequence[DeliveryRecord] | None = None
) -> dict[str, Any]:
    from ..redaction import redact_mapping

    data = dataclasses.asdict(escalation)
    # Snapshots keep ${ENV:...} references, but a command's argv or a header may still hold
    # something secret-looking: the JSON output redacts like every other report.
    data["path_snapshot"] = redact_mapping(data["path_snapshot"])
    data["details"] = redact_mapping(data["details"])
    if deliveries is not None:
        data["deliveries"] = [dataclasses.asdict(d) for d in deliveries]
    return data


def _report_json(report: EngineReport) -> dict[str, Any]:
    return {
        "opened": [escalation_json(e) for e in report.opened],
        "advanced": [escalation_json(e) for e in report.advanced],
        "resolved": [escalation_json(e) for e in report.resolved],
        "expired": [escalation_json(e) for e in report.expired],
        "deliveries": [dataclasses.asdict(d) for d in report.deliveries],
        "notes": list(report.notes),
    }


def _table(rows: Sequence[EscalationRecord], at: float) -> None:
    table(
        ("ID", "STATE", "LEVEL", "OCC", "PATH", "CHECK", "CLASS", "OPENED", "NEXT", "WHO"),
        [
            (
                e.id[:SHORT_ID],
                e.state,
                str(e.level),
                str(e.occurrences),
                e.path_id,
                e.check_id or "-",
                e.failure_class or "-",
                utc(e.created_at),
                next_action(e, at),
                who(e),
            )
            for e in rows
        ],
    )


# --- commands ------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    states = None if args.all else tuple(dict.fromkeys(args.state or OPEN_STATES))
    runtime, skipped = open_runtime(args.mode)
    at = time.time()
    with runtime:
        rows = runtime.escalations(states=states, path_id=args.path)
        if args.json:
            by_id: dict[str, list[DeliveryRecord]] = {e.id: [] for e in rows}
            for delivery in runtime.deliveries():
                by_id.get(delivery.escalation_id, []).append(delivery)
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": list(skipped),
                "now": at,
                "escalations": [escalation_json(e, by_id[e.id]) for e in rows],
            }
        )
        return 0
    notes(skipped)
    if not rows:
        which = (
            "escalations"
            if args.all
            else "open escalations"
            if not args.state
            else f"escalations in state {', '.join(states or ())}"
        )
        print(f"no {which}{f' of path {args.path!r}' if args.path else ''} ({runtime.mode})")
        return 0
    _table(rows, at)
    return 0


def run_ack(args: argparse.Namespace) -> int:
    from ..escalation.errors import EscalationError

    agent = agent_name(args.agent)
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        try:
            found = find_escalation(runtime, args.escalation_id)
            done = _engine(runtime, agent, args.mode).acknowledge(found.id, agent)
        except (UnknownEscalation, EscalationError) as exc:
            return refused(str(exc))
    if args.json:
        print_json(
            {"mode": runtime.mode, "skipped": list(skipped), "escalation": escalation_json(done)}
        )
        return 0
    notes(skipped)
    print(
        f"acknowledged escalation {done.id} ({done.dedup_key}) by {done.acknowledged_by} at "
        f"{_when(done.acknowledged_at)}; it stays open at level {done.level} and climbs no "
        "further"
    )
    return 0


def run_resolve(args: argparse.Namespace) -> int:
    from ..escalation.errors import EscalationError

    agent = agent_name(args.agent)
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        try:
            found = find_escalation(runtime, args.escalation_id)
            report = _engine(runtime, agent, args.mode).resolve(found.id, agent, args.note)
        except (UnknownEscalation, EscalationError) as exc:
            return refused(str(exc))
    (done,) = report.resolved
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": list(skipped),
                "escalation": escalation_json(done),
                "deliveries": [dataclasses.asdict(d) for d in report.deliveries],
                "notes": report.notes,
            }
        )
        return 0
    notes(skipped)
    print(
        f"resolved escalation {done.id} ({done.dedup_key}) by {done.resolved_by} at "
        f"{_when(done.resolved_at)}"
    )
    # The report's own "escalation resolved" line would repeat the one above.
    for line in dataclasses.replace(report, resolved=[]).lines():
        print(line)
    return 0


def run_approve(args: argparse.Namespace) -> int:
    return _decide(args, approve=True)


def run_reject(args: argparse.Namespace) -> int:
    return _decide(args, approve=False)


def _decide(args: argparse.Namespace, *, approve: bool) -> int:
    """``approve`` or ``reject``: ``EscalationEngine.decide``, its refusals exit 4."""
    from ..escalation.errors import EscalationError

    reason = reason_text(args.reason)
    agent = agent_name(args.agent)
    duration = getattr(args, "duration", None)
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        try:
            found = find_escalation(runtime, args.escalation_id)
            report = _engine(runtime, agent, args.mode).decide(
                found.id,
                by=agent,
                approve=approve,
                reason=reason,
                waiver_minutes=None if duration is None else duration / 60,
            )
        except (UnknownEscalation, EscalationError) as exc:
            return refused(str(exc))
        done = runtime.get_escalation(found.id) or found
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": list(skipped),
                "escalation": escalation_json(done),
                "decisions": [dataclasses.asdict(d) for d in report.decisions],
                "waivers": [dataclasses.asdict(w) for w in report.waivers],
                "deliveries": [dataclasses.asdict(d) for d in report.deliveries],
                "notes": report.notes,
            }
        )
        return 0
    notes(skipped)
    verb = "approved" if approve else "rejected"
    print(f"{verb} escalation {done.id} ({done.dedup_key}) at level {done.level} by {agent}")
    for waiver in report.waivers:
        print(
            f"  waiver {waiver.id} of check {waiver.check_id!r} until "
            f"{utc(waiver.expires_at)} ('maf-preflight waivers revoke' ends it early)"
        )
    for line in dataclasses.replace(report, decisions=[], waivers=[]).lines():
        print(line)
    return 0


def run_tick(args: argparse.Namespace) -> int:
    agent = agent_name(None, default=TICK_AGENT)
    # Invalid configs must not hold up the climb: it needs none, only the stale agents do.
    paths, config_errors = project_paths.load_paths(args.config_dir, args.env)
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        report = _engine(runtime, agent, args.mode, paths).tick()
    code = int(CliExit.INVALID) if config_errors else 0
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": list(skipped),
                "agent": agent,
                **_report_json(report),
                "config_errors": config_errors,
            }
        )
        return code
    notes(skipped)
    lines = report.lines()
    for line in lines:
        print(line)
    if not lines:
        print(f"no escalation was due ({runtime.mode})")
    for line in config_errors:
        print(line, file=sys.stderr)
    if config_errors:
        print(
            error_line("the configs are invalid: stale agents were not reviewed"), file=sys.stderr
        )
    return code
