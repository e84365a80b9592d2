"""Reusing a recent pass (``reuse_passed_for_seconds``): a check that passed recently, for the
same config content, agent and environment, is reported as passed and marked as reused,
without running; never for reservation checks, never after a failure, never with
``--maf-no-reuse``. A real server on loopback counts what really ran."""

from __future__ import annotations

import datetime
import json
import sqlite3
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from helpers_configs import WriteConfig
from helpers_http import Request, Response, StartHttpServer
from pytest_maf_preflight.checks.base import CheckContext, CheckResult, CheckStatus
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks
from pytest_maf_preflight.config.loader import ConfigLoader
from pytest_maf_preflight.config.models import SmokeTestBody
from pytest_maf_preflight.config.schema import build_schema

CHECK_ID = "slow-api"


class CountingServer:
    """An HTTP endpoint that answers 200, or 500 for the next ``failures`` requests."""

    def __init__(self, start: StartHttpServer) -> None:
        self.failures = 0
        self.server = start(self.answer)

    def answer(self, request: Request) -> Response:
        if self.failures:
            self.failures -= 1
            return Response.text("down", 500)
        return Response.text("ok")

    @property
    def count(self) -> int:
        return len(self.server.requests)

    def url(self) -> str:
        return self.server.url("/health")


@pytest.fixture
def server(http_server: StartHttpServer) -> CountingServer:
    return CountingServer(http_server)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """One SQLite store for every run of the test (and nothing but SQLite)."""
    db = tmp_path / "store" / "runtime.db"
    monkeypatch.setenv("MAF_DB_PATH", str(db))
    monkeypatch.setenv("MAF_RUNTIME_MODE", "sqlite")
    return db


API_CHECK = """\
id: {check_id}
name: A slow API
config_type: smoke_test
config:
  test_type: api
  test_definition:
    url: {url}{extra}
  reuse_passed_for_seconds: {seconds}
environment_overrides:
  staging:
    timeout_seconds: 20
"""


def api_config(url: str, seconds: float = 60, extra: str = "") -> str:
    """The counted check; ``extra`` adds lines to its ``test_definition``."""
    return API_CHECK.format(check_id=CHECK_ID, url=url, extra=extra, seconds=seconds)


@pytest.fixture
def project(
    pytester: pytest.Pytester, write_config: WriteConfig, server: CountingServer, store: Path
) -> pytest.Pytester:
    write_config("api.yaml", api_config(server.url()))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    return pytester


def gate(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "--maf-report=gate.json", *args
    )


def report(project: pytest.Pytester) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((project.path / "gate.json").read_text())
    return document


