"""mcp_agent_mail from linked worktrees: a source or target that names no project uses the main
checkout's project, so a reservation made on the server is seen from every worktree, and
escalations land in the same project. Real ``git worktree add`` checkouts, real pytest runs in
subprocesses, the loopback MCP server (tests/helpers_mcp_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_configs import ESCALATING_CHECK, write_config_in
from helpers_git import commit_base, worktree
from helpers_mcp_server import TOKEN, McpServer, url_of
from pytest_maf_preflight.agent_mail.projects import slugify


def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_identity: Path) -> Path:
    """A main checkout with one commit; ``.maf/`` is ignored, so each checkout writes its own
    configs (as an agent's worktree would have them)."""
    monkeypatch.setenv("MAIL_TOKEN", TOKEN)
    return commit_base(
        tmp_path / "main",
        {
            "src/a.py": "a = 1\n",
            "test_app.py": "def test_ordinary():\n    pass\n",
            "pytest.ini": "[pytest]\n",
            ".gitignore": ".maf/\n__pycache__/\n",
        },
    )


def gate(checkout: Path, agent: str = "GreenCastle") -> subprocess.CompletedProcess[str]:
    """``pytest --maf-preflight`` run in ``checkout``, as an agent working there runs it."""
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "maf_preflight",
            "--maf-preflight",
            f"--maf-agent-id={agent}",
            "--maf-runtime=sqlite",
            "-W",
            "ignore::pytest.PytestWarning",
            "-p",
            "no:cacheprovider",
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def lock_validation(mcp_server: McpServer) -> str:
    return f"""\
id: no-foreign-reservations
name: Changed files are not reserved on the agent-mail server
config_type: reservation_check
config:
  check_type: lock_validation
  parameters:
    changed_files: git
    agent_mail: {{url: "{url_of(mcp_server)}", token_env: MAIL_TOKEN}}
"""


def test_a_reservation_on_the_main_checkouts_project_is_seen_from_a_worktree(
    repo: Path, mcp_server: McpServer
) -> None:
    wt = worktree(repo, "green")
    # BlueLake reserved src/** on the server for the project of the main checkout (its path is
    # the human key agents register with); nothing exists under the worktree's path.
    mcp_server.projects = {
        slugify(str(repo)): [
            {
                "id": 7,
                "agent": "BlueLake",
                "path_pattern": "src/**",
                "exclusive": True,
                "expires_ts": iso(time.time() + 3600),
                "released_ts": None,
            }
        ]
    }
    for checkout in (repo, wt):
        write_config_in(checkout, "lock.yaml", lock_validation(mcp_server))

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
    write_config_in(
        wt,
        "lock.yaml",
        lock_validation(mcp_server).replace(
            "token_env: MAIL_TOKEN}", f"token_env: MAIL_TOKEN, project: {wt}}}"
        ),
    )
    assert gate(wt).returncode == 0


def escalation_path(mcp_server: McpServer) -> str:
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
    on-call-agent: {{channel: agent_mail, url: "{url_of(mcp_server)}", token_env: MAIL_TOKEN}}
"""


def test_an_escalation_from_a_worktree_goes_to_the_main_checkouts_project(
    repo: Path, mcp_server: McpServer
) -> None:
    wt = worktree(repo, "blue")
    write_config_in(wt, "check.yaml", ESCALATING_CHECK)
    write_config_in(wt, "path.yaml", escalation_path(mcp_server))
    result = gate(wt, agent="BlueLake")
    assert result.returncode == 10, result.stdout + result.stderr
    assert "delivery agent_mail -> on-call-agent (level 1, attempt 1): delivered" in result.stdout
    [sent] = mcp_server.sent
    assert sent["arguments"]["project_key"] == str(repo)
    assert sent["arguments"]["to"] == ["on-call-agent"]
