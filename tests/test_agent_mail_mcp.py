"""The MCP client, against a real JSON-RPC server on 127.0.0.1 (stdlib ``http.server`` in a
thread). Reading reservations through it is tested in test_agent_mail_url.py."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from helpers_mcp_server import TOKEN, McpServer, url_of
from pytest_maf_preflight.agent_mail.mcp import McpError, McpSession
from pytest_maf_preflight.redaction import redact_url


def posts(server: McpServer) -> list[dict[str, Any]]:
    return [r for r in server.requests if r["http"] == "POST"]


def test_redacted_urls_keep_no_secrets() -> None:
    assert (
        redact_url("http://me:hunter2@h:1/mcp/?token=abc&x=1")
        == "http://me:***@h:1/mcp/?token=***&x=1"
    )
    assert "tok-123" not in redact_url("http://h/mcp/tok-123", ["tok-123"])


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_a_tool_is_called_inside_an_initialized_session(mcp_server: McpServer, mode: str) -> None:
    mcp_server.mode = mode
    arguments = {
        "project_key": "/srv/repos/app",
        "sender_name": "BlueLake",
        "to": ["GreenCastle"],
        "subject": "preflight",
        "body_md": "blocked",
    }
    with McpSession(url_of(mcp_server), token=TOKEN, timeout=5.0) as session:
        result = session.call_tool("echo", arguments)
        assert (session.session_id, session.protocol_version) == ("session-1", "2025-03-26")
        assert session.server["serverInfo"] == {"name": "mcp-agent-mail", "version": "0"}
    assert result["structuredContent"] == arguments
    assert [r["method"] for r in posts(mcp_server)] == [
        "initialize",
        "notifications/initialized",
        "tools/call",
    ]
    assert posts(mcp_server)[2]["params"] == {"name": "echo", "arguments": arguments}
    assert mcp_server.requests[-1] == {"http": "DELETE", "path": "/mcp/", "session": "session-1"}
    assert session.session_id is None  # closed once, on exit
    session.close()
    assert [r["http"] for r in mcp_server.requests].count("DELETE") == 1


def test_a_tool_that_reports_an_error_is_an_error_without_the_token(mcp_server: McpServer) -> None:
    with (
        pytest.raises(McpError) as caught,
        McpSession(url_of(mcp_server), token=TOKEN, timeout=5.0) as session,
    ):
        session.call_tool("fail", {})
    assert caught.value.location == url_of(mcp_server)
    assert caught.value.detail == "tool fail failed: recipient Nobody not found (***)"
    assert str(caught.value) == f"{url_of(mcp_server)}: {caught.value.detail}"
    assert mcp_server.requests[-1]["http"] == "DELETE"  # the session is ended after a failure too


def test_a_json_rpc_error_names_the_method(mcp_server: McpServer) -> None:
    with (
        McpSession(url_of(mcp_server), token=TOKEN, timeout=5.0) as session,
        pytest.raises(
            McpError,
            match=r"tools/call failed with JSON-RPC error -32602: "
            r"Unknown tool: missing",
        ),
    ):
        session.call_tool("missing", {"x": 1})


def test_a_bad_url_or_no_time_left_is_refused_before_anything_is_sent(
    mcp_server: McpServer,
) -> None:
    with pytest.raises(McpError, match=r"^ftp://me:\*\*\*@h/mcp/: not an http\(s\) URL$"):
        McpSession("ftp://me:pw@h/mcp/", timeout=5.0)
    with pytest.raises(McpError, match="no time left to ask the server"):
        McpSession(url_of(mcp_server), timeout=0)
    assert mcp_server.requests == []


def test_url_credentials_are_sent_as_basic_auth_and_kept_out_of_errors(
    mcp_server: McpServer,
) -> None:
    port = mcp_server.http.port
    mcp_server.auth = "Basic " + base64.b64encode(b"me:p@ss word").decode()
    with McpSession(f"http://me:p%40ss%20word@127.0.0.1:{port}/mcp/", timeout=5.0) as session:
        assert session.read_resource("resource://x")["contents"][0]["uri"] == "resource://x"
    assert session.location == f"http://me:***@127.0.0.1:{port}/mcp/"
    with (
        pytest.raises(McpError, match=r"initialize: HTTP 401 Unauthorized") as caught,
        McpSession(f"http://me:guess@127.0.0.1:{port}/mcp/", timeout=5.0),
    ):
        pass
    assert "guess" not in str(caught.value)
    assert mcp_server.requests[-1]["method"] == "initialize"  # no session was opened, none is ended


def test_a_redirect_to_another_host_is_refused(mcp_server: McpServer) -> None:
    mcp_server.mode = "redirect_away"
    with (
        pytest.raises(
            McpError,
            match=r"redirected elsewhere \('http://elsewhere\.invalid/mcp/'"
            r"\); set url to the MCP endpoint itself",
        ),
        McpSession(url_of(mcp_server), token=TOKEN, timeout=5.0),
    ):
        pass
    assert len(mcp_server.requests) == 1
