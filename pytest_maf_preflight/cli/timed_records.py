"""Waivers and silences on the command line: records that hold from a start until an expiry,
unless someone ends them early. What ``waive``/``waivers`` and ``silence`` share: the state of
one, its JSON, the runtime they must live in, listing them and ending one now.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import project_paths
from .common import (
    AGENT_HELP,
    CliError,
    agent_name,
    find_by_prefix,
    notes,
    open_runtime,
    print_json,
    refused,
    runtime_arguments,
    table,
)
from .durations import EXAMPLES, parse_duration

if TYPE_CHECKING:
    import argparse

    from ..runtime.interface import RuntimeState
    from ..runtime.records import SilenceRecord, WaiverRecord

    Timed = TypeVar("Timed", WaiverRecord, SilenceRecord)

FOR_HELP = f"How long it holds ({EXAMPLES})"


class UnknownRecord(Exception):
    """No waiver (silence) id starts with what was given (exit 4)."""


def grant_arguments(parser: argparse.ArgumentParser) -> None:
    """What granting a waiver or a silence asks: for how long, why, who, the project's configs
    and the runtime."""
    parser.add_argument(
        "--for",
        dest="duration",
        required=True,
        type=parse_duration,
        metavar="DURATION",
        help=FOR_HELP,
    )
    parser.add_argument("--reason", required=True, metavar="TEXT", help="Why (on the record)")
    parser.add_argument("--agent", metavar="NAME", help=AGENT_HELP)
    project_paths.add_arguments(parser)
    runtime_arguments(parser)


def lasting_runtime(mode: str | None, what: str) -> tuple[RuntimeState, list[str]]:
    """The runtime the gate reads: ``what`` kept in the memory runtime, or in a fallback,
    would be seen by no gate run (usage error)."""
    runtime, skipped = open_runtime(mode)
    if runtime.mode == "memory" or skipped:
        runtime.close()
        raise CliError(
            f"no {what}: the runtime is {runtime.mode}"
            + (f" after a fallback ({'; '.join(skipped)})" if skipped else "")
            + f"; a {what} must be kept in the store the gate runs read"
        )
    return runtime, skipped


def _window(record: WaiverRecord | SilenceRecord) -> tuple[float, float | None, str | None, str]:
    """When it starts, when it was ended early and by whom, and the word for ending it."""
    from ..runtime.records import WaiverRecord

    if isinstance(record, WaiverRecord):
        return record.granted_at, record.revoked_at, record.revoked_by, "revoked"
    return record.created_at, record.expired_at, record.expired_by, "ended"


def state_of(record: WaiverRecord | SilenceRecord, at: float) -> str:
    """``active``, ``pending`` (starts later), ``expired``, or ended early: ``revoked`` (a
    waiver), ``ended`` (a silence)."""
    start, ended_at, _, early = _window(record)
    if ended_at is not None and ended_at <= at:
        return early
    if record.expires_at <= at:
        return "expired"
    return "pending" if start > at else "active"


def shown_state(record: WaiverRecord | SilenceRecord, at: float) -> str:
    """``state_of``, and who ended it early (a table's STATE column)."""
    _, ended_at, ended_by, _ = _window(record)
    return state_of(record, at) + (f" by {ended_by}" if ended_by and ended_at else "")


def record_json(record: WaiverRecord | SilenceRecord, at: float | None = None) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["state"] = state_of(record, time.time() if at is None else at)
    return data


def list_records(
    args: argparse.Namespace,
    plural: str,
    rows: Callable[[RuntimeState, float | None], Sequence[Timed]],
    header: Sequence[str],
    cells: Callable[[Timed, float], Sequence[str]],
    of: str = "",
) -> int:
    """``waivers list`` and ``silence list``: the records ``rows`` gives (active now, or every
    one with ``--all``), as JSON or a table; ``of`` says what narrowed them."""
    at = time.time()
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        found = rows(runtime, None if args.all else at)
    if args.json:
        print_json(
            {
                "mode": runtime.mode,
                "skipped": list(skipped),
                "now": at,
                plural: [record_json(r, at) for r in found],
            }
        )
        return 0
    notes(skipped)
    if not found:
        print(f"no {plural if args.all else f'active {plural}'}{of} ({runtime.mode})")
        return 0
    table(header, [cells(r, at) for r in found])
    return 0


def end_now(
    args: argparse.Namespace,
    given: str,
    kind: str,
    listing: str,
    rows: Callable[[RuntimeState], Sequence[Timed]],
    describe: Callable[[Timed], str],
    end: Callable[[RuntimeState, str, str], Timed | None],
    ended: Callable[[Timed, str, float], str],
) -> int:
    """``waivers revoke`` and ``silence expire``: end the ``kind`` whose id is ``given`` (or
    starts with it) now, as ``--agent``. ``describe`` tells the candidates of an ambiguous
    prefix apart; ``ended`` is the line that says it was ended (by whom, when); ``listing``
    is the command whose ``list --all`` shows every one."""
    agent = agent_name(args.agent)
    runtime, skipped = open_runtime(args.mode)
    with runtime:
        wanted = given.strip()
        candidates = rows(runtime)
        try:
            found = find_by_prefix(
                kind,
                given,
                next((r for r in candidates if r.id == wanted), None),
                lambda: candidates,
                describe,
                UnknownRecord(
                    f"no {kind} with id {wanted!r} in the {runtime.mode} runtime "
                    f"('maf-preflight {listing} list --all' shows every one)"
                ),
            )
        except UnknownRecord as exc:
            return refused(str(exc))
        done = end(runtime, found.id, agent)
    assert done is not None  # found just now; waivers and silences are never deleted
    if args.json:
        print_json({"mode": runtime.mode, "skipped": list(skipped), kind: record_json(done)})
        return 0
    notes(skipped)
    _, ended_before, _, _ = _window(found)
    _, ended_at, ended_by, early = _window(done)
    if ended_before is not None or ended_at is None:
        print(f"{kind} {done.id} was {early} already, by {ended_by}")
    else:
        print(ended(done, agent, ended_at))
    return 0
