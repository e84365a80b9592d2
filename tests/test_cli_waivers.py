"""``maf-preflight waive``, ``waivers``, ``silence`` and ``escalations approve|reject`` against a
real SQLite runtime and real configs: what they record, and their errors as one line."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from helpers_cli import cli, run_main
from helpers_configs import write_config_in
from pytest_maf_preflight.cli.durations import parse_duration, shown
from pytest_maf_preflight.runtime.records import EscalationRecord, SilenceRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

CHECK = """\
id: api-up
name: The API answers
config_type: smoke_test
escalation_path: deciders
config:
  test_type: environment
  test_definition: {required: [MAF_TEST_CLI_WAIVERS_VAR]}
"""
#: A path whose first step asks the lead to decide.
DECIDERS = """\
id: deciders
name: The lead decides
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: preflight_failure, operator: gte, threshold: 1}
  escalation_steps:
    - {level: 1, action: approve, target: lead, timeout_minutes: 30, waiver_minutes: 90}
  targets:
    lead: {channel: mailbox}
  permissions:
    approve: [lead]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    monkeypatch.setenv("MAF_DB_PATH", str(tmp_path / "runtime.db"))
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(tmp_path / "mail"))
    monkeypatch.delenv("MAF_AGENT_ID", raising=False)
    monkeypatch.delenv("AGENT_NAME", raising=False)
    write_config_in(tmp_path, "check.yaml", CHECK)
    write_config_in(tmp_path, "path.yaml", DECIDERS)
    return tmp_path


def store(project: Path) -> SqliteRuntime:
    return SqliteRuntime(project / "runtime.db")


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("1d", 86400), ("90s", 90), ("1h30m", 5400), ("1.5H", 5400)],
)
def test_durations_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2", "is not a duration"),
        ("2x", "is not a duration"),
        ("h", "is not a duration"),
        ("", "is not a duration"),
        ("-1h", "is not a duration"),
        ("2 h", "is not a duration"),
        ("0m", "is no time at all"),
        ("400d", "longer than the longest allowed, 366d"),
    ],
)
def test_bad_durations_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_duration(text)


def test_durations_are_shown_compactly() -> None:
    assert [shown(s) for s in (7200, 5400, 45, 90061)] == ["2h", "1h30m", "45s", "1d1h1m1s"]


# --- errors are one line -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (
            ["waive", "api-up", "--for", "2x", "--reason", "r"],
            2,
            "argument --for: '2x' is not a duration (a number and a unit s, m, h or d: 90s, "
            "30m, 2h, 1.5d, 1h30m)",
        ),
        (
            ["waive", "nope", "--for", "2h", "--reason", "r"],
            2,
            "no active check 'nope' in .maf/preflight-configs (known: api-up)",
        ),
        (["waive", "api-up", "--for", "2h", "--reason", "  "], 2, "--reason is empty"),
        (["waivers", "revoke", "0123abc"], 4, "no waiver with id '0123abc' in the sqlite runtime"),
        (["silence", "expire", "0123abc"], 4, "no silence with id '0123abc' in the sqlite runtime"),
        (["silence", "add", "--for", "1h", "--reason", "r"], 2, "silence what? give --check ID"),
        (
            ["silence", "add", "--path", "nope", "--for", "1h", "--reason", "r"],
            2,
            "no active escalation path 'nope' in .maf/preflight-configs (known: deciders)",
        ),
        (["silence", "add", "--check", "a/b", "--for", "1h", "--reason", "r"], 2, "not an id"),
        (
            ["escalations", "approve", "0123abc", "--reason", "r"],
            4,
            "no escalation with id '0123abc'",
        ),
        (["escalations", "approve", "0123", "--reason", "r", "--for", "soon"], 2, "'soon'"),
    ],
    ids=[
        "bad-duration",
        "unknown-check",
        "empty-reason",
        "unknown-waiver",
        "unknown-silence",
        "silence-nothing",
        "unknown-path",
        "bad-check-id",
        "unknown-escalation",
        "approve-bad-duration",
    ],
)
def test_errors_are_one_line_without_a_traceback(
    project: Path, argv: list[str], code: int, message: str
) -> None:
    done = cli(
        project,
        *argv,
        "--agent",
        "lead",
        MAF_RUNTIME_MODE="sqlite",
        MAF_DB_PATH=str(project / "runtime.db"),
    )
    assert done.returncode == code, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("maf-preflight")
    assert message in line
    assert "Traceback" not in done.stderr


