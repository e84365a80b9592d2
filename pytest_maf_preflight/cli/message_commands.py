"""``maf-preflight messages list|follow|ack``: the runtime's protocol message queue (SPEC S6).

- ``list``: the messages, oldest first (the last ``--limit``), one line each: time (UTC), short
  id, type, sending agent, status and what it says. ``--type`` (repeatable), ``--status``,
  ``--agent``, ``--since`` filter. Reading does not deliver or acknowledge anything.
- ``follow``: the same lines for each message that arrives from now on (with ``--since``, the
  ones since then first), polling the runtime every ``--interval`` seconds until interrupted;
  Ctrl-C ends it with exit 0.
- ``ack ID``: marks a message acknowledged (``acked``). ID may be any unique prefix of a
  message id.

With ``--json`` every message is one JSON object on a line of its own (JSON Lines), so
``follow --json`` can be piped into another program. Notes about the runtime (a mode skipped on
the way) go to stderr. The runtime is located as ``maf-preflight escalations`` locates it.

Exit codes: 0 done; 2 usage (bad argument, ambiguous ID, no runtime); 4 refused: no message has
that id.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .common import (
    SHORT_ID,
    CliError,
    CliExit,
    error_line,
    find_by_prefix,
    open_runtime,
    runtime_arguments,
    utc,
    valid_agent_name,
)
from .since import parse_since

if TYPE_CHECKING:
    from ..runtime.interface import RuntimeState
    from ..runtime.records import Message

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

#: Exit code when no message has the id given.
EXIT_REFUSED = int(CliExit.REFUSED)
#: As ``protocol.messages.MESSAGE_TYPES``; repeated so ``--help`` imports no pydantic.
TYPES = (
    "PREFLIGHT_CHECK",
    "PREFLIGHT_RESULT",
    "RESERVATION_CONFLICT",
    "ESCALATION_REQUEST",
    "ESCALATION_RESPONSE",
)
STATUSES = ("queued", "delivered", "acked")
#: How far before the newest message seen ``follow`` keeps asking: a message may be stored a
#: little after its timestamp (a session's bundle carries its smoke results; hosts' clocks
#: differ). One stored later than this after its timestamp shows in ``list`` only.
LOOKBACK = 120.0
JSON_LINES_HELP = "Print each message as one JSON object per line"


def register(subparsers: Subparsers) -> None:
    messages = subparsers.add_parser(
        "messages",
        help="List, follow and acknowledge protocol messages",
        description="The protocol messages in the runtime's queue: PREFLIGHT_CHECK when a "
        "gate check starts, PREFLIGHT_RESULT when it ends (the same execution id), "
        "RESERVATION_CONFLICT for each conflict found, and what agents enqueue. "
        "Exit 2: usage (also an ambiguous ID); "
        f"exit {EXIT_REFUSED}: no message has that id.",
    )
    actions = messages.add_subparsers(dest="messages_command", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="Messages, oldest first",
        description="Messages, oldest first: the last --limit of them.",
    )
    _filters(listing)
    listing.add_argument("--status", choices=STATUSES, help="Only this status")
    listing.add_argument(
        "--limit",
        type=int,
        default=100,
        metavar="N",
        help="The last N messages (default: 100; 0: all)",
    )
    runtime_arguments(listing, JSON_LINES_HELP)
    listing.set_defaults(handler=run_list)

    follow = actions.add_parser(
        "follow",
        help="Print messages as they arrive, until interrupted",
        description="Print each message as it arrives (with --since, those since then first), "
        "until interrupted; Ctrl-C exits 0.",
    )
    _filters(follow)
    follow.add_argument(
        "--interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="How often to look for new messages (default: 0.5)",
    )
    runtime_arguments(follow, JSON_LINES_HELP)
    follow.set_defaults(handler=run_follow)

    ack = actions.add_parser(
        "ack",
        help="Mark a message acknowledged",
        description="Mark a message acknowledged (status acked).",
    )
    ack.add_argument("message_id", metavar="ID", help="Message id, or a unique prefix of one")
    runtime_arguments(ack)
    ack.set_defaults(handler=run_ack)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--type",
        action="append",
        choices=TYPES,
        metavar="TYPE",
        dest="types",
        help=f"Only this type (repeatable; one of {', '.join(TYPES)})",
    )
    parser.add_argument("--agent", metavar="NAME", help="Only messages sent by this agent")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="Only messages from this long ago (30s, 10m, 2h, 1d) or this time "
        "(ISO 8601, UTC unless it says otherwise)",
    )


# --- shared --------------------------------------------------------------------------------------


def _checked(args: argparse.Namespace) -> None:
    if getattr(args, "agent", None):
        valid_agent_name(args.agent, "--agent")
    if getattr(args, "limit", 0) < 0:
        raise CliError(f"--limit must be at least 0, got {args.limit}")
    interval = getattr(args, "interval", 1.0)
    if not interval > 0 or interval > 3600:
        raise CliError(f"--interval must be more than 0 and at most 3600 seconds, got {interval:g}")


def _notes(skipped: Sequence[str]) -> None:
    for note in skipped:
        print(f"note: {note}", file=sys.stderr)


def _seconds(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return "?"


def summary(message: Message) -> str:
    """What a message says, in a few words (from its payload; a type this version does not
    know, or a payload that is not what the type says, shows its payload)."""
    p = message.payload
    execution = str(p.get("execution_id", ""))[:SHORT_ID]
    try:
        if message.type == "PREFLIGHT_CHECK":
            return f"{p['config_id']} ({p['check_type']}) started, execution {execution}"
        if message.type == "PREFLIGHT_RESULT":
            error = f": {p['error_message']}" if p.get("error_message") else ""
            return (
                f"{p['config_id']} {p['status']} in {_seconds(p.get('duration'))}, "
                f"execution {execution}{error}"
            )
        if message.type == "RESERVATION_CONFLICT":
            paths = ", ".join(p.get("paths") or ()) or "-"
            holder = (
                f" held by {p['holder_agent']} ({p.get('path_pattern') or '?'})"
                if p.get("holder_agent")
                else ""
            )
            return f"{p['conflict_type']} ({p['severity']}) on {paths}{holder}"
        if message.type == "ESCALATION_REQUEST":
            return (
                f"escalation {str(p['escalation_id'])[:SHORT_ID]} level {p['level']} to "
                f"{p['target']} ({p['severity']}): {p['summary']}"
            )
        if message.type == "ESCALATION_RESPONSE":
            return (
                f"escalation {str(p['escalation_id'])[:SHORT_ID]} {p['action']} by {p['responder']}"
            )
    except (KeyError, TypeError):
        pass
    return json.dumps(p, sort_keys=True, default=str, ensure_ascii=False)[:200]


def message_line(message: Message) -> str:
    return "  ".join(
        (
            utc(message.created_at),
            message.id[:SHORT_ID],
            f"{message.type:<20}",
            message.agent_id,
            f"{message.status:<9}",
            summary(message),
        )
    )


def message_json(message: Message) -> dict[str, Any]:
    import dataclasses

    from ..redaction import redact_mapping

    data = dataclasses.asdict(message)
    data["payload"] = redact_mapping(dict(message.payload))
    return data


def _emit(message: Message, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(message_json(message), ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(message_line(message).replace("\n", " ") + "\n")


class UnknownMessage(Exception):
    """No message id starts with what was given (exit 4, as ``escalations ack``)."""


def find_message(runtime: RuntimeState, given: str) -> Message:
    """The message whose id is ``given`` or starts with it; ``CliError`` (usage) for an empty
    or ambiguous prefix, ``UnknownMessage`` when none matches."""
    wanted = given.strip()
    rows = runtime.messages() if wanted else []  # no lookup by id: one read serves both
    return find_by_prefix(
        "message",
        given,
        next((m for m in rows if m.id == wanted), None),
        lambda: rows,
        lambda m: m.type,
        UnknownMessage(
            f"no message with id {wanted!r} in the {runtime.mode} runtime "
            "('maf-preflight messages list --limit 0' shows every one)"
        ),
    )


# --- commands ------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    _checked(args)
    since = parse_since(args.since, time.time())
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        rows = runtime.messages(args.status, types=args.types, agent_id=args.agent, since=since)
    _notes(skipped)
    if args.limit:
        rows = rows[-args.limit :]
    for message in rows:
        _emit(message, args.json)
    if not rows and not args.json:
        print(f"no messages ({runtime.mode})", file=sys.stderr)
    return 0


def run_follow(args: argparse.Namespace) -> int:
    _checked(args)
    runtime, skipped = open_runtime(args.mode)
    _notes(skipped)
    # After the runtime is open: a message enqueued once this line is out is shown.
    started = time.time()
    since = parse_since(args.since, started)
    print(
        f"following messages in the {runtime.mode} runtime ({runtime.info().location}); "
        "Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    # Only what arrives from now on, unless --since asks for earlier ones too.
    floor = started if since is None else since
    seen: dict[str, float] = {}
    newest = floor
    try:
        with runtime:
            while True:
                low = max(floor, newest - LOOKBACK)
                for message in runtime.messages(types=args.types, agent_id=args.agent, since=low):
                    if message.id not in seen:
                        seen[message.id] = message.created_at
                        # Never past this host's clock: a message stamped in the future
                        # must not hide the ones that follow it.
                        newest = max(newest, min(message.created_at, time.time()))
                        _emit(message, args.json)
                sys.stdout.flush()
                seen = {k: at for k, at in seen.items() if at >= newest - LOOKBACK}
                time.sleep(args.interval)
    except KeyboardInterrupt:  # how a follower stops: not an error
        return 0


def run_ack(args: argparse.Namespace) -> int:
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        try:
            found = find_message(runtime, args.message_id)
        except UnknownMessage as exc:
            print(error_line(str(exc)), file=sys.stderr)
            return EXIT_REFUSED
        already = found.status == "acked"
        if not already and not runtime.ack(found.id):
            # Gone between the lookup and the ack (a store cleaned meanwhile).
            print(error_line(f"no message with id {found.id!r} any more"), file=sys.stderr)
            return EXIT_REFUSED
    _notes(skipped)
    if args.json:
        done = message_json(found)
        done["status"] = "acked"
        print(
            json.dumps(
                {"mode": runtime.mode, "already_acked": already, "message": done},
                ensure_ascii=False,
                default=str,
            )
        )
        return 0
    state = "was already acknowledged" if already else "acknowledged"
    print(f"message {found.id} ({found.type} from {found.agent_id}) {state}")
    return 0
