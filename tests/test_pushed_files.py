"""The files a push sends (``reservations.changes.pushed_files``), on real repositories with a
real bare remote: which commits count, merges, renames, deletions, bad hook input."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_maf_preflight.reservations.changes import (
    ChangeDetectionError,
    RefUpdate,
    parse_push_lines,
    pushed_files,
)

ZERO = "0" * 40


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "HOME": str(cwd.parent),
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env, timeout=60
    ).stdout.strip()


def commit(repo: Path, message: str, **files: str | None) -> str:
    for name, text in files.items():
        path = repo / name.replace("__", "/")
        if text is None:
            git(repo, "rm", "-q", str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        git(repo, "add", str(path))
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    commit(root, "base", a="a\n", b="b\n", c="c\n", old="old\n")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "origin.git")
    git(root, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(root, "push", "-q", "-u", "origin", "main")
    return root


def update(local: str, remote: str = ZERO, ref: str = "refs/heads/topic") -> RefUpdate:
    return RefUpdate(ref, local, ref, remote)


def test_an_update_counts_only_the_commits_since_the_remote_sha(repo: Path) -> None:
    published = git(repo, "rev-parse", "HEAD")
    commit(repo, "edit", a="a2\n")
    git(repo, "mv", "old", "new")
    head = commit(repo, "rename and delete", b=None)
    pushed = pushed_files(repo, [update(head, published, "refs/heads/main")])
    assert pushed.commits == 2
    assert pushed.changed.paths == ("a", "b", "new", "old")
    assert pushed.changed.renames == (("old", "new"),)
    assert pushed.changed.deleted == ("b",)


def test_a_new_branch_counts_what_no_remote_tracking_branch_has(repo: Path) -> None:
    git(repo, "switch", "-q", "-c", "topic")
    head = commit(repo, "topic", c="c2\n")
    # base (which touched every file) is on origin/main: not sent again.
    pushed = pushed_files(repo, [update(head)])
    assert (pushed.commits, pushed.changed.paths) == (1, ("c",))


def test_a_merge_counts_its_own_resolution_not_what_it_merged(repo: Path) -> None:
    git(repo, "switch", "-q", "-c", "side")
    commit(repo, "side", a="side\n", b="side\n")
    git(repo, "switch", "-q", "-c", "topic", "main")
    commit(repo, "topic", a="topic\n")
    merged = subprocess.run(
        ["git", "merge", "-q", "--no-edit", "side"], cwd=repo, capture_output=True, check=False
    )
    assert merged.returncode != 0  # a conflict on a
    (repo / "a").write_text("resolved\n")
    (repo / "evil").write_text("added in the merge\n")
    git(repo, "add", "a", "evil")
    git(repo, "commit", "-q", "--no-edit")
    head = git(repo, "rev-parse", "HEAD")
    pushed = pushed_files(repo, [update(head)])
    assert pushed.commits == 3  # side, topic, the merge
    assert pushed.changed.paths == ("a", "b", "evil")

    # Merging commits the remote already has sends none of their files.
    git(repo, "switch", "-q", "main")
    commit(repo, "upstream", c="upstream\n")
    git(repo, "push", "-q", "origin", "main")
    git(repo, "switch", "-q", "-c", "later", "side")
    git(repo, "merge", "-q", "--no-edit", "main")
    later = git(repo, "rev-parse", "HEAD")
    pushed = pushed_files(repo, [update(later, ref="refs/heads/later")])
    assert "c" not in pushed.changed.paths
    assert pushed.changed.paths == ("a", "b")  # side's own commit, not yet on the remote


def test_deletions_and_unknown_remote_shas(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    nothing = pushed_files(repo, [RefUpdate("(delete)", ZERO, "refs/heads/gone", head)])
    assert (nothing.commits, nothing.changed.paths) == (0, ())
    # A remote sha this repository never saw (someone else pushed it): judged like a new branch.
    mine = commit(repo, "mine", a="mine\n")
    pushed = pushed_files(repo, [update(mine, "f" * 40, "refs/heads/main")])
    assert (pushed.commits, pushed.changed.paths) == (1, ("a",))


@pytest.mark.parametrize(
    "line", ["refs/heads/main abc refs/heads/main " + ZERO, "refs/heads/main " + ZERO, "a b c d e"]
)
def test_bad_hook_input_is_an_error_naming_the_line(line: str) -> None:
    with pytest.raises(ChangeDetectionError, match="pre-push input line 3"):
        parse_push_lines(f"refs/heads/x {ZERO} refs/heads/x {ZERO}\n\n{line}\n")
