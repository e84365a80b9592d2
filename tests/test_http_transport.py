"""The HTTP transport under its three callers (the ``api`` check, the ``webhook`` channel and the
MCP client): proxies from the environment, through a real forward proxy on 127.0.0.1
(tests/helpers_http_proxy.py), https through its ``CONNECT`` tunnel to a TLS server with a
certificate made for the test by the ``openssl`` command, and the deadline against a server
that sends its headers a line at a time."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from helpers_escalation import clock, notice
from helpers_http import NOT_FOUND, HttpServer, Request, Response, StartHttpServer
from helpers_http_proxy import Forwarded, HttpProxy
from helpers_loopback import closed_port
from pytest_maf_preflight import http_transport
from pytest_maf_preflight.agent_mail.mcp import McpError, McpSession
from pytest_maf_preflight.checks import api
from pytest_maf_preflight.checks.base import CheckContext
from pytest_maf_preflight.config.models import EscalationTarget
from pytest_maf_preflight.escalation.channels.webhook import deliver_webhook

PASSWORD = "pa ss@1"  # a space and an @: percent-encoded in the proxy URL
USERINFO = "ops:pa%20ss%401"


@pytest.fixture(autouse=True)
def _no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the shell's own proxy would change every route."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)


# --- one server for the three callers ---------------------------------------------------------


def _app(request: Request) -> Response:
    """``/health`` for the api check, ``/hook`` for the webhook, ``/mcp/`` for the MCP client."""
    if request.route == "/health":
        return Response.json({"status": "ok"})
    if request.route == "/hook":
        return Response(202)
    if request.route != "/mcp/":
        return NOT_FOUND
    if request.method == "DELETE":
        return Response()
    message = request.json()
    if "id" not in message:
        return Response(202)  # a notification
    result = (
        {"protocolVersion": "2025-03-26", "capabilities": {}}
        if message["method"] == "initialize"
        else {"content": [], "structuredContent": message["params"]["arguments"]}
    )
    return Response.json(
        {"jsonrpc": "2.0", "id": message["id"], "result": result},
        headers={"Mcp-Session-Id": "session-1"},
    )


#: A caller makes its requests to the server at a base URL within ``timeout`` seconds; it
#: returns None when they succeeded, else the failure it reports.
Caller = Callable[[str, float], "str | None"]


def call_api(base: str, timeout: float) -> str | None:
    ctx = CheckContext(
        rootdir=Path.cwd(), environ=dict(os.environ), environment="test", agent_id="agent-1"
    )
    definition = api.ApiDefinition.model_validate(
        {"url": f"{base}/health", "json": {"status": "ok"}, "timeout_ms": timeout * 1000}
    )
    observation = api.run(definition, ctx)
    return None if observation.passed else observation.observed


def call_webhook(base: str, timeout: float) -> str | None:
    target = EscalationTarget(channel="webhook", url=f"{base}/hook", timeout_seconds=timeout)
    records = deliver_webhook(notice(), target, environ={}, sleep=lambda _: None, now=clock)
    return None if records[-1].status == "delivered" else records[0].error


def call_mcp(base: str, timeout: float) -> str | None:
    try:
        with McpSession(f"{base}/mcp/", timeout=timeout) as session:
            session.call_tool("echo", {"x": 1})
    except McpError as exc:
        return str(exc)
    return None


CALLERS = [
    pytest.param(call_api, id="api"),
    pytest.param(call_webhook, id="webhook"),
    pytest.param(call_mcp, id="mcp"),
]


@pytest.fixture
def server(http_server: StartHttpServer) -> HttpServer:
    return http_server(_app)


@pytest.fixture
def proxy() -> Iterator[HttpProxy]:
    with HttpProxy() as running:
        yield running


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.2 (and its key)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.2",
            "-addext",
            "subjectAltName=IP:127.0.0.2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(
    http_server: StartHttpServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> HttpServer:
    """The same server over TLS on 127.0.0.2, its certificate trusted by every default TLS
    context (so verification stays on, and checks the target's name, not the proxy's)."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return http_server(_app, host="127.0.0.2", tls=context)


# --- which proxy the environment names --------------------------------------------------------


def _proxy(url: str) -> http_transport.Proxy | None:
    return http_transport.proxy_for(http_transport.endpoint(url))


def test_each_scheme_has_its_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://plain-proxy:3128")
    monkeypatch.setenv("HTTPS_PROXY", "tunnel-proxy:8080")  # no scheme: http:// is meant
    plain, secure = _proxy("http://api.example.com/x"), _proxy("https://api.example.com/x")
    assert plain is not None
    assert (plain.host, plain.port) == ("plain-proxy", 3128)
    assert secure is not None
    assert (secure.host, secure.port) == ("tunnel-proxy", 8080)


