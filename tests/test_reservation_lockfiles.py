"""Stale lock files, with locks held and abandoned by real processes using the filelock package."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_maf_preflight.reservations.lockfiles import (
    LockScanError,
    StaleLock,
    find_stale_lock_files,
)

LIMIT = 30 * 60.0
HOUR = 3600.0
ON_LINUX = Path("/proc/locks").exists()

#: Takes a filelock lock of the kind named, says so, and holds it until stdin closes.
HOLDER = """
import sys, filelock
kind, path = sys.argv[1], sys.argv[2]
lock = getattr(filelock, kind)(path)
lock.acquire()
print("acquired", flush=True)
sys.stdin.read()
lock.release()
"""


@contextmanager
def holding(kind: str, path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, str(path)],
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "acquired\n"
        yield proc
    finally:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.close()  # the holder releases and exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def abandoned(kind: str, path: Path) -> int:
    """A lock of ``kind`` taken by a process that was then killed; returns its pid."""
    with holding(kind, path) as proc:
        proc.kill()
        proc.wait()
        return proc.pid


def exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def scan(
    root: Path, *globs: str, max_age: float | None = LIMIT, **kwargs: float
) -> list[StaleLock]:
    return find_stale_lock_files(root, globs or ("**/*.lock",), max_age_seconds=max_age, **kwargs)  # type: ignore[arg-type]


def test_a_lock_held_by_a_live_process_is_not_stale(tmp_path: Path) -> None:
    lock = tmp_path / "build" / "held.lock"
    lock.parent.mkdir()
    with holding("FileLock", lock):
        assert scan(tmp_path) == []


def test_a_lock_held_too_long_is_stale(tmp_path: Path) -> None:
    lock = tmp_path / "held.lock"
    with holding("FileLock", lock) as proc:
        age(lock, 2 * HOUR)
        # Seen three hours from now: both the file and the holder process are that old.
        (stale,) = scan(tmp_path, now=time.time() + 3 * HOUR)
        assert stale.path == "held.lock"
        assert stale.age_seconds > LIMIT
        if ON_LINUX:
            assert stale.pid == proc.pid
            assert stale.reason.startswith(f"held by pid {proc.pid} for ")
        assert stale.reason.endswith("(limit 30 min)")


@pytest.mark.skipif(not ON_LINUX, reason="the holder's start time comes from /proc")
def test_an_old_lock_file_just_acquired_is_not_held_too_long(tmp_path: Path) -> None:
    # filelock >= 4 does not truncate on acquire: an old mtime says nothing about the hold.
    lock = tmp_path / "reused.lock"
    lock.touch()
    age(lock, 5 * HOUR)
    with holding("FileLock", lock):
        assert scan(tmp_path) == []


def test_a_released_lock_file_is_not_stale(tmp_path: Path) -> None:
    lock = tmp_path / "released.lock"
    with holding("FileLock", lock):
        pass
    assert lock.exists()
    assert lock.read_bytes() == b""
    age(lock, 10 * HOUR)
    assert scan(tmp_path) == []


@pytest.mark.parametrize("kind", ["SoftFileLock", "MarkerSoftFileLock"])
def test_a_soft_lock_whose_owner_died_is_stale(tmp_path: Path, kind: str) -> None:
    lock = tmp_path / "pkg" / "soft.lock"
    lock.parent.mkdir()
    pid = abandoned(kind, lock)
    assert str(pid) in lock.read_text()
    (stale,) = scan(tmp_path, max_age=None)
    assert (stale.path, stale.reason, stale.pid) == (
        "pkg/soft.lock",
        f"owner pid {pid} is not running",
        pid,
    )


def test_a_soft_lock_of_a_live_owner_is_stale_only_when_old(tmp_path: Path) -> None:
    lock = tmp_path / "soft.lock"
    with holding("SoftFileLock", lock) as proc:
        assert scan(tmp_path) == []
        age(lock, 2 * HOUR)
        (stale,) = scan(tmp_path)
        assert stale.pid == proc.pid
        assert stale.reason == (
            f"owner pid {proc.pid} is running but the lock is 2.0 h old (limit 30 min)"
        )
        assert scan(tmp_path, max_age=None) == []


@pytest.mark.parametrize(
    "content", ["{pid}", "{pid}\n", "{pid}\n{host}\n", "{pid} {host}", "{pid}\n{host}\n12345\n"]
)
def test_pid_files_of_an_exited_process(tmp_path: Path, content: str) -> None:
    pid = exited_pid()
    (tmp_path / "x.lock").write_text(content.format(pid=pid, host=socket.gethostname()))
    (stale,) = scan(tmp_path)
    assert (stale.path, stale.reason, stale.pid) == (
        "x.lock",
        f"owner pid {pid} is not running",
        pid,
    )


def test_our_own_pid_is_alive(tmp_path: Path) -> None:
    lock = tmp_path / "mine.lock"
    lock.write_text(f"{os.getpid()}\n")
    assert scan(tmp_path) == []
    age(lock, 45 * 60)
    (stale,) = scan(tmp_path)
    assert stale.reason == (
        f"owner pid {os.getpid()} is running but the lock is 45 min old (limit 30 min)"
    )
    assert 45 * 60 <= stale.age_seconds < 46 * 60


def test_another_users_live_process_counts_as_running(tmp_path: Path) -> None:
    # pid 1 always runs; unless we are root, probing it is refused (EPERM), which means alive.
    (tmp_path / "init.lock").write_text("1\n")
    assert scan(tmp_path) == []


def test_a_pid_on_another_host_is_judged_by_age_only(tmp_path: Path) -> None:
    lock = tmp_path / "remote.lock"
    lock.write_text(f"{exited_pid()}\nanother-host.example\n")
    assert scan(tmp_path) == []
    age(lock, 2 * HOUR)
    (stale,) = scan(tmp_path)
    assert "runs on host 'another-host.example', not checked from here" in stale.reason


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "poetry.lock",
            "# This file is automatically @generated by Poetry\n[[package]]\n"
            'name = "x"\nversion = "1.0"\n',
        ),
        ("uv.lock", 'version = 1\nrequires-python = ">=3.10"\n'),
        ("Cargo.lock", "# This file is automatically @generated by Cargo.\nversion = 3\n"),
        ("big.lock", "12345\n" + "x" * 2000),
        ("words.lock", "12345 host extra words\n"),
        ("zero.lock", "0\n"),
        ("negative.lock", "-1\n"),
        ("binary.lock", b"\xff\xfe12".decode("latin-1")),
    ],
)
def test_files_that_are_no_lock_files_are_ignored(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("latin-1"))
    age(path, 10 * HOUR)
    assert scan(tmp_path) == []


def test_glob_semantics(tmp_path: Path) -> None:
    pid = exited_pid()
    for name in (
        "top.lock",
        "a/one.lock",
        "a/b/two.lock",
        ".hidden/three.lock",
        "a/four.pid",
        "node_modules/pkg/five.lock",
        ".venv/six.lock",
        "a/__pycache__/seven.lock",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"{pid}\n")

    def paths(*globs: str) -> list[str]:
        return [s.path for s in scan(tmp_path, *globs)]

    assert paths("**/*.lock") == [".hidden/three.lock", "a/b/two.lock", "a/one.lock", "top.lock"]
    assert paths("*.lock") == ["top.lock"]
    assert paths("a/*.lock") == ["a/one.lock"]
    assert paths("a/**") == ["a/b/two.lock", "a/four.pid", "a/one.lock"]
    assert paths("*/*/*.lock") == ["a/b/two.lock"]
    assert paths("a/b/two.lock", "**/two.lock") == ["a/b/two.lock"]
    # A pruned directory is skipped by wildcards, not when a glob names it.
    assert paths("node_modules/**/*.lock") == ["node_modules/pkg/five.lock"]


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "dead.lock").write_text(f"{exited_pid()}\n")
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked-dir").symlink_to(outside)
    (root / "linked.lock").symlink_to(outside / "dead.lock")
    assert scan(root) == []


def test_too_many_files_fail_closed(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"file{i}.txt").write_text("x")
    with pytest.raises(LockScanError, match=r"more than 20 entries under .* raise the limit"):
        scan(tmp_path, max_files=20)
    assert scan(tmp_path, max_files=31) == []


def test_pruned_directories_do_not_count(tmp_path: Path) -> None:
    modules = tmp_path / "node_modules"
    modules.mkdir()
    dead = exited_pid()
    for i in range(50):
        (modules / f"m{i}.lock").write_text(f"{dead}\n")
    assert scan(tmp_path, max_files=5) == []


def test_a_non_recursive_glob_does_not_walk_the_tree(tmp_path: Path) -> None:
    deep = tmp_path / "deep"
    deep.mkdir()
    for i in range(50):
        (deep / f"f{i}.txt").write_text("x")
    (tmp_path / "top.lock").write_text(f"{exited_pid()}\n")
    assert [s.path for s in scan(tmp_path, "*.lock", max_files=5)] == ["top.lock"]


@pytest.mark.parametrize("glob", ["", "/etc/*.lock", "../*.lock", "a/../../*.lock"])
def test_globs_must_stay_inside_the_root(tmp_path: Path, glob: str) -> None:
    with pytest.raises(LockScanError, match="glob"):
        scan(tmp_path, glob)


def test_a_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LockScanError, match="not a directory"):
        scan(tmp_path / "missing")
