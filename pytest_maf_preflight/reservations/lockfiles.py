"""Stale filelock-style ``.lock`` files: a dead owner, or held for longer than a limit.

A file is taken for a lock file when it is at most 1 KiB and its content is either empty or
names an owner the way the ``filelock`` package does:

- ``<pid>`` on the first line, optionally followed (next line, or after whitespace) by a host
  name and a process start token (``SoftFileLock``);
- ``filelock/2`` on the first line, then ``key=value`` lines with ``pid`` and ``host``
  (``MarkerSoftFileLock`` and ``SoftFileLease``).

Anything else matched by the globs (``poetry.lock``, ``uv.lock``, ``Cargo.lock``: real TOML or
text) is not a lock file and is ignored.

A lock file is stale when

- it names a pid on this host (or no host) and no such process exists;
- it is held right now (an ``flock`` probe fails) for longer than ``max_age_seconds``;
- it names a pid that runs, or one on another host that cannot be checked from here, and is
  older than ``max_age_seconds``.

An empty lock file nobody holds is *not* stale: filelock's ``UnixFileLock`` (what ``FileLock``
is on POSIX) leaves its file behind on release, empty, on purpose (waiters must share one
inode), so such a file is what every released lock looks like.

How long a lock has been held: filelock truncated the file on acquire before 4.0, so its mtime
was the acquire time; later versions leave the file alone, so an old file can be a lock taken a
second ago. On Linux the holder's pid is read from ``/proc/locks`` and the hold is taken to be
no longer than the holder process has existed; elsewhere the mtime is all there is, and a
long-lived lock file that is re-acquired can be reported as held too long.
"""

from __future__ import annotations

import dataclasses
import errno
import fnmatch
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

if sys.platform != "win32":
    import fcntl

#: Directories no lock file worth reporting lives in, and which can hold very many files.
PRUNED_DIRS = frozenset({".git", "node_modules", ".venv", "venv", ".tox", "__pycache__"})
#: filelock's own limit for an owner record.
MAX_LOCK_FILE_SIZE = 1024
_MAX_PID = 2**31 - 1
_MAGIC = frozenset("*?[")
_CONTENTION = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})
#: filelock's marker for "this owner runs in another PID namespace" after the host name.
_PIDNS_MARK = "?pidns-"
_INITIAL_PIDNS = 0xEFFFFFFC


class LockScanError(Exception):
    """The scan could not be done: a bad glob, a missing root, or more files than allowed."""


@dataclasses.dataclass(frozen=True)
class StaleLock:
    path: str
    """Relative to the scanned root, POSIX separators."""
    reason: str
    pid: int | None
    """The owner or holder, when known."""
    age_seconds: float
    """How long the lock has been held (held locks) or how old the file is (the others)."""


@dataclasses.dataclass(frozen=True)
class _Glob:
    base: tuple[str, ...]  # literal leading directories: the walk starts there
    rest: tuple[str, ...]  # the parts matched while walking; empty for a literal path

    @property
    def max_depth(self) -> int | None:
        """Directories to descend below ``base``; ``None``: unlimited."""
        return None if "**" in self.rest else max(len(self.rest) - 1, 0)

    def matches(self, parts: tuple[str, ...]) -> bool:
        # A set of positions in the pattern, as in an NFA: `**` may match no part or many.
        states = self._closure({0})
        for part in parts:
            following = set()
            for i in states:
                if i == len(self.rest):
                    continue
                if self.rest[i] == "**":
                    following.add(i)
                elif fnmatch.fnmatchcase(part, self.rest[i]):
                    following.add(i + 1)
            states = self._closure(following)
            if not states:
                return False
        return len(self.rest) in states

    def _closure(self, states: set[int]) -> set[int]:
        todo = list(states)
        while todo:
            i = todo.pop()
            if i < len(self.rest) and self.rest[i] == "**" and i + 1 not in states:
                states.add(i + 1)
                todo.append(i + 1)
        return states


