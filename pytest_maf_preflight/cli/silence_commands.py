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
import dataclasses
import sys
import time
from typing import TYPE_CHECKING, Any

from . import project_paths
from .common import (
    DEFAULT_CONFIG_DIR,
    CliError,
    CliExit,
    agent_name,
    find_by_prefix,
    open_runtime,
    print_json,
)
from .durations import parse_duration, shown
from .escalate_command import CONFIG_ID
from .waiver_commands import (
    AGENT_HELP,
    EXIT_REFUSED,
    FOR_HELP,
    SHORT_ID,
    UnknownRecord,
    common_arguments,
    lasting_runtime,
    notes,
    reason_text,
    refused,
    state_of,
    table,
    utc,
)

if TYPE_CHECKING:
    from ..runtime.interface import RuntimeState
    from ..runtime.records import SilenceRecord

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: Subparsers) -> None:
    silence = subparsers.add_parser(
        "silence",
        help="Maintenance windows: escalations recorded but not delivered",
        description="While a silence holds, matching escalations still open and climb in the "
        "records but are not delivered (each suppressed delivery is recorded as silenced); "
        f"when it ends, what is still open is delivered. Exit {EXIT_REFUSED}: no such silence.",
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
    add.add_argument(
        "--for",
        dest="duration",
        required=True,
        type=parse_duration,
        metavar="DURATION",
        help=FOR_HELP,
    )
    add.add_argument("--reason", required=True, metavar="TEXT", help="Why (on the record)")
    add.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    project_paths.add_arguments(add)
    common_arguments(add)
    add.set_defaults(handler=run_add)

    listing = actions.add_parser(
        "list",
        help="Active silences, newest first",
        description="The silences active now, newest first; --all for every one, with its "
        "state (active, pending, expired, ended).",
    )
    listing.add_argument("--all", action="store_true", help="Expired and ended ones too")
    common_arguments(listing)
    listing.set_defaults(handler=run_list)

    expire = actions.add_parser(
        "expire",
        help="End a silence now",
        description="End the silence now: what is still open is delivered by the next tick or "
        "gate run.",
    )
    expire.add_argument("silence_id", metavar="ID", help="Silence id, or a unique prefix of one")
    expire.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    common_arguments(expire)
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
            for line in errors:
                print(line, file=sys.stderr)
            raise CliError(
                f"escalation path {args.path!r} not read: the configs are invalid", CliExit.INVALID
            )
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


def _json(silence: SilenceRecord, at: float | None = None) -> dict[str, Any]:
    data = dataclasses.asdict(silence)
    data["state"] = state_of(silence, time.time() if at is None else at)
    return data


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
        print_json({"mode": runtime.mode, "skipped": list(skipped), "silence": _json(record)})
        return 0
    notes(skipped)
    print(
        f"silenced escalations of {_what(record)} for {shown(args.duration)}: silence "
        f"{record.id} by {agent} until {utc(record.expires_at)}"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    at = time.time()
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        rows = runtime.silences(active_at=None if args.all else at)
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": list(skipped),
                "now": at,
                "silences": [_json(s, at) for s in rows],
            }
        )
        return 0
    notes(skipped)
    if not rows:
        print(f"no {'silences' if args.all else 'active silences'} ({runtime.mode})")
        return 0
    table(
        ("ID", "CHECK", "PATH", "STATE", "BY", "UNTIL", "REASON"),
        [
            (
                s.id[:SHORT_ID],
                s.check_id or "*",
                s.path_id or "*",
                state_of(s, at) + (f" by {s.expired_by}" if s.expired_by and s.expired_at else ""),
                s.created_by,
                utc(s.expires_at),
                s.reason,
            )
            for s in rows
        ],
    )
    return 0


def find_silence(runtime: RuntimeState, given: str) -> SilenceRecord:
    wanted = given.strip()
    rows = runtime.silences()
    return find_by_prefix(
        "silence",
        given,
        next((s for s in rows if s.id == wanted), None),
        lambda: rows,
        lambda s: f"{_what(s)}, by {s.created_by}",
        UnknownRecord(
            f"no silence with id {wanted!r} in the {runtime.mode} runtime "
            "('maf-preflight silence list --all' shows every one)"
        ),
    )


def run_expire(args: argparse.Namespace) -> int:
    agent = agent_name(args.agent)
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        try:
            found = find_silence(runtime, args.silence_id)
        except UnknownRecord as exc:
            return refused(str(exc))
        done = runtime.expire_silence(found.id, agent)
    assert done is not None  # found just now; silences are never deleted
    if args.json:
        print_json({"mode": runtime.mode, "skipped": list(skipped), "silence": _json(done)})
        return 0
    notes(skipped)
    if found.expired_at is not None or done.expired_at is None:
        print(f"silence {done.id} was ended already, by {done.expired_by}")
    else:
        print(
            f"ended silence {done.id} of {_what(done)} by {agent} at {utc(done.expired_at)}: "
            "what is still open is delivered by the next tick or gate run"
        )
    return 0