def executions(db: Path) -> list[dict[str, Any]]:
    """The store's executions of the check, oldest first."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, session_id, status, attempts, completed_at, result "
            "FROM preflight_executions WHERE config_id = ? ORDER BY started_at, id",
            (CHECK_ID,),
        ).fetchall()
    return [
        dict(zip(("id", "session_id", "status", "attempts", "completed_at"), row[:5], strict=True))
        | {"result": json.loads(row[5])}
        for row in rows
    ]


def utc(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_recent_pass_is_reused_instead_of_run(
    project: pytest.Pytester, server: CountingServer, store: Path
) -> None:
    first = gate(project)
    assert first.ret == 0
    assert server.count == 1
    first.stdout.fnmatch_lines([f"PASSED           {CHECK_ID}  * ms"])
    [ran] = executions(store)
    assert ran["status"] == "passed"
    assert ran["result"]["content_hash"]
    assert "reused_from" not in ran["result"]
    when = utc(ran["completed_at"])
    origin = {
        "execution_id": ran["id"],
        "session_id": ran["session_id"],
        "completed_at": ran["completed_at"],
    }

    second = gate(project)

    assert second.ret == 0
    assert server.count == 1  # not asked again
    second.assert_outcomes(passed=2)  # the check's item, and the test
    second.stdout.fnmatch_lines([f"PASSED           {CHECK_ID}  (reused from {when})", "gate open"])
    [checked] = report(project)["checks"]
    assert checked["status"] == "passed"
    assert checked["reused_from"] == origin
    assert checked["attempts"] == 0
    first_run, reused = executions(store)
    assert first_run == ran
    assert reused["session_id"] != ran["session_id"]
    assert (reused["status"], reused["attempts"]) == ("passed", 0)
    assert reused["result"]["reused_from"] == origin
    assert reused["result"]["content_hash"] == ran["result"]["content_hash"]
    assert reused["result"]["observed"] == ran["result"]["observed"]
    with sqlite3.connect(store) as conn:
        summaries = [
            json.loads(payload)["summary"]
            for (payload,) in conn.execute(
                "SELECT payload FROM messages WHERE type = 'PREFLIGHT_RESULT' "
                "AND correlation_id = ?",
                (reused["session_id"],),
            )
        ]
    assert summaries == [f"check {CHECK_ID}: passed (reused from {when})"]

    # A reuse of a reuse still names the run that really ran: the window never stretches.
    third = gate(project, "-q")
    assert server.count == 1
    third.stdout.fnmatch_lines(["maf-preflight: gate open (1 check: 1 passed (1 reused))"])
    assert executions(store)[-1]["result"]["reused_from"] == origin
    assert report(project)["checks"][0]["reused_from"] == origin


@pytest.mark.parametrize("how", ["--maf-no-reuse", "env MAF_NO_REUSE=1", "ini maf_no_reuse = true"])
def test_no_reuse_runs_every_check_for_one_run(
    project: pytest.Pytester,
    server: CountingServer,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    assert gate(project).ret == 0
    args: list[str] = []
    ini: Path | None = None
    if how.startswith("--"):
        args.append(how)
    elif how.startswith("env"):
        monkeypatch.setenv("MAF_NO_REUSE", "1")
    else:
        ini = project.makeini("[pytest]\nmaf_no_reuse = true\n")

    again = gate(project, *args)

    assert again.ret == 0
    assert server.count == 2
    again.stdout.fnmatch_lines(
        [
            f"PASSED           {CHECK_ID}  * ms",
            "maf-preflight: reuse: off for this run (--maf-no-reuse); every check ran",
        ]
    )
    assert report(project)["checks"][0]["reused_from"] is None
    monkeypatch.delenv("MAF_NO_REUSE", raising=False)
    if ini is not None:
        ini.unlink()
    gate(project)  # its own pass, just recorded, is reused next time
    assert server.count == 2


def test_a_failure_disables_reuse_until_the_check_passes_again(
    project: pytest.Pytester, server: CountingServer
) -> None:
    assert gate(project).ret == 0
    server.failures = 1
    failed = gate(project, "--maf-no-reuse")
    assert failed.ret == 10
    assert server.count == 2

    after = gate(project)  # the newest execution failed: run it

    assert after.ret == 0
    assert server.count == 3
    after.stdout.fnmatch_lines([f"PASSED           {CHECK_ID}  * ms"])
    gate(project)  # passed again: reused again
    assert server.count == 3


def test_a_failure_while_reuse_was_off_in_the_config_counts_too(
    project: pytest.Pytester, server: CountingServer, write_config: WriteConfig
) -> None:
    assert gate(project).ret == 0
    write_config("api.yaml", api_config(server.url(), seconds=0))
    server.failures = 1
    assert gate(project).ret == 10
    write_config("api.yaml", api_config(server.url(), seconds=60))

    assert gate(project).ret == 0

    assert server.count == 3
    gate(project)
    assert server.count == 3


def test_a_changed_config_runs_again_and_a_longer_window_does_not(
    project: pytest.Pytester, server: CountingServer, write_config: WriteConfig
) -> None:
    gate(project)
    write_config("api.yaml", api_config(server.url(), seconds=120))
    gate(project)
    assert server.count == 1  # how long a pass may serve is not what the check checks

    write_config("api.yaml", api_config(server.url(), extra="\n    body_contains: ok"))
    changed = gate(project)

    assert changed.ret == 0
    assert server.count == 2
    gate(project)
    assert server.count == 2


@pytest.mark.parametrize("other", ["--maf-agent-id=agent-b", "--maf-env=staging"])
def test_another_agent_or_environment_runs_it_again(
    project: pytest.Pytester, server: CountingServer, other: str
) -> None:
    gate(project)

    assert gate(project, other).ret == 0
    assert server.count == 2

    gate(project, other)  # and that agent's (environment's) own pass is reused
    gate(project)
    assert server.count == 2


def test_a_pass_older_than_the_window_runs_again(
    project: pytest.Pytester, server: CountingServer, store: Path
) -> None:
    gate(project)
    with sqlite3.connect(store) as conn:  # as if it had run 61 s ago
        conn.execute(
            "UPDATE preflight_executions SET completed_at = completed_at - 61 WHERE config_id = ?",
            (CHECK_ID,),
        )

    assert gate(project).ret == 0

    assert server.count == 2
    gate(project)  # the fresh pass is within the window
    assert server.count == 2


def test_the_memory_runtime_has_nothing_to_reuse_and_says_so(
    project: pytest.Pytester, server: CountingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_RUNTIME_MODE", "memory")
    gate(project)
    again = gate(project)
    assert server.count == 2
    again.stdout.fnmatch_lines(
        ["maf-preflight: reuse: the memory runtime holds no earlier runs; every check ran"]
    )


GROUPED = """\
id: api-group
name: The API as a whole
config_type: smoke_test
config:
  test_type: integration
  test_definition: {checks: [slow-api]}