def _compile(glob: str) -> _Glob:
    if not glob or glob.startswith("/"):
        raise LockScanError(
            f"lock file glob {glob!r} must be a non-empty path relative to the root"
        )
    parts = [p for p in glob.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        raise LockScanError(f"lock file glob {glob!r} must stay inside the root")
    if parts[-1] == "**":
        parts.append("*")  # a trailing `**` means every file below
    literal = 0
    while literal < len(parts) - 1 and not _MAGIC & set(parts[literal]):
        literal += 1
    if not _MAGIC & set(parts[-1]) and literal == len(parts) - 1:
        literal = len(parts)
    return _Glob(tuple(parts[:literal]), tuple(parts[literal:]))


class _Budget:
    def __init__(self, root: Path, globs: Sequence[str], limit: int) -> None:
        self.root, self.globs, self.limit, self.seen = root, globs, limit, 0

    def spend(self) -> None:
        self.seen += 1
        if self.seen > self.limit:
            # Fail closed: a partial scan would pass locks it never looked at.
            raise LockScanError(
                f"more than {self.limit} entries under {str(self.root)!r} while looking for lock"
                f" files ({', '.join(self.globs)}); narrow the globs or raise the limit"
            )


def _walk(
    start: Path, globs: list[_Glob], budget: _Budget
) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """Regular files below ``start`` matched by one of ``globs`` (all sharing ``start``), with
    their parts relative to ``start``. Symlinks are neither followed nor reported."""
    depths = [g.max_depth for g in globs]
    limit = None if None in depths else max(d for d in depths if d is not None)
    stack: list[tuple[Path, tuple[str, ...]]] = [(start, ())]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # gone meanwhile, or not ours to read
        with entries:
            # One entry at a time: the budget must stop a huge directory before it is all read.
            for entry in entries:
                budget.spend()
                parts = (*prefix, entry.name)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in PRUNED_DIRS and (limit is None or len(parts) <= limit):
                            stack.append((Path(entry.path), parts))
                    elif entry.is_file(follow_symlinks=False) and any(
                        g.matches(parts) for g in globs
                    ):
                        yield Path(entry.path), parts
                except OSError:
                    continue


def _candidates(root: Path, globs: Sequence[str], max_files: int) -> Iterator[tuple[Path, str]]:
    compiled = [_compile(g) for g in globs]
    budget = _Budget(root, globs, max_files)
    by_base: dict[tuple[str, ...], list[_Glob]] = {}
    for glob in compiled:
        by_base.setdefault(glob.base, []).append(glob)
    for base, group in by_base.items():
        start = root.joinpath(*base)
        for glob in group:
            if not glob.rest:  # a literal path
                budget.spend()
                try:
                    if stat.S_ISREG(os.lstat(start).st_mode):
                        yield start, "/".join(base)
                except OSError:
                    pass
        walked = [g for g in group if g.rest]
        if walked and start.is_dir():
            for path, parts in _walk(start, walked, budget):
                yield path, "/".join((*base, *parts))


@dataclasses.dataclass(frozen=True)
class _Lock:
    pid: int | None
    host: str | None
    held: bool
    mtime: float
    st: os.stat_result


def _parse_owner(data: bytes) -> tuple[int | None, str | None] | None:
    """``(pid, host)`` of a lock file's content, ``(None, None)`` for an empty one, ``None``
    for anything that is no lock file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.strip().splitlines()
    if not lines:
        return None, None
    if lines[0] == "filelock/2":
        fields = {}
        for line in lines[1:]:
            key, _, value = line.partition("=")
            fields[key] = value
        pid_text, host = fields.get("pid", ""), fields.get("host") or None
    else:
        tokens = text.split()
        if len(tokens) > 3 or (len(tokens) == 3 and not tokens[2].isdigit()):
            return None
        pid_text, host = tokens[0], (tokens[1] if len(tokens) > 1 else None)
    if not (pid_text.isascii() and pid_text.isdigit()) or not 1 <= int(pid_text) <= _MAX_PID:
        # Zero or a negative number would make os.kill signal a process group.
        return None
    return int(pid_text), host


def _inspect(path: Path) -> _Lock | None:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None  # gone (released) meanwhile, a symlink swapped in, or unreadable
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_LOCK_FILE_SIZE:
            return None
        data = os.read(fd, MAX_LOCK_FILE_SIZE + 1)
        owner = None if len(data) > MAX_LOCK_FILE_SIZE else _parse_owner(data)
        if owner is None:
            return None
        return _Lock(owner[0], owner[1], _is_held(fd), st.st_mtime, st)
    except OSError:
        return None
    finally:
        os.close(fd)


def _is_held(fd: int) -> bool:
    if sys.platform == "win32":
        return False  # no flock; only the pid and age rules apply
    # Shared and non-blocking: a holder's exclusive flock makes it fail; nobody waits on us
    # but a contender that happens to poll in this instant (it retries). flock, not fcntl
    # locks: closing this descriptor must not drop a lock this process holds elsewhere.
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in _CONTENTION
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, as another user's process; anything else: unknown
    return True


def _is_this_host(host: str) -> bool:
    name, mark, namespace = host.partition(_PIDNS_MARK)
    if name != socket.gethostname():
        return False
    if not mark:
        return True
    try:
        ours = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return False
    # A pid from another PID namespace names another process here.
    return ours != _INITIAL_PIDNS and namespace == f"{ours:x}"


def _flock_holders(st: os.stat_result) -> list[int]:
    """Pids holding an flock on the file of ``st``, from Linux's ``/proc/locks``."""
    try:
        text = Path("/proc/locks").read_text("ascii", "replace")
    except OSError:
        return []
    want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    pids = []
    for line in text.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 8832 fe:00:2146400 0 EOF"; waiters have "->" in field 2.
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            found = (int(major, 16), int(minor, 16), int(inode))
            pid = int(fields[4])
        except ValueError:
            continue
        if found == want and pid > 0:
            pids.append(pid)
    return pids


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from Linux's ``/proc``."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
        boot = Path("/proc/stat").read_bytes()
        # The command name may contain spaces and parentheses: count from the last ")".
        ticks = int(data[data.rfind(b")") + 1 :].split()[19])
        btime = next(
            int(line.split()[1]) for line in boot.splitlines() if line.startswith(b"btime ")
        )
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _held_for(lock: _Lock, now: float) -> tuple[float, int | None]:
    """An upper bound of how long ``lock`` has been held, and the holder's pid if known."""
    held_for = max(now - lock.mtime, 0.0)
    holder = None
    for pid in _flock_holders(lock.st):
        started = _process_started(pid)
        if started is not None and now - started < held_for:
            held_for, holder = max(now - started, 0.0), pid
        elif holder is None:
            holder = pid
    return held_for, holder


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _judge(rel: str, lock: _Lock, max_age: float | None, now: float) -> StaleLock | None:
    limit = f"(limit {_duration(max_age)})" if max_age is not None else ""
    if lock.held:
        held_for, holder = _held_for(lock, now)
        if max_age is None or held_for <= max_age:
            return None
        by = f" by pid {holder}" if holder is not None else ""
        return StaleLock(
            rel,
            f"held{by} for {_duration(held_for)} {limit}",
            holder if holder is not None else lock.pid,
            held_for,
        )
    if lock.pid is None:
        return None  # an empty file nobody holds: a released lock (see the module docstring)
    age = max(now - lock.mtime, 0.0)
    if lock.host is None or _is_this_host(lock.host):
        if not _pid_alive(lock.pid):
            return StaleLock(rel, f"owner pid {lock.pid} is not running", lock.pid, age)
        owner = f"owner pid {lock.pid} is running"
    else:
        owner = f"owner pid {lock.pid} runs on host {lock.host!r}, not checked from here"
    if max_age is not None and age > max_age:
        return StaleLock(
            rel, f"{owner} but the lock is {_duration(age)} old {limit}", lock.pid, age
        )
    return None


def find_stale_lock_files(
    root: Path,
    globs: Sequence[str],
    *,
    max_age_seconds: float | None,
    now: float | None = None,
    max_files: int = 100_000,
) -> list[StaleLock]:
    """Stale lock files under ``root`` matched by ``globs``, sorted by path.

    Globs are relative to ``root`` with pathlib semantics (``*`` within one directory, ``**``
    any number of directories, case-sensitive, dot files included); a trailing ``**`` matches
    every file below. Directories in `PRUNED_DIRS` are not entered by a wildcard (a glob may
    still name one literally); symlinks are neither followed nor reported; unreadable
    directories are skipped. ``max_age_seconds=None`` disables the age rules; ``now`` (epoch
    seconds) defaults to the current time.

    Raises `LockScanError` for a glob that leaves ``root``, a ``root`` that is no directory, and
    when more than ``max_files`` directory entries would be visited: the scan fails closed
    rather than pass over locks it never looked at.
    """
    if not root.is_dir():
        raise LockScanError(f"lock file root {str(root)!r} is not a directory")
    current = time.time() if now is None else now
    found: dict[str, StaleLock] = {}
    seen: set[str] = set()
    for path, rel in _candidates(root, globs, max_files):
        if rel in seen:
            continue  # matched by two globs
        seen.add(rel)
        lock = _inspect(path)
        stale = None if lock is None else _judge(rel, lock, max_age_seconds, current)
        if stale is not None:
            found[rel] = stale
    return [found[rel] for rel in sorted(found)]
