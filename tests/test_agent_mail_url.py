"""mcp_agent_mail reservations, read-only, from a real MCP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from helpers_agent_mail import PROJECT, SLUG, held, read
from helpers_loopback import closed_port
from helpers_mcp_server import RESERVATIONS, TOKEN, McpServer, url_of
from pytest_maf_preflight.agent_mail.reservations import AgentMailError, SourceReport
from pytest_maf_preflight.config.models import AgentMailSource


def read_url(
    server: McpServer,
    tmp_path: Path,
    path: str = "/mcp/",
    token: str | None = TOKEN,
    timeout: float = 5.0,
) -> SourceReport:
    source = AgentMailSource(project=PROJECT, url=url_of(server, path), token_env="AM_TOKEN")
    return read(source, tmp_path, environ={"AM_TOKEN": token} if token else {}, timeout=timeout)


URL_ACTIVE = {("BlueLake", "src/*.py", True), ("GreenCastle", "docs/**", False)}


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_url_reads_active_reservations_over_mcp(
    mcp_server: McpServer, tmp_path: Path, mode: str
) -> None:
    mcp_server.mode = mode
    report = read_url(mcp_server, tmp_path)
    assert held(report) == URL_ACTIVE
    assert (report.source, report.location, report.project) == ("url", url_of(mcp_server), SLUG)
    assert report.warnings == ()
    assert TOKEN not in repr(report)
    posts = [r for r in mcp_server.requests if r["http"] == "POST"]
    assert [r["method"] for r in posts] == [
        "initialize",
        "notifications/initialized",
        "resources/read",
    ]
    assert posts[2]["params"] == {"uri": f"resource://file_reservations/{SLUG}?active_only=true"}
    assert [r["session"] for r in posts] == [None, "session-1", "session-1"]
    assert [r["protocol"] for r in posts] == [None, "2025-03-26", "2025-03-26"]
    assert all("text/event-stream" in r["accept"] for r in posts)
    assert mcp_server.requests[-1] == {"http": "DELETE", "path": "/mcp/", "session": "session-1"}


def test_url_without_a_path_uses_mcp_and_follows_a_redirect(
    mcp_server: McpServer, tmp_path: Path
) -> None:
    assert held(read_url(mcp_server, tmp_path, path="")) == URL_ACTIVE
    assert {r["path"] for r in mcp_server.requests} == {"/mcp/"}
    mcp_server.mode = "redirect"
    mcp_server.http.requests.clear()
    assert held(read_url(mcp_server, tmp_path, path="/mcp")) == URL_ACTIVE
    assert [r["path"] for r in mcp_server.requests][:2] == ["/mcp", "/mcp/"]


def test_url_refused_token_is_an_error_without_the_token(
    mcp_server: McpServer, tmp_path: Path
) -> None:
    with pytest.raises(
        AgentMailError,
        match=r"initialize: HTTP 401 Unauthorized \(the bearer "
        r"token was refused; check token_env\)",
    ) as caught:
        read_url(mcp_server, tmp_path, token="wrong-token-value")
    assert "wrong-token-value" not in str(caught.value)


def test_url_missing_token_variable_is_named(mcp_server: McpServer, tmp_path: Path) -> None:
    with pytest.raises(AgentMailError, match="token_env names 'AM_TOKEN', which is not set"):
        read_url(mcp_server, tmp_path, token=None)
    assert mcp_server.requests == []


def test_url_json_rpc_error_is_an_error(mcp_server: McpServer, tmp_path: Path) -> None:
    mcp_server.mode = "rpc_error"
    with pytest.raises(
        AgentMailError,
        match=r"resources/read failed with JSON-RPC error "
        r"-32002: Unknown resource",
    ):
        read_url(mcp_server, tmp_path)


def test_url_http_500_is_an_error(mcp_server: McpServer, tmp_path: Path) -> None:
    mcp_server.mode = "http500"
    with pytest.raises(
        AgentMailError,
        match=r"resources/read: HTTP 500 Internal Server Error: "
        r"Internal Server Error",
    ):
        read_url(mcp_server, tmp_path)


def test_url_that_hangs_past_the_timeout_is_an_error(mcp_server: McpServer, tmp_path: Path) -> None:
    mcp_server.mode = "hang"
    with pytest.raises(
        AgentMailError,
        match=r"mcp_agent_mail url http://127\.0\.0\.1:\d+/mcp/: "
        r"no answer within 0\.3s",
    ):
        read_url(mcp_server, tmp_path, timeout=0.3)


def test_url_that_cannot_be_reached_hides_its_password(tmp_path: Path) -> None:
    port = closed_port()
    source = AgentMailSource(project=PROJECT, url=f"http://me:hunter2@127.0.0.1:{port}/mcp/")
    with pytest.raises(
        AgentMailError,
        match=rf"url http://me:\*\*\*@127\.0\.0\.1:{port}/mcp/: "
        r"cannot reach the server",
    ) as caught:
        read(source, tmp_path)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("contents", "problem"),
    [
        ([{"uri": "x", "text": "project: [toon]"}], "the content is not JSON"),
        ([{"uri": "x", "text": '{"count": 1}'}], "expected a list of reservations, got dict"),
        ([{"uri": "x"}], "neither text nor blob"),
        (
            [{"uri": "x", "text": json.dumps([{"agent": "A", "path_pattern": "p"}])}],
            "reservation 0: expires_ts is missing",
        ),
        ("nope", "no contents list"),
    ],
)
def test_url_unexpected_resource_content_is_an_error(
    mcp_server: McpServer, tmp_path: Path, contents: Any, problem: str
) -> None:
    mcp_server.contents = contents
    with pytest.raises(AgentMailError, match=problem):
        read_url(mcp_server, tmp_path)


def test_url_blob_content_is_read(mcp_server: McpServer, tmp_path: Path) -> None:
    mcp_server.contents = [
        {
            "uri": "x",
            "mimeType": "application/json",
            "blob": base64.b64encode(json.dumps(RESERVATIONS).encode()).decode(),
        }
    ]
    assert held(read_url(mcp_server, tmp_path)) == URL_ACTIVE
