"""Every worktree of a repository shares one store by default (issue 12, item 1): real git
repositories, real ``git worktree add`` checkouts, real pytest and CLI processes, real SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers_git import LOCK_VALIDATION, commit_base, git, shared_db, worktree
from helpers_original_maf import build_database, fingerprint
from pytest_maf_preflight.runtime.factory import resolve_runtime_settings
from pytest_maf_preflight.runtime.records import (
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

#: Holds each gate run just before it records, until the test lets every run go at once.
BARRIER_CONFTEST = """\
import os, pathlib, time

def pytest_sessionfinish(session):
    barrier = os.environ.get("WT_TEST_BARRIER")
    if not barrier:
        return
    root = pathlib.Path(barrier)
    (root / "ready" / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while not (root / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
"""


@dataclass
class Repo:
    main: Path
    green: Path

    def shared_db(self) -> Path:
        return shared_db(self.main)


@pytest.fixture
def repo(tmp_path: Path, git_identity: Path) -> Repo:
    """A main checkout on ``main`` (a lock_validation check committed) and a worktree."""
    main = commit_base(
        tmp_path / "main",
        {
            "src/a.py": "a = 1\n",
            "pytest.ini": "[pytest]\n",
            "conftest.py": BARRIER_CONFTEST,
            "test_app.py": "def test_ordinary():\n    pass\n",
            ".gitignore": ".maf/runtime.db*\n.agent-mail/\n__pycache__/\n",
            ".maf/preflight-configs/leases.yaml": LOCK_VALIDATION,
        },
    )
    return Repo(main=main, green=worktree(main, "green"))


def _env(extra: dict[str, str]) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MAF_", "GIT_DIR"))}
    environ.update(extra)
    return environ


def gate(cwd: Path, agent: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "maf_preflight",
            "--maf-preflight",
            f"--maf-agent-id={agent}",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_maf_preflight.cli", *args],
        cwd=cwd,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def header(result: subprocess.CompletedProcess[str]) -> str:
    [line] = [
        line for line in result.stdout.splitlines() if line.startswith("maf-preflight: agent ")
    ]
    return line


def history(cwd: Path, **env: str) -> list[dict[str, object]]:
    result = cli(cwd, "history", "--json", **env)
    assert result.returncode == 0, result.stderr
    executions: list[dict[str, object]] = json.loads(result.stdout)["executions"]
    return executions


def old_store(path: Path, config_id: str = "imported-check") -> None:
    """A per-checkout store of ours as older versions wrote it, with one recorded session."""
    started = time.time() - 3600
    session = SessionRecord(
        id=new_id(),
        agent_id="OldAgent",
        environment="development",
        started_at=started,
        completed_at=started + 1,
        status="open",
        exit_code=0,
        runtime_mode="sqlite",
    )
    run = ExecutionRecord(
        id=new_id(),
        session_id=session.id,
        config_id=config_id,
        config_version="1.0.0",
        agent_id="OldAgent",
        kind="check",
        status="passed",
        started_at=started,
        completed_at=started + 0.1,
        duration=0.1,
        attempts=1,
    )
    with SqliteRuntime(path) as runtime:
        runtime.record_session(SessionBundle(session=session, executions=(run,)))


# --- the scenario -----------------------------------------------------------------


def test_a_lease_taken_in_the_main_checkout_closes_the_gate_in_a_worktree(repo: Repo) -> None:
    acquired = cli(
        repo.main,
        "reservations",
        "acquire",
        "src/**",
        "--agent",
        "BlueLake",
        "--ttl",
        "600",
        "--reason",
        "refactor",
    )
    assert acquired.returncode == 0, acquired.stderr
    (repo.green / "src" / "a.py").write_text("a = 2\n")

    result = gate(repo.green, "GreenCastle")

    assert result.returncode == 10, result.stdout + result.stderr
    assert "src/a.py: reserved by BlueLake" in result.stdout
    assert header(result).endswith(
        f"runtime sqlite (shared by the worktrees of {repo.main}), 1 check from 1 config file"
    )
    assert not (repo.main / ".maf" / "runtime.db").exists()
    assert not (repo.green / ".maf" / "runtime.db").exists()
    # The same lease seen from both sides, through the CLI.
    for where in (repo.main, repo.green):
        listed = cli(where, "reservations", "list", "--json")
        assert [lease["agent_id"] for lease in json.loads(listed.stdout)["leases"]] == ["BlueLake"]


def test_the_guard_in_a_worktree_sees_a_lease_of_the_main_checkout(repo: Repo) -> None:
    acquired = cli(
        repo.main, "reservations", "acquire", "src/**", "--agent", "BlueLake", "--ttl", "600"
    )
    assert acquired.returncode == 0, acquired.stderr
    (repo.green / "src" / "a.py").write_text("a = 2\n")
    git(repo.green, "add", "src/a.py")

    result = cli(repo.green / "src", "guard", "check", "--agent", "GreenCastle")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "reserved by BlueLake" in result.stdout + result.stderr


def test_executions_of_both_worktrees_are_in_one_history(repo: Repo) -> None:
    assert gate(repo.main, "BlueLake").returncode == 0
    assert gate(repo.green, "GreenCastle").returncode == 0

    seen = [
        sorted(str(e["agent_id"]) for e in history(where))
        for where in (repo.main, repo.green, repo.green / "src")
    ]
    assert seen == [["BlueLake", "GreenCastle"]] * 3


def test_two_worktrees_record_at_the_same_time_into_the_one_store(
    repo: Repo, tmp_path: Path
) -> None:
    barrier = tmp_path / "barrier"
    (barrier / "ready").mkdir(parents=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "-p",
        "no:cacheprovider",
    ]
    runs = [
        (where, agent, n)
        for n in range(2)
        for where, agent in ((repo.main, "BlueLake"), (repo.green, "GreenCastle"))
    ]
    procs = [
        subprocess.Popen(
            [*command, f"--maf-agent-id={agent}"],
            cwd=where,
            env=_env({"WT_TEST_BARRIER": str(barrier)}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for where, agent, _ in runs
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list((barrier / "ready").iterdir())) < len(procs):
            assert all(p.poll() is None for p in procs), "a run ended before the barrier"
            assert time.monotonic() < deadline, "the runs never reached the barrier"
            time.sleep(0.01)
        (barrier / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
        assert f"recorded 1 execution(s) in sqlite ({repo.shared_db()})" in out
    assert sorted(str(e["agent_id"]) for e in history(repo.green)) == [
        "BlueLake",
        "BlueLake",
        "GreenCastle",
        "GreenCastle",
    ]


# --- explicit settings win ------------------------------------------------------------------


def test_maf_db_path_wins_over_the_shared_store(repo: Repo, tmp_path: Path) -> None:
    own = tmp_path / "own.db"
    result = gate(repo.green, "GreenCastle", MAF_DB_PATH=str(own))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime sqlite (MAF_DB_PATH)" in header(result)
    assert not repo.shared_db().exists()
    info = json.loads(cli(repo.green, "runtime", "info", "--json", MAF_DB_PATH=str(own)).stdout)
    assert (info["location"], info["why"]) == (str(own), "MAF_DB_PATH")


def test_maf_agent_mail_root_places_the_json_runtime(repo: Repo, tmp_path: Path) -> None:
    shared = gate(repo.green, "GreenCastle", "--maf-runtime=json")
    assert f"runtime json (shared by the worktrees of {repo.main})" in header(shared)
    assert (repo.main / ".git" / "maf-preflight" / "runtime").is_dir()

    mail = tmp_path / "mail"
    explicit = gate(repo.green, "GreenCastle", "--maf-runtime=json", MAF_AGENT_MAIL_ROOT=str(mail))
    assert "runtime json (MAF_AGENT_MAIL_ROOT)" in header(explicit)
    assert (mail / "runtime").is_dir()


def test_the_maf_runtime_fixture_keeps_its_temporary_store(repo: Repo) -> None:
    (repo.green / "test_app.py").write_text(
        "def test_records(maf_runtime):\n"
        "    maf_runtime.heartbeat('fixture-agent')\n"
        "    assert maf_runtime.mode == 'json'\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "maf_preflight", "-p", "no:cacheprovider"],
        cwd=repo.green,
        env=_env({"MAF_RUNTIME_MODE": "json"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (repo.main / ".git" / "maf-preflight").exists()


# --- outside git, and where git's files cannot be read ----------------------------------------


def test_outside_git_the_rootdir_keeps_its_store(tmp_path: Path) -> None:
    project = tmp_path / "plain"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_app.py").write_text("def test_ordinary():\n    pass\n")
    result = gate(project, "BlueLake")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runtime sqlite (rootdir .maf, not a git repository)" in header(result)
    assert (project / ".maf" / "runtime.db").is_file()
    settings = resolve_runtime_settings(project, {})
    assert (settings.db_path, settings.mail_root, settings.json_dir) == (
        project / ".maf" / "runtime.db",
        project / ".agent-mail",
        project / ".agent-mail",
    )


def test_worktrees_of_a_bare_repository_share_a_store_in_it(repo: Repo, tmp_path: Path) -> None:
    bare = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo.main), str(bare))
    for name in ("one", "two"):
        git(bare, "worktree", "add", "-q", "-b", name, str(tmp_path / name), "main")
    one, two = (resolve_runtime_settings(tmp_path / n, {}) for n in ("one", "two"))
    assert one.db_path == two.db_path == bare.resolve() / "maf-preflight" / "runtime.db"
    assert one.db_path_source == f"shared by the worktrees of {bare}"


def test_a_git_file_that_cannot_be_followed_is_one_clear_error(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / ".git").write_text("gitdir: ../nowhere\n")
    (project / "test_app.py").write_text("def test_ordinary():\n    pass\n")
    result = gate(project, "BlueLake")
    assert result.returncode == 4  # pytest's usage error
    assert "cannot tell where the shared store is" in result.stderr
    assert "MAF_DB_PATH" in result.stderr
    assert "Traceback" not in result.stderr
    listed = cli(project, "history")
    assert listed.returncode == 2
    assert listed.stderr.count("\n") == 1
    assert "cannot tell where the shared store is" in listed.stderr
    # Explicit paths place the store without looking at git's files.
    placed = gate(
        project,
        "BlueLake",
        MAF_DB_PATH=str(tmp_path / "x.db"),
        MAF_AGENT_MAIL_ROOT=str(tmp_path / "mail"),
    )
    assert placed.returncode == 0, placed.stdout + placed.stderr


# --- the older per-checkout store -------------------------------------------------------------


def test_an_older_store_of_the_checkout_is_reported_until_imported(repo: Repo) -> None:
    old = repo.green / ".maf" / "runtime.db"
    old_store(old)

    first = gate(repo.green, "GreenCastle")
    notice = (
        "maf-preflight: WARNING an older store of this checkout is at .maf/runtime.db, not "
        "the shared one; import it with: maf-preflight runtime sync --from sqlite "
        "--from-path .maf/runtime.db"
    )
    assert first.stdout.count(notice) == 1, first.stdout
    info = cli(repo.green, "runtime", "info")
    assert "note: an older store of this checkout is at .maf/runtime.db" in info.stdout

    synced = cli(
        repo.green,
        "runtime",
        "sync",
        "--from",
        "sqlite",
        "--from-path",
        ".maf/runtime.db",
        "--json",
    )
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert (report["copied"]["sessions"], report["copied"]["executions"]) == (1, 1)
    assert report["target"] == f"sqlite ({repo.shared_db()})"
    # Imported: visible from the main checkout, and the notice is gone.
    assert "imported-check" in {e["config_id"] for e in history(repo.main)}
    assert "older store" not in gate(repo.green, "GreenCastle").stdout
    assert "older store" not in cli(repo.green, "runtime", "info").stdout
    again = json.loads(
        cli(
            repo.green,
            "runtime",
            "sync",
            "--from",
            "sqlite",
            "--from-path",
            ".maf/runtime.db",
            "--json",
        ).stdout
    )
    assert again["total_copied"] == 0
    assert again["complete"]

    # Written to again after the import (an older version still running there): reported again.
    old_store(old, config_id="written-later")
    assert notice in gate(repo.green, "GreenCastle").stdout


def test_an_original_maf_database_is_neither_reported_nor_imported(repo: Repo) -> None:
    foreign = repo.green / ".maf" / "runtime.db"
    build_database(foreign)
    before = fingerprint(foreign)

    result = gate(repo.green, "GreenCastle")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "older store" not in result.stdout
    assert "older store" not in cli(repo.green, "runtime", "info").stdout
    refused = cli(
        repo.green, "runtime", "sync", "--from", "sqlite", "--from-path", ".maf/runtime.db"
    )
    assert refused.returncode == 2
    assert "is not a maf-preflight store" in refused.stderr
    assert fingerprint(foreign) == before


# --- the idle path ------------------------------------------------------------------------------


def test_a_run_without_the_gate_does_not_look_for_the_repository(repo: Repo) -> None:
    (repo.green / "test_app.py").write_text(
        "import sys\n"
        "def test_nothing_located():\n"
        "    assert 'pytest_maf_preflight.runtime.location' not in sys.modules\n"
        "    assert 'pytest_maf_preflight.gitdirs' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "maf_preflight", "-p", "no:cacheprovider"],
        cwd=repo.green,
        env=_env({}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
