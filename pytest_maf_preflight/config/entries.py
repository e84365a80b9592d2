"""What sits at a path in a config location, in words when it cannot be read as a config.

Discovery and reading both ask the same question: a directory to list, a regular file to read,
nothing at all, or something else (a dangling symlink, a symlink loop, a FIFO, a socket, a
device, a path the OS refuses). Only ``stat`` is used here, never ``open``: opening a FIFO
blocks until a writer comes, which would hang the gate.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from pathlib import Path
from typing import Literal

EntryKind = Literal["dir", "file", "missing", "unusable"]

_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclasses.dataclass(frozen=True)
class Entry:
    kind: EntryKind
    #: Why an ``unusable`` entry cannot be read as a config (empty for the other kinds).
    problem: str = ""


def probe(path: Path) -> Entry:
    """What is at ``path`` (symlinks followed); never raises, never opens it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return _missing_or_dangling(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Entry("unusable", "is a symlink loop; expected a config file or directory")
        return Entry("unusable", f"cannot be read: {exc.strerror or exc}")
    except ValueError as exc:  # e.g. a NUL byte in a path named on the command line
        return Entry("unusable", f"is not a usable path: {exc}")
    if stat.S_ISDIR(mode):
        return Entry("dir")
    if stat.S_ISREG(mode):
        return Entry("file")
    return Entry(
        "unusable",
        f"is {special_kind(mode)}, not a regular file; expected a config file or directory",
    )


def special_kind(mode: int) -> str:
    """``a named pipe (FIFO)``, ``a socket``, ...: what a file that is not regular is."""
    for test, name in _SPECIAL:
        if test(mode):
            return name
    return "not a regular file"


def _missing_or_dangling(path: Path) -> Entry:
    """Nothing at ``path``, or a symlink (it or a parent) pointing at nothing.

    A dangling symlink is a config location someone set up and lost; calling it "no configs"
    would open the gate with no checks at all.
    """
    for candidate in (path, *path.parents):
        if not os.path.lexists(candidate):
            continue
        if candidate.is_symlink() and not os.path.exists(candidate):
            try:
                target = os.readlink(candidate)
            except OSError:
                target = "?"
            where = "is" if candidate == path else f"lies below {candidate}, which is"
            return Entry(
                "unusable",
                f"{where} a dangling symlink (to {target}); expected a config file or directory",
            )
        return Entry("missing")
    return Entry("missing")
