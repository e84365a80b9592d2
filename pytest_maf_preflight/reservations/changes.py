"""The files an agent changed: from git (staged, or uncommitted, or since a base ref) or a list.

Git is asked read-only: ``GIT_OPTIONAL_LOCKS=0`` keeps ``git status`` from refreshing the index
(and taking its lock under another agent's feet), ``-z`` keeps names with spaces, quotes,
newlines and non-ASCII characters intact, and every call has a deadline after which git is
killed. The caller's environment is otherwise kept on purpose: inside a pre-commit hook git sets
``GIT_INDEX_FILE`` to the index being committed, and the staged files are the ones in it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePath
from typing import Literal

from ..processes.run import ProcessTimeout, run_process

#: Arguments before every git subcommand. ``status.renames``: ``git status`` reports staged
#: renames as pairs even where a user's config turned rename detection off.
_GIT_OPTIONS = ("-c", "core.quotepath=off", "-c", "status.renames=true")


class ChangeDetectionError(Exception):
    """The changed files could not be determined; the message is one line saying why."""


@dataclasses.dataclass(frozen=True)
class ChangedFiles:
    """Changed paths: sorted, unique, POSIX, relative to ``root``.

    ``renames`` pairs are ``(old, new)``; both sides are also in ``paths``, since a lease on
    either one is touched by the rename. ``deleted`` lists paths that are gone (for ``staged``:
    gone from the index; otherwise: reported deleted and absent from the working tree); the old
    side of a rename is not repeated there.
    """

    paths: tuple[str, ...]
    root: Path
    source: str
    renames: tuple[tuple[str, str], ...] = ()
    deleted: tuple[str, ...] = ()


@dataclasses.dataclass
class _Collected:
    paths: set[str] = dataclasses.field(default_factory=set)
    renames: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    deleted: set[str] = dataclasses.field(default_factory=set)

    def result(self, root: Path, source: str) -> ChangedFiles:
        return ChangedFiles(
            paths=tuple(sorted(self.paths)),
            root=root,
            source=source,
            renames=tuple(sorted(self.renames)),
            deleted=tuple(sorted(self.deleted)),
        )


class _Deadline:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._end = time.monotonic() + timeout

    def remaining(self) -> float:
        return max(self._end - time.monotonic(), 0.0)


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(LC_ALL="C", GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0")
    # A pager or an editor must never start, even when a user's config asks for one.
    env.update(GIT_PAGER="cat", PAGER="cat")
    return env


def _run_git(
    args: Sequence[str], cwd: Path, deadline: _Deadline
) -> subprocess.CompletedProcess[bytes]:
    argv = ["git", *_GIT_OPTIONS, *args]
    try:
        # Its own process group, killed at the deadline with whatever git started (an
        # fsmonitor hook, say). All of the output is kept: it is the list of changed files.
        done = run_process(
            argv,
            deadline=time.monotonic() + deadline.remaining(),
            cwd=cwd,
            env=_git_env(),
            keep=None,
        )
    except FileNotFoundError:
        raise ChangeDetectionError("git not found on PATH") from None
    except ProcessTimeout:
        raise ChangeDetectionError(
            f"git {args[0]} did not finish within {deadline.timeout:g} s; killed"
        ) from None
    except OSError as exc:
        raise ChangeDetectionError(f"cannot run git in {str(cwd)!r}: {exc.strerror}") from None
    return subprocess.CompletedProcess(argv, done.returncode, done.stdout.head, done.stderr.head)


def _first_line(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else "no message"


def _check(result: subprocess.CompletedProcess[bytes]) -> bytes:
    if result.returncode != 0:
        command = " ".join(str(a) for a in result.args[len(_GIT_OPTIONS) + 1 :])
        raise ChangeDetectionError(
            f"git {command} failed (exit code {result.returncode}): {_first_line(result.stderr)}"
        )
    return result.stdout


def run_git(args: Sequence[str], cwd: Path, timeout: float) -> bytes:
    """The output of ``git ARGS`` run in ``cwd`` as every git call here is run (no optional
    locks, pager or prompt; killed after ``timeout`` seconds). Raises `ChangeDetectionError`
    when git is missing, too slow, or fails (naming the command and git's first error line)."""
    return _check(_run_git(args, cwd, _Deadline(timeout)))


def _toplevel(start: Path, deadline: _Deadline) -> Path | None:
    if not start.is_dir():
        raise ChangeDetectionError(f"{str(start)!r} is not a directory")
    result = _run_git(["rev-parse", "--show-toplevel"], start, deadline)
    out = result.stdout
    if result.returncode != 0 or not out.strip():
        # Outside any repository, or in a bare one or inside .git: no work tree either way.
        return None
    return Path(os.fsdecode(out[:-1] if out.endswith(b"\n") else out))


def git_toplevel(start: Path, timeout: float) -> Path | None:
    """The top-level directory of the git work tree containing ``start``, or ``None`` when
    ``start`` is in no work tree. Raises `ChangeDetectionError` when git is missing or slow, or
    ``start`` is not a directory."""
    return _toplevel(start, _Deadline(timeout))


def _fields(data: bytes) -> list[str]:
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [os.fsdecode(p) for p in parts]


def _parse(parser: Callable[[bytes, _Collected], None], data: bytes, into: _Collected) -> None:
    try:
        parser(data, into)
    except IndexError:
        raise ChangeDetectionError("git printed a truncated list of changed files") from None


def _parse_name_status(data: bytes, into: _Collected) -> None:
    """``git diff --name-status -z``: ``X\\0path\\0``, or ``R<score>\\0old\\0new\\0`` (C alike)."""
    fields = _fields(data)
    i = 0
    while i < len(fields):
        status = fields[i]
        if status[:1] in ("R", "C"):
            old, new = fields[i + 1], fields[i + 2]
            i += 3
            into.paths.add(new)
            # A copy leaves its source as it was; a rename removes it.
            if status[0] == "R":
                into.paths.add(old)
                into.renames.add((old, new))
            continue
        path = fields[i + 1]
        i += 2
        into.paths.add(path)
        if status == "D":
            into.deleted.add(path)


def _parse_porcelain(data: bytes, into: _Collected) -> None:
    """``git status --porcelain=v1 -z``: ``XY path\\0``; a rename or copy is ``XY new\\0old\\0``."""
    fields = _fields(data)
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        xy, path = entry[:2], entry[3:]
        into.paths.add(path)
        if "R" in xy or "C" in xy:
            old = fields[i]
            i += 1
            if "R" in xy:
                into.paths.add(old)
                into.renames.add((old, path))
        if "D" in xy:
            into.deleted.add(path)


def _commit(top: Path, ref: str, deadline: _Deadline) -> str | None:
    result = _run_git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top, deadline)
    return result.stdout.decode("ascii", "replace").strip() if result.returncode == 0 else None


