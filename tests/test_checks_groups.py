"""``integration`` (a group of checks) and ``performance`` (latency and error budgets)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from helpers_configs import WriteConfig
from pytest_maf_preflight.checks.base import CheckContext, CheckStatus
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.checks.environment import EnvironmentDefinition
from pytest_maf_preflight.checks.integration import IntegrationDefinition
from pytest_maf_preflight.checks.performance import PerformanceDefinition, percentile
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks

REGISTRY = builtin_registry()


def ctx(tmp_path: Path) -> CheckContext:
    return CheckContext(
        rootdir=tmp_path, environ=dict(os.environ), environment="development", agent_id="t"
    )


def env_check(check_id: str, required: str) -> PlannedCheck:
    check_type = REGISTRY.get("environment")
    assert check_type is not None
    return PlannedCheck(
        check_id,
        check_id,
        "critical",
        check_type,
        EnvironmentDefinition(required=[required]),
        5.0,
        0,
        0.0,
    )


def group(check_id: str, *members: str, retries: int = 0) -> PlannedCheck:
    check_type = REGISTRY.get("integration")
    assert check_type is not None
    return PlannedCheck(
        check_id,
        check_id,
        "critical",
        check_type,
        IntegrationDefinition(checks=list(members)),
        5.0,
        retries,
        0.0,
        members=members,
    )


def test_a_group_passes_when_every_member_passed(tmp_path: Path) -> None:
    results = run_checks(
        [group("all", "a", "b"), env_check("a", "PATH"), env_check("b", "PATH")], ctx(tmp_path)
    )
    assert [r.check_id for r in results] == ["all", "a", "b"]
    assert results[0].status is CheckStatus.PASSED
    assert results[0].details["members"] == {"a": "passed", "b": "passed"}


def test_a_group_fails_naming_each_member(tmp_path: Path) -> None:
    results = run_checks(
        [
            env_check("a", "PATH"),
            env_check("b", "MAF_SURELY_UNSET_X"),
            group("all", "a", "b", retries=3),
        ],
        ctx(tmp_path),
    )
    grouped = results[2]
    assert grouped.status is CheckStatus.FAILED
    assert grouped.attempts == 1  # decided once, never retried or run
    assert "1 of 2 did not pass: a passed, b failed" in grouped.observed


def test_a_group_naming_an_unknown_check_fails_closed(tmp_path: Path) -> None:
    results = run_checks([env_check("a", "PATH"), group("all", "a", "ghost")], ctx(tmp_path))
    assert results[1].status is CheckStatus.FAILED
    assert "ghost not an active check" in results[1].observed


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.95) == 19.0
    assert percentile([7.0], 0.95) == 7.0


def perf(**fields: object) -> PlannedCheck:
    check_type = REGISTRY.get("performance")
    assert check_type is not None
    return PlannedCheck(
        "perf",
        "perf",
        "critical",
        check_type,
        PerformanceDefinition.model_validate(fields),
        30.0,
        0,
        0.0,
    )


def test_performance_within_budgets_passes(tmp_path: Path) -> None:
    [result] = run_checks(
        [perf(argv=["true"], iterations=6, concurrency=3, max_ms=20_000, p95_ms=20_000)],
        ctx(tmp_path),
    )
    assert result.status is CheckStatus.PASSED, result.observed
    assert result.details["iterations"] == 6
    assert result.details["errors"] == 0
    assert result.details["p50_ms"] <= result.details["p95_ms"] <= result.details["max_ms"]


def test_performance_over_a_latency_budget_fails(tmp_path: Path) -> None:
    [result] = run_checks([perf(argv=["sleep", "0.05"], iterations=3, p50_ms=1)], ctx(tmp_path))
    assert result.status is CheckStatus.FAILED
    assert "p50" in result.observed
    assert "over 1 ms" in result.observed


def test_performance_counts_errors_against_the_rate(tmp_path: Path) -> None:
    [result] = run_checks([perf(argv=["false"], iterations=4, max_error_rate=0.5)], ctx(tmp_path))
    assert result.status is CheckStatus.FAILED
    assert "error rate 1.00 over 0.5 (4 of 4 failed)" in result.observed


def test_a_group_config_runs_through_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config(
        "groups.yaml",
        textwrap.dedent("""\
        configs:
          - id: has-path
            name: PATH
            config_type: smoke_test
            config: {test_type: environment, test_definition: {required: [PATH]}}
          - id: has-nothing
            name: unset
            config_type: smoke_test
            severity: warning
            config: {test_type: environment, test_definition: {required: [MAF_SURELY_UNSET_Y]}}
          - id: platform
            name: the platform group
            config_type: smoke_test
            config: {test_type: integration, test_definition: {checks: [has-path, has-nothing]}}
    """),
    )
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "-W",
        "ignore::pytest.PytestWarning",
        "--maf-runtime=memory",
    )
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "*preflight check 'platform' (integration, critical) FAILED*",
            "*observed: 1 of 2 did not pass: has-path passed, has-nothing failed*",
        ]
    )
