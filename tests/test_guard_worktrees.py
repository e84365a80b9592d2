"""``maf-preflight guard`` across the worktrees of a repository, and the pre-push guard: real
``git worktree add`` checkouts, real ``git commit`` and ``git push`` runs (to a real bare
repository) through the installed hooks, the default (shared) SQLite lease store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers_cli import run_main
from helpers_git import run_git, shared_store, worktree
from helpers_guard import commits, guard_repo, lease_for_agent_b
from pytest_maf_preflight.cli.guard_check import DEFAULT_CHECK_ID
from pytest_maf_preflight.cli.guard_commands import MARKER, PUSH_CHAINED_NAME, PUSH_MARKER
from pytest_maf_preflight.cli.main import main


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_identity: Path) -> Path:
    """A git repository with one commit, the current directory, using the SQLite runtime."""
    return guard_repo(tmp_path / "repo", monkeypatch)


def change(checkout: Path, path: str, text: str) -> None:
    (checkout / path).write_text(text)
    run_git(checkout, "add", path)


def commit_as(checkout: Path, agent: str, message: str = "change") -> tuple[bool, str]:
    done = run_git(checkout, "commit", "-m", message, check=False, MAF_AGENT_ID=agent)
    return done.returncode == 0, done.stdout + done.stderr


# --- one hook for every worktree -----------------------------------------------------------------


def test_install_in_a_worktree_guards_the_main_checkout_and_the_other_worktrees(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    green, red = worktree(repo, "green"), worktree(repo, "red")
    lease_for_agent_b(capsys, "src/*.py")
    monkeypatch.chdir(green)
    code, out, err = run_main(capsys, "guard", "install")
    assert code == 0, err
    assert "note: the hooks directory serves all 3 worktrees of the repository" in out
    assert (repo / ".git" / "hooks" / "pre-commit").read_text().count(MARKER) == 1

    for checkout in (repo, red):
        before = commits(checkout)
        change(checkout, "src/app.py", f"x = '{checkout.name}'\n")
        ok, output = commit_as(checkout, "agent-a")
        assert not ok, output
        assert f"conflict: {DEFAULT_CHECK_ID}: src/app.py: reserved by agent-b" in output
        assert commits(checkout) == before
        change(checkout, "README.md", f"# {checkout.name}\n")
        run_git(checkout, "reset", "-q", "src/app.py")
        ok, output = commit_as(checkout, "agent-a")
        assert ok, output
        assert commits(checkout) == before + 1

    code, out, _ = run_main(capsys, "guard", "uninstall")
    assert code == 0
    assert out.startswith("uninstalled: ")
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()


def test_a_relative_core_hooks_path_gets_the_hook_in_every_worktree(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # git takes a relative core.hooksPath from the top level of the worktree it runs in, so each
    # worktree has a hooks directory of its own.
    run_git(repo, "config", "core.hooksPath", ".githooks")
    green = worktree(repo, "green")
    lease_for_agent_b(capsys, "src/*.py")
    monkeypatch.chdir(green)
    code = main(["guard", "install", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert Path(data["hook"]) == green / ".githooks" / "pre-commit"
    assert sorted(Path(h["hook"]) for h in data["hooks"]) == sorted(
        [repo / ".githooks" / "pre-commit", green / ".githooks" / "pre-commit"]
    )
    assert (
        "a worktree added later needs 'maf-preflight guard install' run in it"
        in (data["notes"][-1])
    )
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()

    for checkout in (repo, green):
        change(checkout, "src/app.py", "x = 3\n")
        ok, output = commit_as(checkout, "agent-a")
        assert not ok, output
        assert "reserved by agent-b" in output

    monkeypatch.chdir(repo)
    code, out, _ = run_main(capsys, "guard", "uninstall")
    assert code == 0
    assert out.count("uninstalled: ") == 2
    assert not (repo / ".githooks" / "pre-commit").exists()
    assert not (green / ".githooks" / "pre-commit").exists()


def test_an_absolute_core_hooks_path_is_one_directory_for_all(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "team-hooks"
    run_git(repo, "config", "core.hooksPath", str(shared))
    green = worktree(repo, "green")
    monkeypatch.chdir(green)
    code = main(["guard", "install", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [Path(h["hook"]) for h in data["hooks"]] == [shared / "pre-commit"]
    lease_for_agent_b(capsys, "src/*.py")
    change(repo, "src/app.py", "x = 4\n")
    assert not commit_as(repo, "agent-a")[0]


# --- the pre-push guard --------------------------------------------------------------------------


@pytest.fixture
def remote(repo: Path, tmp_path: Path) -> Path:
    """A bare repository as ``origin``, holding ``main`` as it is now."""
    bare = tmp_path / "origin.git"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    run_git(repo, "remote", "add", "origin", str(bare))
    run_git(repo, "push", "-q", "-u", "origin", "main")
    return bare


def remote_head(bare: Path, branch: str) -> str | None:
    found = run_git(bare, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return found.stdout.strip() or None


def push_as(checkout: Path, agent: str, *args: str) -> tuple[bool, str]:
    done = run_git(checkout, "push", "origin", *args, check=False, MAF_AGENT_ID=agent)
    return done.returncode == 0, done.stdout + done.stderr


def test_a_push_of_a_commit_changing_a_leased_file_is_refused_and_recorded(
    repo: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, "guard", "install", "--pre-push")
    assert code == 0, err
    assert (
        "installed: .git/hooks/pre-push runs 'maf-preflight guard check --pre-push' before "
        "every push"
    ) in out
    lease_for_agent_b(capsys, "src/*.py")
    # Committed without the pre-commit hook (or before the lease was taken): the push is the
    # last place to catch it.
    change(repo, "src/app.py", "x = 2\n")
    run_git(repo, "commit", "-q", "--no-verify", "-m", "app")
    change(repo, "README.md", "# r\nmore\n")
    run_git(repo, "commit", "-q", "-m", "docs", MAF_AGENT_ID="agent-a")
    published = remote_head(remote, "main")

    ok, output = push_as(repo, "agent-a", "main")
    assert not ok, output
    assert f"conflict: {DEFAULT_CHECK_ID}: src/app.py: reserved by agent-b" in output
    assert "push blocked for agent 'agent-a'" in output
    assert remote_head(remote, "main") == published

    with shared_store(repo) as runtime:
        session = runtime.sessions()[0]  # newest first
        assert session.details["hook"] == "pre-push"
        assert session.details["push"]["commits"] == 2
        assert session.details["push"]["remote"] == "origin"
        assert session.status == "closed"
        [conflict] = [c for c in runtime.reservation_conflicts() if c.session_id == session.id]
        assert (conflict.agent_id, conflict.holder_agent_id, conflict.path) == (
            "agent-a",
            "agent-b",
            "src/app.py",
        )

    ok, output = push_as(repo, "agent-b", "main")  # the holder may push it
    assert ok, output
    assert "maf-preflight guard: ok: 2 pushed commits changing 2 files" in output
    assert remote_head(remote, "main") == run_git(repo, "rev-parse", "HEAD").stdout.strip()


def test_a_new_branch_is_judged_by_the_commits_no_remote_has(
    repo: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(capsys, "guard", "install", "--pre-push")[0] == 0
    lease_for_agent_b(capsys, "src/*.py")
    # src/app.py is in main's history, which origin has: a new branch does not send it again.
    run_git(repo, "switch", "-q", "-c", "docs")
    change(repo, "README.md", "# docs\n")
    run_git(repo, "commit", "-q", "-m", "docs", MAF_AGENT_ID="agent-a")
    ok, output = push_as(repo, "agent-a", "docs")
    assert ok, output
    assert "maf-preflight guard: ok: 1 pushed commit changing 1 file" in output
    assert remote_head(remote, "docs") is not None

    # A rename moves the leased file away: the old side counts.
    run_git(repo, "switch", "-q", "-c", "move", "main")
    (repo / "lib").mkdir()
    run_git(repo, "mv", "src/app.py", "lib/app.py")
    run_git(repo, "commit", "-q", "--no-verify", "-m", "move")
    ok, output = push_as(repo, "agent-a", "move")
    assert not ok, output
    assert "src/app.py: reserved by agent-b" in output
    assert remote_head(remote, "move") is None

    # Deleting a remote branch sends no commit: allowed, leases or not.
    ok, output = push_as(repo, "agent-a", "--delete", "docs")
    assert ok, output
    assert "the push sends no changed files" in output
    assert remote_head(remote, "docs") is None


def test_a_chained_pre_push_hook_gets_the_ref_lines_and_can_stop_the_push(
    repo: Path, remote: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hooks = repo / ".git" / "hooks"
    theirs = (
        '#!/bin/sh\ncat > "$(git rev-parse --git-dir)/seen"\necho "$1" >> "$(git '
        'rev-parse --git-dir)/seen"\nexit "${FAIL_PUSH:-0}"\n'
    )
    (hooks / "pre-push").write_text(theirs)
    (hooks / "pre-push").chmod(0o755)
    code, out, _ = run_main(capsys, "guard", "install", "--pre-push")
    assert code == 0
    assert f"the previous hook moved to .git/hooks/{PUSH_CHAINED_NAME} and runs first" in out
    assert PUSH_MARKER in (hooks / "pre-push").read_text()

    run_git(repo, "switch", "-q", "-c", "topic")
    change(repo, "README.md", "# topic\n")
    run_git(repo, "commit", "-q", "-m", "topic", MAF_AGENT_ID="agent-a")
    head = run_git(repo, "rev-parse", "HEAD").stdout.strip()
    failed = run_git(
        repo, "push", "origin", "topic", check=False, MAF_AGENT_ID="agent-a", FAIL_PUSH="1"
    )
    assert failed.returncode != 0
    assert remote_head(remote, "topic") is None
    ok, output = push_as(repo, "agent-a", "topic")
    assert ok, output
    seen = (repo / ".git" / "seen").read_text().splitlines()
    assert seen == [f"refs/heads/topic {head} refs/heads/topic {'0' * 40}", "origin"]

    code, out, _ = run_main(capsys, "guard", "uninstall", "--pre-push")
    assert code == 0
    assert (hooks / "pre-push").read_text() == theirs
    assert MARKER in (hooks / "pre-commit").read_text()  # only the pre-push hook went


def test_bad_pre_push_input_blocks_the_push_with_one_line(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("refs/heads/main nothex refs/heads/main 0\n"))
    code, _, err = run_main(capsys, "guard", "check", "--pre-push", "--agent", "agent-a")
    assert code == 1
    assert err.count("\n") == 1
    assert "push blocked: the pushed commits cannot be determined: pre-push input line 1" in err


def test_a_push_to_a_url_records_it_without_its_password(
    repo: Path, remote: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    head = run_git(repo, "rev-parse", "HEAD").stdout.strip()
    commit_line = f"refs/heads/main {head} refs/heads/x {'0' * 40}\n"
    run_git(repo, "switch", "-q", "-c", "x")
    change(repo, "README.md", "# x\n")
    run_git(repo, "commit", "-q", "-m", "x", MAF_AGENT_ID="agent-a")
    new = run_git(repo, "rev-parse", "HEAD").stdout.strip()
    monkeypatch.setattr("sys.stdin", io.StringIO(commit_line.replace(head, new)))
    code = main(
        [
            "guard",
            "check",
            "--pre-push",
            "--agent",
            "agent-a",
            "--json",
            "--remote=https://bot:hunter2@example.invalid/r.git",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "hunter2" not in out
    assert json.loads(out)["push"]["remote"] == "https://bot:***@example.invalid/r.git"
    with shared_store(repo) as runtime:
        assert "hunter2" not in json.dumps(runtime.sessions()[0].details)
