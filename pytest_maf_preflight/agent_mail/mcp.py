"""A small client for an MCP server's Streamable HTTP endpoint (JSON-RPC 2.0 over POST).

Written for mcp_agent_mail, whose reservations are read with ``resources/read`` and whose
messages are sent with ``tools/call``; nothing in it is specific to that server.

- The endpoint is an http(s) URL; a URL without a path means ``/mcp/``. A bearer token is sent
  when given, else the URL's ``user:password`` as Basic auth.
- ``McpSession`` (a context manager) sends ``initialize`` and ``notifications/initialized`` on
  entry; later messages carry the ``Mcp-Session-Id`` the server gave and the
  ``MCP-Protocol-Version`` it agreed to. On exit a ``DELETE`` ends the server's session; that
  is a courtesy, so its failures are ignored.
- Answers may be JSON (one message or a batch) or an SSE stream (``data:`` lines); other
  messages in a stream (logs, progress) are skipped, and reading stops at the answer because
  the stream may stay open.
- Redirects (307/308) are followed to the same origin only, so credentials never reach another
  host. One deadline covers the whole session, every connect and read included; an answer
  larger than ``MAX_BODY_BYTES`` is refused instead of filling memory.
- The HTTP itself (connections, TLS, the deadline, proxies from the environment) is
  ``http_transport``'s; this module holds the MCP protocol.

Every failure is an ``McpError`` that names the URL without its secrets.
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .. import http_transport
from ..redaction import redact_text, redact_url

DEFAULT_MCP_PATH = "/mcp/"
PROTOCOL_VERSION = "2025-03-26"
#: An answer larger than this is not one we asked for; stop reading instead of filling memory.
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_REDIRECTS = 3
CLIENT_NAME = "pytest-maf-preflight"


class McpError(Exception):
    """One line: ``<location>: <detail>``, where ``location`` is the redacted URL."""

    def __init__(self, location: str, detail: str) -> None:
        super().__init__(f"{location}: {detail}")
        self.location = location
        self.detail = detail


class McpSession:
    """One MCP session with the server at ``url``, all of it within ``timeout`` seconds.

    ``McpError`` is raised at once for a URL that is not http(s) or a ``timeout`` that is
    not positive; nothing is sent before the ``with`` block is entered.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout: float) -> None:
        #: The URL as it may be shown: no token, no password, no secret query values.
        self.location = redact_url(url, [token] if token else [])
        try:
            where = http_transport.endpoint(url)
        except http_transport.UnsupportedUrl:
            raise McpError(self.location, "not an http(s) URL") from None
        if timeout <= 0:
            raise McpError(self.location, "no time left to ask the server")
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "User-Agent": CLIENT_NAME,
        }
        auth = http_transport.authorization(url, token)
        if auth is not None:
            headers["Authorization"] = auth
        parts = urllib.parse.urlsplit(url)
        path = parts.path if parts.path not in ("", "/") else DEFAULT_MCP_PATH
        #: Where messages go: the endpoint without user info (sent as a header instead).
        self._url = urllib.parse.urlunsplit((where.scheme, where.authority, path, parts.query, ""))
        self._headers = headers
        self.timeout = timeout
        self._deadline = http_transport.Deadline(timeout)
        self._next_id = 1
        #: Set by the server's answers: the session it opened and the version it agreed to.
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        #: The ``initialize`` result (``serverInfo``, ``capabilities``, ...).
        self.server: dict[str, Any] = {}

    def __enter__(self) -> McpSession:
        try:
            self.server = self.request(
                "initialize",
                {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": CLIENT_NAME, "version": "1"},
                },
            )
            version = self.server.get("protocolVersion")
            self.protocol_version = version if isinstance(version, str) else PROTOCOL_VERSION
            self.notify("notifications/initialized")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def request(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``result`` object of a JSON-RPC request; a JSON-RPC error is an ``McpError``."""
        request_id = self._next_id
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = dict(params)
        answer = self._exchange(message, request_id)
        assert answer is not None
        if "error" in answer:
            error = answer["error"]
            if isinstance(error, dict):
                detail = f"{error.get('code')}: {error.get('message')}"
            else:
                detail = repr(error)
            raise McpError(self.location, f"{method} failed with JSON-RPC error {detail}")
        result = answer.get("result")
        if not isinstance(result, dict):
            raise McpError(self.location, f"{method} answered without a result object")
        return result

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        """A JSON-RPC notification: no answer is read beyond the HTTP status."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = dict(params)
        self._exchange(message, None)

    def read_resource(self, uri: str) -> dict[str, Any]:
        """The ``resources/read`` result: ``{"contents": [{"uri", "text" | "blob", ...}]}``."""
        return self.request("resources/read", {"uri": uri})

    def call_tool(self, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The ``tools/call`` result (``content``, maybe ``structuredContent``). A tool that
        reports ``isError`` is an ``McpError`` carrying the tool's own text."""
        result = self.request("tools/call", {"name": name, "arguments": dict(arguments)})
        if result.get("isError") is True:
            content = result.get("content")
            texts = (
                [
                    c["text"]
                    for c in content
                    if isinstance(c, dict) and isinstance(c.get("text"), str)
                ]
                if isinstance(content, list)
                else []
            )
            said = " ".join(" ".join(texts).split())
            raise McpError(
                self.location,
                redact_text(
                    f"tool {name} failed" + (f": {said[:200]}" if said else ""), self._secrets()
                ),
            )
        return result

    def close(self) -> None:
        """End the server's session so it can free it; a courtesy, so failures are ignored."""
        session, self.session_id = self.session_id, None
        if not session:
            return
        headers = {k: v for k, v in self._headers.items() if k != "Content-Type"}
        headers["Mcp-Session-Id"] = session
        with contextlib.suppress(*http_transport.FAILURES):
            http_transport.fetch(
                "DELETE",
                self._url,
                headers=headers,
                deadline=self._deadline.within(1.0),
                limit=4096,
            )

    # --- one message over HTTP ----------------------------------------------------------------

    def _secrets(self) -> list[str]:
        auth = self._headers.get("Authorization")
        return [auth.split(" ", 1)[-1]] if auth else []

    def _exchange(self, message: dict[str, Any], expect: int | None) -> dict[str, Any] | None:
        try:
            return self._post(message, expect)
        except TimeoutError:
            raise McpError(self.location, f"no answer within {self.timeout:g}s") from None
        except http_transport.FAILURES as exc:
            raise McpError(
                self.location, f"cannot reach the server: {exc or type(exc).__name__}"
            ) from None

    def _post(self, message: dict[str, Any], expect: int | None) -> dict[str, Any] | None:
        body = json.dumps(message).encode()
        for _ in range(MAX_REDIRECTS + 1):
            headers = dict(self._headers)
            if self.session_id:
                headers["Mcp-Session-Id"] = self.session_id
            if self.protocol_version:
                headers["MCP-Protocol-Version"] = self.protocol_version
            with http_transport.request(
                "POST", self._url, headers=headers, body=body, deadline=self._deadline
            ) as response:
                if response.status in (307, 308):
                    self._same_origin_redirect(response.header("Location"))
                    continue
                session = response.header("Mcp-Session-Id")
                if session:
                    self.session_id = session
                content_type = (response.header("Content-Type") or "").lower()
                if response.status >= 300:
                    raise McpError(
                        self.location,
                        self._status_problem(
                            str(message.get("method")), response, response.read(2048)
                        ),
                    )
                if expect is None:
                    return None  # a notification: 202 Accepted, nothing to read
                if "text/event-stream" in content_type:
                    return self._answer_from_events(response, expect)
                return self._answer_from_json(self._read_body(response), expect)
        raise McpError(self.location, f"more than {MAX_REDIRECTS} redirects")

    def _same_origin_redirect(self, target: str | None) -> None:
        resolved = urllib.parse.urljoin(self._url, target or "")
        if not target or http_transport.origin(resolved) != http_transport.origin(self._url):
            raise McpError(
                self.location,
                f"redirected elsewhere ({target!r}); set url to the MCP endpoint itself",
            )
        # Later messages go straight to where the server sent this one.
        self._url = urllib.parse.urldefrag(resolved).url

    def _status_problem(self, method: str, response: http_transport.Response, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").strip()
        hint = ""
        if response.status in (401, 403):
            hint = (
                " (the bearer token was refused; check token_env)"
                if "Authorization" in self._headers
                else " (the server wants a bearer token; set token_env)"
            )
        try:  # a JSON-RPC error in an error status says more than the status line
            error = json.loads(text).get("error") if text.startswith("{") else None
        except (json.JSONDecodeError, AttributeError):
            error = None
        detail = (
            f": JSON-RPC error {error.get('code')}: {error.get('message')}"
            if isinstance(error, dict)
            else (f": {text[:200]}" if text else "")
        )
        return redact_text(
            f"{method}: HTTP {response.status} {response.reason}{hint}{detail}", self._secrets()
        )

    def _read_body(self, response: http_transport.Response) -> bytes:
        raw = response.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise McpError(self.location, f"the answer is larger than {MAX_BODY_BYTES} bytes")
        return raw

    def _answer_from_json(self, raw: bytes, expect: int) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise McpError(self.location, f"the answer is not JSON: {raw[:80]!r}") from None
        for message in data if isinstance(data, list) else [data]:
            if _answers(message, expect):
                return message  # type: ignore[no-any-return]
        raise McpError(
            self.location,
            f"the answer is not a JSON-RPC response to request {expect}: {raw[:80]!r}",
        )

    def _answer_from_events(self, response: http_transport.Response, expect: int) -> dict[str, Any]:
        """The response to ``expect`` from an SSE stream; other messages (logs, progress) are
        skipped, and reading stops as soon as it arrives (the stream may stay open)."""
        data: list[str] = []
        size = 0
        while True:
            line = response.readline(MAX_BODY_BYTES)
            size += len(line)
            if size > MAX_BODY_BYTES:
                raise McpError(self.location, "the event stream is too large")
            end = line == b""
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.startswith("data:"):
                data.append(text[5:].removeprefix(" "))
                continue
            if text and not end:
                continue  # event:, id:, retry: and comments
            # A blank line (or the end of the stream) dispatches the event gathered so far.
            if data:
                try:
                    message = json.loads("\n".join(data))
                except json.JSONDecodeError:
                    raise McpError(
                        self.location, f"an event's data is not JSON: {data[0][:80]!r}"
                    ) from None
                data = []
                if _answers(message, expect):
                    return message  # type: ignore[no-any-return]
            if end:
                raise McpError(
                    self.location, f"the event stream ended without an answer to request {expect}"
                )


def _answers(message: object, expect: int) -> bool:
    return (
        isinstance(message, dict)
        and message.get("id") == expect
        and ("result" in message or "error" in message)
    )
