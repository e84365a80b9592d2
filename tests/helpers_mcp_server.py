"""A real MCP server for the tests: JSON-RPC over HTTP on 127.0.0.1 (stdlib ``http.server`` in
a thread), shaped like mcp_agent_mail's Streamable HTTP endpoint.

``mode`` picks a behaviour: ``json`` or ``sse`` answers, ``redirect`` (``/mcp`` -> ``/mcp/``),
``redirect_away`` (to another host), ``rpc_error``, ``http500`` or ``hang`` for
``resources/read``. ``contents`` replaces the resource contents; ``projects`` serves each
project slug its own reservations; ``auth`` is the Authorization
header the server accepts. Tools: ``echo`` answers with its arguments, ``fail`` reports
``isError``, ``send_message`` (mcp_agent_mail's) records each call in ``sent`` (its arguments
and the Authorization header) and answers like mcp_agent_mail, or reports ``isError`` in mode
``refuse_send``; ``acknowledge_message`` (mcp_agent_mail's) acknowledges a message sent, which
then leaves its recipient's ``resource://views/ack-required/{agent}?project=...&limit=...``.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from helpers_http import HttpServer, Request, Response

TOKEN = "s3cret-token"
ACK_VIEW = "resource://views/ack-required/"
RESERVATIONS = [
    {
        "id": 1,
        "agent": "BlueLake",
        "path_pattern": "src/*.py",
        "exclusive": True,
        "reason": "",
        "created_ts": "2026-11-25T08:00:00+00:00",
        "expires_ts": "2026-11-25T10:00:00+00:00",
        "released_ts": None,
        "stale": False,
    },
    {
        "id": 2,
        "agent": "GreenCastle",
        "path_pattern": "docs/**",
        "exclusive": False,
        "expires_ts": "2026-11-25T09:45:00.123456+00:00",
        "released_ts": None,
    },
    {
        "id": 3,
        "agent": "RedStone",
        "path_pattern": "lib/**",
        "exclusive": True,
        "expires_ts": "2026-11-25T09:10:00+00:00",
        "released_ts": None,
    },  # expired
    {
        "id": 4,
        "agent": "PinkPond",
        "path_pattern": "web/**",
        "exclusive": True,
        "expires_ts": "2026-11-26T00:00:00+00:00",
        "released_ts": "2026-11-25T09:00:00+00:00",
    },
]


class McpServer:
    """The MCP application; ``http`` is the loopback server it answers on."""

    mode = "json"
    contents: Any = None
    #: Reservations by project slug; ``None`` serves ``RESERVATIONS`` for every project.
    projects: dict[str, list[dict[str, Any]]] | None = None
    auth = f"Bearer {TOKEN}"
    http: HttpServer

    def __init__(self) -> None:
        self.initialized = False
        self.sent: list[dict[str, Any]] = []
        #: Message id -> the recipient agents that acknowledged it.
        self.acknowledged: dict[int, set[str]] = {}

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request as MCP sees it: the HTTP method, the path, the session and, for a POST,
        the JSON-RPC method and params."""
        return [_as_mcp(request) for request in self.http.requests]

    def __call__(self, request: Request) -> Response:
        if request.method == "DELETE":
            return _send(200)
        if request.method != "POST":
            return _send(405)
        if self.mode == "redirect" and request.path == "/mcp":
            return _send(307, headers={"Location": "/mcp/"})
        if self.mode == "redirect_away":
            return _send(308, headers={"Location": "http://elsewhere.invalid/mcp/"})
        if request.headers.get("authorization") != self.auth:
            return _send(401, b'{"detail": "Unauthorized"}')
        message = request.json()
        method = message.get("method")
        if method == "initialize":
            return self._reply(
                message,
                {
                    "protocolVersion": "2025-03-26",
                    "capabilities": {},
                    "serverInfo": {"name": "mcp-agent-mail", "version": "0"},
                },
                {"Mcp-Session-Id": "session-1"},
            )
        if method == "notifications/initialized":
            self.initialized = request.headers.get("mcp-session-id") == "session-1"
            return _send(202)
        if method in ("resources/read", "tools/call") and not self._in_session(request):
            return _send(400, b'{"error": {"code": -32600, "message": "Bad Request: no session"}}')
        if method == "resources/read":
            return self._read_resource(message)
        if method == "tools/call":
            return self._call_tool(message, request)
        return self._reply(message, error={"code": -32601, "message": "Method not found"})

    def _in_session(self, request: Request) -> bool:
        return self.initialized and request.headers.get("mcp-session-id") == "session-1"

    def _read_resource(self, message: dict[str, Any]) -> Response:
        if self.mode == "rpc_error":
            return self._reply(message, error={"code": -32002, "message": "Unknown resource"})
        if self.mode == "http500":
            return _send(500, b"Internal Server Error", "text/plain")
        if self.mode == "hang":
            return Response(hang=True)
        uri = message["params"]["uri"]
        if uri.startswith(ACK_VIEW):
            return self._reply(message, {"contents": [self._ack_required(uri)]})
        reservations = RESERVATIONS
        if self.projects is not None:
            # Like the server: each project's own reservations, none for another project.
            slug = uri.removeprefix("resource://file_reservations/").split("?", 1)[0]
            reservations = self.projects.get(slug, [])
        contents = (
            self.contents
            if self.contents is not None
            else [{"uri": uri, "mimeType": "application/json", "text": json.dumps(reservations)}]
        )
        return self._reply(message, {"contents": contents})

    def _call_tool(self, message: dict[str, Any], request: Request) -> Response:
        name, arguments = message["params"]["name"], message["params"]["arguments"]
        if name == "echo":
            return self._reply(
                message,
                {
                    "content": [{"type": "text", "text": json.dumps(arguments)}],
                    "structuredContent": arguments,
                },
            )
        if name == "send_message":
            return self._send_message(message, arguments, request)
        if name == "acknowledge_message":
            return self._acknowledge(message, arguments)
        if name == "fail":
            return self._reply(
                message,
                {
                    "content": [
                        {"type": "text", "text": f"recipient\n  Nobody not found ({TOKEN})"}
                    ],
                    "isError": True,
                },
            )
        return self._reply(message, error={"code": -32602, "message": f"Unknown tool: {name}"})

    def _send_message(
        self, message: dict[str, Any], arguments: dict[str, Any], request: Request
    ) -> Response:
        self.sent.append(
            {"arguments": arguments, "authorization": request.headers.get("authorization")}
        )
        if self.mode == "refuse_send":
            return self._reply(
                message,
                {
                    "content": [{"type": "text", "text": f"Agent {arguments.get('to')} not found"}],
                    "isError": True,
                },
            )
        # mcp_agent_mail answers with the deliveries it made (one per recipient list).
        result = {
            "deliveries": [
                {
                    "project": arguments.get("project_key"),
                    "payload": {
                        "id": len(self.sent),
                        "thread_id": arguments.get("thread_id"),
                        "subject": arguments.get("subject"),
                        "to": arguments.get("to"),
                    },
                }
            ],
            "count": 1,
        }
        return self._reply(
            message,
            {
                "content": [{"type": "text", "text": json.dumps(result)}],
                "structuredContent": result,
            },
        )

    def _ack_required(self, uri: str) -> dict[str, Any]:
        """Like mcp_agent_mail's view: the messages to the agent in the project that asked for
        an acknowledgement and have none, newest first, at most ``limit``."""
        agent_part, _, query = uri.removeprefix(ACK_VIEW).partition("?")
        agent = urllib.parse.unquote(agent_part)
        params = urllib.parse.parse_qs(query)
        project, limit = params["project"][0], int(params.get("limit", ["20"])[0])
        pending = [
            {"id": number, "subject": call["arguments"]["subject"], "ack_required": True}
            for number, call in enumerate(self.sent, start=1)
            if call["arguments"].get("project_key") == project
            and agent in call["arguments"].get("to", [])
            and call["arguments"].get("ack_required")
            and agent not in self.acknowledged.get(number, set())
        ][::-1][:limit]
        view = {"project": project, "agent": agent, "count": len(pending), "messages": pending}
        return {"uri": uri, "mimeType": "application/json", "text": json.dumps(view)}

    def _acknowledge(self, message: dict[str, Any], arguments: dict[str, Any]) -> Response:
        number = int(arguments["message_id"])
        self.acknowledged.setdefault(number, set()).add(arguments["agent_name"])
        result = {"message_id": number, "acknowledged": True}
        return self._reply(
            message,
            {
                "content": [{"type": "text", "text": json.dumps(result)}],
                "structuredContent": result,
            },
        )

    def _reply(
        self,
        message: dict[str, Any],
        result: Any = None,
        headers: dict[str, str] | None = None,
        error: Any = None,
    ) -> Response:
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        answer.update({"error": error} if error is not None else {"result": result})
        if self.mode != "sse":
            return _send(200, json.dumps(answer).encode(), headers=headers)
        # An SSE stream: a log notification first, then the answer split over two data lines.
        log = {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "reading"},
        }
        text = json.dumps(answer)
        half = text.index(", ") + 1  # the data lines are joined with a newline: JSON whitespace
        body = (
            f": keep-alive\r\nevent: message\r\ndata: {json.dumps(log)}\r\n\r\n"
            f"event: message\r\nid: 7\r\ndata: {text[:half]}\r\ndata:{text[half:]}\r\n"
            f"\r\n"
        ).encode()
        return _send(200, body, "text/event-stream", headers)


def _send(
    status: int,
    body: bytes = b"",
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(status, body, {"Content-Type": content_type, **(headers or {})})


def _as_mcp(request: Request) -> dict[str, Any]:
    seen: dict[str, Any] = {"http": request.method, "path": request.path}
    if request.method != "POST":
        return {**seen, "session": request.headers.get("mcp-session-id")}
    message = request.json()
    return {
        **seen,
        "method": message.get("method"),
        "params": message.get("params"),
        "session": request.headers.get("mcp-session-id"),
        "protocol": request.headers.get("mcp-protocol-version"),
        "accept": request.headers.get("accept"),
    }


@contextmanager
def serve() -> Iterator[McpServer]:
    """A running server, shut down (and any hanging answer released) afterwards."""
    server = McpServer()
    server.http = HttpServer(server)
    with server.http:
        yield server


def url_of(server: McpServer, path: str = "/mcp/") -> str:
    return server.http.url(path)
