"""The ``agent_stale`` trigger (SPEC S4): an agent holding leases that sent no heartbeat for
``threshold`` minutes opens one escalation naming it and its leases; it resolves when the agent
is back or holds nothing. Against real SQLite files, real mailboxes, real gate runs and the real
``maf-preflight escalations tick``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers_cli import run_main
from helpers_configs import PASSING_CHECK, WriteConfig, write_config_in
from pytest_maf_preflight.config.models import EscalationPathBody
from pytest_maf_preflight.escalation.engine import EscalationEngine
from pytest_maf_preflight.escalation.paths import PathRef
from pytest_maf_preflight.runtime.records import EscalationRecord
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

NOW = 1_700_000_000.0
MINUTE = 60.0
HOUR = 3600.0

STALE_PATH = """\
id: stale-agents
name: Agents that went silent holding leases
config_type: escalation_path
config:
  trigger_conditions:
    - {condition: agent_stale, operator: gte, threshold: 30}
  escalation_steps:
    - {level: 1, action: notify, target: coordinator, timeout_minutes: 60}
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[SqliteRuntime]:
    with SqliteRuntime(tmp_path / "runtime.db") as opened:
        yield opened


def stale_path(threshold: float = 30, operator: str = "gte") -> PathRef:
    body = EscalationPathBody.model_validate(
        {
            "trigger_conditions": [
                {"condition": "agent_stale", "operator": operator, "threshold": threshold}
            ],
            "escalation_steps": [
                {"level": 1, "action": "notify", "target": "coordinator", "timeout_minutes": 60}
            ],
        }
    )
    return PathRef("stale-agents", "1.0.0", body)


def engine(
    runtime: SqliteRuntime, tmp_path: Path, clock: Clock, *paths: PathRef
) -> EscalationEngine:
    return EscalationEngine(
        runtime,
        {p.id: p for p in paths},
        agent_id="ticker",
        mail_root=tmp_path / "mail",
        environ={},
        clock=clock,
    )