"""


def test_a_group_counts_a_reused_member(
    project: pytest.Pytester, server: CountingServer, write_config: WriteConfig
) -> None:
    write_config("group.yaml", GROUPED)
    gate(project)

    again = gate(project)

    assert again.ret == 0
    assert server.count == 1
    statuses = {c["check_id"]: c["status"] for c in report(project)["checks"]}
    assert statuses == {"api-group": "passed", CHECK_ID: "passed"}


def test_a_reservation_check_cannot_be_reused(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config(
        "leases.yaml",
        textwrap.dedent("""\
            id: my-leases
            name: My leases
            config_type: reservation_check
            config:
              check_type: lock_validation
              reuse_passed_for_seconds: 60
            """),
    )
    pytester.makepyfile(test_app="def test_app():\n    pass\n")

    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")

    assert result.ret == 11
    result.stderr.fnmatch_lines(
        [
            "maf-preflight: 1 preflight config error:",
            "  .maf/preflight-configs/leases.yaml:6: config.reuse_passed_for_seconds: a "
            "reservation_check is never reused: leases and changed files change from one run "
            "to the next, so it runs every time; remove reuse_passed_for_seconds",
        ]
    )


def test_nor_can_a_group_nor_an_override_of_a_reservation_check(tmp_path: Path) -> None:
    path = tmp_path / "configs.yaml"
    path.write_text(
        textwrap.dedent("""\
            configs:
              - id: my-leases
                name: My leases
                config_type: reservation_check
                config: {check_type: lock_validation}
                environment_overrides:
                  ci: {reuse_passed_for_seconds: 5}
              - id: grp
                name: A group
                config_type: smoke_test
                config:
                  test_type: integration
                  test_definition: {checks: [other]}
                  reuse_passed_for_seconds: 60
            """)
    )
    loader = ConfigLoader(builtin_registry(), "development")

    configs, errors = loader.load_file(path)

    assert configs == []
    assert [(e.line, e.path, e.message.split(":")[0]) for e in errors] == [
        (
            7,
            ("configs", 0, "environment_overrides", "ci", "reuse_passed_for_seconds"),
            "a reservation_check is never reused",
        ),
        (
            14,
            ("configs", 1, "config", "reuse_passed_for_seconds"),
            "an integration check is decided from its members' results in each run and is "
            "never reused; set reuse_passed_for_seconds on its members instead",
        ),
    ]


def test_the_original_camelcase_spelling_and_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text(
        json.dumps(
            {
                "id": "api",
                "name": "API",
                "configType": "smoke_test",
                "config": {
                    "testType": "api",
                    "testDefinition": {"url": "http://127.0.0.1:9/"},
                    "reusePassedForSeconds": 90,
                },
            }
        )
    )
    [loaded] = ConfigLoader(builtin_registry(), "development").load_files([path])
    assert isinstance(loaded.body, SmokeTestBody)
    assert loaded.body.reuse_passed_for_seconds == 90
    field = build_schema(builtin_registry())["$defs"]["SmokeTestBody"]["properties"][
        "reuse_passed_for_seconds"
    ]
    assert (field["minimum"], field["maximum"], field["default"]) == (0, 86_400, 0)


def test_the_runner_does_not_run_a_known_result_and_groups_count_it(tmp_path: Path) -> None:
    registry = builtin_registry()
    ran: list[str] = []
    command = registry.get("command")
    integration = registry.get("integration")
    assert command is not None
    assert integration is not None

    def planned(check_id: str, members: tuple[str, ...] = ()) -> PlannedCheck:
        definition = (
            integration.definition.model_validate({"checks": list(members)})
            if members
            else command.definition.model_validate({"argv": [sys.executable, "-c", "0"]})
        )
        return PlannedCheck(
            check_id,
            check_id,
            "critical",
            integration if members else command,
            definition,
            10.0,
            0,
            0.0,
            members=members,
        )

    reused = CheckResult(
        "a", "a", "command", "critical", CheckStatus.PASSED, reused_from={"execution_id": "x"}
    )
    ctx = CheckContext(rootdir=tmp_path, environ={}, environment="development", agent_id="t")

    results = run_checks(
        [planned("a"), planned("b"), planned("g", ("a", "b"))],
        ctx,
        on_result=lambda r: ran.append(r.check_id),
        on_start=lambda checks: ran.extend(f"start {c.check_id}" for c in checks),
        known={"a": reused},
    )

    assert [r.check_id for r in results] == ["a", "b", "g"]
    assert results[0] is reused
    assert all(r.passed for r in results), results
    assert ran[0] == "a"  # reported first...
    assert "start a" not in ran  # ...and never started


#: Records which of the plugin's modules a gated run imported.
IMPORT_PROBE = """
import json, sys

