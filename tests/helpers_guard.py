"""The repository and the lease of the commit and push guard tests (test_cli_guard.py,
test_guard_worktrees.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers_cli import run_main
from helpers_git import commit_base, run_git


def guard_repo(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``root`` as a git repository with one commit, the current directory, using the SQLite
    runtime. Needs a git identity (the ``git_identity`` fixture)."""
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    commit_base(root, {"src/app.py": "x = 1\n", "README.md": "# r\n", ".gitignore": ".maf/\n"})
    monkeypatch.chdir(root)
    return root


def lease_for_agent_b(capsys: pytest.CaptureFixture[str], *patterns: str) -> None:
    code, _, err = run_main(
        capsys,
        "reservations",
        "acquire",
        *patterns,
        "--agent",
        "agent-b",
        "--ttl",
        "600",
        "--reason",
        "refactor",
    )
    assert code == 0, err


def commits(root: Path) -> int:
    return int(run_git(root, "rev-list", "--count", "HEAD").stdout)
