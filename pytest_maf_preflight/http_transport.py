"""The one HTTP(S) transport of the package: the ``api`` check, the ``webhook`` escalation channel
and the agent-mail MCP client send every request through it.

- **Connections**: http, or https checked against the system's certificate store
  (``verify_tls=False`` turns off certificate and host name checks). One connection per
  request, closed with it.
- **Deadline**: a :class:`Deadline` bounds a request (or a series of them, such as a redirect
  chain or an MCP session) as a whole. Connect, proxy tunnel, TLS handshake and every send and
  receive get the time that is left, so a server that accepts and never answers, or sends its
  headers or body a byte at a time, cannot hold a request past it. (Resolving the host name is
  the one step no timeout reaches.)
- **Proxies** from the environment (the process's, or the copy a check was given), as urllib
  reads them: ``http_proxy`` for http URLs, ``https_proxy`` for https URLs, the lower-case name
  winning over the upper-case one, and ``HTTP_PROXY`` ignored when ``REQUEST_METHOD`` is set
  (CVE-2016-1000110).
  ``no_proxy`` lists host names, domain suffixes (``example.com`` covers ``api.example.com``) or
  ``host:port`` that go direct, ``*`` for all; like urllib, requests and curl, nothing is
  excluded by default, so ``127.0.0.1`` and ``localhost`` go through the proxy unless
  ``no_proxy`` names them. Addresses are matched as text, IPv6 ones in brackets as in a URL
  (``[::1]``), and there are no CIDR ranges. ``ALL_PROXY`` and the system proxy settings of
  macOS and Windows are not read. http requests go to the proxy with the absolute URL as
  request target; https requests through a ``CONNECT`` tunnel, TLS running end to end with the
  target (its certificate checked against the target's name). A proxy URL's ``user:password@``
  is sent as ``Proxy-Authorization`` (to the proxy only: never inside a tunnel) and shown as
  ``***`` in every error. Only ``http://`` proxy URLs (or ``host:port``) are supported; another
  scheme is an error rather than a silent direct connection.
- **Auth from the URL**: :func:`authorization` makes a URL's ``user:password`` Basic auth (or
  takes a bearer token) for the callers that accept credentials that way; the ``api`` check
  does not.
- ``Retry-After`` in seconds is read by :func:`retry_after`; HTTP dates are not honoured.

Why the standard library and not urllib3, measured on Python 3.11 (the fastest of 31 fresh
interpreters on a shared two-core machine). On the gate's path, with pytest, pydantic, the
config loader and the check runner already imported (as when the ``api`` check module is first
imported), this module costs 8.3 ms, of which ``http.client`` and ``ssl`` are 5.6 ms (which the
``api`` check paid before this module existed); the proxy rules are ``urllib.request``'s,
copied to read a given mapping (importing that module would add 1.9 ms). urllib3 2.8 alone
costs 19.8 ms there (53 ms in a bare interpreter, against 18.5 ms for ``http.client`` and
``ssl``), and would replace little: it reads no proxy variables (requests does that, on top of
it) and its ``Timeout(total=...)`` gives each receive the time left when the read starts rather
than bounding the request, so a deadline wrapper like the one here would still be needed. The
idle path (pytest without ``--maf-preflight``) imports none of this (tests/test_lazy_imports.py).
"""

from __future__ import annotations

import base64
import errno
import http.client
import io
import os
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from types import TracebackType
from typing import Any, NamedTuple, cast

from .redaction import REDACTED

_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 65536

#: What a request raises when the network, the peer, the proxy or the deadline fails it
#: (``TimeoutError``, ``ssl.SSLError`` and :class:`ProxyError` are among the ``OSError`` kinds);
#: a bug raises anything else.
FAILURES: tuple[type[Exception], ...] = (OSError, http.client.HTTPException)


class UnsupportedUrl(ValueError):
    """A URL the transport cannot request; the message says why, without the URL."""


class ProxyError(OSError):
    """The proxy could not be used: unreachable, refused the tunnel, or not an http:// proxy.

    The message names the proxy without its password.
    """


