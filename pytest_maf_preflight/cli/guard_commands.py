"""``maf-preflight guard install|check|uninstall``: the reservation check as a git pre-commit hook
(SPEC S3), and as a pre-push hook. This module holds the parsers and the hooks' installation;
``guard_check`` runs the check.

- ``install [--repo PATH] [--force] [--pre-push]`` writes a POSIX sh ``pre-commit`` hook into the
  directory git names for hooks (``git rev-parse --git-path hooks``, so ``core.hooksPath`` is
  honoured). That is the common dir's ``hooks``, shared by every worktree of the repository, so
  an install in any worktree guards them all; a relative ``core.hooksPath`` is taken by git from
  each worktree's top level, so the hook is written into each existing worktree's directory. The
  hook runs ``<this python> -m pytest_maf_preflight.cli guard check`` from the repository top
  level. A hook that was there before is kept and chained: it moves to ``pre-commit.maf-chained``
  and runs first, with the hook's arguments; its failure stops the commit. Installing again
  rewrites our hook (recognised by its marker line) and chains nothing new. When both a foreign
  ``pre-commit`` and ``pre-commit.maf-chained`` exist, install refuses; ``--force`` then saves
  the foreign hook as ``pre-commit.bak`` (``.bak.1``, ...), where it no longer runs.
  ``--pre-push`` also writes a ``pre-push`` hook (chained alike, as ``pre-push.maf-chained``,
  which gets git's ref lines on its stdin too) running ``guard check --pre-push``.
- ``uninstall [--repo PATH] [--pre-push]`` removes our hooks (only the pre-push one with
  ``--pre-push``) and puts chained ones back.
- ``check [--config-dir PATH] [--agent NAME] [--env NAME] [--mode MODES]`` checks the staged
  files against reservations and records the run; exit 1 blocks the commit (``guard_check``
  says what it runs and its exit codes).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import (
    DEFAULT_CONFIG_DIR,
    JSON_HELP,
    MODE_HELP,
    CliError,
    CliExit,
    backup_names,
    display_path,
    print_json,
)
from .guard_check import GIT_TIMEOUT, run_check

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

HOOK_NAME = "pre-commit"
CHAINED_NAME = "pre-commit.maf-chained"
#: The line that tells our hook from anyone else's.
MARKER = "# maf-preflight guard: pre-commit hook written by 'maf-preflight guard install'"
PUSH_HOOK_NAME = "pre-push"
PUSH_CHAINED_NAME = "pre-push.maf-chained"
PUSH_MARKER = "# maf-preflight guard: pre-push hook written by 'maf-preflight guard install'"


def register(subparsers: Subparsers) -> None:
    guard = subparsers.add_parser(
        "guard",
        help="Check reservations before every git commit (and push)",
        description="A git pre-commit hook that blocks a commit whose staged files are under "
        "another agent's conflicting reservation, and a pre-push hook that blocks "
        "a push whose commits change such files.",
    )
    actions = guard.add_subparsers(dest="guard_command", metavar="ACTION", required=True)

    install = actions.add_parser(
        "install",
        help="Install the pre-commit hook (an existing hook is chained)",
        description="Write the pre-commit hook into the repository's hooks directory (as git "
        "reports it; core.hooksPath is honoured), which serves every worktree of "
        f"the repository. An existing hook moves to {CHAINED_NAME} and runs "
        "first; installing again is harmless.",
    )
    install.add_argument(
        "--repo", type=Path, metavar="PATH", help="Repository (default: the current directory)"
    )
    install.add_argument(
        "--force",
        action="store_true",
        help=f"When both a foreign hook and {CHAINED_NAME} exist, save the "
        "foreign hook as pre-commit.bak (it stops running) and install",
    )
    install.add_argument(
        "--pre-push",
        action="store_true",
        help="Also install a pre-push hook checking the commits being pushed "
        f"(an existing one is chained as {PUSH_CHAINED_NAME})",
    )
    install.add_argument("--json", action="store_true", help=JSON_HELP)
    install.set_defaults(handler=run_install)

    uninstall = actions.add_parser(
        "uninstall",
        help="Remove the hooks and restore chained ones",
        description=f"Remove our pre-commit and pre-push hooks and move {CHAINED_NAME} "
        f"({PUSH_CHAINED_NAME}) back in their place.",
    )
    uninstall.add_argument(
        "--repo", type=Path, metavar="PATH", help="Repository (default: the current directory)"
    )
    uninstall.add_argument("--pre-push", action="store_true", help="Remove only the pre-push hook")
    uninstall.add_argument("--json", action="store_true", help=JSON_HELP)
    uninstall.set_defaults(handler=run_uninstall)

    check = actions.add_parser(
        "check",
        help="Check the staged files against reservations (what the hook runs)",
        description="Run the project's active lock_validation reservation checks on the staged "
        "files (or a default advisory one) and record the run. Exit 0: the commit "
        "may go ahead; 1: it is blocked (a conflict, a check error, an invalid "
        "config, no runtime). MAF_RESERVATION_OVERRIDE=1 lets it through, loudly "
        "and recorded.",
    )
    check.add_argument(
        "--config-dir",
        type=Path,
        metavar="PATH",
        help=f"Config directory (default: {DEFAULT_CONFIG_DIR} under the repository top level)",
    )
    check.add_argument(
        "--agent",
        metavar="NAME",
        help="Agent committing (default: MAF_AGENT_ID, then AGENT_NAME, then 'anonymous')",
    )
    check.add_argument(
        "--env",
        metavar="NAME",
        help="Environment whose overrides apply (default: MAF_ENV, then "
        "NODE_ENV, then 'development')",
    )
    check.add_argument("--mode", metavar="MODES", help=MODE_HELP)
    check.add_argument(
        "--pre-push",
        action="store_true",
        help="Check the commits being pushed, read as git gives them to a "
        "pre-push hook ('<local ref> <local sha> <remote ref> <remote sha>' "
        "lines on stdin), instead of the staged files",
    )
    check.add_argument(
        "--remote",
        metavar="NAME",
        help="The remote pushed to (recorded; the pre-push hook passes it)",
    )
    check.add_argument("--json", action="store_true", help=JSON_HELP)
    check.set_defaults(handler=run_check)


# --- git -----------------------------------------------------------------------------------------


def _git(args: list[str], cwd: Path) -> str:
    from ..reservations.changes import ChangeDetectionError, run_git

    try:
        out = run_git(args, cwd, GIT_TIMEOUT)
    except ChangeDetectionError as exc:
        raise CliError(f"{display_path(cwd)}: {exc}") from None
    return os.fsdecode(out).rstrip("\n")


def _hooks_of(worktree: Path) -> Path:
    # ``--git-path hooks`` is git's own answer: the common dir's hooks (shared by every
    # worktree), or core.hooksPath, a relative one given from ``worktree`` as git runs hooks
    # from a worktree's top level.
    return Path(os.path.abspath(worktree / _git(["rev-parse", "--git-path", "hooks"], worktree)))


def _worktrees(where: Path) -> list[Path]:
    """The checked-out worktrees of the repository (the main one first); bare entries and
    worktrees whose directory is gone are left out."""
    try:
        fields = _git(["worktree", "list", "--porcelain", "-z"], where).split("\0")
    except CliError:  # git before 2.36 has no -z: one field a line, a blank line after each
        fields = _git(["worktree", "list", "--porcelain"], where).split("\n")
    found: list[Path] = []
    path: Path | None = None
    for field in [*fields, ""]:
        if field.startswith("worktree "):
            path = Path(field[len("worktree ") :])
        elif field == "bare":
            path = None
        elif not field:
            if path is not None and path.is_dir():
                found.append(path)
            path = None
    return found


def _repository(repo: Path | None) -> tuple[Path, list[Path], int]:
    """The top level, every hooks directory serving the repository's worktrees (this
    worktree's first) and how many worktrees there are."""
    where = Path.cwd() if repo is None else repo
    if not where.is_dir():
        raise CliError(f"{display_path(where)}: no such directory")
    if _git(["rev-parse", "--is-bare-repository"], where) == "true":
        raise CliError(f"{display_path(where)}: a bare repository has no commits to guard")
    top = Path(_git(["rev-parse", "--show-toplevel"], where))
    # Relative to ``where`` unless core.hooksPath is absolute.
    hooks = [Path(os.path.abspath(where / _git(["rev-parse", "--git-path", "hooks"], where)))]
    worktrees = _worktrees(where)
    for worktree in worktrees:
        if os.path.normpath(worktree) != os.path.normpath(top):
            other = _hooks_of(worktree)
            if other not in hooks:
                hooks.append(other)
    return top, hooks, len(worktrees)