def pytest_sessionfinish(session):
    with open("loaded.json", "w") as handle:
        json.dump("pytest_maf_preflight.gate.reuse" in sys.modules, handle)
"""


@pytest.mark.parametrize("seconds", [0, 60])
def test_only_a_run_with_reuse_configured_imports_it(
    project: pytest.Pytester, server: CountingServer, write_config: WriteConfig, seconds: int
) -> None:
    write_config("api.yaml", api_config(server.url(), seconds=seconds))
    project.makeconftest(IMPORT_PROBE)
    result = project.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 0
    assert json.loads((project.path / "loaded.json").read_text()) is bool(seconds)


def test_under_xdist_the_workers_get_the_reused_result(
    project: pytest.Pytester, server: CountingServer
) -> None:
    pytest.importorskip("xdist")
    assert gate(project).ret == 0

    dist = project.runpytest_subprocess(
        "-p",
        "maf_preflight",
        "-p",
        "xdist",
        "-n",
        "2",
        "--maf-preflight",
        "--junitxml=junit.xml",
        timeout=120,
    )

    assert dist.ret == 0, dist.stdout.str()
    assert server.count == 1
    dist.assert_outcomes(passed=2)
    dist.stdout.fnmatch_lines([f"PASSED           {CHECK_ID}  (reused from *Z)", "gate open"])
    # The check's item ran on a worker and reported the reuse it received.
    junit = (project.path / "junit.xml").read_text()
    assert 'name="maf_check_reused_from"' in junit
