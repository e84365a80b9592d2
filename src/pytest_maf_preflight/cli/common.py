"""What every command group shares: exit codes, one-line errors, JSON output, backups."""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import names

PROG = "maf-preflight"
#: Where configs live when no path is given (the original system's layout).
DEFAULT_CONFIG_DIR = Path(names.DEFAULT_CONFIG_DIR)


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


def one_line(text: str) -> str:
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def error_line(message: str) -> str:
    return f"{PROG}: error: {one_line(message)}"


def environment_name(cli_value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The environment whose overrides apply: ``--env`` > MAF_ENV > NODE_ENV > ``development``
    (``names.environment_name``; an invalid name is a usage error)."""
    try:
        return names.environment_name(cli_value, os.environ if environ is None else environ,
                                      cli_source="--env")
    except ValueError as exc:
        raise CliError(str(exc)) from None


def display_path(path: Path | str) -> str:
    """``path`` relative to the current directory when it is below it, else as given."""
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return str(candidate.relative_to(Path.cwd()))
        except ValueError:
            pass
    return str(candidate)


def print_json(data: Any) -> None:
    import json

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_backup(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``<path>.bak`` (or ``.bak.1``, ``.bak.2``, ...), never over a file."""
    candidate = path.with_name(path.name + ".bak")
    number = 0
    while True:
        try:
            with open(candidate, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except FileExistsError:
            number += 1
            candidate = path.with_name(f"{path.name}.bak.{number}")
            continue
        os.chmod(candidate, path.stat().st_mode & 0o7777)
        return candidate


def describe_os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{display_path(os.fsdecode(exc.filename))}: {reason}"
    return reason
