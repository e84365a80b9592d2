"""A forward HTTP proxy for the tests: stdlib ``socketserver`` on 127.0.0.1, a thread per
connection.

An absolute-form request (``GET http://host:port/path HTTP/1.1``) is sent on to the origin
server in origin form (``Connection: close``, without the ``Proxy-*`` headers) and the answer
relayed back; ``CONNECT host:port`` opens a tunnel and relays bytes both ways until one side
closes. Each request it forwarded or tunnelled is kept in ``forwarded``, with the
``Proxy-Authorization`` it carried. Given ``credentials`` (``user:password``), a request
without them is answered ``407`` and kept in ``refused`` instead.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import socketserver
import threading
import urllib.parse
from dataclasses import dataclass
from types import TracebackType

#: Seconds any socket of the proxy waits at most, so no relay outlives a test by much.
IDLE_LIMIT = 10.0


@dataclass(frozen=True)
class Forwarded:
    method: str
    #: The absolute URL of a forwarded request, ``host:port`` of a tunnel.
    target: str
    proxy_authorization: str | None


class HttpProxy:
    """A running (after :meth:`start`, or in a ``with``) forward proxy."""

    def __init__(self, credentials: str | None = None) -> None:
        self.forwarded: list[Forwarded] = []
        self.refused: list[Forwarded] = []
        self.expected_authorization = (
            "Basic " + base64.b64encode(credentials.encode()).decode() if credentials else None
        )
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, userinfo: str = "") -> str:
        """The proxy's URL, with ``userinfo`` (``user:password``, percent-encoded) if given."""
        return f"http://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    def start(self) -> HttpProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> HttpProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: HttpProxy

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up (deadline tests) is expected here


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(IDLE_LIMIT)
        super().setup()

    def handle(self) -> None:
        line = self.rfile.readline(65537).decode("latin-1")
        if not line.strip():
            return
        method, target, _version = line.split()
        headers: list[tuple[str, str]] = []
        while (raw := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        auth = next((v for k, v in headers if k.lower() == "proxy-authorization"), None)
        owner = self.server.owner
        seen = Forwarded(method, target, auth)
        if owner.expected_authorization is not None and auth != owner.expected_authorization:
            owner.refused.append(seen)
            self.wfile.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="tests"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            return
        owner.forwarded.append(seen)
        if method == "CONNECT":
            self._tunnel(target)
        else:
            self._forward(method, target, headers)

    def _forward(self, method: str, url: str, headers: list[tuple[str, str]]) -> None:
        parts = urllib.parse.urlsplit(url)
        assert parts.scheme == "http", url
        assert parts.hostname, url
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
        body = self.rfile.read(length) if length else b""
        kept = [
            f"{k}: {v}\r\n"
            for k, v in headers
            if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
        ]
        message = (
            f"{method} {path} HTTP/1.1\r\n{''.join(kept)}Connection: close\r\n\r\n".encode(
                "latin-1"
            )
            + body
        )
        with socket.create_connection(
            (parts.hostname, parts.port or 80), timeout=IDLE_LIMIT
        ) as origin:
            origin.sendall(message)
            _pipe(origin, self.request)

    def _tunnel(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        try:
            origin = socket.create_connection((host.strip("[]"), int(port)), timeout=IDLE_LIMIT)
        except OSError:
            self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with origin:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            upstream = threading.Thread(target=_pipe, args=(self.request, origin), daemon=True)
            upstream.start()
            _pipe(origin, self.request)
            upstream.join(IDLE_LIMIT)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until ``source`` ends, then tell ``sink`` nothing more is coming."""
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
