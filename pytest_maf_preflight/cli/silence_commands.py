"""``maf-preflight silence``: maintenance windows for escalations (SPEC S4).

- ``silence add --check ID | --path ID --for DURATION --reason TEXT [--agent NAME]``: for that
  long, escalations of the check (on any path), of the path (any check), or, with both, of that
  check on that path, are still opened and climbed in the records but not delivered; each
  suppressed delivery is recorded as ``silenced``. When the silence ends, what is still open is
  delivered.
- ``silence list [--all]``: the active silences (``--all``: every one, with its state), newest
  first.
- ``silence expire ID [--agent NAME]``: end a silence now (who and when are recorded).

A ``--path`` must be an active escalation path of the project's configs (``project_paths``:
``--config-dir``, ``--env``); a ``--check`` is any check id (escalations raised by hand may
name checks no config has). The runtime is located as ``maf-preflight escalations`` locates it;
the ``memory`` runtime, or a chain that fell back, keeps no silence. ID may be a unique prefix.

Exit codes: 0 done; 1 the configs are invalid; 2 usage (bad duration, empty reason, unknown
path, no agent, no lasting runtime, ambiguous ID); 4 no such silence.
"""

from __future__ import annotations

import argparse
import time
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
    runtime_arguments,
    utc,
)
from .durations import shown
from .escalate_command import CONFIG_ID
from .timed_records import (
    end_now,
    grant_arguments,
    lasting_runtime,
    list_records,
    record_json,
    shown_state,
)

if TYPE_CHECKING:
    from ..runtime.records import SilenceRecord

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: Subparsers) -> None:
    silence = subparsers.add_parser(
        "silence",
        help="Maintenance windows: escalations recorded but not delivered",
        description="While a silence holds, matching escalations still open and climb in the "
        "records but are not delivered (each suppressed delivery is recorded as silenced); "
        f"when it ends, what is still open is delivered. Exit {int(CliExit.REFUSED)}: no such "
        "silence.",
    )
    actions = silence.add_subparsers(dest="silence_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="Silence a check's or a path's escalations for a while",
        description="Silence the escalations of --check (on any path), of --path (any check), "
        "or of that check on that path, for --for.",
    )
    add.add_argument("--check", metavar="ID", help="The check whose escalations to silence")
    add.add_argument("--path", metavar="ID", help="The escalation path to silence")
    grant_arguments(add)
    add.set_defaults(handler=run_add)

    listing = actions.add_parser(
        "list",
        help="Active silences, newest first",
        description="The silences active now, newest first; --all for every one, with its "
        "state (active, pending, expired, ended).",
    )
    listing.add_argument("--all", action="store_true", help="Expired and ended ones too")
    runtime_arguments(listing)
    listing.set_defaults(handler=run_list)

    expire = actions.add_parser(
        "expire",
        help="End a silence now",
        description="End the silence now: what is still open is delivered by the next tick or "
        "gate run.",
    )
    expire.add_argument("silence_id", metavar="ID", help="Silence id, or a unique prefix of one")
    expire.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    runtime_arguments(expire)
    expire.set_defaults(handler=run_expire)


def _target(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The check and the path to silence, checked (usage errors)."""
    if args.check is None and args.path is None:
        raise CliError("silence what? give --check ID, --path ID or both")
    for option, value in (("--check", args.check), ("--path", args.path)):
        if value is not None and not CONFIG_ID.fullmatch(value):
            raise CliError(f"{option}: {value!r} is not an id (letters, digits, '_' and '-')")
    if args.path is not None:
        paths, errors = project_paths.load_paths(args.config_dir, args.env)
        if errors:
            raise project_paths.invalid_configs(errors, f"escalation path {args.path!r}")
        if args.path not in paths:
            where = args.config_dir if args.config_dir is not None else DEFAULT_CONFIG_DIR
            raise CliError(
                f"no active escalation path {args.path!r} in {where} "
                f"(known: {', '.join(sorted(paths)) or 'none'})"
            )
    return args.check, args.path


def _what(silence: SilenceRecord) -> str:
    if silence.check_id and silence.path_id:
        return f"check {silence.check_id!r} on path {silence.path_id!r}"
    if silence.check_id:
        return f"check {silence.check_id!r}"
    return f"path {silence.path_id!r}"


def run_add(args: argparse.Namespace) -> int:
    from ..runtime.records import SilenceRecord, new_id

    reason = reason_text(args.reason)
    agent = agent_name(args.agent)
    check_id, path_id = _target(args)
    runtime, skipped = lasting_runtime(args.mode, "silence")
    at = time.time()
    record = SilenceRecord(
        id=new_id(),
        check_id=check_id,
        path_id=path_id,
        created_by=agent,
        reason=reason,
        created_at=at,
        expires_at=at + args.duration,
    )
    with runtime:
        runtime.add_silence(record)
    if args.json:
        print_json({"mode": runtime.mode, "skipped": list(skipped), "silence": record_json(record)})
        return 0
    notes(skipped)
    print(
        f"silenced escalations of {_what(record)} for {shown(args.duration)}: silence "
        f"{record.id} by {agent} until {utc(record.expires_at)}"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    return list_records(
        args,
        "silences",
        lambda runtime, active_at: runtime.silences(active_at=active_at),
        ("ID", "CHECK", "PATH", "STATE", "BY", "UNTIL", "REASON"),
        lambda s, at: (
            s.id[:SHORT_ID],
            s.check_id or "*",
            s.path_id or "*",
            shown_state(s, at),
            s.created_by,
            utc(s.expires_at),
            s.reason,
        ),
    )


def run_expire(args: argparse.Namespace) -> int:
    return end_now(
        args,
        args.silence_id,
        "silence",
        "silence",
        lambda runtime: runtime.silences(),
        lambda s: f"{_what(s)}, by {s.created_by}",
        lambda runtime, silence_id, agent: runtime.expire_silence(silence_id, agent),
        lambda s, agent, at: (
            f"ended silence {s.id} of {_what(s)} by {agent} at {utc(at)}: "
            "what is still open is delivered by the next tick or gate run"
        ),
    )
