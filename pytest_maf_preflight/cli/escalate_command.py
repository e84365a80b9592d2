"""``maf-preflight escalate``: raise an escalation by hand, from the shell (SPEC S4, S9).

For agents that find a problem outside a test run, as the original MAF ``escalate`` script
did: ``escalate --path ID --reason TEXT [--check ID] [--severity S] [--agent NAME]`` opens an
escalation on the configured path (its first level is delivered at once), or, when one raised
by hand for the same path and check is still open, adds an occurrence to it. It is the
``maf_escalate`` fixture's way (``EscalationEngine.raise_manual``): the path's
``permissions.escalate_to`` apply, and what is raised by hand is resolved by hand.

The path comes from the project's configs (``project_paths``); the runtime and the mailbox
tree are located as ``maf-preflight escalations`` locates them. The escalation must live in
the store that later ticks read: with the ``memory`` runtime, or after the chain fell back to
another mode, nothing is raised.

Exit codes: 0 raised (whatever the deliveries' outcome: each attempt is printed and logged);
1 a config is invalid; 2 usage (unknown path, bad argument, no agent, no lasting runtime);
4 refused by the path's permissions.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import project_paths
from .common import (
    DEFAULT_CONFIG_DIR,
    CliError,
    CliExit,
    agent_name,
    error_line,
    open_runtime,
    print_json,
    runtime_arguments,
    runtime_settings,
)
from .escalation_commands import escalation_json

if TYPE_CHECKING:
    from ..escalation.engine import EngineReport
    from ..escalation.paths import PathRef
    from ..runtime.records import EscalationRecord

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

#: As ``escalation.channels.notice.SEVERITIES``; repeated so ``--help`` imports nothing.
SEVERITIES = ("critical", "warning")
#: A config id (``config.models.ID_PATTERN``): the check's id goes into the dedup key.
CONFIG_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def register(subparsers: Subparsers) -> None:
    escalate = subparsers.add_parser(
        "escalate",
        help="Raise an escalation by hand along a configured path",
        description="Open an escalation on the escalation path ID (its first level is "
        "delivered at once), or add an occurrence to the one raised by hand for the same path "
        "and check that is still open. The path's permissions.escalate_to apply. Exit 1: a "
        "config is invalid; 2: usage (also an unknown path); "
        f"{int(CliExit.REFUSED)}: refused by the path's permissions.",
    )
    escalate.add_argument("--path", required=True, metavar="ID", help="Escalation path id")
    escalate.add_argument(
        "--reason", required=True, metavar="TEXT", help="What is wrong (the notice's summary)"
    )
    escalate.add_argument("--check", metavar="ID", help="The check it is about, if any")
    escalate.add_argument(
        "--severity",
        choices=SEVERITIES,
        default="critical",
        help="Severity of the notice (default: critical)",
    )
    escalate.add_argument(
        "--agent", metavar="NAME", help="Agent raising it (default: MAF_AGENT_ID, then AGENT_NAME)"
    )
    project_paths.add_arguments(escalate)
    runtime_arguments(escalate)
    escalate.set_defaults(handler=run_escalate)


def run_escalate(args: argparse.Namespace) -> int:
    from ..escalation.engine import EngineReport, EscalationEngine
    from ..escalation.errors import EscalationError

    reason = " ".join(args.reason.split())
    if not reason:
        raise CliError("--reason is empty; say what is wrong")
    if args.check is not None and not CONFIG_ID.fullmatch(args.check):
        raise CliError(f"--check: {args.check!r} is not a check id (letters, digits, '_' and '-')")
    agent = agent_name(args.agent)
    path = _path(args.path, args.config_dir, args.env)
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        if runtime.mode == "memory" or skipped:
            raise CliError(
                f"not raised: the runtime is {runtime.mode}"
                + (f" after a fallback ({'; '.join(skipped)})" if skipped else "")
                + "; an escalation needs the store that later ticks read"
            )
        engine = EscalationEngine(
            runtime,
            {path.id: path},
            agent_id=agent,
            mail_root=runtime_settings(args.mode).mail_root,
            environ=dict(os.environ),
            project_default=str(Path.cwd()),
        )
        report = EngineReport()
        try:
            raised = engine.raise_manual(
                path.id,
                summary=reason,
                severity=args.severity,
                check_id=args.check,
                report=report,
            )
        except EscalationError as exc:
            print(error_line(str(exc)), file=sys.stderr)
            return int(CliExit.REFUSED)
    assert raised is not None  # delivery is on: raise_manual always opens or repeats
    return _print(args.json, runtime.mode, raised, report)


def _path(path_id: str, config_dir: Path | None, env: str | None) -> PathRef:
    """The configured path ``path_id``; config errors end the command (exit 1)."""
    paths, errors = project_paths.load_paths(config_dir, env)
    if errors:
        raise project_paths.invalid_configs(errors, f"escalation path {path_id!r}")
    found = paths.get(path_id)
    if found is None:
        where = config_dir if config_dir is not None else DEFAULT_CONFIG_DIR
        raise CliError(
            f"no active escalation path {path_id!r} in {where} "
            f"(known: {', '.join(sorted(paths)) or 'none'})"
        )
    return found


def _print(as_json: bool, mode: str, raised: EscalationRecord, report: EngineReport) -> int:
    created = bool(report.opened)
    if as_json:
        print_json(
            {
                "mode": mode,
                "created": created,
                "escalation": escalation_json(raised),
                "deliveries": [dataclasses.asdict(d) for d in report.deliveries],
                "notes": list(report.notes),
            }
        )
        return 0
    if created:
        print(
            f"opened escalation {raised.id} ({raised.dedup_key}) at level {raised.level}, "
            f"raised by {raised.details.get('agent_id')}"
        )
    else:
        print(
            f"escalation {raised.id} ({raised.dedup_key}) is already open ({raised.state}, "
            f"level {raised.level}): {raised.occurrences} occurrences now"
        )
    # The report's opened/repeated line would repeat the one above.
    for line in dataclasses.replace(report, opened=[], occurrences=[]).lines():
        print(line)
    return 0