def test_the_lower_case_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://upper:1")
    monkeypatch.setenv("http_proxy", "http://lower:2")
    found = _proxy("http://api.example.com/")
    assert found is not None
    assert found.host == "lower"


def test_http_proxy_is_ignored_in_a_cgi_script(monkeypatch: pytest.MonkeyPatch) -> None:
    # A "Proxy:" request header reaches a CGI script as HTTP_PROXY (CVE-2016-1000110).
    monkeypatch.setenv("HTTP_PROXY", "http://attacker:1")
    monkeypatch.setenv("REQUEST_METHOD", "GET")
    assert _proxy("http://api.example.com/") is None


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/", "http://localhost/", "http://[::1]:8000/"]
)
def test_loopback_hosts_use_the_proxy_unless_no_proxy_names_them(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert _proxy(url) is not None
    # As urllib compares them: an IPv6 address written as in a URL, in brackets.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,[::1]")
    assert _proxy(url) is None


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("example.com", "https://example.com/", True),
        ("example.com", "https://api.example.com/", True),  # a domain covers its subdomains
        (".example.com", "https://api.example.com/", True),
        ("example.com", "https://notexample.com/", False),
        ("example.com:8443", "https://example.com:8443/", True),
        ("example.com:8443", "https://example.com/", False),
        (" other.org , EXAMPLE.com ", "https://example.com/", True),
        ("*", "https://anything.net/", True),
        ("", "https://example.com/", False),
    ],
)
def test_no_proxy_follows_urllib(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str, url: str, direct: bool
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("no_proxy", no_proxy)
    assert (_proxy(url) is None) is direct


_NAMES = st.sampled_from(
    ["http_proxy", "HTTP_PROXY", "Http_Proxy", "https_proxy", "HTTPS_PROXY", "no_proxy",
     "NO_PROXY", "ftp_proxy", "REQUEST_METHOD", "PATH", "proxy"]
)  # fmt: skip
_HOSTS = st.sampled_from(
    ["example.com", "api.example.com", "EXAMPLE.com", "127.0.0.1", "localhost", "[::1]", "."]
)


@given(
    environ=st.dictionaries(
        _NAMES,
        st.one_of(
            st.just(""),
            st.sampled_from(["http://p:1", "p:2", "*"]),
            st.lists(
                st.one_of(_HOSTS, st.builds("{}:{}".format, _HOSTS, st.sampled_from(["80", ""])))
            ).map(", ".join),
        ),
    ),
    authority=st.one_of(
        _HOSTS, st.builds("{}:{}".format, _HOSTS, st.sampled_from(["8443", "80", ""]))
    ),
)
@example(environ={"no_proxy": "example.com"}, authority="example.com:")  # an empty port
@example(environ={"no_proxy": "example.com"}, authority="example.com:8443")
@example(environ={"NO_PROXY": ".", "no_proxy": ""}, authority="localhost")
def test_proxy_rules_are_urllibs_over_any_environment(
    environ: dict[str, str], authority: str
) -> None:
    """The copies read a mapping, urllib reads ``os.environ``: the same answers."""
    proxies = http_transport._proxies(environ)
    with _environ(environ):
        assert proxies == urllib.request.getproxies_environment()
        expected = urllib.request.proxy_bypass_environment(authority, proxies)  # type: ignore[attr-defined]
    assert http_transport._bypassed(authority, proxies.get("no")) is expected


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_given_environment_names_the_proxy_not_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The api check passes its copy of the environment (what the gate started it with)."""
    monkeypatch.setenv("HTTPS_PROXY", "http://process:1")
    where = http_transport.endpoint("https://api.example.com/")
    found = http_transport.proxy_for(where, {"https_proxy": "http://given:2"})
    assert found is not None
    assert found.host == "given"
    assert http_transport.proxy_for(where, {}) is None


def test_proxy_credentials_become_a_header_and_are_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://{USERINFO}@proxy:3128")
    found = _proxy("https://example.com/")
    assert found is not None
    assert found.authorization == "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    assert found.shown == "http://ops:***@proxy:3128"


@pytest.mark.parametrize(
    "value",
    [
        f"socks5://{USERINFO}@proxy:1080",
        f"https://{USERINFO}@proxy:3128",
        f"http://{USERINFO}@proxy:port",
    ],
)
def test_a_proxy_that_is_not_http_is_an_error_not_a_direct_connection(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", value)
    with pytest.raises(
        http_transport.ProxyError, match=r"unusable proxy \w+://ops:\*\*\*@"
    ) as caught:
        _proxy("https://example.com/")
    assert "pa%20ss" not in str(caught.value)


# --- each caller, through a real proxy or past it ---------------------------------------------


@pytest.mark.parametrize("call", CALLERS)
def test_http_goes_through_the_proxy_in_absolute_form(
    call: Caller, server: HttpServer, proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    assert call(server.url(), 5.0) is None
    assert server.requests  # in origin form: the proxy rewrote them
    assert [(f.method, f.target) for f in proxy.forwarded] == [
        (r.method, server.url(r.path)) for r in server.requests
    ]


@pytest.mark.parametrize("call", CALLERS)
def test_no_proxy_naming_the_host_goes_direct(
    call: Caller, server: HttpServer, proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    assert call(server.url(), 5.0) is None
    assert server.requests
    assert proxy.forwarded == []


@pytest.mark.parametrize("call", CALLERS)
def test_https_goes_through_a_connect_tunnel_with_tls_to_the_target(
    call: Caller, tls_server: HttpServer, proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the https variable is the one used
    assert call(tls_server.url(), 5.0) is None
    assert tls_server.requests
    # One tunnel per request; the proxy saw where to, never what was said.
    assert proxy.forwarded == [Forwarded("CONNECT", f"127.0.0.2:{tls_server.port}", None)] * len(
        tls_server.requests
    )
    assert all(r.path.startswith("/") for r in tls_server.requests)


def test_proxy_credentials_reach_the_proxy_and_not_the_server(
    server: HttpServer, tls_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
    with HttpProxy(credentials=f"ops:{PASSWORD}") as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url(USERINFO))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url(USERINFO))
        assert call_api(server.url(), 5.0) is None
        assert call_api(tls_server.url(), 5.0) is None
    assert proxy.refused == []
    assert [(f.method, f.proxy_authorization) for f in proxy.forwarded] == [
        ("GET", expected),
        ("CONNECT", expected),
    ]
    # Inside the tunnel the request is the server's alone.
    assert "proxy-authorization" not in tls_server.requests[0].headers


@pytest.mark.parametrize("call", CALLERS)
def test_a_proxy_refusing_the_tunnel_is_reported_without_the_password(
    call: Caller, tls_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HttpProxy(credentials="ops:the-right-one") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url(USERINFO))
        failure = call(tls_server.url(), 5.0)
    assert failure is not None
    assert (
        f"the proxy http://ops:***@127.0.0.1:{proxy.port} refused the tunnel to "
        f"127.0.0.2:{tls_server.port}: 407 Proxy Authentication Required"
    ) in failure
    assert "pa%20ss" not in failure
    assert PASSWORD not in failure
    assert tls_server.requests == []


@pytest.mark.parametrize("call", CALLERS)
def test_a_proxy_that_cannot_be_reached_is_named_without_the_password(
    call: Caller, server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://{USERINFO}@127.0.0.1:{port}")
    failure = call(server.url(), 5.0)
    assert failure is not None
    assert f"cannot connect to the proxy http://ops:***@127.0.0.1:{port}: " in failure
    assert "pa%20ss" not in failure
    assert server.requests == []


# --- the deadline holds against a peer that keeps sending -------------------------------------


class HeaderTrickler:
    """Accepts connections on 127.0.0.1, answers a status line and then one more header line
    every ``interval`` seconds: each read gets something, the answer never ends (http.client
    would give up only at its 100th header)."""

    def __init__(self, interval: float = 0.05) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._interval = interval
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._listener.accept()[0]
            except OSError:
                continue
            thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            count = 0
            while not self._stop.wait(self._interval):
                conn.sendall(b"X-Still-Coming-%d: yes\r\n" % count)
                count += 1

    def __enter__(self) -> HeaderTrickler:
        self._threads[0].start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self._listener.close()


@pytest.mark.parametrize("call", CALLERS)
def test_headers_sent_a_line_at_a_time_end_at_the_deadline(call: Caller) -> None:
    with HeaderTrickler() as trickler:
        started = time.monotonic()
        failure = call(f"http://127.0.0.1:{trickler.port}", 0.5)
        elapsed = time.monotonic() - started
    assert failure is not None
    assert "timed out" in failure or "no answer within 0.5s" in failure
    assert elapsed < 1.5


def test_one_deadline_covers_a_series_of_requests(server: HttpServer) -> None:
    deadline = http_transport.Deadline(0.3)
    reply = http_transport.fetch(
        "GET", server.url("/health"), headers={}, deadline=deadline, limit=100
    )
    assert reply.status == 200
    time.sleep(0.35)
    with pytest.raises(TimeoutError):
        http_transport.fetch("GET", server.url("/health"), headers={}, deadline=deadline, limit=100)
    assert len(server.requests) == 1  # the second was not even sent
