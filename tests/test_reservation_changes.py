"""The files an agent changed, from real git repositories in tmp_path, or from a list."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from pytest_maf_preflight.reservations.changes import (
    ChangeDetectionError,
    changed_files,
    git_toplevel,
    listed_files,
)

SPACED = "dir with space/ünïcode file.txt"
NEWLINE = "new\nline.txt"


@pytest.fixture(autouse=True)
def _git_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global or system git config, and no repository above tmp_path, can change results."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test Agent")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "agent@example.invalid")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def write(repo: Path, name: str, text: str = "content\n") -> None:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on `main` with one commit of a few files, and a .gitignore."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for name in ("a.txt", "deleted.txt", "old.txt", SPACED, "pkg/sub/module.py"):
        write(path, name, f"{name}\n" * 20)
    write(path, ".gitignore", "*.log\n")
    commit_all(path, "base")
    return path


def test_outside_any_repository_is_an_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_toplevel(plain, timeout=10) is None
    with pytest.raises(ChangeDetectionError, match="not inside a git work tree"):
        changed_files(plain, "git")


def test_start_that_is_no_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ChangeDetectionError, match="is not a directory"):
        changed_files(tmp_path / "missing", "staged")


def test_clean_repository_has_no_changes(repo: Path) -> None:
    for result in (changed_files(repo, "git"), changed_files(repo, "staged")):
        assert result.paths == ()
        assert result.root == Path(os.path.realpath(repo))


def test_uncommitted_changes_staged_unstaged_untracked_renamed_deleted(repo: Path) -> None:
    write(repo, "a.txt", "changed, not staged\n")
    write(repo, SPACED, "changed and staged\n")
    git(repo, "add", SPACED)
    (repo / "deleted.txt").unlink()
    git(repo, "mv", "old.txt", "renamed.txt")
    write(repo, NEWLINE)
    write(repo, "untracked/deep/file.txt")
    write(repo, "ignored.log")

    result = changed_files(repo, "git")

    assert result.paths == tuple(
        sorted(
            [
                "a.txt",
                SPACED,
                "deleted.txt",
                "old.txt",
                "renamed.txt",
                NEWLINE,
                "untracked/deep/file.txt",
            ]
        )
    )
    assert result.renames == (("old.txt", "renamed.txt"),)
    assert result.deleted == ("deleted.txt",)
    assert result.source.startswith("git: working tree")


def test_staged_mode_sees_only_the_index(repo: Path) -> None:
    write(repo, "a.txt", "changed, not staged\n")
    write(repo, SPACED, "changed and staged\n")
    git(repo, "add", SPACED)
    git(repo, "mv", "old.txt", "renamed.txt")
    git(repo, "rm", "-q", "deleted.txt")
    write(repo, "untracked.txt")

    result = changed_files(repo, "staged")

    assert result.paths == tuple(sorted([SPACED, "deleted.txt", "old.txt", "renamed.txt"]))
    assert result.renames == (("old.txt", "renamed.txt"),)
    assert result.deleted == ("deleted.txt",)
    assert result.source == "git: staged changes"


def test_a_staged_change_undone_in_the_work_tree_still_counts(repo: Path) -> None:
    original = (repo / "a.txt").read_text()
    write(repo, "a.txt", "staged\n")
    git(repo, "add", "a.txt")
    write(repo, "a.txt", original)
    assert changed_files(repo, "git").paths == ("a.txt",)


def test_paths_are_relative_to_the_top_level_from_a_subdirectory(repo: Path) -> None:
    write(repo, "pkg/sub/module.py", "changed\n")
    write(repo, "top.txt")
    result = changed_files(repo / "pkg" / "sub", "git")
    assert result.paths == ("pkg/sub/module.py", "top.txt")
    assert git_toplevel(repo / "pkg", timeout=10) == Path(os.path.realpath(repo))


def test_unborn_head(tmp_path: Path) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, "staged.txt")
    write(repo, SPACED)
    git(repo, "add", "staged.txt", SPACED)
    write(repo, "untracked.txt")

    assert changed_files(repo, "staged").paths == (SPACED, "staged.txt")
    assert changed_files(repo, "git").paths == (SPACED, "staged.txt", "untracked.txt")
    with pytest.raises(ChangeDetectionError, match="HEAD has no commits yet"):
        changed_files(repo, "git", base_ref="main")


@pytest.fixture
def feature(repo: Path) -> Path:
    """`feature` branches off `main`; both sides then commit; the checkout is on `feature`."""
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "moved").mkdir()
    git(repo, "mv", "old.txt", "moved/new name.txt")
    write(repo, "a.txt", "feature change\n")
    commit_all(repo, "feature: rename and change")
    git(repo, "rm", "-q", "deleted.txt")
    commit_all(repo, "feature: delete")
    git(repo, "checkout", "-q", "main")
    write(repo, "main-only.txt")
    commit_all(repo, "main moves on")
    git(repo, "checkout", "-q", "feature")
    return repo


def test_changes_since_a_base_ref_use_the_merge_base(feature: Path) -> None:
    write(feature, "pkg/sub/module.py", "work in progress\n")
    git(feature, "mv", SPACED, "renamed in tree.txt")
    write(feature, "untracked.txt")
    merge_base = git(feature, "merge-base", "main", "HEAD").strip()

    result = changed_files(feature, "git", base_ref="main")

    # main-only.txt changed on main after the branch point: not this agent's change.
    assert result.paths == tuple(
        sorted(
            [
                "a.txt",
                "deleted.txt",
                "old.txt",
                "moved/new name.txt",
                "pkg/sub/module.py",
                SPACED,
                "renamed in tree.txt",
                "untracked.txt",
            ]
        )
    )
    assert result.renames == ((SPACED, "renamed in tree.txt"), ("old.txt", "moved/new name.txt"))
    assert result.deleted == ("deleted.txt",)
    assert result.source == (
        f"git: working tree and commits since main (merge-base {merge_base[:7]})"
    )


def test_a_file_deleted_in_a_commit_and_recreated_is_changed_not_deleted(feature: Path) -> None:
    write(feature, "deleted.txt", "back again\n")
    result = changed_files(feature, "git", base_ref="main")
    assert "deleted.txt" in result.paths
    assert result.deleted == ()


def test_base_ref_accepts_a_commit_id(feature: Path) -> None:
    base = git(feature, "rev-parse", "main~1").strip()
    result = changed_files(feature, "git", base_ref=base)
    assert "moved/new name.txt" in result.paths
    assert "main-only.txt" not in result.paths


@pytest.mark.parametrize("ref", ["no-such-branch", "--output=x", ""])
def test_bad_base_ref_is_named(repo: Path, ref: str) -> None:
    with pytest.raises(ChangeDetectionError, match=repr(ref).replace("[", r"\[")):
        changed_files(repo, "git", base_ref=ref)
    assert not (repo / "x").exists()


def test_unrelated_histories_have_no_merge_base(repo: Path) -> None:
    git(repo, "checkout", "-q", "--orphan", "other")
    commit_all(repo, "unrelated root")
    with pytest.raises(ChangeDetectionError, match="no common ancestor"):
        changed_files(repo, "git", base_ref="main")


def test_base_ref_with_staged_mode_is_refused(repo: Path) -> None:
    with pytest.raises(ChangeDetectionError, match="applies to mode 'git'"):
        changed_files(repo, "staged", base_ref="main")


def test_renames_are_paired_even_when_a_user_turned_detection_off(feature: Path) -> None:
    git(feature, "config", "status.renames", "false")
    git(feature, "config", "diff.renames", "false")
    git(feature, "mv", "a.txt", "b.txt")
    assert changed_files(feature, "staged").renames == (("a.txt", "b.txt"),)
    assert changed_files(feature, "git").renames == (("a.txt", "b.txt"),)
    assert changed_files(feature, "git", base_ref="main").renames == (
        ("a.txt", "b.txt"),
        ("old.txt", "moved/new name.txt"),
    )


def test_the_index_is_never_written(repo: Path) -> None:
    # Stat data that no longer matches makes a plain `git status` refresh (rewrite) the index,
    # taking its lock under another agent's feet; a read-only look must leave it alone.
    os.utime(repo / "a.txt", (1_000_000_000, 1_000_000_000))
    index = (repo / ".git" / "index").read_bytes()
    assert changed_files(repo, "git").paths == ()
    assert (repo / ".git" / "index").read_bytes() == index


def test_git_missing_from_path(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ChangeDetectionError, match="git not found on PATH"):
        changed_files(repo, "git")


def test_slow_git_is_killed_at_the_timeout(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "slow-bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "sleeper.pid"
    fake = bin_dir / "git"
    # A git that hangs, with a child of its own: the whole group must go.
    fake.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > '{pid_file}'\nwait\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ChangeDetectionError, match=r"did not finish within 0.5 s; killed"):
        changed_files(repo, "git", timeout=0.5)
    sleeper = int(pid_file.read_text())
    # The grandchild was killed with its group: it dies (a zombie at most, until init reaps
    # it) soon; a sleep that was never signalled would still run for a minute.
    assert _dies(sleeper)


def _dies(pid: int) -> bool:
    for _ in range(500):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


def test_listed_files_are_normalised(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    result = listed_files(
        root,
        [
            "b.txt",
            "./a.txt",
            "dir//x.py",
            "dir/sub/../y.py",
            str(root / "abs.txt"),
            "b.txt",
            "dir/",
            SPACED,
        ],
    )
    assert result.paths == tuple(
        sorted(["a.txt", "abs.txt", "b.txt", "dir", "dir/x.py", "dir/y.py", SPACED])
    )
    assert result.root == root
    assert result.source == "list: 7 files"
    assert result.renames == ()
    assert result.deleted == ()


def test_listed_absolute_paths_through_a_symlinked_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert listed_files(link, [str(real / "f.txt")]).paths == ("f.txt",)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../escape.txt", "outside"),
        ("dir/../../escape.txt", "outside"),
        ("/etc/passwd", "outside"),
        ("", "empty path"),
        (".", "root directory itself"),
    ],
)
def test_listed_files_refuse_paths_outside_the_root(
    tmp_path: Path, name: str, message: str
) -> None:
    with pytest.raises(ChangeDetectionError, match=message):
        listed_files(tmp_path, ["fine.txt", name])
