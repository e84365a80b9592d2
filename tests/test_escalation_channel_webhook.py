"""The webhook channel against a real HTTP server on 127.0.0.1 (stdlib, in a thread) that
answers from a script: retries on 429/5xx only, backoff through the injected sleep, timeouts,
``${ENV:NAME}`` URLs and secrets kept out of the records."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from helpers_escalation import NOW, clock, notice
from helpers_http import HttpServer, Response, StartHttpServer, scripted
from helpers_loopback import closed_port
from pytest_maf_preflight.config.models import EscalationTarget
from pytest_maf_preflight.escalation.channels import NoticeKind, deliver
from pytest_maf_preflight.runtime.records import DeliveryRecord

SECRET = "hk-5ecret-path-value"
TOKEN = "bearer-t0ken-value"


def script(hook: HttpServer, *answers: Response) -> None:
    """The hook answers with ``answers``, one request each, then with 200s. Every body echoes
    the request's path, so a secret in the URL would reach the record through it."""
    answer = scripted(*answers)
    hook.handler = lambda request: dataclasses.replace(
        answer(request), body=f"answer for {request.path}"
    )


@pytest.fixture
def hook(http_server: StartHttpServer) -> HttpServer:
    server = http_server({})
    script(server)
    return server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def send(
    server_or_url: HttpServer | str,
    *,
    environ: dict[str, str] | None = None,
    sleeps: Sleeps | None = None,
    kind: NoticeKind = "request",
    **target: Any,
) -> list[DeliveryRecord]:
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.url("/hook")
    return deliver(
        notice(kind=kind),
        EscalationTarget(channel="webhook", url=url, **target),
        mail_root=_nowhere(),
        environ=environ or {},
        sleep=Sleeps() if sleeps is None else sleeps,
        now=clock,
    )


def _nowhere() -> Path:
    return Path("/nonexistent-mail-root")  # a webhook never touches the mailbox tree


def shown(records: list[DeliveryRecord]) -> str:
    return json.dumps([dataclasses.asdict(r) for r in records])


def test_server_errors_are_retried_with_backoff_until_accepted(hook: HttpServer) -> None:
    script(hook, Response(500), Response(500), Response(202))
    sleeps = Sleeps()
    records = send(hook, sleeps=sleeps)
    assert [(r.attempt, r.status) for r in records] == [
        (1, "failed"),
        (2, "failed"),
        (3, "delivered"),
    ]
    assert [r.error for r in records] == [
        "HTTP 500 Internal Server Error",
        "HTTP 500 Internal Server Error",
        None,
    ]
    assert [r.response["status"] for r in records] == [500, 500, 202]
    assert {(r.channel, r.target, r.level, r.attempted_at) for r in records} == {
        ("webhook", "on-call-agent", 1, NOW)
    }
    assert sleeps == [0.5, 1.0]
    assert len(hook.requests) == 3
    assert hook.requests[0].json() == hook.requests[2].json()


def test_the_event_is_pagerduty_like(hook: HttpServer) -> None:
    sent = notice()
    deliver(
        sent,
        EscalationTarget(channel="webhook", url=hook.url("/hook")),
        mail_root=_nowhere(),
        environ={},
    )
    [request] = hook.requests
    body = request.json()
    assert request.headers["content-type"] == "application/json"
    assert {k: body[k] for k in ("summary", "severity", "source", "dedup_key", "event_action")} == {
        "summary": "db-check failed 3 times in a row",
        "severity": "critical",
        "source": "BlueLake",
        "dedup_key": "default-escalation:db-check:failed",
        "event_action": "trigger",
    }
    details = body["custom_details"]
    assert (details["escalation_id"], details["path_id"], details["level"]) == (
        "e5c41a7e",
        "default-escalation",
        1,
    )
    assert details["message"] == sent.message


def test_a_resolution_is_a_resolve_event(hook: HttpServer) -> None:
    [record] = send(hook, kind="resolution")
    assert record.status == "delivered"
    assert hook.requests[0].json()["event_action"] == "resolve"
    assert hook.requests[0].json()["custom_details"]["message"]["action"] == "resolve"


def test_a_client_error_is_not_retried(hook: HttpServer) -> None:
    script(hook, Response(400))
    sleeps = Sleeps()
    [record] = send(hook, sleeps=sleeps)
    assert (record.status, record.error) == ("failed", "HTTP 400 Bad Request")
    assert sleeps == []
    assert len(hook.requests) == 1


