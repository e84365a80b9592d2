"""``api`` checks against a real HTTP server on 127.0.0.1 (stdlib ``http.server`` in a thread)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conftest import EXAMPLES
from helpers_http import NOT_FOUND, HttpServer, Request, Response
from helpers_loopback import closed_port
from pytest_maf_preflight.checks import api
from pytest_maf_preflight.checks.api import ApiDefinition
from pytest_maf_preflight.checks.base import CheckContext, CheckStatus, Observation
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks
from pytest_maf_preflight.config.loader import ConfigLoader

DOCUMENT = {
    "status": "ok",
    "checks": {"db": "up", "cache": "down"},
    "items": [{"id": 7}, {"id": 8}],
    "count": 2,
    "live": True,
}


def _app(request: Request) -> Response:
    path, query = request.route, request.query
    if path == "/json":
        return Response.json(DOCUMENT, headers={"X-Service": "demo"})
    if path.startswith("/status/"):
        return Response.text("status page", int(path.rsplit("/", 1)[1]))
    if path == "/echo":
        return Response.json(
            {
                "method": request.method,
                "path": request.path,
                "query": query,
                "headers": request.headers,
                "body": request.body.decode(),
            }
        )
    if path == "/redirect":
        return Response.redirect("/json")
    if path == "/loop":
        return Response.redirect("/loop")
    if path == "/slow":
        return Response(
            200, "slow but fine", {"Content-Type": "text/plain"}, delay=float(query.get("s", "0.3"))
        )
    if path in ("/api/health", "/api/test-health"):
        return Response.json({"status": "ok"})
    return NOT_FOUND


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with HttpServer(_app) as httpd:
        yield httpd.url()


def _ctx(base_url: str | None = None, **env: str) -> CheckContext:
    return CheckContext(
        rootdir=Path.cwd(),
        environ={**os.environ, **env},
        environment="test",
        agent_id="agent-1",
        base_url=base_url,
    )


def _run(ctx: CheckContext | None = None, **definition: Any) -> Observation:
    return api.run(ApiDefinition.model_validate(definition), ctx or _ctx())


def _planned(
    definition: dict[str, Any], timeout: float = 10.0, check_id: str = "api"
) -> PlannedCheck:
    return PlannedCheck(
        check_id=check_id,
        name=check_id,
        severity="critical",
        check_type=api.CHECK_TYPE,
        definition=ApiDefinition.model_validate(definition),
        timeout=timeout,
        retry_count=0,
        retry_delay=0.0,
    )


# --- status, body, JSON paths ---------------------------------------------------------------


def test_json_expectations_pass(server: str) -> None:
    obs = _run(
        url=f"{server}/json",
        body_contains="ok",
        body_regex=r'"db":\s*"up"',
        json={
            "status": "ok",
            "checks.db": "up",
            "items.0.id": 7,
            "items.1.id": 8,
            "count": 2,
            "live": True,
        },
    )
    assert obs.passed, obs.observed
    assert obs.observed.startswith("status 200 in ")
    assert "json checks.db == 'up'" in obs.expected
    assert "status 200" in obs.expected
    assert obs.details["status"] == 200
    assert json.loads(obs.details["body"]) == DOCUMENT
    assert obs.details["request"]["method"] == "GET"
    assert obs.details["request"]["url"] == f"{server}/json"
    assert obs.details["latency_ms"] >= 0


def test_json_expectation_fails_with_path_and_values(server: str) -> None:
    obs = _run(
        url=f"{server}/json",
        json={"checks.cache": "up", "items.5.id": 1, "count": "2", "status": "ok"},
    )
    assert not obs.passed
    assert obs.observed.startswith("status 200; ")
    assert "json checks.cache is 'down', expected 'up'" in obs.observed
    assert "json items.5.id is missing" in obs.observed
    assert "json count is 2, expected '2'" in obs.observed  # no coercion between types
    assert "status" not in obs.observed.split("; ", 1)[1]


def test_json_expectation_on_non_json_body(server: str) -> None:
    obs = _run(url=f"{server}/status/200", json={"a": 1})
    assert not obs.passed
    assert "body is not JSON" in obs.observed


def test_true_is_not_one() -> None:
    assert api.json_path({"a": [{"b": True}]}, "a.0.b") is True
    assert not api._same(1, True)
    assert api._same(1, 1.0)
    assert api.json_path({"a.b": 1}, "a.b") == 1  # a key with a dot in it


def test_unexpected_status_fails(server: str) -> None:
    obs = _run(url=f"{server}/status/503")
    assert not obs.passed
    assert obs.observed == "status 503; status 503 is not 200"
    assert obs.details["body"] == "status page"


def test_status_list(server: str) -> None:
    assert _run(url=f"{server}/status/204", expected_status=[200, 204]).passed
    obs = _run(url=f"{server}/status/500", expected_status=[200, 204])
    assert not obs.passed
    assert obs.expected == "status 200 or 204"
    assert "status 500 is not 200 or 204" in obs.observed


def test_expected_headers_case_insensitive_exact_value(server: str) -> None:
    assert _run(
        url=f"{server}/json",
        expected_headers={"x-service": "demo", "CONTENT-TYPE": "application/json"},
    ).passed
    obs = _run(url=f"{server}/json", expected_headers={"X-Service": "other", "X-Missing": "1"})
    assert not obs.passed
    assert "header X-Service is 'demo', expected 'other'" in obs.observed
    assert "header X-Missing is missing" in obs.observed
    assert obs.details["headers"]["X-Service"] == "demo"


def test_body_regex_and_contains_fail(server: str) -> None:
    obs = _run(url=f"{server}/status/200", body_contains="healthy", body_regex=r"^ok$")
    assert not obs.passed
    assert "body does not contain 'healthy'" in obs.observed
    assert "body does not match '^ok$'" in obs.observed


def test_invalid_regex_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="invalid regular expression"):
        ApiDefinition.model_validate({"url": "http://127.0.0.1", "body_regex": "("})
    with pytest.raises(ValidationError, match="not both"):
        ApiDefinition.model_validate({"url": "http://127.0.0.1", "body": "x", "json_body": {}})


# --- the request: method, query, bodies, headers --------------------------------------------


def test_query_json_body_and_method_are_sent(server: str) -> None:
    obs = _run(
        url=f"{server}/echo",
        method="POST",
        query={"a": "x y", "n": 3, "on": True},
        json_body={"k": [1, 2]},
        json={
            "method": "POST",
            "query.a": "x y",
            "query.n": "3",
            "query.on": "true",
            "headers.content-type": "application/json",
            "body": '{"k": [1, 2]}',
        },
    )
    assert obs.passed, obs.observed
    assert obs.details["request"]["url"] == f"{server}/echo?a=x+y&n=3&on=true"


def test_raw_body(server: str) -> None:
    obs = _run(
        url=f"{server}/echo",
        method="PUT",
        body="plain text",
        headers={"Content-Type": "text/plain"},
        json={"body": "plain text", "headers.content-type": "text/plain"},
    )
    assert obs.passed, obs.observed


def test_env_header_is_expanded_and_never_shown(server: str) -> None:
    token = "s3cr3t-token-value"
    check = _planned(
        {
            "url": f"{server}/echo",
            "headers": {
                "Authorization": "Bearer ${ENV:API_TOKEN}",
                "X-Trace": "t-${ENV:API_TOKEN}",
            },
            "json": {"headers.authorization": f"Bearer {token}", "headers.x-trace": f"t-{token}"},
        }
    )
    [result] = run_checks([check], _ctx(API_TOKEN=token))
    assert result.status is CheckStatus.PASSED, result.observed
    shown = json.dumps(result.to_dict())
    assert token not in shown
    assert result.details["request"]["headers"]["Authorization"] == "***"
    assert result.details["request"]["headers"]["X-Trace"] == "t-***"
    # A failing check shows the body the server echoed: still redacted.
    failing = _planned(
        {
            "url": f"{server}/echo",
            "headers": {"Authorization": "Bearer ${ENV:API_TOKEN}"},
            "expected_status": 201,
        }
    )
    [result] = run_checks([failing], _ctx(API_TOKEN=token))
    assert result.status is CheckStatus.FAILED
    assert "Bearer ***" in result.details["body"]
    assert token not in json.dumps(result.to_dict())


def test_missing_env_variable_is_a_failed_check(server: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_SUCH_TOKEN_VAR"}
    ctx = CheckContext(rootdir=Path.cwd(), environ=env, environment="test", agent_id="a")
    obs = _run(
        ctx, url=f"{server}/json", headers={"Authorization": "Bearer ${ENV:NO_SUCH_TOKEN_VAR}"}
    )
    assert not obs.passed
    assert "'NO_SUCH_TOKEN_VAR' is not set" in obs.observed


# --- redirects, latency, deadlines, network errors ------------------------------------------


def test_redirect_followed(server: str) -> None:
    obs = _run(url=f"{server}/redirect", json={"status": "ok"})
    assert obs.passed, obs.observed
    assert obs.details["redirects"] == [f"{server}/json"]


def test_redirect_not_followed(server: str) -> None:
    obs = _run(url=f"{server}/redirect", follow_redirects=False)
    assert not obs.passed
    assert obs.observed == "status 302; status 302 is not 200"
    assert obs.details["headers"]["Location"] == "/json"
    assert _run(url=f"{server}/redirect", follow_redirects=False, expected_status=302).passed


def test_redirect_loop_fails(server: str) -> None:
    obs = _run(url=f"{server}/loop")
    assert not obs.passed
    assert "redirect loop" in obs.observed


def test_slow_endpoint_beyond_latency_budget(server: str) -> None:
    obs = _run(url=f"{server}/slow?s=0.3", max_latency_ms=100)
    assert not obs.passed
    assert obs.observed.startswith("status 200; latency ")
    assert "exceeds 100 ms" in obs.observed
    assert obs.details["latency_ms"] >= 250


def test_timeout_ms_bounds_the_request(server: str) -> None:
    started = time.monotonic()
    obs = _run(url=f"{server}/slow?s=2", timeout_ms=200)
    assert time.monotonic() - started < 1.5
    assert not obs.passed
    assert "timed out" in obs.observed


def test_server_that_never_answers_ends_at_the_deadline(silent_port: int) -> None:
    started = time.monotonic()
    url = f"http://127.0.0.1:{silent_port}/health"
    [result] = run_checks([_planned({"url": url}, timeout=0.5)], _ctx())
    elapsed = time.monotonic() - started
    assert elapsed < 3.0
    assert result.status in (CheckStatus.TIMEOUT, CheckStatus.FAILED)
    if result.status is CheckStatus.FAILED:
        assert "timed out" in result.observed
    else:
        assert "0.5 s" in result.message


def test_closed_port_is_connection_refused() -> None:
    url = f"http://127.0.0.1:{closed_port()}/health"
    obs = _run(url=url)
    assert not obs.passed
    assert "connection refused" in obs.observed
    assert obs.details["request"]["url"] == url


def test_tls_error_is_a_failed_observation(server: str) -> None:
    """An https request to a plain-HTTP server fails in the handshake, verification on or off."""
    https = server.replace("http://", "https://")
    for verify in (True, False):
        obs = _run(url=f"{https}/json", verify_tls=verify)
        assert not obs.passed
        assert "TLS" in obs.observed or "invalid HTTP" in obs.observed or "failed" in obs.observed


def test_unsupported_scheme() -> None:
    obs = _run(url="ftp://127.0.0.1/x")
    assert not obs.passed
    assert "unsupported URL" in obs.observed


# --- base URL -------------------------------------------------------------------------------


def test_base_url_from_context(server: str) -> None:
    obs = _run(_ctx(base_url=server), endpoint="/api/health", json={"status": "ok"})
    assert obs.passed, obs.observed
    assert obs.details["request"]["url"] == f"{server}/api/health"


def test_base_url_in_definition_wins(server: str) -> None:
    obs = _run(_ctx(base_url="http://127.0.0.1:1"), base_url=server + "/", endpoint="/json")
    assert obs.passed, obs.observed
    assert obs.details["request"]["url"] == f"{server}/json"


def test_no_base_url() -> None:
    obs = _run(endpoint="/api/health")
    assert not obs.passed
    assert obs.observed == api.NO_BASE_URL


def test_original_format_example_runs_against_the_server(server: str, tmp_path: Path) -> None:
    source = EXAMPLES / "original-format" / "api-health-check.json"
    copy = tmp_path / source.name
    shutil.copy(source, copy)
    [loaded] = ConfigLoader(builtin_registry(), "development").load_files([copy])
    definition = loaded.definition
    assert isinstance(definition, ApiDefinition)
    assert definition.endpoint == "/api/health"
    assert definition.timeout_ms == 5000
    check = PlannedCheck(
        check_id=loaded.id,
        name=loaded.config.name,
        severity="critical",
        check_type=builtin_registry().get("api"),  # type: ignore[arg-type]
        definition=definition,
        timeout=10.0,
        retry_count=0,
        retry_delay=0.0,
    )
    [result] = run_checks([check], _ctx(base_url=server))
    assert result.status is CheckStatus.PASSED, result.observed
    assert result.details["request"]["url"] == f"{server}/api/health"


# --- the plugin, end to end -----------------------------------------------------------------

_CONFIG = """\
id: api-health
name: API health endpoint answers
config_type: smoke_test
version: 1.0.0
config:
  test_type: api
  timeout_seconds: 5
  test_definition:
    endpoint: {endpoint}
    expected_status: [200, 204]
    json:
      status: {status}
"""


def test_plugin_gate_with_api_check(
    pytester: pytest.Pytester, write_config: Any, server: str
) -> None:
    pytester.makepyfile("def test_one():\n    assert True\n")
    write_config("api.yaml", _CONFIG.format(endpoint="/json", status="ok"))
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", f"--maf-base-url={server}"
    )
    result.assert_outcomes(passed=2)
    assert result.ret == 0


def test_plugin_gate_closed_by_failing_api_check(
    pytester: pytest.Pytester, write_config: Any, server: str
) -> None:
    pytester.makepyfile("def test_one():\n    assert True\n")
    write_config("api.yaml", _CONFIG.format(endpoint="/json", status="degraded"))
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", f"--maf-base-url={server}"
    )
    assert result.ret == 10
    output = result.stdout.str()
    assert "status 200" in output
    assert "json status is 'ok', expected 'degraded'" in output
    result.stdout.fnmatch_lines([f"  request:  GET {server}/json*", "  response: 200 '{*"])
