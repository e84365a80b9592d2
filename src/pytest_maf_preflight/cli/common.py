"""What every command group shares: exit codes, one-line errors, JSON output, atomic writes."""

from __future__ import annotations

import enum
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROG = "maf-preflight"
#: Where configs live when no path is given (the original system's layout).
DEFAULT_CONFIG_DIR = Path(".maf") / "preflight-configs"
_ENV_NAME = re.compile(r"[A-Za-z0-9_.-]+")


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
    """The environment whose overrides apply: ``--env`` > MAF_ENV > NODE_ENV > ``development``."""
    env = os.environ if environ is None else environ
    for value, source in ((cli_value, "--env"), (env.get("MAF_ENV"), "MAF_ENV"),
                          (env.get("NODE_ENV"), "NODE_ENV")):
        if value:
            if not _ENV_NAME.fullmatch(value):
                raise CliError(f"{source}: {value!r} is not a valid environment name "
                               "(letters, digits, '.', '_' and '-' only)")
            return value
    return "development"


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


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a part.

    An existing file keeps its permissions; a new one gets the usual ones (umask).
    """
    import tempfile

    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