def _merge_base(top: Path, base_ref: str, deadline: _Deadline) -> str:
    if not base_ref or base_ref.startswith("-"):
        # Would be read as an option by git.
        raise ChangeDetectionError(f"invalid base ref {base_ref!r}")
    head = _commit(top, "HEAD", deadline)
    if head is None:
        raise ChangeDetectionError(
            f"HEAD has no commits yet in {top}; cannot compare with base ref {base_ref!r}"
        )
    base = _commit(top, base_ref, deadline)
    if base is None:
        raise ChangeDetectionError(f"base ref {base_ref!r} does not name a commit in {top}")
    result = _run_git(["merge-base", base, head], top, deadline)
    if result.returncode == 1 and not result.stdout.strip():
        raise ChangeDetectionError(f"base ref {base_ref!r} and HEAD have no common ancestor")
    return _check(result).decode("ascii", "replace").strip()


def _diff_args(*extra: str) -> list[str]:
    return ["diff", "--name-status", "-z", "-M", "--no-color", "--no-ext-diff", *extra]


def changed_files(
    start: Path,
    mode: Literal["git", "staged"],
    *,
    base_ref: str | None = None,
    timeout: float = 30.0,
) -> ChangedFiles:
    """The files changed in the git work tree containing ``start``; paths are relative to its
    top level.

    - ``staged``: the index against ``HEAD`` (against the empty tree before the first commit).
    - ``git`` without ``base_ref``: everything not committed: staged, unstaged and untracked
      files (ignored ones excepted), deletions included.
    - ``git`` with ``base_ref``: that, plus every file changed by a commit since the merge base
      of ``base_ref`` and ``HEAD``. A file changed in a commit and changed back in the work tree
      still counts: it was touched, and a conflict is better reported than missed.

    Renames are reported on both sides. ``timeout`` bounds the whole call; git is killed when
    it runs out. Any failure raises `ChangeDetectionError`.
    """
    if mode not in ("git", "staged"):
        raise ChangeDetectionError(f"unknown change detection mode {mode!r}")
    deadline = _Deadline(timeout)
    top = _toplevel(start, deadline)
    if top is None:
        raise ChangeDetectionError(f"{str(start)!r} is not inside a git work tree")
    collected = _Collected()
    if mode == "staged":
        if base_ref is not None:
            raise ChangeDetectionError("a base ref applies to mode 'git', not 'staged'")
        # With an unborn HEAD, `diff --cached` compares against the empty tree by itself.
        _parse(
            _parse_name_status, _check(_run_git(_diff_args("--cached"), top, deadline)), collected
        )
        return collected.result(top, "git: staged changes")
    source = "git: working tree (staged, unstaged and untracked files)"
    if base_ref is not None:
        merge_base = _merge_base(top, base_ref, deadline)
        _parse(
            _parse_name_status,
            _check(_run_git(_diff_args(merge_base, "HEAD"), top, deadline)),
            collected,
        )
        source = f"git: working tree and commits since {base_ref} (merge-base {merge_base[:7]})"
    status = _run_git(
        ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignore-submodules=none"],
        top,
        deadline,
    )
    _parse(_parse_porcelain, _check(status), collected)
    # Deleted in one commit, back again later: the file exists, so it is changed, not deleted.
    collected.deleted = {p for p in collected.deleted if not os.path.lexists(top / p)}
    return collected.result(top, source)


