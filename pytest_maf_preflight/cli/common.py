"""What every command group shares: exit codes, one-line errors, JSON output and tables,
backups, the agent and environment names, and opening the runtime.

Command modules import this at top level, so it imports only the standard library there; the
runtime is imported inside the functions that open it.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .. import names

if TYPE_CHECKING:
    import argparse

    from ..runtime.factory import RuntimeSettings
    from ..runtime.interface import RuntimeState

PROG = "maf-preflight"
#: Where configs live when no path is given (the original system's layout).
DEFAULT_CONFIG_DIR = Path(names.DEFAULT_CONFIG_DIR)
MAX_NAME_LENGTH = 128
#: How much of a record id a table shows (any unique prefix is accepted back).
SHORT_ID = 12

JSON_HELP = "Print JSON"
MODE_HELP = "Runtime modes to use (default: as MAF_RUNTIME_MODE, else sqlite,json,memory)"
AGENT_HELP = "Agent acting (default: MAF_AGENT_ID, then AGENT_NAME)"
DB_URL_HELP = (
    "PostgreSQL URL of the postgres mode (default: MAF_DB_URL; a password may come "
    "from PGPASSWORD or ~/.pgpass)"
)


class CliExit(enum.IntEnum):
    """Exit codes of ``maf-preflight`` (documented in ``--help`` and the README)."""

    #: The command did what was asked; every config involved is valid.
    OK = 0
    #: A config is invalid (or could not be migrated); each problem is printed on one line.
    INVALID = 1
    #: Usage or I/O problem: a bad argument, a missing path, a file that cannot be written.
    USAGE = 2
    #: A bug in maf-preflight; the message says what failed.
    INTERNAL = 3
    #: A reservation was refused: another agent's lease blocks it, or the lease is unknown,
    #: someone else's or released.
    REFUSED = 4


class CliError(Exception):
    """A problem the user can fix; ``main`` prints it as one line and exits with ``code``."""

    def __init__(self, message: str, code: CliExit = CliExit.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


Found = TypeVar("Found", bound=_Identified)


def find_by_prefix(
    kind: str,
    given: str,
    exact: Found | None,
    rows: Callable[[], Iterable[Found]],
    describe: Callable[[Found], str],
    unknown: Exception,
) -> Found:
    """The record whose id is ``given`` or starts with it, as every ``ID`` argument takes it.

    ``exact`` is the record looked up by the whole id (or None); ``rows`` lists the candidates
    for a prefix. ``CliError`` (usage, exit 2) for an empty or ambiguous prefix; ``unknown``
    raised when nothing matches (exit 4 where the caller maps it so).
    """
    wanted = given.strip()
    if not wanted:
        raise CliError(f"the {kind} ID is empty")
    if exact is not None:
        return exact
    matches = [row for row in rows() if row.id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise unknown
    shown = ", ".join(f"{row.id} ({describe(row)})" for row in matches[:5])
    more = f" and {len(matches) - 5} more" if len(matches) > 5 else ""
    raise CliError(
        f"{kind} ID {wanted!r} is ambiguous: it starts {len(matches)} ids "
        f"({shown}{more}); give more of it"
    )


def refused(message: str) -> int:
    """Print ``message`` as the error line of a refusal; its exit code, for the handler to
    return."""
    print(error_line(message), file=sys.stderr)
    return int(CliExit.REFUSED)


def one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def error_line(message: str) -> str:
    return f"{PROG}: error: {one_line(message)}"


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped (``no message`` when there is none)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def environment_name(cli_value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The environment whose overrides apply: ``--env`` > MAF_ENV > NODE_ENV > ``development``
    (``names.environment_name``; an invalid name is a usage error)."""
    try:
        return names.environment_name(
            cli_value, os.environ if environ is None else environ, cli_source="--env"
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None


def agent_name(
    cli_value: str | None, environ: Mapping[str, str] | None = None, *, default: str | None = None
) -> str:
    """``--agent`` > MAF_AGENT_ID > AGENT_NAME > ``default``: the first value set wins. An
    invalid name is a usage error naming where it came from; so is none, or ``anonymous``
    (``names.is_anonymous``: the same as none), when there is no ``default``."""
    env = os.environ if environ is None else environ
    for value, source in (
        (cli_value, "--agent"),
        (env.get("MAF_AGENT_ID"), "MAF_AGENT_ID environment variable"),
        (env.get("AGENT_NAME"), "AGENT_NAME environment variable"),
    ):
        if value:
            valid_agent_name(value, source)
            if not names.is_anonymous(value):
                return value
            if default is None:
                raise CliError(
                    f"{source}: {value!r} names no agent (it is the id of a run "
                    "without one, which holds no leases); give this agent's own name"
                )
            return default
    if default is not None:
        return default
    raise CliError("no agent: give --agent NAME or set MAF_AGENT_ID (or AGENT_NAME)")


def valid_agent_name(value: str, source: str) -> str:
    """``value`` if it is a valid agent name, else a usage error naming ``source``."""
    if len(value) > MAX_NAME_LENGTH or not re.fullmatch(names.NAME_PATTERN, value):
        raise CliError(
            f"{source}: {value!r} is not a valid agent name "
            f"({names.NAME_RULE}; at most {MAX_NAME_LENGTH} characters)"
        )
    return value


def reason_text(raw: str) -> str:
    """``--reason`` on one line; an empty one is a usage error (a decision says why)."""
    reason = " ".join(raw.split())
    if not reason:
        raise CliError("--reason is empty; say why (it is kept on the record)")
    return reason


def runtime_settings(
    mode: str | None, rootdir: Path | None = None, *, db_url: str | None = None
) -> RuntimeSettings:
    """Where the runtime is, located as the plugin locates it with ``rootdir`` (default: the
    current directory) as the rootdir: in a git repository, the store every worktree shares,
    so any directory of any worktree finds the same one; ``db_url`` (``--db-url``) over
    MAF_DB_URL. A bad ``--mode`` or MAF_* value, or a ``.git`` file that cannot be followed,
    is a usage error."""
    from ..runtime.factory import RuntimeConfigError, resolve_runtime_settings

    try:
        settings = resolve_runtime_settings(
            Path.cwd() if rootdir is None else rootdir, os.environ, mode, cli_source="--mode"
        )
    except RuntimeConfigError as exc:
        raise CliError(str(exc)) from None
    if db_url:
        settings = dataclasses.replace(settings, db_url=db_url, db_url_source="--db-url")
    return settings


def open_runtime(mode: str | None, *, db_url: str | None = None) -> tuple[RuntimeState, list[str]]:
    """The first runtime of the chain that opens, and a note for each mode skipped on the way;
    none opening is a usage error."""
    from ..runtime.errors import RuntimeUnavailable
    from ..runtime.factory import open_chain

    try:
        opened = open_chain(runtime_settings(mode, db_url=db_url))
    except RuntimeUnavailable as exc:
        raise CliError(str(exc)) from None
    return opened.runtime, opened.skipped


def display_path(path: Path | str) -> str:
    """``path`` relative to the current directory when it is below it, else as given."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return str(candidate.relative_to(Path.cwd()))
        except ValueError:
            pass
    return str(candidate)


def runtime_arguments(parser: argparse.ArgumentParser, json_help: str = JSON_HELP) -> None:
    """``--mode`` and ``--json``, which every command on the runtime takes."""
    parser.add_argument("--mode", metavar="MODES", help=MODE_HELP)
    parser.add_argument("--json", action="store_true", help=json_help)


def notes(skipped: Sequence[str]) -> None:
    """A ``note:`` line for each runtime mode skipped on the way (text output)."""
    for note in skipped:
        print(f"note: {note}")


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Columns padded to their widest cell; the last one as it is."""
    cells = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    for row in cells:
        print("  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=False)) + "  " + row[-1])


def utc(epoch: float) -> str:
    """``2025-01-02T03:04:05Z``, as the reservation checks and the gate print times."""
    from ..reservations.conflicts import format_time

    return format_time(epoch)


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def backup_names(path: Path) -> Iterator[Path]:
    """Where a backup of ``path`` may go, in order: ``<path>.bak``, ``.bak.1``, ``.bak.2``, ..."""
    yield path.with_name(path.name + ".bak")
    for number in itertools.count(1):
        yield path.with_name(f"{path.name}.bak.{number}")


def write_backup(path: Path, data: bytes) -> Path:
    """Write ``data`` to the first free name of `backup_names`, never over a file."""
    candidates = backup_names(path)
    while True:
        candidate = next(candidates)
        try:
            with open(candidate, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except FileExistsError:
            continue
        os.chmod(candidate, path.stat().st_mode & 0o7777)
        return candidate


def describe_os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{display_path(os.fsdecode(exc.filename))}: {reason}"
    return reason
