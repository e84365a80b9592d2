"""``maf-preflight guard install|check|uninstall``: the reservation check as a git pre-commit hook
(SPEC S3). This module holds the parsers and the hook's installation; ``guard_check`` runs the
check.

- ``install [--repo PATH] [--force]`` writes a POSIX sh ``pre-commit`` hook into the directory
  git names for hooks (``git rev-parse --git-path hooks``, so ``core.hooksPath`` is honoured). The
  hook runs ``<this python> -m pytest_maf_preflight.cli guard check`` from the repository top
  level. A hook that was there before is kept and chained: it moves to ``pre-commit.maf-chained``
  and runs first, with the hook's arguments; its failure stops the commit. Installing again
  rewrites our hook (recognised by its marker line) and chains nothing new. When both a foreign
  ``pre-commit`` and ``pre-commit.maf-chained`` exist, install refuses; ``--force`` then saves
  the foreign hook as ``pre-commit.bak`` (``.bak.1``, ...), where it no longer runs.
- ``uninstall [--repo PATH]`` removes our hook and puts a chained one back.
- ``check [--config-dir PATH] [--agent NAME] [--env NAME] [--mode MODES]`` checks the staged
  files against reservations and records the run; exit 1 blocks the commit (``guard_check``
  says what it runs and its exit codes).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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


def register(subparsers: Subparsers) -> None:
    guard = subparsers.add_parser(
        "guard", help="Check reservations before every git commit",
        description="A git pre-commit hook that blocks a commit whose staged files are under "
                    "another agent's conflicting reservation.")
    actions = guard.add_subparsers(dest="guard_command", metavar="ACTION", required=True)

    install = actions.add_parser(
        "install", help="Install the pre-commit hook (an existing hook is chained)",
        description="Write the pre-commit hook into the repository's hooks directory (as git "
                    "reports it; core.hooksPath is honoured). An existing hook moves to "
                    f"{CHAINED_NAME} and runs first; installing again is harmless.")
    install.add_argument("--repo", type=Path, metavar="PATH",
                         help="Repository (default: the current directory)")
    install.add_argument("--force", action="store_true",
                         help=f"When both a foreign hook and {CHAINED_NAME} exist, save the "
                              "foreign hook as pre-commit.bak (it stops running) and install")
    install.add_argument("--json", action="store_true", help=JSON_HELP)
    install.set_defaults(handler=run_install)

    uninstall = actions.add_parser(
        "uninstall", help="Remove the pre-commit hook and restore a chained one",
        description=f"Remove our pre-commit hook and move {CHAINED_NAME} back in its place.")
    uninstall.add_argument("--repo", type=Path, metavar="PATH",
                           help="Repository (default: the current directory)")
    uninstall.add_argument("--json", action="store_true", help=JSON_HELP)
    uninstall.set_defaults(handler=run_uninstall)

    check = actions.add_parser(
        "check", help="Check the staged files against reservations (what the hook runs)",
        description="Run the project's active lock_validation reservation checks on the staged "
                    "files (or a default advisory one) and record the run. Exit 0: the commit "
                    "may go ahead; 1: it is blocked (a conflict, a check error, an invalid "
                    "config, no runtime). MAF_RESERVATION_OVERRIDE=1 lets it through, loudly "
                    "and recorded.")
    check.add_argument("--config-dir", type=Path, metavar="PATH",
                       help=f"Config directory (default: {DEFAULT_CONFIG_DIR} under the "
                            "repository top level)")
    check.add_argument("--agent", metavar="NAME",
                       help="Agent committing (default: MAF_AGENT_ID, then AGENT_NAME, then "
                            "'anonymous')")
    check.add_argument("--env", metavar="NAME",
                       help="Environment whose overrides apply (default: MAF_ENV, then "
                            "NODE_ENV, then 'development')")
    check.add_argument("--mode", metavar="MODES", help=MODE_HELP)
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


def _repository(repo: Path | None) -> tuple[Path, Path]:
    """The repository's top level and its hooks directory, as git sees them."""
    where = Path.cwd() if repo is None else repo
    if not where.is_dir():
        raise CliError(f"{display_path(where)}: no such directory")
    if _git(["rev-parse", "--is-bare-repository"], where) == "true":
        raise CliError(f"{display_path(where)}: a bare repository has no commits to guard")
    top = Path(_git(["rev-parse", "--show-toplevel"], where))
    # Relative to ``where`` unless core.hooksPath is absolute; worktrees share the main hooks.
    hooks = Path(os.path.abspath(where / _git(["rev-parse", "--git-path", "hooks"], where)))
    return top, hooks


# --- install / uninstall -------------------------------------------------------------------------

def hook_script(python: str) -> str:
    """The hook: the chained hook first, then ``guard check`` from the top level."""
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


def is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False
    return MARKER.encode() in head.splitlines()


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


def run_install(args: argparse.Namespace) -> int:
    from ..atomic import write_atomic

    top, hooks = _repository(args.repo)
    hook, chained = hooks / HOOK_NAME, hooks / CHAINED_NAME
    hooks.mkdir(parents=True, exist_ok=True)
    script = hook_script(sys.executable).encode()
    notes: list[str] = []
    backup: Path | None = None
    if is_ours(chained):
        # A copy of our own hook in the chained place would run the check twice, forever.
        chained.unlink()
        notes.append(f"removed a copy of this hook from {display_path(chained)}")
    if is_ours(hook):
        status = "unchanged" if hook.read_bytes() == script else "updated"
    elif os.path.lexists(hook):
        if os.path.lexists(chained):
            if not args.force:
                raise CliError(
                    f"{display_path(hook)} is another tool's hook and {display_path(chained)} "
                    "already exists, so it cannot be chained; move one of them away, or use "
                    "--force to save the hook as a backup that no longer runs")
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
    result = {"status": status, "repository": str(top), "hook": str(hook),
              "chained": str(chained) if os.path.lexists(chained) else None,
              "backup": str(backup) if backup else None, "python": sys.executable,
              "notes": notes}
    if args.json:
        print_json(result)
        return int(CliExit.OK)
    for note in notes:
        print(f"note: {note}")
    verb = {"installed": "installed", "updated": "updated",
            "unchanged": "already installed"}[status]
    print(f"{verb}: {display_path(hook)} runs 'maf-preflight guard check' before every commit"
          + (f" (after {CHAINED_NAME})" if result["chained"] else ""))
    return int(CliExit.OK)


def run_uninstall(args: argparse.Namespace) -> int:
    _, hooks = _repository(args.repo)
    hook, chained = hooks / HOOK_NAME, hooks / CHAINED_NAME
    restored = False
    if is_ours(hook):
        hook.unlink()
        status = "uninstalled"
        if os.path.lexists(chained) and not is_ours(chained):
            _move(chained, hook)
            restored = True
    elif os.path.lexists(hook):
        status = "not installed"  # someone else's hook: not ours to remove
    else:
        status = "not installed"
    if args.json:
        print_json({"status": status, "hook": str(hook), "restored": restored})
        return int(CliExit.OK)
    if status == "uninstalled":
        print(f"uninstalled: {display_path(hook)}"
              + (f"; the previous hook is back from {CHAINED_NAME}" if restored else ""))
    elif os.path.lexists(hook):
        print(f"not installed: {display_path(hook)} is another hook; left alone")
    else:
        print(f"not installed: no {display_path(hook)}")
    return int(CliExit.OK)