# --- the hooks -----------------------------------------------------------------------------------


def hook_script(python: str) -> str:
    """The pre-commit hook: the chained hook first, then ``guard check`` from the top level."""
    return f"""#!/bin/sh
{MARKER}
# Blocks a commit whose staged files are under another agent's conflicting reservation.
# A hook that was here before runs first (from {CHAINED_NAME}); 'maf-preflight guard
# uninstall' puts it back. MAF_RESERVATION_OVERRIDE=1 lets a commit through, loudly and recorded.
chained="$(dirname -- "$0")/{CHAINED_NAME}"
if [ -x "$chained" ]; then
    "$chained" "$@" || exit $?
fi
top=$(git rev-parse --show-toplevel) || exit 1
cd "$top" || exit 1
exec {shlex.quote(python)} -m pytest_maf_preflight.cli guard check
"""


def push_hook_script(python: str) -> str:
    """The pre-push hook: git's ref lines are read once and given to the chained hook and to
    ``guard check --pre-push``, with the remote's name and URL as arguments."""
    return f"""#!/bin/sh
{PUSH_MARKER}
# Blocks a push whose commits change files under another agent's conflicting reservation.
# A hook that was here before runs first (from {PUSH_CHAINED_NAME}); 'maf-preflight guard
# uninstall' puts it back. MAF_RESERVATION_OVERRIDE=1 lets a push through, loudly and recorded.
refs=$(cat) || exit 1
chained="$(dirname -- "$0")/{PUSH_CHAINED_NAME}"
if [ -x "$chained" ]; then
    printf '%s\\n' "$refs" | "$chained" "$@" || exit $?
fi
top=$(git rev-parse --show-toplevel) || exit 1
cd "$top" || exit 1
printf '%s\\n' "$refs" | {shlex.quote(python)} -m pytest_maf_preflight.cli guard check \\
    --pre-push --remote="$1"
"""


