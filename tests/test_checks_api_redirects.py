"""Which request headers an ``api`` check carries across a redirect: real servers on
127.0.0.1 and 127.0.0.2 (stdlib ``http.server`` in threads), one of them speaking TLS with a
certificate made for the test by the ``openssl`` command."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytest_maf_preflight.checks import api
from pytest_maf_preflight.checks.api import ApiDefinition
from pytest_maf_preflight.checks.base import CheckContext, Observation

#: Every header here names a credential; none may reach another origin.
SECRET_HEADERS = {"Authorization": "Bearer a-token", "Cookie": "session=abc",
                  "X-Api-Key": "key-123", "Private-Token": "glpat-456",
                  "X-Auth-Token": "auth-789", "Proxy-Authorization": "Basic cHJveHk6cHc="}
#: A header named like anything else, but filled from the environment: a secret too.
FROM_ENV = {"X-Tenant": "tenant-${ENV:TENANT_SECRET}"}
PLAIN = {"X-Trace": "trace-1"}
HEADERS = {**SECRET_HEADERS, **FROM_ENV, **PLAIN}


class Recorder(ThreadingHTTPServer):
    """Answers ``/go?to=URL`` with a 302 to URL and anything else with 200, and keeps the
    headers of every request it got (lower-cased names)."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.received: list[dict[str, str]] = []

    def url(self, scheme: str = "http") -> str:
        host, port = self.server_address[:2]
        return f"{scheme}://{host!s}:{port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the https-to-http test's client gives up on purpose


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.received.append({k.lower(): v for k, v in self.headers.items()})
        parts = urllib.parse.urlsplit(self.path)
        to = dict(urllib.parse.parse_qsl(parts.query)).get("to")
        self.send_response(302 if parts.path == "/go" and to else 200)
        if parts.path == "/go" and to:
            self.send_header("Location", to)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _serve(host: str, tls: ssl.SSLContext | None = None) -> Iterator[Recorder]:
    server = Recorder(host)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def first() -> Iterator[Recorder]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def same_host_other_port() -> Iterator[Recorder]:
    yield from _serve("127.0.0.1")


@pytest.fixture
def other_host() -> Iterator[Recorder]:
    yield from _serve("127.0.0.2")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Recorder]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield from _serve("127.0.0.1", context)


def _run(url: str) -> Observation:
    ctx = CheckContext(rootdir=Path.cwd(), environ={**os.environ, "TENANT_SECRET": "t-42"},
                       environment="test", agent_id="agent-1")
    return api.run(ApiDefinition.model_validate(
        {"url": url, "headers": HEADERS, "verify_tls": False}), ctx)


def _via(start: Recorder, destination: str, scheme: str = "http") -> str:
    return f"{start.url(scheme)}/go?" + urllib.parse.urlencode({"to": destination})


def test_same_origin_redirect_keeps_every_header(first: Recorder) -> None:
    obs = _run(_via(first, "/landed"))
    assert obs.passed, obs.observed
    assert len(first.received) == 2
    landed = first.received[1]
    for name, value in {**SECRET_HEADERS, **PLAIN}.items():
        assert landed[name.lower()] == value
    assert landed["x-tenant"] == "tenant-t-42"


@pytest.mark.parametrize("where", ["other_host", "same_host_other_port"])
def test_redirect_to_another_origin_drops_secret_and_env_headers(
        first: Recorder, where: str, request: pytest.FixtureRequest) -> None:
    second: Recorder = request.getfixturevalue(where)
    obs = _run(_via(first, f"{second.url()}/landed"))
    assert obs.passed, obs.observed
    assert obs.details["redirects"] == [f"{second.url()}/landed"]
    # The first server got everything: it is the origin the headers were written for.
    assert {name.lower() for name in HEADERS} <= first.received[0].keys()
    [landed] = second.received
    assert landed["x-trace"] == "trace-1"
    leaked = {name for name in [*SECRET_HEADERS, *FROM_ENV] if name.lower() in landed}
    assert leaked == set()


def test_https_to_http_redirect_is_refused(tls_server: Recorder, first: Recorder) -> None:
    obs = _run(_via(tls_server, f"{first.url()}/landed", scheme="https"))
    assert not obs.passed
    assert obs.observed == (f"refused to follow a redirect from https to "
                            f"'{first.url()}/landed': a downgrade to plain http is not followed")
    assert len(tls_server.received) == 1
    assert first.received == []  # not even the request without its credentials


def test_https_to_http_on_the_same_host_and_port_is_refused_too(tls_server: Recorder) -> None:
    # Same host and port, other scheme: still another origin, and a downgrade.
    http_url = tls_server.url("http") + "/landed"
    obs = _run(_via(tls_server, http_url, scheme="https"))
    assert not obs.passed
    assert "refused to follow a redirect from https" in obs.observed
    assert len(tls_server.received) == 1