def _relative(root: Path, real_root: Path, name: str) -> str:
    if not name:
        raise ChangeDetectionError("empty path in the list of changed files")
    if "\0" in name:
        raise ChangeDetectionError(f"path {name!r} contains a NUL character")
    if os.path.isabs(name):
        rel = os.path.relpath(os.path.normpath(name), root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            # The same directory under another name (a symlinked /tmp, say).
            rel = os.path.relpath(os.path.realpath(name), real_root)
    else:
        rel = os.path.normpath(name)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise ChangeDetectionError(f"path {name!r} is outside {str(root)!r}")
    if rel == os.curdir:
        raise ChangeDetectionError(f"path {name!r} names the root directory itself")
    return PurePath(rel).as_posix()


def listed_files(root: Path, files: Iterable[str]) -> ChangedFiles:
    """An explicit list of changed files, normalised like the git modes' paths.

    Relative names are relative to ``root`` (not to the current directory); absolute names must
    lie under it. ``..`` segments are resolved lexically; a name that leaves ``root`` raises
    `ChangeDetectionError`, as does an empty name. ``root`` is made absolute.
    """
    absolute = Path(os.path.abspath(root))
    real = Path(os.path.realpath(absolute))
    paths = {_relative(absolute, real, str(name)) for name in files}
    count = len(paths)
    return ChangedFiles(
        paths=tuple(sorted(paths)),
        root=absolute,
        source=f"list: {count} file{'s' if count != 1 else ''}",
    )


# --- pushed commits (the pre-push hook) ----------------------------------------------------------

_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256


@dataclasses.dataclass(frozen=True)
class RefUpdate:
    """One line git gives a pre-push hook: ``<local ref> <local sha> <remote ref> <remote sha>``.
    A local sha of zeros deletes the remote ref; a remote sha of zeros creates it."""

    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str

    @property
    def deletes(self) -> bool:
        return set(self.local_sha) == {"0"}

    @property
    def creates(self) -> bool:
        return set(self.remote_sha) == {"0"}


def parse_push_lines(text: str) -> list[RefUpdate]:
    """The ref updates of a pre-push hook's standard input (githooks(5)); blank lines are
    skipped, anything else that is not four fields with object ids raises
    `ChangeDetectionError` naming the line."""
    updates = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if (
            len(fields) != 4
            or not _OBJECT_ID.fullmatch(fields[1])
            or not _OBJECT_ID.fullmatch(fields[3])
        ):
            raise ChangeDetectionError(
                f"pre-push input line {number} is not '<local ref> "
                f"<local sha> <remote ref> <remote sha>': {line[:120]!r}"
            )
        updates.append(RefUpdate(*fields))
    return updates


@dataclasses.dataclass(frozen=True)
class PushedChanges:
    changed: ChangedFiles
    commits: int


def _parse_log(data: bytes, into: _Collected) -> int:
    """``git log -c -M --name-status -z --format=%x01%H%x02%P``: per commit a header field
    ``\\x01<sha>\\x02<parents>``, then ``status\\0path\\0`` entries (``R``/``C``: two paths), a
    merge's combined entries with one path each; the first status may carry a ``\\n``."""
    fields = _fields(data)
    commits, merge, i = 0, False, 0
    while i < len(fields):
        field = fields[i].lstrip("\n")
        i += 1
        if field.startswith("\x01"):
            commits += 1
            merge = len(field.partition("\x02")[2].split()) > 1
            continue
        if not field:
            continue
        if merge:
            # Only what the merge itself changed (a resolution, an evil merge): the files it
            # brought in come with their own commits.
            path = fields[i]
            i += 1
            into.paths.add(path)
            if set(field) == {"D"}:
                into.deleted.add(path)
            continue
        if field[:1] in ("R", "C"):
            old, new = fields[i], fields[i + 1]
            i += 2
            into.paths.add(new)
            if field[0] == "R":
                into.paths.add(old)
                into.renames.add((old, new))
            continue
        path = fields[i]
        i += 1
        into.paths.add(path)
        if field == "D":
            into.deleted.add(path)
    return commits


def pushed_files(
    start: Path, updates: Sequence[RefUpdate], *, timeout: float = 30.0
) -> PushedChanges:
    """The files changed by the commits a push sends, relative to the top level of the work
    tree containing ``start``.

    The commits are those reachable from a pushed local sha and neither from the remote sha
    it replaces (when that commit is known here) nor from any remote-tracking branch: a new
    branch is judged by the commits no remote is known to have, not by its whole history.
    Deletions of remote refs send nothing. Each commit counts against its first parent,
    renames on both sides and deletions included; a merge counts only the files it changed
    against every parent (a conflict resolution), since what it merges comes with its own
    commits. Any failure raises `ChangeDetectionError`.
    """
    deadline = _Deadline(timeout)
    top = _toplevel(start, deadline)
    if top is None:
        raise ChangeDetectionError(f"{str(start)!r} is not inside a git work tree")
    collected = _Collected()
    sent = [u for u in updates if not u.deletes]
    if not sent:
        return PushedChanges(collected.result(top, "git: pushed commits (none)"), 0)
    known = [
        u.remote_sha
        for u in sent
        if not u.creates and _commit(top, u.remote_sha, deadline) == u.remote_sha
    ]
    revs = [*dict.fromkeys(u.local_sha for u in sent), "--not", *dict.fromkeys(known), "--remotes"]
    # ``--root``: a first commit counts even where log.showRoot is off; no signature lines
    # (log.showSignature) in the parsed output.
    log = _run_git(
        [
            "log",
            "--root",
            "-c",
            "-M",
            "--name-status",
            "-z",
            "--no-color",
            "--no-ext-diff",
            "--no-show-signature",
            "--format=%x01%H%x02%P",
            *revs,
            "--",
        ],
        top,
        deadline,
    )
    commits = 0

    def parse(data: bytes, into: _Collected) -> None:
        nonlocal commits
        commits = _parse_log(data, into)

    _parse(parse, _check(log), collected)
    refs = ", ".join(u.local_ref for u in sent)
    source = f"git: {commits} pushed commit{'s' if commits != 1 else ''} ({refs})"
    return PushedChanges(collected.result(top, source), commits)
