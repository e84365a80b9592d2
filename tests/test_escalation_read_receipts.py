"""Read receipts (SPEC S4): a recipient that acknowledges an escalation's ``agent_mail`` message on
the server acknowledges the escalation at the next tick. A real mcp_agent_mail-shaped server on
127.0.0.1, a real SQLite runtime, an injected clock; the cron tick through the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers_engine import NOW, World, path
from helpers_mcp_server import TOKEN, McpServer, serve, url_of
from pytest_maf_preflight.agent_mail.mcp import McpSession
from pytest_maf_preflight.escalation.engine import EscalationEngine
from pytest_maf_preflight.escalation.paths import PathRef
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

PROJECT = "/srv/project"
ENVIRON = {"MAF_MAIL_TOKEN": TOKEN}


@pytest.fixture
def server() -> Iterator[McpServer]:
    with serve() as running:
        yield running


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with SqliteRuntime(tmp_path / "runtime.db") as runtime:
        yield World(runtime, tmp_path)


def mail_path(server: McpServer, **more: Any) -> PathRef:
    target = {
        "channel": "agent_mail",
        "url": url_of(server),
        "token_env": "MAF_MAIL_TOKEN",
        "project": PROJECT,
    }
    return path(
        steps=[(1, "on-call", 0.5), (2, "lead", 1)],
        targets={"on-call": target, "lead": {"channel": "mailbox"}},
        **more,
    )


def acknowledge(server: McpServer, agent: str, message_id: int) -> None:
    """What the recipient does on the server: mcp_agent_mail's ``acknowledge_message``."""
    with McpSession(url_of(server), token=TOKEN, timeout=5) as session:
        session.call_tool(
            "acknowledge_message",
            {"project_key": PROJECT, "agent_name": agent, "message_id": message_id},
        )


def view_reads(server: McpServer) -> list[str]:
    return [
        r["params"]["uri"]
        for r in server.requests
        if r.get("method") == "resources/read" and "ack-required" in r["params"]["uri"]
    ]


def test_a_read_receipt_acknowledges_the_escalation_and_stops_the_climb(
    world: World, server: McpServer
) -> None:
    engine = world.engine(mail_path(server), environ=ENVIRON)
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    (delivery,) = world.runtime.deliveries(opened.id)
    assert (delivery.channel, delivery.status) == ("agent_mail", "delivered")
    assert (delivery.response["message_id"], delivery.response["project"]) == ("1", PROJECT)

    world.clock.now = NOW + 10
    unread = engine.tick()
    assert unread.acknowledged == []
    # The gate run ticks too: each asked the server once.
    assert (
        view_reads(server)
        == ["resource://views/ack-required/on-call?project=%2Fsrv%2Fproject&limit=500"] * 2
    )

    acknowledge(server, "on-call", 1)
    world.clock.now = NOW + 20
    report = engine.tick()
    (acked,) = report.acknowledged
    assert (acked.id, acked.state, acked.acknowledged_by, acked.acknowledged_at) == (
        opened.id,
        "acknowledged",
        "on-call",
        NOW + 20,
    )
    assert any("read receipt of agent_mail message 1" in note for note in report.notes)
    assert "escalation acknowledged" in "\n".join(report.lines())

    world.clock.now = NOW + 3600  # long past level 1's timeout: acknowledged, it stays put
    assert engine.tick().advanced == []
    assert world.inbox("lead") == []


def test_a_receipt_for_a_message_from_before_an_acknowledgement_does_not_count_again(
    world: World, server: McpServer
) -> None:
    engine = world.engine(
        path(
            steps=[{"level": 1, "action": "notify", "target": "on-call", "ack_timeout_minutes": 1}],
            targets=mail_path(server).body.model_dump()["targets"],
        ),
        environ=ENVIRON,
    )
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    acknowledge(server, "on-call", 1)
    world.clock.now = NOW + 5
    assert [e.acknowledged_by for e in engine.tick().acknowledged] == ["on-call"]

    # The acknowledgement runs out: message 2 goes out, and message 1's receipt is old news.
    world.clock.now = NOW + 65
    report = engine.tick()
    assert [e.id for e in report.retriggered] == [opened.id]
    assert [d.response.get("message_id") for d in report.deliveries] == ["2"]
    world.clock.now = NOW + 70
    assert engine.tick().acknowledged == []
    assert world.stored(opened.id).state == "triggered"

    acknowledge(server, "on-call", 2)
    world.clock.now = NOW + 75
    assert [e.acknowledged_at for e in engine.tick().acknowledged] == [NOW + 75]


def test_receipts_the_path_does_not_allow_or_cannot_read_are_notes(
    world: World, server: McpServer
) -> None:
    engine = world.engine(mail_path(server, permissions={"acknowledge": ["lead"]}), environ=ENVIRON)
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    acknowledge(server, "on-call", 1)
    refused = engine.tick()
    assert refused.acknowledged == []
    assert any(
        "on-call acknowledged agent_mail message 1, which does not acknowledge it" in note
        and "permissions.acknowledge: lead" in note
        for note in refused.notes
    )

    server.mode = "rpc_error"
    unread = engine.tick()
    assert any("read receipts of 'on-call' not read" in note for note in unread.notes)
    assert world.stored(opened.id).state == "triggered"


def test_the_cron_tick_reads_receipts_of_the_paths_the_runtime_recorded(
    world: World,
    server: McpServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pytest_maf_preflight.cli.main import main

    project = tmp_path / "project"
    (project / ".maf").mkdir(parents=True)
    monkeypatch.chdir(project)
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    monkeypatch.setenv("MAF_AGENT_MAIL_ROOT", str(tmp_path / "mail"))
    monkeypatch.setenv("MAF_MAIL_TOKEN", TOKEN)
    ref = mail_path(server)
    with SqliteRuntime(project / ".maf" / "runtime.db") as runtime:
        gate = World(runtime, tmp_path)
        engine = EscalationEngine(
            runtime,
            {ref.id: ref},
            agent_id="gate-agent",
            mail_root=tmp_path / "mail",
            environ=ENVIRON,
            clock=gate.clock,
            project_default=PROJECT,
        )
        (opened,) = gate.gate(engine, gate.result("api", "failed"), recorded=[ref]).opened
    acknowledge(server, "on-call", 1)

    assert main(["escalations", "tick"]) == 0  # loads no config: the runtime names the path
    out = capsys.readouterr().out
    assert "escalation acknowledged" in out
    with SqliteRuntime(project / ".maf" / "runtime.db") as runtime:
        stored = runtime.get_escalation(opened.id)
    assert stored is not None
    assert (stored.state, stored.acknowledged_by) == ("acknowledged", "on-call")