@dataclasses.dataclass(frozen=True)
class HookKind:
    name: str
    chained: str
    marker: str
    script: Callable[[str], str]
    runs: str  # what the hook runs, for the messages
    before: str  # "commit" or "push"


PRE_COMMIT = HookKind(HOOK_NAME, CHAINED_NAME, MARKER, hook_script, "guard check", "commit")
PRE_PUSH = HookKind(
    PUSH_HOOK_NAME,
    PUSH_CHAINED_NAME,
    PUSH_MARKER,
    push_hook_script,
    "guard check --pre-push",
    "push",
)


def is_ours(path: Path, marker: str = MARKER) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    return marker.encode() in head.splitlines()


def _move(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, never over an existing ``target``."""
    try:
        # A hard link fails when the target exists: no window in which a file is replaced.
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise CliError(f"{display_path(target)}: already exists; not overwritten") from None
    except (NotImplementedError, OSError):  # no hard links here (some file systems)
        if os.path.lexists(target):
            raise CliError(f"{display_path(target)}: already exists; not overwritten") from None
        os.rename(source, target)
        return
    os.unlink(source)


def _make_executable(path: Path) -> None:
    mode = path.stat().st_mode & 0o7777
    os.chmod(path, mode | 0o100 | ((mode & 0o044) >> 2))  # x for the owner, and where readable


# --- install / uninstall -------------------------------------------------------------------------


def _refusal(hooks: Path, kind: HookKind) -> str | None:
    hook, chained = hooks / kind.name, hooks / kind.chained
    if (
        not is_ours(hook, kind.marker)
        and os.path.lexists(hook)
        and os.path.lexists(chained)
        and not is_ours(chained, kind.marker)
    ):
        return (
            f"{display_path(hook)} is another tool's hook and {display_path(chained)} "
            "already exists, so it cannot be chained; move one of them away, or use "
            "--force to save the hook as a backup that no longer runs"
        )
    return None


def _install(hooks: Path, kind: HookKind, force: bool) -> dict[str, Any]:
    from ..atomic import write_atomic

    hook, chained = hooks / kind.name, hooks / kind.chained
    hooks.mkdir(parents=True, exist_ok=True)
    script = kind.script(sys.executable).encode()
    notes: list[str] = []
    backup: Path | None = None
    if is_ours(chained, kind.marker):
        # A copy of our own hook in the chained place would run the check twice, forever.
        chained.unlink()
        notes.append(f"removed a copy of this hook from {display_path(chained)}")
    if is_ours(hook, kind.marker):
        status = "unchanged" if hook.read_bytes() == script else "updated"
    elif os.path.lexists(hook):
        if os.path.lexists(chained):
            assert force  # refused beforehand otherwise
            backup = next(c for c in backup_names(hook) if not os.path.lexists(c))
            _move(hook, backup)
            notes.append(f"saved the previous hook as {display_path(backup)}; it no longer runs")
        else:
            _move(hook, chained)
            notes.append(f"the previous hook moved to {display_path(chained)} and runs first")
            if not os.access(chained, os.X_OK):
                notes.append("it is not executable, so (as before) git's hook does not run it")
        status = "installed"
    else:
        status = "installed"
    if status != "unchanged":
        write_atomic(hook, script)
    _make_executable(hook)
    return {
        "kind": kind.name,
        "status": status,
        "hook": str(hook),
        "chained": str(chained) if os.path.lexists(chained) else None,
        "backup": str(backup) if backup else None,
        "notes": notes,
    }


def run_install(args: argparse.Namespace) -> int:
    top, directories, worktrees = _repository(args.repo)
    kinds = [PRE_COMMIT, *([PRE_PUSH] if args.pre_push else [])]
    if not args.force:
        # Refuse before writing anything: no hooks directory is left half-installed.
        for hooks in directories:
            for kind in kinds:
                if (why := _refusal(hooks, kind)) is not None:
                    raise CliError(why)
    installed = [_install(hooks, kind, args.force) for hooks in directories for kind in kinds]
    notes = []
    if len(directories) > 1:
        notes.append(
            f"the {worktrees} worktrees use {len(directories)} hooks directories (a "
            "relative core.hooksPath is taken from each worktree's top level); the "
            "hook is in each, and a worktree added later needs 'maf-preflight guard "
            "install' run in it"
        )
    elif worktrees > 1:
        notes.append(f"the hooks directory serves all {worktrees} worktrees of the repository")
    first = installed[0]
    if args.json:
        print_json(
            {
                **{k: v for k, v in first.items() if k != "kind"},
                "repository": str(top),
                "python": sys.executable,
                "notes": [*first["notes"], *notes],
                "hooks": installed,
                "worktrees": worktrees,
            }
        )
        return int(CliExit.OK)
    for result in installed:
        kind = PRE_PUSH if result["kind"] == PUSH_HOOK_NAME else PRE_COMMIT
        for note in result["notes"]:
            print(f"note: {note}")
        verb = {"installed": "installed", "updated": "updated", "unchanged": "already installed"}[
            result["status"]
        ]
        print(
            f"{verb}: {display_path(Path(result['hook']))} runs 'maf-preflight {kind.runs}' "
            f"before every {kind.before}"
            + (f" (after {kind.chained})" if result["chained"] else "")
        )
    for note in notes:
        print(f"note: {note}")
    return int(CliExit.OK)


def _uninstall(hooks: Path, kind: HookKind) -> dict[str, Any]:
    hook, chained = hooks / kind.name, hooks / kind.chained
    restored = False
    if is_ours(hook, kind.marker):
        hook.unlink()
        status = "uninstalled"
        if os.path.lexists(chained) and not is_ours(chained, kind.marker):
            _move(chained, hook)
            restored = True
    else:
        status = "not installed"  # absent, or someone else's hook: not ours to remove
    return {
        "kind": kind.name,
        "status": status,
        "hook": str(hook),
        "restored": restored,
        "foreign": status == "not installed" and os.path.lexists(hook),
    }


def run_uninstall(args: argparse.Namespace) -> int:
    _, directories, _ = _repository(args.repo)
    kinds = [PRE_PUSH] if args.pre_push else [PRE_COMMIT, PRE_PUSH]
    removed = [_uninstall(hooks, kind) for hooks in directories for kind in kinds]
    if args.json:
        first = removed[0]
        print_json(
            {
                "status": first["status"],
                "hook": first["hook"],
                "restored": first["restored"],
                "hooks": removed,
            }
        )
        return int(CliExit.OK)
    for result in removed:
        kind = PRE_PUSH if result["kind"] == PUSH_HOOK_NAME else PRE_COMMIT
        hook = display_path(Path(result["hook"]))
        if result["status"] == "uninstalled":
            print(
                f"uninstalled: {hook}"
                + (f"; the previous hook is back from {kind.chained}" if result["restored"] else "")
            )
        elif kind not in kinds[:1]:
            continue  # a pre-push hook never installed: not worth a line
        elif result["foreign"]:
            print(f"not installed: {hook} is another hook; left alone")
        else:
            print(f"not installed: no {hook}")
    return int(CliExit.OK)
