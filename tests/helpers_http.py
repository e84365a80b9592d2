"""The one HTTP server the tests start: stdlib ``http.server`` on a loopback port, in a thread.

A test gives it a handler (a function from :class:`Request` to :class:`Response`) or a route
table (path without the query -> a fixed answer or a handler). The server records every request
before answering it, so a client that got its answer finds the request in ``requests``.

Answers that misbehave on purpose are fields of :class:`Response`: ``delay`` (a slow endpoint),
``hang`` (no answer until the server stops), ``drop`` (the connection closed before a status
line) and ``stream`` (a body sent piece by piece without a length, endless if the iterable is).
Redirects and ``Retry-After`` are plain statuses and headers.

Tests use the ``http_server`` fixture (tests/conftest.py), which stops every server it started;
a fixture wider than one test uses the class as a context manager.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol

#: Seconds a hanging or delayed answer waits at most when nobody stops the server.
HOLD_LIMIT = 10.0


@dataclass(frozen=True)
class Request:
    """One request as the server read it."""

    method: str
    #: The request target as sent, query included (``BaseHTTPRequestHandler.path``).
    path: str
    #: Header names lower-cased.
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        """The path without its query: what route tables are keyed on."""
        return urllib.parse.urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    """An answer; the misbehaving ones are flags rather than handler code."""

    status: int = 200
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (ends early when the server stops).
    delay: float = 0.0
    #: Never answer; the connection is closed when the server stops.
    hang: bool = False
    #: Close the connection without answering.
    drop: bool = False
    #: Body pieces sent without a Content-Length, then the connection closes; an endless
    #: iterable ends when the client hangs up or the server stops.
    stream: Iterable[bytes] | None = None

    @classmethod
    def json(
        cls,
        value: Any,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return cls(
            status, json.dumps(value), {"Content-Type": "application/json", **(headers or {})}
        )

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return cls(status, text, {"Content-Type": "text/plain", **(headers or {})})

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, headers={"Location": location})


Handler = Callable[[Request], Response]
Routes = Mapping[str, "Response | Handler"]
NOT_FOUND = Response.text("not found", 404)


def _dispatch(routes: Routes) -> Handler:
    def handle(request: Request) -> Response:
        answer = routes.get(request.route, NOT_FOUND)
        return answer if isinstance(answer, Response) else answer(request)

    return handle


def scripted(*answers: Response, then: Response | None = None) -> Handler:
    """Answers with ``answers``, one request each, then with ``then`` (a 200) for the rest."""
    queue, rest = list(answers), then or Response()
    return lambda _: queue.pop(0) if queue else rest


class HttpServer:
    """A running (after :meth:`start`) ``ThreadingHTTPServer`` answering through ``handler``."""

    def __init__(
        self,
        handler: Handler | Routes,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        backlog: int = 16,
    ) -> None:
        self.handler: Handler = _dispatch(handler) if isinstance(handler, Mapping) else handler
        self.requests: list[Request] = []
        #: Exceptions the handler raised (each answered with a 500); raised again at the end.
        self.errors: list[BaseException] = []
        #: Set when the server stops: ends hanging, delayed and streamed answers.
        self.release = threading.Event()
        self.tls = tls
        self._httpd = _Server((host, 0), _RequestHandler, backlog)
        self._httpd.owner = self
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str = "", *, scheme: str | None = None) -> str:
        scheme = scheme or ("https" if self.tls is not None else "http")
        return f"{scheme}://{self.host}:{self.port}{path}"

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def raise_errors(self) -> None:
        """Fail the test that owns a server whose handler broke (the client saw only a 500)."""
        if self.errors:
            raise self.errors[0]

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        if kind is None:
            self.raise_errors()


class StartHttpServer(Protocol):
    """The ``http_server`` fixture: starts a server, stopped when the test ends."""

    def __call__(
        self,
        handler: Handler | Routes,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        backlog: int = 16,
    ) -> HttpServer: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HttpServer

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], backlog: int
    ) -> None:
        self.request_queue_size = backlog
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout, TLS and refusal tests) is expected here


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            self.command,
            self.path,
            {name.lower(): value for name, value in self.headers.items()},
            self.rfile.read(length) if length else b"",
        )
        owner.requests.append(request)
        try:
            answer = owner.handler(request)
        except Exception as error:  # the test learns of it at the end, the client by a 500
            owner.errors.append(error)
            answer = Response.text(f"handler error: {error!r}", 500)
        self._answer(answer, owner.release)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def _answer(self, answer: Response, release: threading.Event) -> None:
        if answer.delay:
            release.wait(min(answer.delay, HOLD_LIMIT))
        if answer.hang:
            release.wait(HOLD_LIMIT)
        if answer.hang or answer.drop:
            self.close_connection = True
            return
        body = answer.body.encode() if isinstance(answer.body, str) else answer.body
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.stream is not None:
            self.send_header("Connection", "close")
            self.end_headers()
            self._stream(answer.stream, release)
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _stream(self, pieces: Iterable[bytes], release: threading.Event) -> None:
        self.close_connection = True
        for piece in pieces:
            if release.is_set():
                return
            self.wfile.write(piece)  # raises once the client hangs up: handle_error ignores it
            self.wfile.flush()
