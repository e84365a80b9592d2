"""Worktrees and their repository found by reading git's files, checked against what git itself
says (``git rev-parse``) for real ``git init`` / ``git worktree add`` checkouts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_maf_preflight.agent_mail.projects import default_project_key
from pytest_maf_preflight.gitdirs import GitDirError, find_checkout, shared_location


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env, timeout=60
    ).stdout.strip()


@pytest.fixture
def main(tmp_path: Path) -> Path:
    root = tmp_path / "main"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("a = 1\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def test_main_checkout_and_worktrees_agree_with_git(main: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt-green"
    git(main, "worktree", "add", "-q", str(wt))
    checkout = find_checkout(wt / "pkg")
    assert checkout is not None
    assert checkout.top == wt
    assert checkout.is_linked_worktree
    assert checkout.common_dir == Path(
        git(wt, "rev-parse", "--path-format=absolute", "--git-common-dir")
    )
    assert checkout.git_dir == Path(git(wt, "rev-parse", "--path-format=absolute", "--git-dir"))
    assert checkout.main_checkout == main

    own = find_checkout(main / "pkg")
    assert own is not None
    assert (own.top, own.git_dir, own.common_dir, own.is_linked_worktree) == (
        main,
        main / ".git",
        main / ".git",
        False,
    )
    assert find_checkout(tmp_path) is None


def test_every_worktree_has_the_main_checkouts_project_key(main: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "wt-1", tmp_path / "nested" / "wt-2"
    git(main, "worktree", "add", "-q", str(first))
    git(main, "worktree", "add", "-q", str(second))
    assert {default_project_key(d) for d in (main, first, second)} == {str(main)}
    # A rootdir below the top level maps to the same place in the main checkout, which is what
    # the main checkout's own runs have always used.
    assert {default_project_key(d / "pkg") for d in (main, first, second)} == {str(main / "pkg")}
    # Outside git nothing changes.
    assert default_project_key(tmp_path) == str(tmp_path)


def test_worktrees_of_a_bare_repository_share_the_bare_repository(
    main: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "shared.git"
    git(tmp_path, "clone", "-q", "--bare", str(main), str(bare))
    one, two = tmp_path / "b1", tmp_path / "b2"
    git(bare, "worktree", "add", "-q", str(one))
    git(bare, "worktree", "add", "-q", "-b", "other", str(two))
    checkout = find_checkout(one)
    assert checkout is not None
    assert checkout.main_checkout is None
    assert shared_location(one) == shared_location(two) == bare


def test_a_relative_gitdir_pointer_is_followed(main: Path, tmp_path: Path) -> None:
    # Newer git can write relative pointers (worktree.useRelativePaths); moved worktrees too.
    wt = tmp_path / "wt-rel"
    git(main, "worktree", "add", "-q", str(wt))
    admin = Path(git(wt, "rev-parse", "--path-format=absolute", "--git-dir"))
    (wt / ".git").write_text(f"gitdir: {os.path.relpath(admin, wt)}\n")
    assert default_project_key(wt) == str(main)


def test_a_submodule_style_git_file_is_its_own_project(tmp_path: Path) -> None:
    # ``.git`` file without a ``commondir`` behind it: a checkout of its own, not a worktree.
    modules = tmp_path / "super" / ".git" / "modules" / "sub"
    git(tmp_path, "init", "-q", "--bare", str(modules))
    sub = tmp_path / "super" / "sub"
    sub.mkdir()
    (sub / ".git").write_text(f"gitdir: {modules}\n")
    checkout = find_checkout(sub)
    assert checkout is not None
    assert not checkout.is_linked_worktree
    assert default_project_key(sub) == str(sub)


@pytest.mark.parametrize(
    "content", ["nonsense\n", "gitdir: /no/such/dir\n", "", "gitdir: a\ngitdir: b\n"]
)
def test_a_broken_git_file_is_an_error_not_another_project(tmp_path: Path, content: str) -> None:
    wt = tmp_path / "broken"
    wt.mkdir()
    (wt / ".git").write_text(content)
    with pytest.raises(GitDirError, match=r"\.git"):
        default_project_key(wt)


def test_a_stray_git_folder_is_walked_past(main: Path) -> None:
    (main / "pkg" / ".git").mkdir()  # not a repository: no HEAD
    checkout = find_checkout(main / "pkg")
    assert checkout is not None
    assert checkout.top == main
