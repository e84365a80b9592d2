"""A real MCP server for the tests: JSON-RPC over HTTP on 127.0.0.1 (stdlib ``http.server`` in
a thread), shaped like mcp_agent_mail's Streamable HTTP endpoint.

``mode`` picks a behaviour: ``json`` or ``sse`` answers, ``redirect`` (``/mcp`` -> ``/mcp/``),
``redirect_away`` (to another host), ``rpc_error``, ``http500`` or ``hang`` for
``resources/read``. ``contents`` replaces the resource contents; ``projects`` serves each
project slug its own reservations; ``auth`` is the Authorization
header the server accepts. Tools: ``echo`` answers with its arguments, ``fail`` reports
``isError``, ``send_message`` (mcp_agent_mail's) records each call in ``sent`` (its arguments
and the Authorization header) and answers like mcp_agent_mail, or reports ``isError`` in mode
``refuse_send``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "s3cret-token"
RESERVATIONS = [
    {"id": 1, "agent": "BlueLake", "path_pattern": "src/*.py", "exclusive": True,
     "reason": "", "created_ts": "2026-11-25T08:00:00+00:00",
     "expires_ts": "2026-11-25T10:00:00+00:00", "released_ts": None, "stale": False},
    {"id": 2, "agent": "GreenCastle", "path_pattern": "docs/**", "exclusive": False,
     "expires_ts": "2026-11-25T09:45:00.123456+00:00", "released_ts": None},
    {"id": 3, "agent": "RedStone", "path_pattern": "lib/**", "exclusive": True,
     "expires_ts": "2026-11-25T09:10:00+00:00", "released_ts": None},  # expired
    {"id": 4, "agent": "PinkPond", "path_pattern": "web/**", "exclusive": True,
     "expires_ts": "2026-11-26T00:00:00+00:00", "released_ts": "2026-11-25T09:00:00+00:00"},
]


class McpServer(ThreadingHTTPServer):
    daemon_threads = True
    mode = "json"
    contents: Any = None
    #: Reservations by project slug; ``None`` serves ``RESERVATIONS`` for every project.
    projects: dict[str, list[dict[str, Any]]] | None = None
    auth = f"Bearer {TOKEN}"
    release = threading.Event()

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), McpHandler)
        self.requests: list[dict[str, Any]] = []
        self.initialized = False
        self.sent: list[dict[str, Any]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) is expected here


class McpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: McpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:
        self.server.requests.append({"http": "DELETE", "path": self.path,
                                     "session": self.headers.get("Mcp-Session-Id")})
        self._send(200)

    def do_POST(self) -> None:
        server = self.server
        message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append({
            "http": "POST", "path": self.path, "method": message.get("method"),
            "params": message.get("params"), "session": self.headers.get("Mcp-Session-Id"),
            "protocol": self.headers.get("MCP-Protocol-Version"),
            "accept": self.headers.get("Accept")})
        if server.mode == "redirect" and self.path == "/mcp":
            self._send(307, headers={"Location": "/mcp/"})
            return
        if server.mode == "redirect_away":
            self._send(308, headers={"Location": "http://elsewhere.invalid/mcp/"})
            return
        if self.headers.get("Authorization") != server.auth:
            self._send(401, b'{"detail": "Unauthorized"}')
            return
        method = message.get("method")
        if method == "initialize":
            self._reply(message, {"protocolVersion": "2025-03-26", "capabilities": {},
                                  "serverInfo": {"name": "mcp-agent-mail", "version": "0"}},
                        {"Mcp-Session-Id": "session-1"})
        elif method == "notifications/initialized":
            server.initialized = self.headers.get("Mcp-Session-Id") == "session-1"
            self._send(202)
        elif method in ("resources/read", "tools/call") and not self._in_session():
            self._send(400, b'{"error": {"code": -32600, "message": "Bad Request: no session"}}')
        elif method == "resources/read":
            self._read_resource(message)
        elif method == "tools/call":
            self._call_tool(message)
        else:
            self._reply(message, error={"code": -32601, "message": "Method not found"})

    def _in_session(self) -> bool:
        return self.server.initialized and self.headers.get("Mcp-Session-Id") == "session-1"

    def _read_resource(self, message: dict[str, Any]) -> None:
        server = self.server
        if server.mode == "rpc_error":
            self._reply(message, error={"code": -32002, "message": "Unknown resource"})
        elif server.mode == "http500":
            self._send(500, b"Internal Server Error", "text/plain")
        elif server.mode == "hang":
            server.release.wait(10)
        else:
            uri = message["params"]["uri"]
            reservations = RESERVATIONS
            if server.projects is not None:
                # Like the server: each project's own reservations, none for another project.
                slug = uri.removeprefix("resource://file_reservations/").split("?", 1)[0]
                reservations = server.projects.get(slug, [])
            contents = server.contents if server.contents is not None else [
                {"uri": uri, "mimeType": "application/json", "text": json.dumps(reservations)}]
            self._reply(message, {"contents": contents})

    def _call_tool(self, message: dict[str, Any]) -> None:
        name, arguments = message["params"]["name"], message["params"]["arguments"]
        if name == "echo":
            self._reply(message, {"content": [{"type": "text", "text": json.dumps(arguments)}],
                                  "structuredContent": arguments})
        elif name == "send_message":
            self._send_message(message, arguments)
        elif name == "fail":
            self._reply(message, {"content": [{"type": "text", "text": "recipient\n  Nobody "
                                               f"not found ({TOKEN})"}], "isError": True})
        else:
            self._reply(message, error={"code": -32602, "message": f"Unknown tool: {name}"})

    def _send_message(self, message: dict[str, Any], arguments: dict[str, Any]) -> None:
        self.server.sent.append({"arguments": arguments,
                                 "authorization": self.headers.get("Authorization")})
        if self.server.mode == "refuse_send":
            self._reply(message, {"content": [{"type": "text", "text": "Agent "
                                               f"{arguments.get('to')} not found"}],
                                  "isError": True})
            return
        # mcp_agent_mail answers with the deliveries it made (one per recipient list).
        result = {"deliveries": [{"project": arguments.get("project_key"), "payload": {
            "id": len(self.server.sent), "thread_id": arguments.get("thread_id"),
            "subject": arguments.get("subject"), "to": arguments.get("to")}}], "count": 1}
        self._reply(message, {"content": [{"type": "text", "text": json.dumps(result)}],
                              "structuredContent": result})

    def _reply(self, message: dict[str, Any], result: Any = None,
               headers: dict[str, str] | None = None, error: Any = None) -> None:
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        answer.update({"error": error} if error is not None else {"result": result})
        if self.server.mode != "sse":
            self._send(200, json.dumps(answer).encode(), headers=headers)
            return
        # An SSE stream: a log notification first, then the answer split over two data lines.
        log = {"jsonrpc": "2.0", "method": "notifications/message",
               "params": {"level": "info", "data": "reading"}}
        text = json.dumps(answer)
        half = text.index(", ") + 1  # the data lines are joined with a newline: JSON whitespace
        body = (f": keep-alive\r\nevent: message\r\ndata: {json.dumps(log)}\r\n\r\n"
                f"event: message\r\nid: 7\r\ndata: {text[:half]}\r\ndata:{text[half:]}\r\n"
                f"\r\n").encode()
        self._send(200, body, "text/event-stream", headers)


@contextmanager
def serve() -> Iterator[McpServer]:
    """A running server, shut down (and any hanging answer released) afterwards."""
    server = McpServer()
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def url_of(server: McpServer, path: str = "/mcp/") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"
