"""``maf-preflight guard install|check|uninstall``: real git repositories, real ``git commit``
runs through the installed hook, the real SQLite lease store."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from helpers_cli import run_main
from helpers_configs import write_config_in
from helpers_git import run_git, shared_store
from helpers_guard import commits, guard_repo, lease_for_agent_b
from pytest_maf_preflight.cli.guard_check import DEFAULT_CHECK_ID
from pytest_maf_preflight.cli.guard_commands import CHAINED_NAME, MARKER
from pytest_maf_preflight.cli.main import main


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_identity: Path) -> Path:
    """A git repository with one commit, the current directory, using the SQLite runtime."""
    return guard_repo(tmp_path / "repo", monkeypatch)


def hooks_dir(root: Path) -> Path:
    return root / ".git" / "hooks"


# --- install / uninstall -------------------------------------------------------------------------


def test_install_writes_an_executable_hook_and_reinstalling_changes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, "guard", "install")
    assert code == 0, err
    hook = hooks_dir(repo) / "pre-commit"
    text = hook.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert MARKER in text.splitlines()
    assert f"exec {sys.executable} -m pytest_maf_preflight.cli guard check" in text
    assert hook.stat().st_mode & stat.S_IXUSR
    assert out == (
        "installed: .git/hooks/pre-commit runs 'maf-preflight guard check' before every commit\n"
    )
    assert not (hooks_dir(repo) / CHAINED_NAME).exists()

    code, out, _ = run_main(capsys, "guard", "install")
    assert code == 0
    assert out.startswith("already installed: ")
    assert hook.read_text() == text
    assert not (hooks_dir(repo) / CHAINED_NAME).exists()  # never chained to itself

    hook.write_text(text.replace(sys.executable, "/old/python"))  # an older interpreter
    code, out, _ = run_main(capsys, "guard", "install", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "updated"
    assert hook.read_text() == text
    assert not (hooks_dir(repo) / CHAINED_NAME).exists()


def test_install_honours_core_hooks_path_and_repo_option(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_git(repo, "config", "core.hooksPath", "tools/hooks")
    monkeypatch.chdir(tmp_path)
    code = main(["guard", "install", "--repo", str(repo), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["status"] == "installed"
    assert Path(data["hook"]) == repo / "tools" / "hooks" / "pre-commit"
    assert is_executable(repo / "tools" / "hooks" / "pre-commit")
    assert not (hooks_dir(repo) / "pre-commit").exists()


def is_executable(path: Path) -> bool:
    return os.access(path, os.X_OK)


def test_install_outside_a_repository_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    (tmp_path / "plain").mkdir()
    code, _, err = run_main(capsys, "guard", "install", "--repo", str(tmp_path / "plain"))
    assert code == 2
    assert err.count("\n") == 1
    assert "not a git repository" in err
    code, _, err = run_main(capsys, "guard", "install", "--repo", str(tmp_path / "missing"))
    assert code == 2
    assert "no such directory" in err


def test_an_existing_hook_is_chained_and_uninstall_puts_it_back(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = hooks_dir(repo) / "pre-commit"
    original = '#!/bin/sh\necho theirs >> "$(git rev-parse --show-toplevel)/chained.log"\n'
    hook.write_text(original)
    hook.chmod(0o755)
    code, out, _ = run_main(capsys, "guard", "install")
    assert code == 0
    chained = hooks_dir(repo) / CHAINED_NAME
    assert chained.read_text() == original
    assert is_executable(chained)
    assert MARKER in hook.read_text()
    assert "previous hook moved to .git/hooks/pre-commit.maf-chained and runs first" in out
    assert run_main(capsys, "guard", "install")[0] == 0  # again: the chained hook stays as it is
    assert chained.read_text() == original

    code, out, _ = run_main(capsys, "guard", "uninstall")
    assert code == 0
    assert "the previous hook is back" in out
    assert hook.read_text() == original
    assert is_executable(hook)
    assert not chained.exists()
    assert run_main(capsys, "guard", "uninstall")[1].startswith(
        "not installed: .git/hooks/pre-commit is another hook; left alone"
    )
    assert hook.read_text() == original
    hook.unlink()
    assert run_main(capsys, "guard", "uninstall")[1] == "not installed: no .git/hooks/pre-commit\n"


def test_an_existing_chained_file_is_never_overwritten(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook, chained = hooks_dir(repo) / "pre-commit", hooks_dir(repo) / CHAINED_NAME
    hook.write_text("#!/bin/sh\nexit 0\n")
    chained.write_text("#!/bin/sh\necho older\n")
    code, _, err = run_main(capsys, "guard", "install")
    assert code == 2
    assert "already exists, so it cannot be chained" in err
    assert err.count("\n") == 1
    assert hook.read_text() == "#!/bin/sh\nexit 0\n"

    code, data = (
        main(["guard", "install", "--force", "--json"]),
        json.loads(capsys.readouterr().out),
    )
    assert code == 0
    backup = hooks_dir(repo) / "pre-commit.bak"
    assert data["backup"] == str(backup)
    assert backup.read_text() == "#!/bin/sh\nexit 0\n"
    assert chained.read_text() == "#!/bin/sh\necho older\n"
    assert MARKER in hook.read_text()


# --- real commits through the hook ---------------------------------------------------------------


def test_the_hook_blocks_a_commit_under_another_agents_lease_and_lets_others_through(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lease_for_agent_b(capsys, "src/*.py")
    assert run_main(capsys, "guard", "install")[0] == 0
    base = commits(repo)

    (repo / "README.md").write_text("# r\nmore\n")
    run_git(repo, "add", "README.md")
    ok = run_git(repo, "commit", "-m", "docs", check=False, MAF_AGENT_ID="agent-a")
    assert ok.returncode == 0, ok.stderr
    assert "maf-preflight guard: ok: 1 staged file, 1 check (sqlite)" in ok.stdout + ok.stderr
    assert commits(repo) == base + 1

    (repo / "src" / "app.py").write_text("x = 2\n")
    run_git(repo, "add", "src/app.py")
    blocked = run_git(repo, "commit", "-m", "app", check=False, MAF_AGENT_ID="agent-a")
    assert blocked.returncode != 0
    output = blocked.stdout + blocked.stderr
    assert (
        f"conflict: {DEFAULT_CHECK_ID}: src/app.py: reserved by agent-b (exclusive lease " in output
    )
    assert "commit blocked for agent 'agent-a'" in output
    assert commits(repo) == base + 1

    # The holder itself may commit the file.
    mine = run_git(repo, "commit", "-m", "app", check=False, MAF_AGENT_ID="agent-b")
    assert mine.returncode == 0, mine.stderr
    assert commits(repo) == base + 2

    with shared_store(repo) as runtime:
        sessions = runtime.sessions()
        assert [s.details["trigger"] for s in sessions] == ["guard"] * 3
        assert [s.status for s in sessions] == ["open", "closed", "open"]
        (conflict,) = runtime.reservation_conflicts()
        assert (conflict.agent_id, conflict.holder_agent_id, conflict.path, conflict.status) == (
            "agent-a",
            "agent-b",
            "src/app.py",
            "open",
        )
        assert conflict.session_id == sessions[1].id
        assert [e.status for e in runtime.executions(config_id=DEFAULT_CHECK_ID)] == [
            "passed",
            "failed",
            "passed",
        ]


def test_the_override_lets_the_commit_through_loudly_and_records_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lease_for_agent_b(capsys, "src/")
    assert run_main(capsys, "guard", "install")[0] == 0
    (repo / "src" / "app.py").write_text("x = 3\n")
    run_git(repo, "add", "-A")
    result = run_git(
        repo,
        "commit",
        "-m",
        "anyway",
        check=False,
        MAF_AGENT_ID="agent-a",
        MAF_RESERVATION_OVERRIDE="1",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "maf-preflight: WARNING: MAF_RESERVATION_OVERRIDE=1 lets this commit through despite "
        f"1 reservation conflict of {DEFAULT_CHECK_ID}"
    ) in result.stderr
    assert "overridden: src/app.py: reserved by agent-b" in result.stderr
    with shared_store(repo) as runtime:
        (conflict,) = runtime.reservation_conflicts()
        assert conflict.status == "overridden"
        assert conflict.override


def test_the_chained_hook_runs_first_and_its_failure_stops_the_commit(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = hooks_dir(repo) / "pre-commit"
    hook.write_text(
        '#!/bin/sh\necho "ran $MAF_AGENT_ID" >> "$(git rev-parse --git-dir)/marker"\n'
        'exit "${FAIL_CHAINED:-0}"\n'
    )
    hook.chmod(0o755)
    assert run_main(capsys, "guard", "install")[0] == 0
    marker = repo / ".git" / "marker"
    base = commits(repo)

    (repo / "README.md").write_text("changed\n")
    run_git(repo, "add", "README.md")
    failed = run_git(
        repo, "commit", "-m", "x", check=False, MAF_AGENT_ID="agent-a", FAIL_CHAINED="3"
    )
    assert failed.returncode != 0
    assert marker.read_text() == "ran agent-a\n"
    assert commits(repo) == base
    assert "maf-preflight guard" not in failed.stdout + failed.stderr  # stopped before it ran
    with shared_store(repo) as runtime:
        assert runtime.sessions() == []

    passed = run_git(repo, "commit", "-m", "x", check=False, MAF_AGENT_ID="agent-a")
    assert passed.returncode == 0, passed.stderr
    assert marker.read_text() == "ran agent-a\nran agent-a\n"
    assert commits(repo) == base + 1


# --- guard check ---------------------------------------------------------------------------------

STRICT = """\
id: staged-under-own-lease
name: Every change under one of my leases
config_type: reservation_check
config:
  check_type: lock_validation
  parameters: {changed_files: git, mode: strict}
