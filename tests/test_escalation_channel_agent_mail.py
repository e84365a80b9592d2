"""The agent_mail channel against a real loopback MCP server (tests/helpers_mcp_server.py):
mcp_agent_mail's ``send_message`` arguments, the bearer token, and the fallback to the mailbox
when the server is down or refuses the message."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from helpers_escalation import NOW, clock, inbox_files, notice
from helpers_loopback import closed_port
from helpers_mcp_server import TOKEN, McpServer, url_of
from pytest_maf_preflight.config.models import EscalationTarget
from pytest_maf_preflight.escalation.channels import deliver
from pytest_maf_preflight.protocol.messages import parse_message
from pytest_maf_preflight.runtime.records import DeliveryRecord

PROJECT = "/srv/work/backend"


def target(url: str, **fields: Any) -> EscalationTarget:
    fields.setdefault("token_env", "MAIL_TOKEN")
    fields.setdefault("project", PROJECT)
    return EscalationTarget(channel="agent_mail", url=url, **fields)


def send(
    tmp_path: Path,
    where: EscalationTarget,
    *,
    environ: dict[str, str] | None = None,
    project_default: str = "",
    **notice_fields: Any,
) -> list[DeliveryRecord]:
    return deliver(
        notice(**notice_fields),
        where,
        mail_root=tmp_path,
        environ={"MAIL_TOKEN": TOKEN} if environ is None else environ,
        now=clock,
        project_default=project_default,
    )


def test_send_message_gets_mcp_agent_mail_arguments(tmp_path: Path, mcp_server: McpServer) -> None:
    sent = notice()
    [record] = deliver(
        sent,
        target(url_of(mcp_server)),
        mail_root=tmp_path,
        environ={"MAIL_TOKEN": TOKEN},
        now=clock,
    )
    [call] = mcp_server.sent
    arguments = call["arguments"]
    assert call["authorization"] == f"Bearer {TOKEN}"
    assert {
        k: arguments[k]
        for k in ("project_key", "sender_name", "to", "importance", "ack_required", "thread_id")
    } == {
        "project_key": PROJECT,
        "sender_name": "BlueLake",
        "to": ["on-call-agent"],
        "importance": "urgent",
        "ack_required": True,
        "thread_id": "default-escalation:db-check:failed",
    }
    assert set(arguments) == {
        "project_key",
        "sender_name",
        "to",
        "subject",
        "body_md",
        "importance",
        "ack_required",
        "thread_id",
    }
    assert arguments["subject"] == (
        "[critical] level 1 default-escalation: db-check failed 3 times in a row"
    )
    # The protocol message travels in the body, readable by an agent and by a program.
    fenced = arguments["body_md"].split("```json\n", 1)[1].rsplit("\n```", 1)[0]
    assert parse_message(json.loads(fenced)).id == sent.message["id"]
    assert (record.channel, record.status, record.attempt, record.error) == (
        "agent_mail",
        "delivered",
        1,
        None,
    )
    assert record.attempted_at == NOW
    assert record.response["tool"] == "send_message"
    assert record.response["thread_id"] == "default-escalation:db-check:failed"
    assert TOKEN not in json.dumps(dataclasses.asdict(record))
    assert inbox_files(tmp_path) == []


def test_warning_sender_and_default_project(tmp_path: Path, mcp_server: McpServer) -> None:
    [record] = send(
        tmp_path,
        target(url_of(mcp_server), project=None, sender="GateKeeper"),
        project_default="/home/dev/app",
        severity="warning",
        target="lead",
    )
    arguments = mcp_server.sent[0]["arguments"]
    assert record.status == "delivered"
    assert (
        arguments["importance"],
        arguments["sender_name"],
        arguments["project_key"],
        arguments["to"],
    ) == ("high", "GateKeeper", "/home/dev/app", ["lead"])


def test_a_resolution_notice_asks_for_no_acknowledgement(
    tmp_path: Path, mcp_server: McpServer
) -> None:
    [record] = send(tmp_path, target(url_of(mcp_server)), kind="resolution")
    arguments = mcp_server.sent[0]["arguments"]
    assert record.status == "delivered"
    assert (arguments["importance"], arguments["ack_required"]) == ("normal", False)
    assert arguments["subject"].startswith("[resolved] default-escalation: ")
    assert arguments["thread_id"] == "default-escalation:db-check:failed"


def test_nothing_listening_falls_back_to_the_mailbox_and_says_so(tmp_path: Path) -> None:
    records = send(tmp_path, target(f"http://127.0.0.1:{closed_port()}/mcp/"))
    failed, fallback = records
    assert (failed.channel, failed.status, failed.attempt) == ("agent_mail", "failed", 1)
    assert failed.error is not None
    assert "cannot reach the server" in failed.error
    assert (fallback.channel, fallback.status, fallback.attempt) == ("mailbox", "fallback", 2)
    assert fallback.error is not None
    assert fallback.error.startswith("the agent_mail server did not answer (")
    assert fallback.error.endswith("); delivered to the mailbox instead")
    [path] = inbox_files(tmp_path)
    assert fallback.response == {"path": str(path)}
    assert json.loads(path.read_text())["type"] == "ESCALATION_REQUEST"


def test_a_refused_message_falls_back_too(tmp_path: Path, mcp_server: McpServer) -> None:
    mcp_server.mode = "refuse_send"
    failed, fallback = send(tmp_path, target(url_of(mcp_server)))
    assert failed.status == "failed"
    assert failed.error is not None
    assert "tool send_message failed: Agent ['on-call-agent'] not found" in failed.error
    assert fallback.status == "fallback"
    assert fallback.error is not None
    assert fallback.error.startswith("the agent_mail server refused the message (")
    assert len(inbox_files(tmp_path)) == 1


def test_a_wrong_token_is_refused_and_not_recorded(tmp_path: Path, mcp_server: McpServer) -> None:
    wrong = "wrong-token-value"
    records = send(tmp_path, target(url_of(mcp_server)), environ={"MAIL_TOKEN": wrong})
    assert [r.status for r in records] == ["failed", "fallback"]
    assert records[0].error is not None
    assert "HTTP 401" in records[0].error
    assert mcp_server.sent == []
    assert wrong not in json.dumps([dataclasses.asdict(r) for r in records])


@pytest.mark.parametrize(
    ("fields", "environ", "problem"),
    [
        ({}, {}, "token_env names 'MAIL_TOKEN', which is not set in the environment"),
        ({"project": None}, None, "no project: set project on the target"),
    ],
)
def test_an_unusable_target_sends_nothing_and_falls_back(
    tmp_path: Path,
    mcp_server: McpServer,
    fields: dict[str, Any],
    environ: dict[str, str] | None,
    problem: str,
) -> None:
    failed, fallback = send(tmp_path, target(url_of(mcp_server), **fields), environ=environ)
    assert failed.status == "failed"
    assert failed.error is not None
    assert failed.error.startswith(problem)
    assert fallback.status == "fallback"
    assert fallback.error is not None
    assert fallback.error.startswith("the agent_mail target cannot be used (")
    assert mcp_server.requests == []
    assert len(inbox_files(tmp_path)) == 1


def test_a_fallback_that_cannot_write_is_failed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "mailboxes" / "on-call-agent").mkdir(parents=True)
    (tmp_path / "mailboxes" / "on-call-agent" / "inbox").symlink_to(outside)
    failed, fallback = send(tmp_path, target(f"http://127.0.0.1:{closed_port()}/mcp/"))
    assert (failed.status, fallback.status, fallback.channel) == ("failed", "failed", "mailbox")
    assert fallback.error is not None
    assert "did not answer" in fallback.error
    assert "outside the mailbox tree" in fallback.error
    assert list(outside.iterdir()) == []


def test_the_url_may_come_from_the_environment(tmp_path: Path, mcp_server: McpServer) -> None:
    where = target("${ENV:MAIL_URL}")
    [record] = send(tmp_path, where, environ={"MAIL_TOKEN": TOKEN, "MAIL_URL": url_of(mcp_server)})
    assert record.status == "delivered"
    assert len(mcp_server.sent) == 1
    failed, fallback = send(tmp_path, where)
    assert failed.error == (
        "environment variable 'MAIL_URL' is not set (the url refers to ${ENV:MAIL_URL})"
    )
    assert fallback.status == "fallback"
    assert len(mcp_server.sent) == 1
