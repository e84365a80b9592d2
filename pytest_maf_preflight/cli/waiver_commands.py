"""``maf-preflight waive`` and ``maf-preflight waivers``: audited waivers instead of blind
overrides (SPEC S4).

- ``waive CHECK_ID --for 2h --reason TEXT [--agent NAME]``: for that long, a failure of the
  check no longer closes the gate; the gate reports it as WAIVED (who, until when). A
  reservation check's waiver covers only the conflicts its latest recorded run found (their
  leases and paths): a conflict with another lease still closes the gate. Subject to the
  ``permissions.approve`` list of the check's escalation path.
- ``waivers list [--all] [--check ID]``: the active waivers (``--all``: every one, with its
  state), newest first.
- ``waivers revoke ID [--agent NAME]``: end a waiver now (who and when are recorded).

The check and its path come from the project's configs (``project_paths``: ``--config-dir``,
``--env``); a check that names no path takes the path of its latest escalation, if any. The
runtime is located as ``maf-preflight escalations`` locates it; a waiver must live in the store
the gate reads, so the ``memory`` runtime, or a chain that fell back, grants none. ID may be a
unique prefix.

Exit codes: 0 done; 1 the configs are invalid; 2 usage (bad duration, empty reason, unknown
check, no agent, no lasting runtime, ambiguous ID); 4 refused: the path's permissions do not
allow the agent, a reservation check with no recorded conflict to waive, or an unknown waiver.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import project_paths
from .common import (
    AGENT_HELP,
    DEFAULT_CONFIG_DIR,
    SHORT_ID,
    CliError,
    CliExit,
    agent_name,
    notes,
    print_json,
    reason_text,
    refused,
    runtime_arguments,
    utc,
)
from .durations import shown
from .timed_records import (
    end_now,
    grant_arguments,
    lasting_runtime,
    list_records,
    record_json,
    shown_state,
)

if TYPE_CHECKING:
    from ..config.loader import LoadedConfig
    from ..config.models import EscalationPermissions
    from ..escalation.paths import PathRef
    from ..runtime.interface import RuntimeState
    from ..runtime.records import WaiverRecord

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_REFUSED = int(CliExit.REFUSED)


def register(subparsers: Subparsers) -> None:
    waive = subparsers.add_parser(
        "waive",
        help="Let a failing check through the gate for a while, on the record",
        description="For --for, a failure of CHECK_ID no longer closes the gate; the gate "
        "reports it as WAIVED (who, until when) and the run still fails for anything else. A "
        "reservation check's waiver covers only the conflicts its latest recorded run found. "
        "The check's escalation path's permissions.approve must allow the agent. Exit 1: "
        f"the configs are invalid; 2: usage; {EXIT_REFUSED}: refused (permissions, or no "
        "reservation conflict to waive).",
    )
    waive.add_argument("check_id", metavar="CHECK_ID", help="The check to waive")
    grant_arguments(waive)
    waive.set_defaults(handler=run_waive)

    waivers = subparsers.add_parser(
        "waivers",
        help="List and revoke waivers",
        description="Waivers granted by 'maf-preflight waive' or by approving an escalation. "
        f"ID may be a unique prefix. Exit {EXIT_REFUSED}: no such waiver.",
    )
    actions = waivers.add_subparsers(dest="waivers_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="Active waivers, newest first",
        description="The waivers active now, newest first; --all for every one, with its "
        "state (active, pending, expired, revoked).",
    )
    listing.add_argument("--all", action="store_true", help="Expired and revoked ones too")
    listing.add_argument("--check", metavar="ID", help="Only waivers of this check")
    runtime_arguments(listing)
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser(
        "revoke",
        help="End a waiver now",
        description="End the waiver now: the next gate run is closed by the check again.",
    )
    revoke.add_argument("waiver_id", metavar="ID", help="Waiver id, or a unique prefix of one")
    revoke.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    runtime_arguments(revoke)
    revoke.set_defaults(handler=run_revoke)


# --- waive ---------------------------------------------------------------------------------------


def _check(
    check_id: str, config_dir: Path | None, env: str | None
) -> tuple[LoadedConfig, dict[str, PathRef]]:
    """The active check ``check_id`` of the project's configs, and the active escalation
    paths; config errors end the command (exit 1), an unknown check is a usage error."""
    from ..escalation.session import paths_of

    configs, errors = project_paths.load_configs(config_dir, env)
    if errors:
        raise project_paths.invalid_configs(errors, f"check {check_id!r}")
    checks = [
        c for c in configs if c.config.is_active and c.config.config_type != "escalation_path"
    ]
    found = next((c for c in checks if c.id == check_id), None)
    if found is None:
        where = config_dir if config_dir is not None else DEFAULT_CONFIG_DIR
        known = ", ".join(sorted(c.id for c in checks)) or "none"
        raise CliError(f"no active check {check_id!r} in {where} (known: {known})")
    return found, paths_of(configs)


def _policy(
    check: LoadedConfig, paths: dict[str, PathRef], runtime: RuntimeState
) -> tuple[str | None, EscalationPermissions | None]:
    """The check's escalation path and its permissions: the path the check names, else the
    path of the check's latest escalation (opened on the run's default path), else none."""
    from ..escalation.paths import PathRef

    path_id = check.config.escalation_path
    if path_id is not None:
        if path_id not in paths:  # its permissions cannot be known: refuse, as the gate does
            raise CliError(
                f"check {check.id!r} names escalation path {path_id!r}, which is not an active "
                f"escalation_path config (known: {', '.join(sorted(paths)) or 'none'})",
                CliExit.INVALID,
            )
        return path_id, paths[path_id].body.permissions
    latest = runtime.escalations(check_id=check.id, limit=1)
    if not latest:
        return None, None
    return latest[0].path_id, PathRef.from_snapshot(latest[0].path_snapshot).body.permissions


def run_waive(args: argparse.Namespace) -> int:
    from ..escalation.permissions import PermissionDenied, check_approve
    from ..escalation.waiving import grant_waiver, waiver_scope

    reason = reason_text(args.reason)
    agent = agent_name(args.agent)
    check, paths = _check(args.check_id, args.config_dir, args.env)
    runtime, skipped = lasting_runtime(args.mode, "waiver")
    with runtime:
        path_id, policy = _policy(check, paths, runtime)
        try:
            check_approve(policy, agent, path_id=path_id)
        except PermissionDenied as exc:
            return refused(f"not waived: {exc}")
        reservation = check.config.config_type == "reservation_check"
        if reservation and not waiver_scope(runtime, check.id):
            return refused(
                f"not waived: {check.id!r} is a reservation check and its latest recorded run "
                "found no conflict; a reservation waiver covers the conflicts found when it is "
                "granted, so there is nothing to waive yet"
            )
        waiver = grant_waiver(
            runtime,
            check_id=check.id,
            by=agent,
            reason=reason,
            minutes=args.duration / 60,
            now=time.time(),
        )
    if args.json:
        print_json({"mode": runtime.mode, "skipped": list(skipped), "waiver": record_json(waiver)})
        return 0
    notes(skipped)
    print(
        f"waived check {waiver.check_id!r} for {shown(args.duration)}: waiver {waiver.id} by "
        f"{waiver.granted_by} until {utc(waiver.expires_at)}"
        + (f" (path {path_id!r})" if path_id else "")
    )
    if waiver.scope:
        print(f"  covers only: {_scope(waiver)}")
    return 0


def _scope(waiver: WaiverRecord) -> str:
    leases = ", ".join(str(x)[:SHORT_ID] for x in waiver.scope.get("leases", ())) or "none"
    paths = ", ".join(str(x) for x in waiver.scope.get("paths", ())) or "none"
    return f"leases {leases}; paths {paths}"


# --- waivers list | revoke -----------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    return list_records(
        args,
        "waivers",
        lambda runtime, active_at: runtime.waivers(active_at=active_at, check_id=args.check),
        ("ID", "CHECK", "STATE", "BY", "UNTIL", "REASON"),
        lambda w, at: (
            w.id[:SHORT_ID],
            w.check_id,
            shown_state(w, at),
            w.granted_by,
            utc(w.expires_at),
            w.reason + (f" [{_scope(w)}]" if w.scope else ""),
        ),
        f" of check {args.check!r}" if args.check else "",
    )


def run_revoke(args: argparse.Namespace) -> int:
    return end_now(
        args,
        args.waiver_id,
        "waiver",
        "waivers",
        lambda runtime: runtime.waivers(),
        lambda w: f"{w.check_id}, by {w.granted_by}",
        lambda runtime, waiver_id, agent: runtime.revoke_waiver(waiver_id, agent),
        lambda w, agent, at: (
            f"revoked waiver {w.id} of check {w.check_id!r} by {agent} at "
            f"{utc(at)}: the gate is closed by its failures again"
        ),
    )