def test_a_waiver_or_silence_needs_a_lasting_store(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(
        capsys,
        "waive",
        "api-up",
        "--for",
        "1h",
        "--reason",
        "r",
        "--agent",
        "lead",
        "--mode",
        "memory",
    )
    assert code == 2
    assert err.strip() == (
        "maf-preflight: error: no waiver: the runtime is memory; a waiver must be kept in the "
        "store the gate runs read"
    )
    code, _, err = run_main(
        capsys,
        "silence",
        "add",
        "--check",
        "x",
        "--for",
        "1h",
        "--reason",
        "r",
        "--agent",
        "l",
        "--mode",
        "memory",
    )
    assert (code, err.count("\n")) == (2, 1)


# --- waivers -----------------------------------------------------------------------------------


def test_waive_records_who_why_and_until_when(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = time.time()
    code, out, err = run_main(
        capsys, "waive", "api-up", "--for", "90m", "--reason", "vendor outage", "--agent", "lead"
    )
    assert code == 0, err
    assert "waived check 'api-up' for 1h30m: waiver " in out
    assert "(path 'deciders')" in out
    with store(project) as runtime:
        [waiver] = runtime.waivers(active_at=time.time())
    assert (waiver.check_id, waiver.granted_by, waiver.reason, waiver.scope) == (
        "api-up",
        "lead",
        "vendor outage",
        {},
    )
    assert before <= waiver.granted_at <= time.time()
    assert waiver.expires_at - waiver.granted_at == pytest.approx(5400)

    code, out, _ = run_main(capsys, "waivers", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:6] == ["ID", "CHECK", "STATE", "BY", "UNTIL", "REASON"]
    assert row.split()[:4] == [waiver.id[:12], "api-up", "active", "lead"]


def test_revoking_twice_says_it_was_revoked_already(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run_main(capsys, "waive", "api-up", "--for", "1h", "--reason", "r", "--agent", "lead")[0]
        == 0
    )
    with store(project) as runtime:
        [waiver] = runtime.waivers()
    code, out, _ = run_main(capsys, "waivers", "revoke", waiver.id[:6], "--agent", "lead")
    assert code == 0
    assert out.startswith(f"revoked waiver {waiver.id} of check 'api-up' by lead at ")
    code, out, _ = run_main(capsys, "waivers", "revoke", waiver.id, "--agent", "other")
    assert (code, out.strip()) == (0, f"waiver {waiver.id} was revoked already, by lead")
    code, out, _ = run_main(capsys, "waivers", "list")
    assert out.strip() == "no active waivers (sqlite)"
    code, out, _ = run_main(capsys, "waivers", "list", "--all", "--json")
    [listed] = json.loads(out)["waivers"]
    assert (listed["state"], listed["revoked_by"]) == ("revoked", "lead")


def test_an_ambiguous_prefix_names_the_candidates(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with store(project) as runtime:
        for suffix in ("1", "2"):
            runtime.add_silence(
                SilenceRecord(
                    id=f"abc{suffix}",
                    check_id="api-up",
                    path_id=None,
                    created_by="ops",
                    reason="r",
                    created_at=1.0,
                    expires_at=2.0,
                )
            )
    code, _, err = run_main(capsys, "silence", "expire", "abc", "--agent", "ops")
    assert code == 2
    assert "silence ID 'abc' is ambiguous: it starts 2 ids" in err
    assert err.count("\n") == 1


# --- silences ----------------------------------------------------------------------------------


def test_silences_are_added_listed_and_ended(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(
        capsys,
        "silence",
        "add",
        "--path",
        "deciders",
        "--for",
        "2h",
        "--reason",
        "db upgrade",
        "--agent",
        "ops",
    )
    assert code == 0, err
    assert out.startswith("silenced escalations of path 'deciders' for 2h: silence ")
    code, out, err = run_main(
        capsys,
        "silence",
        "add",
        "--check",
        "api-up",
        "--path",
        "deciders",
        "--for",
        "30m",
        "--reason",
        "flaky vendor",
        "--agent",
        "ops",
        "--json",
    )
    assert code == 0, err
    both = json.loads(out)["silence"]
    assert (both["check_id"], both["path_id"], both["state"]) == ("api-up", "deciders", "active")
    with store(project) as runtime:
        active = runtime.silences(active_at=time.time())
    assert [(s.check_id, s.path_id, s.created_by) for s in active] == [
        ("api-up", "deciders", "ops"),
        (None, "deciders", "ops"),
    ]
    code, out, _ = run_main(capsys, "silence", "list")
    rows = out.splitlines()
    assert rows[0].split()[:5] == ["ID", "CHECK", "PATH", "STATE", "BY"]
    assert [r.split()[1:4] for r in rows[1:]] == [
        ["api-up", "deciders", "active"],
        ["*", "deciders", "active"],
    ]
    code, out, _ = run_main(capsys, "silence", "expire", both["id"][:10], "--agent", "lead")
    assert code == 0
    assert out.startswith(
        f"ended silence {both['id']} of check 'api-up' on path 'deciders' by lead"
    )
    with store(project) as runtime:
        assert [s.check_id for s in runtime.silences(active_at=time.time())] == [None]
        ended = next(s for s in runtime.silences() if s.id == both["id"])
    assert ended.expired_by == "lead"
    code, out, _ = run_main(capsys, "silence", "list", "--all")
    assert "ended by lead" in out


# --- decisions ----------------------------------------------------------------------------------


def open_decision(project: Path) -> EscalationRecord:
    """An escalation at the path's approve step, opened as a gate run opens one."""
    from pytest_maf_preflight.cli.project_paths import load_paths
    from pytest_maf_preflight.escalation.engine import EscalationEngine

    paths, errors = load_paths(None, None)
    assert errors == []
    with store(project) as runtime:
        engine = EscalationEngine(
            runtime, paths, agent_id="gate", mail_root=project / "mail", environ={}
        )
        record = engine.raise_manual("deciders", summary="api-up is down", check_id="api-up")
    assert record is not None
    return record


def test_approve_records_the_decision_and_waives_the_check(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    escalation = open_decision(project)
    code, _, err = run_main(
        capsys, "escalations", "approve", escalation.id[:8], "--reason", "ship", "--agent", "ci"
    )
    assert code == 4
    assert "agent 'ci' may not approve escalations of path 'deciders'" in err
    code, out, err = run_main(
        capsys,
        "escalations",
        "approve",
        escalation.id[:8],
        "--reason",
        "ship it",
        "--for",
        "45m",
        "--agent",
        "lead",
    )
    assert code == 0, err
    assert out.startswith(f"approved escalation {escalation.id} (")
    assert "  waiver " in out
    with store(project) as runtime:
        [decision] = runtime.decisions(escalation.id)
        [waiver] = runtime.waivers(active_at=time.time(), check_id="api-up")
    assert (decision.decision, decision.decided_by, decision.reason) == (
        "approved",
        "lead",
        "ship it",
    )
    assert waiver.escalation_id == escalation.id
    assert waiver.expires_at - waiver.granted_at == pytest.approx(45 * 60)


def test_reject_records_the_decision_and_grants_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    escalation = open_decision(project)
    code, out, err = run_main(
        capsys,
        "escalations",
        "reject",
        escalation.id,
        "--reason",
        "fix it first",
        "--agent",
        "lead",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert [d["decision"] for d in data["decisions"]] == ["rejected"]
    assert data["waivers"] == []
    with store(project) as runtime:
        assert [d.decision for d in runtime.decisions(escalation.id)] == ["rejected"]
        assert runtime.waivers() == []
    # reject takes no --for: there is nothing to hold.
    code, _, err = run_main(
        capsys, "escalations", "reject", escalation.id, "--reason", "r", "--for", "1h"
    )
    assert code == 2
    assert "unrecognized arguments: --for 1h" in err


def test_a_path_silence_is_refused_while_the_configs_are_invalid(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config_in(project, "broken.yaml", "id: broken\nname: x\nconfig_type: nothing\n")
    code, out, err = run_main(
        capsys, "silence", "add", "--path", "deciders", "--for", "1h", "--reason", "r", "--agent=o"
    )
    assert (code, out) == (1, "")
    assert ".maf/preflight-configs/broken.yaml" in err
    assert "escalation path 'deciders' not read: the configs are invalid (2 errors above)" in err
    assert store(project).silences() == []