def inbox(root: Path, target: str) -> list[dict[str, Any]]:
    folder = root / "mailboxes" / target / "inbox"
    return (
        [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        if folder.is_dir()
        else []
    )


def test_a_silent_agent_holding_leases_opens_one_escalation_until_it_heartbeats(
    runtime: SqliteRuntime, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    runtime.heartbeat("BlueLake", at=NOW)
    grant = runtime.acquire_leases("BlueLake", ["src/**", "docs/*.md"], ttl=4 * HOUR, now=NOW)
    tick = engine(runtime, tmp_path, clock, stale_path()).tick

    clock.now = NOW + 29 * MINUTE  # silent, but not for 30 minutes yet
    assert tick().opened == []

    clock.now = NOW + 31 * MINUTE
    report = tick()
    [opened] = report.opened
    assert opened.dedup_key == "stale-agents:@BlueLake:agent_stale"
    assert (opened.check_id, opened.failure_class) == (None, "agent_stale")
    assert opened.details["stale_agent"] == "BlueLake"
    assert opened.details["last_heartbeat"] == NOW
    assert [lease["path_pattern"] for lease in opened.details["leases"]] == ["docs/*.md", "src/**"]
    assert sorted(lease["id"] for lease in opened.details["leases"]) == sorted(
        lease.id for lease in grant.granted
    )
    [notice] = inbox(tmp_path / "mail", "coordinator")
    assert notice["type"] == "ESCALATION_REQUEST"
    assert notice["summary"] == (
        "agent 'BlueLake' has sent no heartbeat for 31 minutes and holds 2 leases: "
        "docs/*.md, src/**"
    )
    assert (
        "agent_stale: agent 'BlueLake' holding 2 leases" in notice["details"]["context"]["trigger"]
    )

    clock.now = NOW + 50 * MINUTE  # still silent: nothing new, not even an occurrence
    report = tick()
    assert (report.opened, report.occurrences, report.deliveries) == ([], [], [])
    [still] = runtime.escalations()
    assert (still.state, still.occurrences) == ("triggered", 1)

    runtime.heartbeat("BlueLake", at=NOW + 55 * MINUTE)
    clock.now = NOW + 56 * MINUTE
    report = tick()
    [resolved] = report.resolved
    assert (resolved.id, resolved.state, resolved.resolved_by) == (opened.id, "resolved", "ticker")
    notices = inbox(tmp_path / "mail", "coordinator")
    assert [n["type"] for n in notices] == ["ESCALATION_REQUEST", "ESCALATION_RESPONSE"]
    assert notices[1]["note"] == "agent 'BlueLake' sent a heartbeat again"

    clock.now = NOW + 2 * HOUR  # silent again: a new escalation
    [again] = tick().opened
    assert again.id != opened.id


def test_released_or_expired_leases_resolve_it(runtime: SqliteRuntime, tmp_path: Path) -> None:
    clock = Clock(NOW + HOUR)
    runtime.heartbeat("BlueLake", at=NOW)
    runtime.heartbeat("RedStone", at=NOW)
    [blue] = runtime.acquire_leases("BlueLake", ["src/**"], ttl=4 * HOUR, now=NOW).granted
    runtime.acquire_leases("RedStone", ["docs/**"], ttl=1.5 * HOUR, now=NOW)
    tick = engine(runtime, tmp_path, clock, stale_path()).tick
    assert sorted(e.details["stale_agent"] for e in tick().opened) == ["BlueLake", "RedStone"]

    runtime.release_lease(blue.id, "BlueLake", now=NOW + HOUR)
    clock.now = NOW + 2 * HOUR  # RedStone's lease expired meanwhile
    report = tick()
    assert {e.details["stale_agent"]: e.state for e in report.resolved} == {
        "BlueLake": "resolved",
        "RedStone": "resolved",
    }
    assert report.opened == []


def test_who_is_not_stale(runtime: SqliteRuntime, tmp_path: Path) -> None:
    """No leases, no heartbeat ever (nothing to measure from, as release_stale_leases has it),
    or a path without the condition: nothing opens."""
    clock = Clock(NOW + 2 * HOUR)
    runtime.heartbeat("Idle", at=NOW)  # silent for long, but holds nothing
    runtime.acquire_leases("NeverBeat", ["src/**"], ttl=4 * HOUR, now=NOW)
    runtime.heartbeat("Busy", at=NOW + 2 * HOUR - 60)
    runtime.acquire_leases("Busy", ["docs/**"], ttl=4 * HOUR, now=NOW)
    assert engine(runtime, tmp_path, clock, stale_path()).tick().opened == []

    runtime.heartbeat("Gone", at=NOW)
    runtime.acquire_leases("Gone", ["lib/**"], ttl=4 * HOUR, now=NOW)
    other = PathRef(
        "failures",
        "1.0.0",
        EscalationPathBody.model_validate(
            {
                "trigger_conditions": [{"condition": "preflight_failure"}],
                "escalation_steps": [{"level": 1, "action": "notify", "target": "x"}],
            }
        ),
    )
    assert engine(runtime, tmp_path, clock, other).tick().opened == []
    [opened] = engine(runtime, tmp_path, clock, other, stale_path(threshold=90)).tick().opened
    assert opened.details["stale_agent"] == "Gone"


def test_the_operator_compares_the_minutes_of_silence(
    runtime: SqliteRuntime, tmp_path: Path
) -> None:
    clock = Clock(NOW + 30 * MINUTE)
    runtime.heartbeat("BlueLake", at=NOW)
    runtime.acquire_leases("BlueLake", ["src/**"], ttl=4 * HOUR, now=NOW)
    assert engine(runtime, tmp_path, clock, stale_path(30, "gt")).tick().opened == []
    assert len(engine(runtime, tmp_path, clock, stale_path(30, "gte")).tick().opened) == 1


# --- the CLI tick and the gate -------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(tmp_path / "mail"))
    return tmp_path


def silent_agent(db: Path, agent: str = "BlueLake", silent_for: float = HOUR) -> None:
    """``agent`` holds a lease and last sent a heartbeat ``silent_for`` seconds ago."""
    now = time.time()
    with SqliteRuntime(db) as runtime:
        runtime.heartbeat(agent, at=now - silent_for)
        runtime.acquire_leases(agent, ["src/**"], ttl=4 * HOUR, now=now - silent_for)


def stored(db: Path) -> list[EscalationRecord]:
    with SqliteRuntime(db) as runtime:
        return runtime.escalations()


def test_escalations_tick_reviews_the_configured_paths(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = project / ".maf" / "runtime.db"
    silent_agent(db)
    code, out, err = run_main(capsys, "escalations", "tick")
    assert (code, err) == (0, "")
    assert "no escalation was due" in out  # no config: no path watches for stale agents
    assert stored(db) == []

    write_config_in(project, "stale.yaml", STALE_PATH)
    code, out, err = run_main(capsys, "escalations", "tick")
    assert (code, err) == (0, "")
    assert "escalation opened: " in out
    assert "stale-agents:@BlueLake:agent_stale at level 1" in out
    assert "delivery mailbox -> coordinator (level 1, attempt 1): delivered" in out
    [opened] = stored(db)
    assert opened.details["stale_agent"] == "BlueLake"
    assert opened.details["agent_id"] == "maf-preflight"  # the tick's agent raised it
    [notice] = inbox(project / "mail", "coordinator")
    assert "agent 'BlueLake' has sent no heartbeat for 60 minutes" in notice["summary"]

    with SqliteRuntime(db) as runtime:
        runtime.heartbeat("BlueLake")
    code, out, _ = run_main(capsys, "escalations", "tick", "--json")
    assert code == 0
    [resolved] = json.loads(out)["resolved"]
    assert (resolved["id"], resolved["state"]) == (opened.id, "resolved")


def test_tick_with_invalid_configs_still_climbs_and_exits_1(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config_in(project, "stale.yaml", STALE_PATH.replace("agent_stale", "agent_gone"))
    code, out, err = run_main(capsys, "escalations", "tick")
    assert code == 1
    assert "no escalation was due" in out
    assert "stale.yaml:6: config.trigger_conditions[0].condition" in err
    assert "stale agents were not reviewed" in err


def test_every_gate_run_reviews_stale_agents(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(pytester.path / "mail"))
    write_config("check.yaml", PASSING_CHECK)
    write_config("stale.yaml", STALE_PATH)
    pytester.makepyfile(test_app="def test_ordinary():\n    pass\n")
    db = pytester.path / ".maf" / "runtime.db"
    silent_agent(db, "RedStone", silent_for=2 * HOUR)
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-agent-id=gate-agent",
        "--maf-runtime=sqlite",
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*escalation opened: * stale-agents:@RedStone:agent_stale at level 1*",
            "*delivery mailbox -> coordinator (level 1, attempt 1): delivered*",
        ]
    )
    [opened] = stored(db)
    assert opened.details["agent_id"] == "gate-agent"
    assert [lease["path_pattern"] for lease in opened.details["leases"]] == ["src/**"]