"""


def test_check_runs_the_projects_configs_on_staged_files_only(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config_in(repo, "strict.yaml", STRICT)
    monkeypatch.setenv("MAF_AGENT_ID", "agent-a")
    (repo / "README.md").write_text("unstaged\n")  # "git" mode would see it; staged does not
    code, out, err = run_main(capsys, "guard", "check")
    assert code == 0, out + err
    assert out == "maf-preflight guard: ok: 0 staged files, 1 check (sqlite)\n"

    (repo / "src" / "new.py").write_text("y = 1\n")
    run_git(repo, "add", "src/new.py")
    code, out, err = run_main(capsys, "guard", "check")
    assert code == 1
    assert out.startswith("conflict: staged-under-own-lease: src/new.py: ")
    assert "commit blocked" in err
    assert run_main(capsys, "reservations", "acquire", "src/", "--ttl", "60")[0] == 0
    code, data = main(["guard", "check", "--json"]), json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["ok"]
    assert data["staged_files"] == 1
    assert data["blocking"] == []
    (result,) = data["results"]
    assert result["check_id"] == "staged-under-own-lease"
    assert result["details"]["changes_source"] == "git: staged changes"
    assert result["details"]["changed_files"] == ["src/new.py"]
    with shared_store(repo) as runtime:
        session = runtime.get_session(data["session_id"])
        assert session is not None
        assert session.details["trigger"] == "guard"
        assert session.agent_id == "agent-a"
        assert [s.config_id for s in runtime.config_snapshots()] == ["staged-under-own-lease"]


def test_a_warning_severity_config_reports_without_blocking(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config_in(
        repo, "warn.yaml", STRICT.replace("config_type:", "severity: warning\nconfig_type:")
    )
    (repo / "src" / "app.py").write_text("x = 9\n")
    run_git(repo, "add", "-A")
    code, out, _ = run_main(capsys, "guard", "check", "--agent", "agent-a")
    assert code == 0
    assert out.splitlines()[0].startswith("warning: staged-under-own-lease: src/app.py: ")


def test_check_fails_closed(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An invalid config: nothing can be checked, so the commit is blocked.
    write_config_in(repo, "bad.yaml", STRICT.replace("lock_validation", "lock_valdation"))
    code, _, err = run_main(capsys, "guard", "check")
    assert code == 1
    assert "bad.yaml" in err
    assert "commit blocked: the preflight configs are invalid" in err
    (repo / ".maf" / "preflight-configs" / "bad.yaml").unlink()

    # SQLite cannot start and the chain falls back to memory: no other agent's lease is
    # visible there, so the check errors instead of passing.
    (repo / "db-dir").mkdir()
    monkeypatch.setenv("MAF_DB_PATH", str(repo / "db-dir"))
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite,memory")
    code, out, err = run_main(capsys, "guard", "check", "--agent", "agent-a")
    assert code == 1
    assert out.startswith(f"error: {DEFAULT_CHECK_ID}: error: ")
    assert "fell back to memory" in out
    assert "(the check fails closed)" in out
    assert "note: runtime sqlite: " in err

    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    code, _, err = run_main(capsys, "guard", "check")
    assert code == 1
    assert "commit blocked: no lease store to check against" in err


def test_check_outside_a_work_tree_and_bad_agent_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "guard", "check")
    assert code == 2
    assert "not inside a git work tree" in err
    code, _, err = run_main(capsys, "guard", "check", "--agent", "a b")
    assert code == 2
    assert "--agent: 'a b' is not a valid agent name" in err
