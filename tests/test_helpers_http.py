"""The shared test HTTP server (tests/helpers_http.py) does what the tests rely on: it records
each request before answering, and its misbehaving answers misbehave as documented."""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Iterator
from itertools import repeat

import pytest

from helpers_http import HttpServer, Request, Response, StartHttpServer, scripted


@contextlib.contextmanager
def _connect(server: HttpServer, timeout: float = 5.0) -> Iterator[http.client.HTTPConnection]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        yield conn
    finally:
        conn.close()


def _status(server: HttpServer, method: str = "GET", path: str = "/") -> int:
    with _connect(server) as conn:
        conn.request(method, path)
        answer = conn.getresponse()
        answer.read()
        return answer.status


def test_a_route_table_answers_and_every_request_is_recorded(http_server: StartHttpServer) -> None:
    server = http_server({"/ok": Response.json({"a": 1}, headers={"X-Id": "7"})})
    with _connect(server) as conn:
        conn.request("POST", "/ok?x=1", body=b'{"k": 2}', headers={"X-Trace": "t"})
        answer = conn.getresponse()
        assert (answer.status, answer.read(), answer.getheader("X-Id")) == (200, b'{"a": 1}', "7")
    assert _status(server, "GET", "/elsewhere") == 404
    first, second = server.requests
    assert (first.method, first.path, first.route, first.query) == (
        "POST",
        "/ok?x=1",
        "/ok",
        {"x": "1"},
    )
    assert (first.headers["x-trace"], first.json()) == ("t", {"k": 2})
    assert (second.method, second.body) == ("GET", b"")


def test_scripted_answers_come_in_order_then_the_rest(http_server: StartHttpServer) -> None:
    server = http_server(scripted(Response(503), Response.redirect("/x", 307)))
    assert [_status(server) for _ in range(3)] == [503, 307, 200]


def test_drop_closes_without_a_status_line(http_server: StartHttpServer) -> None:
    server = http_server({"/": Response(drop=True)})
    with _connect(server) as conn:
        conn.request("GET", "/")
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    assert len(server.requests) == 1


def test_an_endless_stream_sends_until_the_client_hangs_up(http_server: StartHttpServer) -> None:
    server = http_server({"/": Response(stream=repeat(b"x" * 1024))})
    with _connect(server) as conn:
        conn.request("GET", "/")
        answer = conn.getresponse()
        assert answer.getheader("Content-Length") is None
        assert answer.read(64 * 1024) == b"x" * 64 * 1024


@pytest.mark.parametrize("path", ["/", "/slow"])
def test_stopping_ends_hanging_and_delayed_answers(path: str) -> None:
    server = HttpServer({"/": Response(hang=True), "/slow": Response(delay=60)}).start()
    outcome: list[object] = []

    def ask() -> None:
        with _connect(server, timeout=30) as conn:
            conn.request("GET", path)
            try:
                answer = conn.getresponse()
                answer.read()
                outcome.append(answer.status)
            except http.client.RemoteDisconnected as error:
                outcome.append(error)

    client = threading.Thread(target=ask)
    client.start()
    while not server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    client.join(10)
    assert time.monotonic() - started < 5
    [result] = outcome
    if path == "/slow":
        assert result == 200  # the delay is cut short, the answer still comes
    else:
        assert isinstance(result, http.client.RemoteDisconnected)


def test_a_handler_that_raises_answers_500_and_fails_the_test_at_the_end() -> None:
    def broken(request: Request) -> Response:
        raise ValueError("no such thing")

    server = HttpServer(broken).start()
    with _connect(server) as conn:
        conn.request("GET", "/")
        answer = conn.getresponse()
        assert answer.status == 500
        assert b"no such thing" in answer.read()
    server.stop()
    with pytest.raises(ValueError, match="no such thing"):
        server.raise_errors()