@pytest.mark.parametrize(
    ("headers", "pause"),
    [
        ({}, 0.5),
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "3600"}, 60.0),
        ({"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"}, 0.5),
    ],
)
def test_too_many_requests_waits_then_retries(
    hook: HttpServer, headers: dict[str, str], pause: float
) -> None:
    script(hook, Response(429, headers=headers), Response(200))
    sleeps = Sleeps()
    records = send(hook, sleeps=sleeps)
    assert [(r.status, r.error) for r in records] == [
        ("failed", "HTTP 429 Too Many Requests"),
        ("delivered", None),
    ]
    assert sleeps == [pause]


def test_retries_stop_after_three(hook: HttpServer) -> None:
    script(hook, *[Response(503)] * 6)
    sleeps = Sleeps()
    records = send(hook, sleeps=sleeps)
    assert [r.attempt for r in records] == [1, 2, 3, 4]
    assert {r.status for r in records} == {"failed"}
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(hook.requests) == 4


def test_a_redirect_is_not_followed(hook: HttpServer) -> None:
    script(hook, Response.redirect("http://elsewhere.invalid/", 307))
    [record] = send(hook)
    assert record.status == "failed"
    assert record.error is not None
    assert "HTTP 307" in record.error
    assert "not followed" in record.error


def test_a_server_that_hangs_fails_at_the_timeout_without_retry(hook: HttpServer) -> None:
    script(hook, Response(hang=True), Response(200))
    sleeps = Sleeps()
    [record] = send(hook, sleeps=sleeps, timeout_seconds=0.3)
    assert (record.status, record.error) == ("failed", "no answer within 0.3s")
    assert sleeps == []
    assert len(hook.requests) == 1


def test_nothing_listening_fails_without_retry() -> None:
    port = closed_port()
    sleeps = Sleeps()
    [record] = send(f"http://127.0.0.1:{port}/hook", sleeps=sleeps)
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith("cannot reach the webhook")
    assert sleeps == []


def test_env_references_in_the_url_are_expanded_and_kept_secret(hook: HttpServer) -> None:
    script(hook, Response(500), Response(200))
    environ = {"HOOK_SECRET": SECRET, "HOOK_TOKEN": TOKEN}
    records = send(
        hook.url("/hooks/${ENV:HOOK_SECRET}?routing_key=${ENV:HOOK_SECRET}"),
        environ=environ,
        token_env="HOOK_TOKEN",
    )
    assert [r.status for r in records] == ["failed", "delivered"]
    assert hook.requests[0].path == f"/hooks/{SECRET}?routing_key={SECRET}"
    assert hook.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert SECRET not in shown(records)
    assert TOKEN not in shown(records)
    assert records[0].response["url"] == hook.url("/hooks/***?routing_key=***")
    assert records[0].response["body"] == "answer for /hooks/***?routing_key=***"


def test_url_credentials_are_sent_as_basic_auth_and_not_recorded(hook: HttpServer) -> None:
    # Configs must name the password through the environment (models refuse it inline).
    url = hook.url("/hook").replace("http://", "http://ops:${ENV:HOOK_PASSWORD}@")
    [record] = send(url, environ={"HOOK_PASSWORD": SECRET})
    assert record.status == "delivered"
    assert hook.requests[0].headers["authorization"].startswith("Basic ")
    assert SECRET not in shown([record])
    assert record.response["url"] == hook.url("/hook").replace("http://", "http://ops:***@")


def test_a_missing_variable_fails_before_anything_is_sent(hook: HttpServer) -> None:
    [record] = send(hook.url("/hooks/${ENV:LEAD_WEBHOOK_KEY}"), environ={"OTHER": "x"})
    assert record.status == "failed"
    assert record.error == (
        "environment variable 'LEAD_WEBHOOK_KEY' is not set (the webhook "
        "url refers to ${ENV:LEAD_WEBHOOK_KEY})"
    )
    assert hook.requests == []


def test_a_missing_token_fails_before_anything_is_sent(hook: HttpServer) -> None:
    [record] = send(hook, token_env="HOOK_TOKEN")
    assert (record.status, record.error) == (
        "failed",
        "token_env names 'HOOK_TOKEN', which is not set in the environment",
    )
    assert hook.requests == []


@pytest.mark.parametrize("url", [None, "ftp://127.0.0.1/x", "not a url"])
def test_an_unusable_url_is_a_failed_record(url: str | None) -> None:
    # A url written into the config is refused at load; one from the environment is known
    # only at delivery.
    [record] = (
        send("${ENV:HOOK_URL}", environ={"HOOK_URL": url})
        if url is not None
        else deliver(
            notice(), EscalationTarget(channel="webhook"), mail_root=_nowhere(), environ={}
        )
    )
    assert record.status == "failed"
    assert record.error is not None
    assert ("no url" in record.error) or ("not an http(s) URL" in record.error)
