"""Config regexes end at the check's deadline, whatever text they meet (issue 11, defect 2).

``(a|aa)+$`` against fifty ``a`` and a ``!`` backtracks about 2**35 times: Python's ``re`` would
hold the GIL for hours. Gate runs here go through a pytest subprocess with a timeout, so code
that cannot bound the match fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers_http import Response, StartHttpServer
from pytest_maf_preflight import matching
from pytest_maf_preflight.checks.base import CheckContext, CheckResult, CheckStatus, CheckTimeout
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks

CATASTROPHIC = r"(a|aa)+$"
HOSTILE = "a" * 50 + "!"
#: Seconds a gate of one-second checks may take in all: start-up, the deadline, and slack for a
#: loaded CI machine. Without a bound the run never ends (the subprocess timeout says so).
WHOLE_RUN_LIMIT = 20.0


def test_search_ends_at_the_deadline_with_a_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(CheckTimeout, match="did not end within"):
        matching.search(CATASTROPHIC, HOSTILE, 0.3)
    assert time.monotonic() - started < 5.0


def test_fullmatch_ends_at_the_deadline_with_a_timeout() -> None:
    with pytest.raises(CheckTimeout):
        matching.fullmatch(CATASTROPHIC, HOSTILE, 0.3)


def test_the_issues_nested_quantifier_is_answered_not_timed_out() -> None:
    assert matching.search(r"^(a+)+$", "a" * 30 + "!", 1.0) is False
    assert matching.fullmatch(r"(a+)+", "a" * 30, 1.0) is True


def test_a_passed_deadline_still_answers_a_cheap_match() -> None:
    assert matching.search("ok", "all ok", 0.0) is True


def test_the_dialect_is_re_with_unicode_properties() -> None:
    assert matching.fullmatch(r"(?P<word>\p{L}+)-(?P=word)", "été-été", 1.0) is True
    assert matching.validate(r"\d+(?=px)") == r"\d+(?=px)"
    with pytest.raises(ValueError, match="invalid regular expression"):
        matching.validate("(unclosed")


def test_other_checks_run_while_a_match_backtracks(tmp_path: Path) -> None:
    """The matcher releases the GIL: a fast check finishes long before the slow match ends."""
    registry = builtin_registry()
    environment = registry.get("environment")
    assert environment is not None
    slow = PlannedCheck(
        "slow",
        "slow",
        "critical",
        environment,
        environment.definition.model_validate({"patterns": {"V": CATASTROPHIC}}),
        timeout=2.0,
        retry_count=0,
        retry_delay=0.0,
    )
    fast = PlannedCheck(
        "fast",
        "fast",
        "critical",
        environment,
        environment.definition.model_validate({"required": ["V"]}),
        timeout=2.0,
        retry_count=0,
        retry_delay=0.0,
    )
    finished: dict[str, float] = {}
    started = time.monotonic()
    ctx = CheckContext(
        rootdir=tmp_path, environ={"V": HOSTILE}, environment="test", agent_id="agent"
    )

    def note_finish(result: CheckResult) -> None:
        finished.setdefault(result.check_id, time.monotonic() - started)

    results = run_checks([slow, fast], ctx, on_result=note_finish)
    assert [r.status for r in results] == [CheckStatus.TIMEOUT, CheckStatus.PASSED]
    assert finished["fast"] < 1.0 < finished["slow"]


@pytest.fixture
def hostile_server(http_server: StartHttpServer) -> str:
    return http_server({"/": Response(200, HOSTILE)}).url("/")


def _smoke(check_id: str, test_type: str, definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": check_id,
        "name": check_id,
        "config_type": "smoke_test",
        "config": {
            "test_type": test_type,
            "timeout_seconds": 1,
            "retry_count": 0,
            "test_definition": definition,
        },
    }


def _gate(
    pytester: pytest.Pytester, configs: list[dict[str, Any]], **env: str
) -> tuple[pytest.RunResult, dict[str, Any], float]:
    folder = pytester.path / ".maf" / "preflight-configs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hostile.json").write_text(json.dumps({"configs": configs}))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    report = pytester.path / "report.json"
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "-p",
        "no:cacheprovider",
        f"--maf-report={report}",
        timeout=WHOLE_RUN_LIMIT * 3,
    )
    return result, json.loads(report.read_text()), time.monotonic() - started


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["check_id"]: check["status"] for check in report["checks"]}


def test_every_regex_place_ends_at_its_deadline_in_a_gate(
    pytester: pytest.Pytester, hostile_server: str
) -> None:
    (pytester.path / "data.json").write_text(json.dumps({"name": HOSTILE, HOSTILE: 1}))
    configs = [
        _smoke("env-pattern", "environment", {"patterns": {"HOSTILE_VALUE": CATASTROPHIC}}),
        _smoke(
            "command-regex",
            "command",
            {"argv": [sys.executable, "-c", f"print({HOSTILE!r})"], "stdout_regex": CATASTROPHIC},
        ),
        _smoke("api-body", "api", {"url": hostile_server, "body_regex": CATASTROPHIC}),
        _smoke(
            "schema-pattern",
            "file_system",
            {
                "paths": [
                    {
                        "path": "data.json",
                        "json_schema": {"properties": {"name": {"pattern": CATASTROPHIC}}},
                    }
                ]
            },
        ),
        _smoke(
            "schema-pattern-properties",
            "file_system",
            {
                "paths": [
                    {
                        "path": "data.json",
                        "json_schema": {"patternProperties": {CATASTROPHIC: {"type": "string"}}},
                    }
                ]
            },
        ),
        _smoke(
            "schema-additional",
            "file_system",
            {
                "paths": [
                    {
                        "path": "data.json",
                        "json_schema": {
                            "patternProperties": {CATASTROPHIC: {}},
                            "additionalProperties": False,
                        },
                    }
                ]
            },
        ),
        _smoke("still-fine", "environment", {"required": ["HOSTILE_VALUE"]}),
    ]
    result, report, elapsed = _gate(pytester, configs, HOSTILE_VALUE=HOSTILE)
    statuses = _statuses(report)
    assert statuses == {
        "env-pattern": "timeout",
        "command-regex": "timeout",
        "api-body": "timeout",
        "schema-pattern": "timeout",
        "schema-pattern-properties": "timeout",
        "schema-additional": "timeout",
        "still-fine": "passed",
    }
    assert result.ret == 10
    assert elapsed < WHOLE_RUN_LIMIT
    # Which side reports the timeout first (the matcher's own, or the runner abandoning the
    # attempt) depends on the machine's load; both end the check at its deadline.


def test_a_regex_that_answers_in_time_still_decides_the_check(
    pytester: pytest.Pytester, hostile_server: str
) -> None:
    configs = [
        _smoke("matches", "api", {"url": hostile_server, "body_regex": r"^\p{L}+!$"}),
        _smoke("does-not-match", "environment", {"patterns": {"HOSTILE_VALUE": r"a+"}}),
    ]
    result, report, _ = _gate(pytester, configs, HOSTILE_VALUE=HOSTILE)
    assert _statuses(report) == {"matches": "passed", "does-not-match": "failed"}
    assert result.ret == 10


def test_unbounded_schema_keywords_are_a_config_error(pytester: pytest.Pytester) -> None:
    configs = [
        _smoke(
            "unbounded",
            "file_system",
            {
                "paths": [
                    {
                        "path": "data.json",
                        "json_schema": {
                            "patternProperties": {"^x": {}},
                            "unevaluatedProperties": False,
                        },
                    }
                ]
            },
        )
    ]
    folder = pytester.path / ".maf" / "preflight-configs"
    folder.mkdir(parents=True)
    (folder / "unbounded.json").write_text(json.dumps({"configs": configs}))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 11
    result.stderr.fnmatch_lines(["*unbounded.json*unevaluatedProperties*patternProperties*"])


def test_a_regex_outside_the_dialect_is_a_config_error(pytester: pytest.Pytester) -> None:
    configs = [_smoke("bad-regex", "environment", {"patterns": {"V": "(unclosed"}})]
    folder = pytester.path / ".maf" / "preflight-configs"
    folder.mkdir(parents=True)
    (folder / "bad.json").write_text(json.dumps({"configs": configs}))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 11
    result.stderr.fnmatch_lines(["*bad.json*patterns*not a valid regular expression*"])
