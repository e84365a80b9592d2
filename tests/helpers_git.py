"""Real git repositories for tests: one runner, the first commit, the store a repository's
worktrees share, and the reservation check most of them use."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

#: Checks the files this agent changed (working tree and commits since ``main``) against
#: every other agent's leases.
LOCK_VALIDATION = """\
id: no-foreign-leases
name: Changed files are not reserved by another agent
config_type: reservation_check
config:
  check_type: lock_validation
  parameters: {changed_files: git, base_ref: main}
"""

#: A small project to change in the tests: code that leases cover, and documentation.
APP_FILES = {"src/app/x.py": "x = 1\n", "docs/guide.md": "# guide\n"}


def run_git(
    cwd: Path, *args: str, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run git in ``cwd`` with ``env`` added to the environment (hooks see it); with
    ``check=False`` a failure is returned, not raised."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=check,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its stdout, or CalledProcessError (with stderr) when it fails."""
    return run_git(cwd, *args).stdout


def write_files(root: Path, files: Mapping[str, str]) -> None:
    """Write each text at its path under ``root``, creating the folders."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def commit_base(root: Path, files: Mapping[str, str] | None = None) -> Path:
    """``root`` (with ``files`` written into it) as a repository on ``main`` whose one commit,
    "base", holds everything in it. Needs a git identity (the ``git_identity`` fixture)."""
    write_files(root, files or {})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def worktree(repo: Path, name: str) -> Path:
    """A linked worktree of ``repo`` beside it, on a new branch ``name``."""
    path = repo.parent / name
    git(repo, "worktree", "add", "-q", "-b", name, str(path))
    return path


def shared_db(root: Path) -> Path:
    """The default store: shared by the repository's worktrees, under its common dir."""
    return root / ".git" / "maf-preflight" / "runtime.db"


def shared_store(root: Path) -> SqliteRuntime:
    return SqliteRuntime(shared_db(root))
