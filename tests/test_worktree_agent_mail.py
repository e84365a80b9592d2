"""mcp_agent_mail from linked worktrees: a source or target that names no project uses the main
checkout's project, so a reservation made on the server is seen from every worktree, and
escalations land in the same project. Real ``git worktree add`` checkouts, real pytest runs in
subprocesses, the loopback MCP server (tests/helpers_mcp_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_git import git
from helpers_mcp_server import TOKEN, McpServer, serve, url_of
from pytest_maf_preflight.agent_mail.projects import slugify


def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at))


@pytest.fixture
def server() -> Iterator[McpServer]:
    with serve() as running:
        yield running


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A main checkout with one commit; ``.maf/`` is ignored, so each checkout writes its own
    configs (as an agent's worktree would have them)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name, value in (("GIT_AUTHOR_NAME", "t"), ("GIT_AUTHOR_EMAIL", "t@example.invalid"),
                        ("GIT_COMMITTER_NAME", "t"), ("GIT_COMMITTER_EMAIL", "t@example.invalid")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAIL_TOKEN", TOKEN)
    root = tmp_path / "main"
    (root / "src").mkdir(parents=True)
    (root / "src" / "a.py").write_text("a = 1\n")
    (root / "test_app.py").write_text("def test_ordinary():\n    pass\n")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / ".gitignore").write_text(".maf/\n__pycache__/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def worktree(repo: Path, name: str) -> Path:
    path = repo.parent / name
    git(repo, "worktree", "add", "-q", "-b", name, str(path))
    return path


def write_config(checkout: Path, name: str, text: str) -> None:
    path = checkout / ".maf" / "preflight-configs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def gate(checkout: Path, agent: str = "GreenCastle") -> subprocess.CompletedProcess[str]:
    """``pytest --maf-preflight`` run in ``checkout``, as an agent working there runs it."""
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "maf_preflight", "--maf-preflight",
         f"--maf-agent-id={agent}", "--maf-runtime=sqlite", "-W", "ignore::pytest.PytestWarning",
         "-p", "no:cacheprovider"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=120)


def lock_validation(server: McpServer) -> str:
    return f"""\
id: no-foreign-reservations
name: Changed files are not reserved on the agent-mail server
config_type: reservation_check
config:
  check_type: lock_validation
  parameters:
    changed_files: git
    agent_mail: {{url: "{url_of(server)}", token_env: MAIL_TOKEN}}
"""


def test_a_reservation_on_the_main_checkouts_project_is_seen_from_a_worktree(
        repo: Path, server: McpServer) -> None:
    wt = worktree(repo, "green")
    # BlueLake reserved src/** on the server for the project of the main checkout (its path is
    # the human key agents register with); nothing exists under the worktree's path.
    server.projects = {slugify(str(repo)): [
        {"id": 7, "agent": "BlueLake", "path_pattern": "src/**", "exclusive": True,
         "expires_ts": iso(time.time() + 3600), "released_ts": None}]}
    for checkout in (repo, wt):
        write_config(checkout, "lock.yaml", lock_validation(server))

    clean = gate(wt)
    assert clean.returncode == 0, clean.stdout + clean.stderr

    (wt / "src" / "a.py").write_text("a = 2\n")
    closed = gate(wt)
    assert closed.returncode == 10, closed.stdout + closed.stderr
    assert "src/a.py: reserved by BlueLake" in closed.stdout
    assert f"project {slugify(str(repo))})" in closed.stdout

    # The main checkout reads the same project, as it always did.
    (repo / "src" / "a.py").write_text("a = 3\n")
    assert gate(repo).returncode == 10
    # An explicit project still wins: the worktree's own (empty) project opens the gate.
    write_config(wt, "lock.yaml", lock_validation(server).replace(
        "token_env: MAIL_TOKEN}", f"token_env: MAIL_TOKEN, project: {wt}}}"))
    assert gate(wt).returncode == 0


ESCALATING = """\
id: needs-var
name: A variable this test controls
config_type: smoke_test
escalation_path: on-call
config:
  test_type: environment
  test_definition: {required: [MAF_TEST_ESCALATION_VAR]}
"""


def escalation_path(server: McpServer) -> str:
    return f"""\
id: on-call
name: Tell the on-call agent
config_type: escalation_path
config:
  trigger_conditions:
    - {{condition: preflight_failure, operator: gte, threshold: 1}}
  escalation_steps:
    - {{level: 1, action: notify, target: on-call-agent, timeout_minutes: 5}}
  targets:
    on-call-agent: {{channel: agent_mail, url: "{url_of(server)}", token_env: MAIL_TOKEN}}
"""


def test_an_escalation_from_a_worktree_goes_to_the_main_checkouts_project(
        repo: Path, server: McpServer) -> None:
    wt = worktree(repo, "blue")
    write_config(wt, "check.yaml", ESCALATING)
    write_config(wt, "path.yaml", escalation_path(server))
    result = gate(wt, agent="BlueLake")
    assert result.returncode == 10, result.stdout + result.stderr
    assert "delivery agent_mail -> on-call-agent (level 1, attempt 1): delivered" in result.stdout
    [sent] = server.sent
    assert sent["arguments"]["project_key"] == str(repo)
    assert sent["arguments"]["to"] == ["on-call-agent"]
