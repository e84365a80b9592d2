"""Which request headers an ``api`` check carries across a redirect: real servers on
127.0.0.1 and 127.0.0.2 (stdlib ``http.server`` in threads), one of them speaking TLS with a
certificate made for the test by the ``openssl`` command."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from helpers_http import HttpServer, Request, Response, StartHttpServer
from pytest_maf_preflight.checks import api
from pytest_maf_preflight.checks.api import ApiDefinition
from pytest_maf_preflight.checks.base import CheckContext, Observation

#: Every header here names a credential; none may reach another origin.
SECRET_HEADERS = {
    "Authorization": "Bearer a-token",
    "Cookie": "session=abc",
    "X-Api-Key": "key-123",
    "Private-Token": "glpat-456",
    "X-Auth-Token": "auth-789",
    "Proxy-Authorization": "Basic cHJveHk6cHc=",
}
#: A header named like anything else, but filled from the environment: a secret too.
FROM_ENV = {"X-Tenant": "tenant-${ENV:TENANT_SECRET}"}
PLAIN = {"X-Trace": "trace-1"}
HEADERS = {**SECRET_HEADERS, **FROM_ENV, **PLAIN}


def _go(request: Request) -> Response:
    """``/go?to=URL`` is a 302 to URL; anything else a 200."""
    to = request.query.get("to")
    return Response.redirect(to) if request.route == "/go" and to else Response()


@pytest.fixture
def first(http_server: StartHttpServer) -> HttpServer:
    return http_server(_go)


@pytest.fixture
def same_host_other_port(http_server: StartHttpServer) -> HttpServer:
    return http_server(_go)


@pytest.fixture
def other_host(http_server: StartHttpServer) -> HttpServer:
    return http_server(_go, host="127.0.0.2")


@pytest.fixture
def tls_server(tmp_path: Path, http_server: StartHttpServer) -> HttpServer:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
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
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return http_server(_go, tls=context)


def _run(url: str) -> Observation:
    ctx = CheckContext(
        rootdir=Path.cwd(),
        environ={**os.environ, "TENANT_SECRET": "t-42"},
        environment="test",
        agent_id="agent-1",
    )
    return api.run(
        ApiDefinition.model_validate({"url": url, "headers": HEADERS, "verify_tls": False}), ctx
    )


def _via(start: HttpServer, destination: str) -> str:
    return start.url("/go?" + urllib.parse.urlencode({"to": destination}))


def _received(server: HttpServer) -> list[dict[str, str]]:
    """The headers of each request the server got (names lower-cased)."""
    return [request.headers for request in server.requests]


def test_same_origin_redirect_keeps_every_header(first: HttpServer) -> None:
    obs = _run(_via(first, "/landed"))
    assert obs.passed, obs.observed
    assert len(first.requests) == 2
    landed = _received(first)[1]
    for name, value in {**SECRET_HEADERS, **PLAIN}.items():
        assert landed[name.lower()] == value
    assert landed["x-tenant"] == "tenant-t-42"


@pytest.mark.parametrize("where", ["other_host", "same_host_other_port"])
def test_redirect_to_another_origin_drops_secret_and_env_headers(
    first: HttpServer, where: str, request: pytest.FixtureRequest
) -> None:
    second: HttpServer = request.getfixturevalue(where)
    obs = _run(_via(first, f"{second.url()}/landed"))
    assert obs.passed, obs.observed
    assert obs.details["redirects"] == [f"{second.url()}/landed"]
    # The first server got everything: it is the origin the headers were written for.
    assert {name.lower() for name in HEADERS} <= _received(first)[0].keys()
    [landed] = _received(second)
    assert landed["x-trace"] == "trace-1"
    leaked = {name for name in [*SECRET_HEADERS, *FROM_ENV] if name.lower() in landed}
    assert leaked == set()


def test_https_to_http_redirect_is_refused(tls_server: HttpServer, first: HttpServer) -> None:
    obs = _run(_via(tls_server, f"{first.url()}/landed"))
    assert not obs.passed
    assert obs.observed == (
        f"refused to follow a redirect from https to "
        f"'{first.url()}/landed': a downgrade to plain http is not followed"
    )
    assert len(tls_server.requests) == 1
    assert first.requests == []  # not even the request without its credentials


def test_https_to_http_on_the_same_host_and_port_is_refused_too(tls_server: HttpServer) -> None:
    # Same host and port, other scheme: still another origin, and a downgrade.
    http_url = tls_server.url("/landed", scheme="http")
    obs = _run(_via(tls_server, http_url))
    assert not obs.passed
    assert "refused to follow a redirect from https" in obs.observed
    assert len(tls_server.requests) == 1
