"""``maf-preflight escalate``: an escalation raised by hand from the shell, against the project's
configs, a real SQLite runtime and real mailbox files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers_cli import cli, run_main
from helpers_configs import write_config_in
from pytest_maf_preflight.runtime.records import EscalationRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

PATH = """\
id: on-call
name: Tell the on-call agent, then the lead
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: preflight_failure, threshold: 3}
  escalation_steps:
    - {level: 1, action: notify, target: on-call-agent, timeout_minutes: 15}
    - {level: 2, action: escalate, target: lead, timeout_minutes: 60}
"""

GUARDED = """\
id: guarded
name: Only the lead may page the board
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: preflight_failure}
  escalation_steps:
    - {level: 1, action: notify, target: board}
  permissions:
    escalate_to: {lead: [board]}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(tmp_path / "mail"))
    write_config_in(tmp_path, "on-call.yaml", PATH)
    write_config_in(tmp_path, "guarded.yaml", GUARDED)
    return tmp_path


def inbox(project: Path, target: str) -> list[dict[str, Any]]:
    folder = project / "mail" / "mailboxes" / target / "inbox"
    return (
        [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        if folder.is_dir()
        else []
    )


def stored(project: Path) -> list[EscalationRecord]:
    with SqliteRuntime(project / ".maf" / "runtime.db") as runtime:
        return runtime.escalations()


def test_escalate_opens_delivers_and_repeats(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(
        capsys,
        "escalate",
        "--path",
        "on-call",
        "--reason",
        "the staging database refuses connections",
        "--check",
        "db-check",
        "--agent",
        "BlueLake",
    )
    assert (code, err) == (0, "")
    [opened] = stored(project)
    assert out.splitlines() == [
        f"opened escalation {opened.id} (on-call:db-check:manual) at level 1, raised by BlueLake",
        "  delivery mailbox -> on-call-agent (level 1, attempt 1): delivered",
    ]
    assert (opened.check_id, opened.failure_class, opened.state) == (
        "db-check",
        "manual",
        "triggered",
    )
    assert opened.details["agent_id"] == "BlueLake"
    [message] = inbox(project, "on-call-agent")
    assert message["type"] == "ESCALATION_REQUEST"
    assert message["summary"] == "the staging database refuses connections"
    assert (message["severity"], message["agent_id"]) == ("critical", "BlueLake")

    code, out, err = run_main(
        capsys,
        "escalate",
        "--path=on-call",
        "--reason=still down",
        "--check=db-check",
        "--severity=warning",
        "--json",
        "--agent=RedStone",
    )
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert (shown["created"], shown["deliveries"]) == (False, [])
    assert (shown["escalation"]["id"], shown["escalation"]["occurrences"]) == (opened.id, 2)
    assert len(inbox(project, "on-call-agent")) == 1  # an occurrence is not delivered again


def test_escalate_as_a_command_takes_the_agent_from_the_environment(project: Path) -> None:
    done = cli(
        project,
        "escalate",
        "--path",
        "on-call",
        "--reason",
        "disk almost full",
        MAF_RUNTIME_MODE="sqlite",
        MAF_AGENT_MAIL_ROOT=str(project / "mail"),
        MAF_AGENT_ID="GreenField",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("opened escalation ")
    assert "(on-call:*:manual) at level 1, raised by GreenField" in done.stdout
    [opened] = stored(project)
    assert (opened.check_id, opened.details["summary"]) == (None, "disk almost full")


def test_an_unknown_path_lists_the_known_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(
        capsys, "escalate", "--path", "oncall", "--reason", "x", "--agent", "A"
    )
    assert (code, out) == (2, "")
    assert err == (
        "maf-preflight: error: no active escalation path 'oncall' in .maf/preflight-configs "
        "(known: guarded, on-call)\n"
    )
    assert stored(project) == []


def test_the_paths_permissions_apply(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "escalate", "--path=guarded", "--reason=x", "--agent=intern")
    assert code == 4
    assert "agent 'intern' may not escalate to 'board'" in err
    assert stored(project) == []
    code, _, err = run_main(capsys, "escalate", "--path=guarded", "--reason=x", "--agent=lead")
    assert (code, err) == (0, "")


def test_invalid_configs_and_bad_arguments(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("escalate", "--path=on-call", "--agent=A")
    code, _, err = run_main(capsys, *args, "--reason", "   ")
    assert (code, err) == (2, "maf-preflight: error: --reason is empty; say what is wrong\n")
    code, _, err = run_main(capsys, *args, "--reason=x", "--check", "../etc")
    assert code == 2
    assert "--check: '../etc' is not a check id" in err
    code, _, err = run_main(capsys, "escalate", "--path=on-call", "--reason=x")
    assert code == 2
    assert "no agent: give --agent NAME or set MAF_AGENT_ID" in err

    write_config_in(project, "on-call.yaml", PATH.replace("notify", "shout", 1))
    code, _, err = run_main(capsys, *args, "--reason=x")
    assert code == 1
    assert ".maf/preflight-configs/on-call.yaml:8: config.escalation_steps[0].action" in err
    assert "escalation path 'on-call' not read: the configs are invalid (1 error above)" in err
    assert stored(project) == []


def test_an_explicit_config_dir(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "p.yaml").write_text(PATH.replace("id: on-call", "id: elsewhere-path"))
    args = ("escalate", "--reason=x", "--agent=A", "--config-dir", str(elsewhere))
    code, _, err = run_main(capsys, *args, "--path=on-call")
    assert code == 2
    assert "(known: elsewhere-path)" in err
    code, _, err = run_main(capsys, *args, "--path=elsewhere-path")
    assert (code, err) == (0, "")
    code, _, err = run_main(capsys, *args[:-1], str(tmp_path / "missing"), "--path=on-call")
    assert (code, err) == (2, "maf-preflight: error: missing: no such file or directory\n")


def test_a_runtime_that_forgets_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_RUNTIME_MODE", "memory")
    code, _, err = run_main(capsys, "escalate", "--path=on-call", "--reason=x", "--agent=A")
    assert code == 2
    assert err == (
        "maf-preflight: error: not raised: the runtime is memory; an escalation needs the "
        "store that later ticks read\n"
    )
    assert inbox(project, "on-call-agent") == []