class Deadline:
    """When a request, or a series of requests, must be over (on the monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        """The seconds left; ``TimeoutError`` when none are."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def within(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now, or this one if it comes sooner."""
        return Deadline(min(seconds, self._end - time.monotonic()))


# Value types are NamedTuples: a frozen dataclass costs the import about ten times as much.


class Endpoint(NamedTuple):
    """An http(s) URL taken apart for a request."""

    scheme: str
    host: str
    port: int
    #: ``host[:port]`` as the URL writes it, without user info (IPv6 hosts in brackets).
    authority: str
    #: The path and query: the request target in origin form.
    target: str

    @property
    def host_port(self) -> str:
        """``host:port`` with the port always written: a ``CONNECT`` target."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def endpoint(url: str) -> Endpoint:
    """``url`` taken apart; ``UnsupportedUrl`` for anything but http(s) with a host and port."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise UnsupportedUrl("expected http:// or https:// and a host")
    try:
        port = parts.port
    except ValueError:
        raise UnsupportedUrl("invalid port") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Endpoint(
        scheme,
        parts.hostname,
        port or _DEFAULT_PORTS[scheme],
        parts.netloc.rpartition("@")[2],
        target,
    )


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port, the port spelled out (``http://h`` is ``http://h:80``)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # refused when requested; here it is just not the same origin
        port = -1
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def _basic(user: str, password: str) -> str:
    credentials = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def authorization(url: str, token: str | None = None) -> str | None:
    """An ``Authorization`` value: ``Bearer <token>`` when a token is given, else the URL's
    ``user:password`` as Basic auth, else None."""
    if token:
        return f"Bearer {token}"
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return None
    return _basic(parts.username, parts.password or "")


def retry_after(value: str | None, most: float) -> float | None:
    """The seconds a ``Retry-After`` value asks to wait, at most ``most``; None when it gives
    no number of seconds (absent, an HTTP date, negative or NaN)."""
    try:
        seconds = float(value) if value is not None else -1.0
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative: not an answer we can use
        return None
    return min(seconds, most)


# --- proxies ----------------------------------------------------------------------------------


class Proxy(NamedTuple):
    host: str
    port: int
    #: ``Basic ...`` from the proxy URL's ``user:password@``, or None.
    authorization: str | None
    #: The proxy URL as it may be shown: the password replaced by ``***``.
    shown: str


def proxy_for(where: Endpoint, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy ``environ`` (by default the process's environment) names for ``where``, or
    None to connect directly."""
    # urllib's own rules, so that every tool in the same environment takes the same route.
    proxies = _proxies(os.environ if environ is None else environ)
    value = proxies.get(where.scheme)
    # With a proxy variable set, urllib's proxy_bypass reads no_proxy on every platform (the
    # system settings of macOS and Windows are consulted only when no variable is set).
    if not value or _bypassed(where.authority, proxies.get("no")):
        return None
    return _parse_proxy(value)


# urllib.request's getproxies_environment and proxy_bypass_environment, over a given mapping:
# urllib reads os.environ (twice per request, decoding every variable), and a check has its
# own copy of the environment. Keep them in step with CPython's.


def _proxies(environ: Mapping[str, str]) -> dict[str, str]:
    """Scheme -> proxy URL: two passes over the variables (any case, then the lower-case names
    win, an empty one removing the scheme), and the CGI rule of CVE-2016-1000110."""
    proxies = {}
    for name, value in environ.items():
        name = name.lower()
        if value and name[-6:] == "_proxy":
            proxies[name[:-6]] = value
    if "REQUEST_METHOD" in environ:
        proxies.pop("http", None)
    for name, value in environ.items():
        if name[-6:] == "_proxy":
            name = name.lower()
            if value:
                proxies[name[:-6]] = value
            else:
                proxies.pop(name[:-6], None)
    return proxies


_PORT = re.compile(r"(.*):([0-9]*)", re.DOTALL)


def _bypassed(authority: str, no_proxy: str | None) -> bool:
    """Whether ``no_proxy`` (comma-separated names or domain suffixes, ``*`` for all) sends
    ``authority`` (``host[:port]``) direct."""
    if no_proxy is None:
        return False
    if no_proxy == "*":
        return True
    host = authority.lower()
    match = _PORT.fullmatch(host)
    hostonly = match.group(1) if match else host
    for entry in no_proxy.split(","):
        if not entry.strip():
            continue
        name = entry.strip().lstrip(".").lower()
        if name in (hostonly, host) or hostonly.endswith(f".{name}") or host.endswith(f".{name}"):
            return True
    return False


def _parse_proxy(value: str) -> Proxy:
    parts = urllib.parse.urlsplit(value if "://" in value else f"http://{value}")
    host = parts.hostname or ""
    user = parts.username
    shown_host = parts.netloc.rpartition("@")[2]
    if user is None:
        shown = f"{parts.scheme}://{shown_host}"
    else:
        shown = (
            f"{parts.scheme}://{user}:{REDACTED}@{shown_host}"
            if parts.password is not None
            else f"{parts.scheme}://{user}@{shown_host}"
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme.lower() != "http" or not host or port == -1:
        raise ProxyError(f"unusable proxy {shown}: expected http://[user:password@]host[:port]")
    auth = _basic(user, parts.password or "") if user is not None else None
    return Proxy(host, port or 80, auth, shown)


# --- one connection, bounded by the deadline --------------------------------------------------


class _DeadlineSocket:
    """The parts of a socket that ``http.client`` uses, each operation given the time left.

    A plain socket's timeout restarts with every receive; giving each one the time left is
    what makes the deadline hold for a peer that trickles bytes. The socket is closed when the
    connection and the response reading from it have both let go, as a socket's own
    ``makefile`` arranges (``http.client`` closes the connection before the body is read when
    the server closes after it).
    """

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline
        self._readers = 0
        self._closed = False

    def sendall(self, data: Any) -> None:
        self._sock.settimeout(self._deadline.left())
        self._sock.sendall(data)

    def recv_into(self, buffer: Any) -> int:
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_Reader(self))

    def release(self) -> None:
        self._readers -= 1
        if self._closed and not self._readers:
            self._sock.close()

    def close(self) -> None:
        self._closed = True
        if not self._readers:
            self._sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.release()
        super().close()


def _as_socket(sock: _DeadlineSocket) -> socket.socket:
    # http.client is typed for a socket but uses only sendall, makefile and close.
    return cast(socket.socket, sock)


class _Connection(http.client.HTTPConnection):
    """An ``HTTPConnection`` that opens its socket itself: to the target or the proxy, through a
    tunnel and TLS where needed, every step within the deadline."""

    def __init__(
        self, where: Endpoint, proxy: Proxy | None, tls: ssl.SSLContext | None, deadline: Deadline
    ) -> None:
        super().__init__(where.host, where.port)
        # The Host header leaves out the port when it is the scheme's own.
        self.default_port = _DEFAULT_PORTS[where.scheme]
        self._where = where
        self._proxy = proxy
        self._tls = tls
        self._deadline = deadline

    def connect(self) -> None:
        hop = (
            (self._proxy.host, self._proxy.port)
            if self._proxy
            else (self._where.host, self._where.port)
        )
        try:
            raw = socket.create_connection(hop, timeout=self._deadline.left())
        except TimeoutError:
            raise
        except OSError as exc:
            if self._proxy is None:
                raise
            raise ProxyError(
                f"cannot connect to the proxy {self._proxy.shown}: {exc.strerror or exc}"
            ) from None
        try:
            _no_delay(raw)
            if self._tls is None:
                self.sock = _as_socket(_DeadlineSocket(raw, self._deadline))
                return
            if self._proxy is not None:
                _tunnel(_DeadlineSocket(raw, self._deadline), self._where, self._proxy)
            raw.settimeout(self._deadline.left())  # the handshake keeps to it as a whole
            secure = self._tls.wrap_socket(raw, server_hostname=self._where.host)
        except BaseException:
            raw.close()
            raise
        self.sock = _as_socket(_DeadlineSocket(secure, self._deadline))


def _no_delay(sock: socket.socket) -> None:
    # http.client sends the headers and the body in two writes; Nagle's algorithm would hold
    # the second until the first is acknowledged (up to 40 ms against a delayed ACK).
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        if exc.errno != errno.ENOPROTOOPT:
            raise


def _tunnel(sock: _DeadlineSocket, where: Endpoint, proxy: Proxy) -> None:
    lines = [f"CONNECT {where.host_port} HTTP/1.1", f"Host: {where.host_port}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    answer = http.client.HTTPResponse(_as_socket(sock), method="CONNECT")
    try:
        answer.begin()
    except http.client.HTTPException as exc:
        raise ProxyError(
            f"the proxy {proxy.shown} gave no valid answer to CONNECT "
            f"{where.host_port}: {type(exc).__name__}"
        ) from None
    finally:
        answer.close()
    if not 200 <= answer.status < 300:
        raise ProxyError(
            f"the proxy {proxy.shown} refused the tunnel to {where.host_port}: "
            f"{answer.status} {answer.reason}".rstrip()
        )


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# --- requests ---------------------------------------------------------------------------------


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers if key.lower() == lowered), None)


class Response:
    """An answer whose body is still to be read; close it (or use it in a ``with``)."""

    def __init__(self, connection: _Connection, answer: http.client.HTTPResponse) -> None:
        self._connection = connection
        self._answer = answer
        self.status = answer.status
        self.reason = answer.reason
        self.headers = answer.getheaders()

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), or None."""
        return _first(self.headers, name)

    def read(self, limit: int) -> bytes:
        """The body, or its first ``limit`` bytes."""
        chunks: list[bytes] = []
        size = 0
        while size < limit:
            chunk = self._answer.read1(min(_CHUNK, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    def readline(self, limit: int) -> bytes:
        """One line of the body (at most ``limit`` bytes); empty at its end."""
        return self._answer.readline(limit)

    def close(self) -> None:
        self._answer.close()
        self._connection.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Reply(NamedTuple):
    """An answer read in full (up to a limit): what :func:`fetch` returns."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), or None."""
        return _first(self.headers, name)


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    deadline: Deadline,
    body: bytes | None = None,
    verify_tls: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Response:
    """Send one request and read the answer's status and headers, all within ``deadline``.

    Redirects are the caller's to follow (or not). Raises ``UnsupportedUrl`` for a URL that is
    not http(s), ``TimeoutError`` at the deadline, and another of :data:`FAILURES` when the
    network, the proxy or the peer fails. The proxy is the one ``environ`` names (by default
    the process's environment).
    """
    where = endpoint(url)
    proxy = proxy_for(where, environ)
    tls = _tls_context(verify_tls) if where.scheme == "https" else None
    connection = _Connection(where, proxy, tls, deadline)
    sent = dict(headers)
    target = where.target
    if proxy is not None and tls is None:  # plain http: the proxy forwards the absolute URL
        target = f"http://{where.authority}{where.target}"
        if proxy.authorization and "proxy-authorization" not in {k.lower() for k in sent}:
            sent["Proxy-Authorization"] = proxy.authorization
    try:
        connection.request(method, target, body=body, headers=sent)
        return Response(connection, connection.getresponse())
    except BaseException:
        connection.close()
        raise


def fetch(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str],
    deadline: Deadline,
    limit: int,
    body: bytes | None = None,
    verify_tls: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Reply:
    """:func:`request`, and the body's first ``limit`` bytes read within the same deadline."""
    with request(
        method,
        url,
        headers=headers,
        deadline=deadline,
        body=body,
        verify_tls=verify_tls,
        environ=environ,
    ) as response:
        return Reply(response.status, response.reason, response.headers, response.read(limit))


__all__ = [
    "FAILURES",
    "Deadline",
    "Endpoint",
    "Proxy",
    "ProxyError",
    "Reply",
    "Response",
    "UnsupportedUrl",
    "authorization",
    "endpoint",
    "fetch",
    "origin",
    "proxy_for",
    "request",
    "retry_after",
]
