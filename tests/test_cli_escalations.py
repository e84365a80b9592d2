"""``maf-preflight escalations list|ack|resolve|tick`` against a real SQLite runtime and real
mailbox files; concurrent ticks as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_maf_preflight.cli.escalation_commands import EXIT_REFUSED
from pytest_maf_preflight.cli.main import main
from pytest_maf_preflight.config.models import EscalationPathBody
from pytest_maf_preflight.escalation.engine import EscalationEngine
from pytest_maf_preflight.escalation.paths import PathRef
from pytest_maf_preflight.runtime.records import EscalationRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

PATH_ID = "oncall-path"
HOUR = 3600.0
#: Long enough that no escalation made in these tests expires; short steps make it climb.
PATH_TIMEOUT_MINUTES = 24 * 60


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(tmp_path / "mail"))
    return tmp_path


@pytest.fixture
def runtime(project: Path) -> Iterator[SqliteRuntime]:
    with SqliteRuntime(project / ".maf" / "runtime.db") as opened:
        yield opened


def path_ref(permissions: dict[str, Any] | None = None) -> PathRef:
    body: dict[str, Any] = {
        "trigger_conditions": [{"condition": "preflight_failure", "threshold": 1}],
        "escalation_steps": [
            {"level": 1, "action": "notify", "target": "on-call", "timeout_minutes": 15},
            {"level": 2, "action": "escalate", "target": "lead", "timeout_minutes": 60},
        ],
        "timeout_minutes": PATH_TIMEOUT_MINUTES,
        "max_escalation_level": 2,
        "targets": {"on-call": {"channel": "mailbox"}, "lead": {"channel": "mailbox"}},
    }
    if permissions is not None:
        body["permissions"] = permissions
    return PathRef(PATH_ID, "1.0.0", EscalationPathBody.model_validate(body))


def raise_at(
    runtime: SqliteRuntime, project: Path, at: float, *, check_id: str, path: PathRef | None = None
) -> EscalationRecord:
    """An escalation opened (and level 1 delivered) by an engine whose clock reads ``at``."""
    ref = path or path_ref()
    engine = EscalationEngine(
        runtime,
        {ref.id: ref},
        agent_id="gate-agent",
        mail_root=project / "mail",
        environ={},
        clock=lambda: at,
    )
    record = engine.raise_manual(ref.id, summary=f"{check_id} is down", check_id=check_id)
    assert record is not None
    return record


def inbox(project: Path, target: str) -> list[dict[str, Any]]:
    folder = project / "mail" / "mailboxes" / target / "inbox"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.iterdir())]


def stored(runtime: SqliteRuntime, escalation_id: str) -> EscalationRecord:
    found = runtime.get_escalation(escalation_id)
    assert found is not None
    return found


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["escalations", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return code, json.loads(out)


def rows(out: str) -> dict[str, list[str]]:
    header, *lines = out.splitlines()
    assert header.split() == [
        "ID",
        "STATE",
        "LEVEL",
        "OCC",
        "PATH",
        "CHECK",
        "CLASS",
        "OPENED",
        "NEXT",
        "WHO",
    ]
    return {line.split()[0]: line.split() for line in lines}


def utc(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def test_list_shows_open_escalations_newest_first_with_their_deliveries(
    project: Path, runtime: SqliteRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    older = raise_at(runtime, project, now - 120, check_id="db-check")
    newer = raise_at(runtime, project, now - 60, check_id="api-check")
    # A repeat of the same failure adds an occurrence, not a row.
    raise_at(runtime, project, now - 30, check_id="db-check")
    closed = raise_at(runtime, project, now - 10, check_id="cache-check")
    assert runtime.transition_escalation(
        closed.id, state="resolved", by="someone", from_states=("triggered",), now=now - 5
    )

    code, out, err = run(capsys, "list")
    assert code == 0, err
    listed = rows(out)
    assert list(listed) == [newer.id[:12], older.id[:12]]  # newest first, resolved left out
    assert listed[older.id[:12]][1:8] == [
        "triggered",
        "1",
        "2",
        PATH_ID,
        "db-check",
        "manual",
        utc(older.created_at),
    ]
    # Opened two minutes ago, level 1 times out after 15: the next action is ~13 minutes away.
    assert listed[older.id[:12]][8] == "in"
    assert listed[older.id[:12]][9] in ("13m00s", "12m59s", "12m58s")
    assert listed[older.id[:12]][-1] == "-"

    code, out, _ = run(capsys, "list", "--all")
    assert list(rows(out)) == [closed.id[:12], newer.id[:12], older.id[:12]]
    assert f"resolved by someone at {utc(now - 5)}" in out
    code, out, _ = run(capsys, "list", "--state", "resolved", "--state", "expired")
    assert list(rows(out)) == [closed.id[:12]]
    code, out, _ = run(capsys, "list", "--path", "another-path")
    assert out == "no open escalations of path 'another-path' (sqlite)\n"

    _, data = run_json(capsys, "list")
    assert data["mode"] == "sqlite"
    assert [e["id"] for e in data["escalations"]] == [newer.id, older.id]
    first = data["escalations"][1]
    assert first["occurrences"] == 2
    assert first["path_snapshot"]["id"] == PATH_ID
    assert first["details"]["summary"] == "db-check is down"
    assert [(d["level"], d["channel"], d["target"], d["status"]) for d in first["deliveries"]] == [
        (1, "mailbox", "on-call", "delivered")
    ]


def test_ack_by_prefix_records_who_and_when_and_stops_the_climb(
    project: Path, runtime: SqliteRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    escalation = raise_at(runtime, project, time.time() - HOUR, check_id="db-check")
    before = time.time()
    code, out, err = run(capsys, "ack", escalation.id[:8], "--agent", "agent-b")
    assert code == 0, err
    done = stored(runtime, escalation.id)
    assert done.state == "acknowledged"
    assert done.acknowledged_by == "agent-b"
    assert done.acknowledged_at is not None
    assert done.acknowledged_at >= before - 1
    assert done.next_action_at is None
    assert out == (
        f"acknowledged escalation {escalation.id} (oncall-path:db-check:manual) by "
        f"agent-b at {utc(done.acknowledged_at)}; it stays open at level 1 and "
        "climbs no further\n"
    )
    code, out, _ = run(capsys, "list")
    assert rows(out)[escalation.id[:12]][8] == "-"
    assert f"acknowledged by agent-b at {utc(done.acknowledged_at)}" in out

    # It was overdue, but an acknowledged escalation is not escalated.
    code, out, _ = run(capsys, "tick")
    assert (code, out) == (0, "no escalation was due (sqlite)\n")
    assert inbox(project, "lead") == []

    code, out, err = run(capsys, "ack", escalation.id, "--agent", "agent-c")
    assert code == EXIT_REFUSED == 4
    assert out == ""
    assert err == (
        f"maf-preflight: error: escalation {escalation.id[:12]} is acknowledged; "
        "only a triggered or escalated one can be acknowledged\n"
    )


def test_resolve_records_who_and_when_and_notifies_every_target_told(
    project: Path,
    runtime: SqliteRuntime,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    escalation = raise_at(runtime, project, time.time() - HOUR, check_id="db-check")
    assert run(capsys, "tick")[0] == 0  # level 2: the lead has been told too
    monkeypatch.setenv("AGENT_NAME", "fallback-name")
    monkeypatch.setenv("MAF_AGENT_ID", "agent-r")  # --agent defaults to it, before AGENT_NAME

    code, out, err = run(capsys, "resolve", escalation.id[:10], "--note", "restarted the db")
    assert code == 0, err
    done = stored(runtime, escalation.id)
    assert (done.state, done.resolved_by, done.next_action_at) == ("resolved", "agent-r", None)
    assert done.resolved_at is not None
    lines = out.splitlines()
    assert lines[0] == (
        f"resolved escalation {escalation.id} (oncall-path:db-check:manual) by "
        f"agent-r at {utc(done.resolved_at)}"
    )
    assert sorted(lines[1:]) == [
        "  delivery mailbox -> lead (level 2, attempt 1): delivered",
        "  delivery mailbox -> on-call (level 1, attempt 1): delivered",
    ]
    for target in ("on-call", "lead"):
        request, notice = inbox(project, target)
        assert request["type"] == "ESCALATION_REQUEST"
        assert notice["type"] == "ESCALATION_RESPONSE"
        assert (notice["escalation_id"], notice["action"], notice["responder"], notice["note"]) == (
            escalation.id,
            "resolve",
            "agent-r",
            "restarted the db",
        )
    code, out, _ = run(capsys, "list", "--all")
    assert f"resolved by agent-r at {utc(done.resolved_at)}" in out

    code, out, err = run(capsys, "resolve", escalation.id, "--agent", "agent-r")
    assert code == EXIT_REFUSED
    assert err == f"maf-preflight: error: escalation {escalation.id[:12]} is resolved, not open\n"
    assert len(inbox(project, "lead")) == 2  # nothing sent the second time

    _, data = run_json(capsys, "list", "--state", "resolved")
    (listed,) = data["escalations"]
    assert (listed["resolved_by"], listed["resolved_at"]) == ("agent-r", done.resolved_at)
    assert sorted((d["level"], d["target"]) for d in listed["deliveries"]) == [
        (1, "on-call"),
        (1, "on-call"),
        (2, "lead"),
        (2, "lead"),
    ]


def test_resolve_json_lists_the_resolution_deliveries(
    project: Path, runtime: SqliteRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    escalation = raise_at(runtime, project, time.time(), check_id="db-check")
    _, data = run_json(capsys, "resolve", escalation.id, "--agent", "agent-r")
    assert data["escalation"]["state"] == "resolved"
    assert data["escalation"]["resolved_by"] == "agent-r"
    assert [(d["target"], d["status"]) for d in data["deliveries"]] == [("on-call", "delivered")]


def test_ambiguous_unknown_and_missing_arguments_are_one_line_errors(
    project: Path, runtime: SqliteRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    # Seventeen hex ids: at least two share their first digit.
    made = [raise_at(runtime, project, now, check_id=f"check-{n}") for n in range(17)]
    firsts = [e.id[0] for e in made]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    code, out, err = run(capsys, "ack", shared, "--agent", "agent-a")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(
        f"maf-preflight: error: escalation ID '{shared}' is ambiguous: it "
        f"starts {firsts.count(shared)} ids ("
    )
    assert err.endswith("; give more of it\n")

    code, out, err = run(capsys, "resolve", "not-an-id", "--agent", "agent-a")
    assert code == EXIT_REFUSED
    assert err == (
        "maf-preflight: error: no escalation with id 'not-an-id' in the sqlite "
        "runtime ('maf-preflight escalations list --all' shows every one)\n"
    )

    code, _, err = run(capsys, "ack", made[0].id)
    assert code == 2
    assert err == (
        "maf-preflight: error: no agent: give --agent NAME or set MAF_AGENT_ID (or AGENT_NAME)\n"
    )
    code, _, err = run(capsys, "ack", made[0].id, "--agent", "../evil")
    assert code == 2
    assert "--agent: '../evil' is not a valid agent name" in err
    code, _, err = run(capsys, "list", "--all", "--state", "resolved")
    assert code == 2
    assert "not allowed with argument" in err
    assert all(e.state == "triggered" for e in runtime.escalations())


def test_the_paths_permissions_refuse_naming_the_rule(
    project: Path, runtime: SqliteRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    guarded = path_ref({"acknowledge": ["lead-agent", "on-call-agent"], "resolve": ["lead-agent"]})
    escalation = raise_at(runtime, project, time.time(), check_id="db-check", path=guarded)

    code, out, err = run(capsys, "ack", escalation.id, "--agent", "intern")
    assert (code, out) == (EXIT_REFUSED, "")
    assert err == (
        "maf-preflight: error: agent 'intern' may not acknowledge escalations of "
        "path 'oncall-path' (permissions.acknowledge: lead-agent, on-call-agent)\n"
    )
    code, out, err = run(capsys, "resolve", escalation.id, "--agent", "on-call-agent")
    assert (code, out) == (EXIT_REFUSED, "")
    assert err == (
        "maf-preflight: error: agent 'on-call-agent' may not resolve escalations of "
        "path 'oncall-path' (permissions.resolve: lead-agent)\n"
    )
    assert stored(runtime, escalation.id).state == "triggered"
    assert len(inbox(project, "on-call")) == 1  # the request only; no resolution notice

    assert run(capsys, "ack", escalation.id, "--agent", "on-call-agent")[0] == 0
    assert run(capsys, "resolve", escalation.id, "--agent", "lead-agent")[0] == 0
    done = stored(runtime, escalation.id)
    assert (done.acknowledged_by, done.resolved_by) == ("on-call-agent", "lead-agent")


def test_tick_moves_a_due_escalation_to_level_2_once(
    project: Path, runtime: SqliteRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "tick")
    assert (code, out) == (0, "no escalation was due (sqlite)\n")
    # Opened an hour ago; level 1 timed out after 15 minutes.
    escalation = raise_at(runtime, project, time.time() - HOUR, check_id="db-check")
    assert [m["level"] for m in inbox(project, "on-call")] == [1]
    not_due = raise_at(runtime, project, time.time(), check_id="api-check")

    before = time.time()
    code, out, err = run(capsys, "tick")
    assert code == 0, err
    assert out.splitlines() == [
        f"escalation advanced: {escalation.id[:12]} oncall-path:db-check:manual to level 2",
        "  delivery mailbox -> lead (level 2, attempt 1): delivered",
    ]
    (message,) = inbox(project, "lead")
    assert (
        message["type"],
        message["escalation_id"],
        message["level"],
        message["target"],
        message["agent_id"],
    ) == ("ESCALATION_REQUEST", escalation.id, 2, "lead", "maf-preflight")
    moved = stored(runtime, escalation.id)
    assert (moved.state, moved.level) == ("escalated", 2)
    assert moved.next_action_at is not None
    assert before + HOUR - 1 <= moved.next_action_at <= time.time() + HOUR + 1
    assert stored(runtime, not_due.id).level == 1

    code, out, _ = run(capsys, "tick")
    assert (code, out) == (0, "no escalation was due (sqlite)\n")
    assert len(inbox(project, "lead")) == 1
    assert [(d.level, d.target) for d in runtime.deliveries(escalation.id)] == [
        (1, "on-call"),
        (2, "lead"),
    ]


def test_tick_json_and_the_agent_it_delivers_as(
    project: Path,
    runtime: SqliteRuntime,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    escalation = raise_at(runtime, project, time.time() - HOUR, check_id="db-check")
    monkeypatch.setenv("AGENT_NAME", "cron-agent")
    _, data = run_json(capsys, "tick")
    assert data["agent"] == "cron-agent"
    assert [(e["id"], e["level"], e["state"]) for e in data["advanced"]] == [
        (escalation.id, 2, "escalated")
    ]
    assert [(d["target"], d["level"], d["status"]) for d in data["deliveries"]] == [
        ("lead", 2, "delivered")
    ]
    assert inbox(project, "lead")[0]["agent_id"] == "cron-agent"
    _, data = run_json(capsys, "tick")
    assert (data["advanced"], data["deliveries"]) == ([], [])


def _tick_process(project: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAF_")}
    env.update(MAF_RUNTIME_MODE="sqlite", MAF_AGENT_MAIL_ROOT=str(project / "mail"))
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_maf_preflight.cli", "escalations", "tick", "--json"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_tick_processes_deliver_each_level_once(
    project: Path, runtime: SqliteRuntime
) -> None:
    # Several due escalations widen the window in which the two processes overlap.
    due = [raise_at(runtime, project, time.time() - HOUR, check_id=f"check-{n}") for n in range(4)]
    ticks = [_tick_process(project), _tick_process(project)]
    outputs = [proc.communicate(timeout=60) for proc in ticks]
    for proc, (_, err) in zip(ticks, outputs, strict=True):
        assert proc.returncode == 0, err
    advanced = [e["id"] for out, _ in outputs for e in json.loads(out)["advanced"]]
    assert sorted(advanced) == sorted(e.id for e in due)  # each advanced by one of them
    for escalation in due:
        level_2 = [d for d in runtime.deliveries(escalation.id) if d.level == 2]
        assert [(d.target, d.status) for d in level_2] == [("lead", "delivered")]
        assert stored(runtime, escalation.id).level == 2
    lead = inbox(project, "lead")
    assert sorted(m["escalation_id"] for m in lead) == sorted(e.id for e in due)
