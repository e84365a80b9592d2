"""``integration`` groups that share members, name other groups, or name each other in a cycle:
decided by the runner (directly and through the gate), refused at load and by ``validate``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_maf_preflight.checks.base import CheckContext, CheckResult, CheckStatus
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.checks.command import CommandDefinition
from pytest_maf_preflight.checks.environment import EnvironmentDefinition
from pytest_maf_preflight.checks.integration import IntegrationDefinition
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks

REGISTRY = builtin_registry()
WriteConfig = Callable[[str, str], Path]


def ctx(tmp_path: Path) -> CheckContext:
    return CheckContext(
        rootdir=tmp_path, environ=dict(os.environ), environment="development", agent_id="t"
    )


def planned(check_id: str, test_type: str, definition: object) -> PlannedCheck:
    check_type = REGISTRY.get(test_type)
    assert check_type is not None
    return PlannedCheck(check_id, check_id, "critical", check_type, definition, 10.0, 0, 0.0)


def env_check(check_id: str, required: str) -> PlannedCheck:
    return planned(check_id, "environment", EnvironmentDefinition(required=[required]))


def counting_check(check_id: str, log: Path) -> PlannedCheck:
    """A real command that appends a line to ``log`` each time it runs."""
    script = f"echo ran >> {log}"
    return planned(check_id, "command", CommandDefinition(argv=["sh", "-c", script]))


def group(check_id: str, *members: str) -> PlannedCheck:
    """A group with retries: a group is decided once all the same."""
    check_type = REGISTRY.get("integration")
    assert check_type is not None
    return PlannedCheck(
        check_id,
        check_id,
        "critical",
        check_type,
        IntegrationDefinition(checks=list(members)),
        5.0,
        3,
        0.0,
        members=members,
    )


def by_id(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.check_id: r for r in results}


# --- the runner -------------------------------------------------------------------------------


def test_groups_sharing_a_member_are_all_decided_and_the_member_runs_once(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    seen: list[str] = []
    results = run_checks(
        [
            group("g1", "shared"),
            group("g2", "shared", "other"),
            counting_check("shared", log),
            env_check("other", "PATH"),
            group("g3", "shared"),
        ],
        ctx(tmp_path),
        on_result=lambda r: seen.append(r.check_id),
    )
    assert [r.check_id for r in results] == ["g1", "g2", "shared", "other", "g3"]
    assert {r.check_id: r.status for r in results} == {
        cid: CheckStatus.PASSED for cid in ("g1", "g2", "g3", "shared", "other")
    }
    assert log.read_text().splitlines() == ["ran"]
    assert sorted(seen) == sorted(["g1", "g2", "g3", "shared", "other"])  # once each


def test_a_failing_shared_member_fails_every_group_naming_it(tmp_path: Path) -> None:
    results = by_id(
        run_checks(
            [
                group("g1", "missing"),
                group("g2", "missing"),
                group("g3", "missing", "present"),
                env_check("missing", "MAF_SURELY_UNSET_Q"),
                env_check("present", "PATH"),
            ],
            ctx(tmp_path),
        )
    )
    for name in ("g1", "g2", "g3"):
        assert results[name].status is CheckStatus.FAILED
        assert results[name].attempts == 1  # decided once, never retried
        assert "missing failed" in results[name].observed
    assert "present passed" in results["g3"].observed


def test_a_nested_group_is_decided_before_the_group_naming_it(tmp_path: Path) -> None:
    seen: list[str] = []
    results = by_id(
        run_checks(
            [
                group("outer", "inner", "b"),
                group("inner", "a"),
                env_check("a", "PATH"),
                env_check("b", "PATH"),
            ],
            ctx(tmp_path),
            on_result=lambda r: seen.append(r.check_id),
        )
    )
    assert results["inner"].status is CheckStatus.PASSED
    assert results["outer"].status is CheckStatus.PASSED, results["outer"].observed
    assert results["outer"].details["members"] == {"inner": "passed", "b": "passed"}
    assert seen.index("a") < seen.index("inner") < seen.index("outer")


def test_a_failure_deep_inside_nested_groups_fails_every_group_above(tmp_path: Path) -> None:
    results = by_id(
        run_checks(
            [
                group("top", "mid"),
                group("mid", "low", "ok"),
                group("low", "unset"),
                env_check("unset", "MAF_SURELY_UNSET_Q"),
                env_check("ok", "PATH"),
            ],
            ctx(tmp_path),
        )
    )
    assert [results[g].status for g in ("low", "mid", "top")] == [CheckStatus.FAILED] * 3
    assert "1 of 1 did not pass: mid failed" in results["top"].observed
    assert "low failed, ok passed" in results["mid"].observed


def test_a_long_chain_of_nested_groups_is_decided(tmp_path: Path) -> None:
    depth = 3000  # far past Python's recursion limit: the decision must not recurse
    chain = [group(f"g{i}", f"g{i + 1}") for i in range(depth)]
    results = run_checks(
        [*chain, group(f"g{depth}", "leaf"), env_check("leaf", "PATH")], ctx(tmp_path)
    )
    assert {r.status for r in results} == {CheckStatus.PASSED}
    assert len(results) == depth + 2


@pytest.mark.parametrize(
    ("checks", "cycle"),
    [
        ([group("a", "b", "x"), group("b", "a")], "a -> b -> a"),
        ([group("a", "a", "x")], "a -> a"),
    ],
)
def test_groups_on_a_cycle_fail_closed_naming_it(
    tmp_path: Path, checks: list[PlannedCheck], cycle: str
) -> None:
    results = by_id(
        run_checks([*checks, group("above", "a"), env_check("x", "PATH")], ctx(tmp_path))
    )
    for check in checks:
        result = results[check.check_id]
        assert result.status is CheckStatus.ERROR
        assert f"name each other in a cycle ({cycle})" in result.observed
    assert results["above"].status is CheckStatus.FAILED
    assert "a error" in results["above"].observed
    assert results["x"].status is CheckStatus.PASSED


# --- through the gate -------------------------------------------------------------------------

ENV_CHECKS = """\
  - id: has-path
    name: PATH is set
    config_type: smoke_test
    config: {test_type: environment, test_definition: {required: [PATH]}}
  - id: has-nothing
    name: an unset variable
    config_type: smoke_test
    severity: warning
    config: {test_type: environment, test_definition: {required: [MAF_SURELY_UNSET_Y]}}
"""


def integration(check_id: str, *members: str) -> str:
    return (
        f"  - id: {check_id}\n    name: group {check_id}\n    config_type: smoke_test\n"
        f"    config:\n      test_type: integration\n      test_definition:\n"
        f"        checks: [{', '.join(members)}]\n"
    )


def gate(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    return pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-runtime=memory",
        "-W",
        "ignore::pytest.PytestWarning",
        *args,
    )


def test_gate_decides_two_groups_sharing_a_member(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config(
        "groups.yaml",
        "configs:\n" + ENV_CHECKS + integration("g1", "has-path") + integration("g2", "has-path"),
    )
    result = gate(pytester)
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.fnmatch_lines(["PASSED * g1 *", "PASSED * g2 *", "gate open"])
    result.assert_outcomes(passed=5)  # four checks (has-nothing only warns) and test_a
    assert result.ret == 0


def test_gate_fails_every_group_sharing_a_failed_member(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config(
        "groups.yaml",
        "configs:\n"
        + ENV_CHECKS
        + integration("g1", "has-path", "has-nothing")
        + integration("g2", "has-nothing"),
    )
    result = gate(pytester, "-rs")
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stdout.fnmatch_lines(
        [
            "*preflight check 'g1' (integration, critical) FAILED*",
            "*observed: 1 of 2 did not pass: has-path passed, has-nothing failed*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*preflight check 'g2' (integration, critical) FAILED*",
            "*observed: 1 of 1 did not pass: has-nothing failed*",
        ]
    )
    result.stdout.fnmatch_lines(["gate CLOSED (exit code 10): g1 (failed), g2 (failed)"])
    assert result.ret == 10


def test_gate_decides_a_group_naming_a_group(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    # The outer group comes first in the file: order must not matter.
    write_config(
        "groups.yaml",
        "configs:\n"
        + integration("platform", "base", "has-path")
        + integration("base", "has-path")
        + ENV_CHECKS,
    )
    result = gate(pytester, "-rA")
    result.stdout.no_fnmatch_line("*not an active check*")
    result.stdout.fnmatch_lines(["PASSED * platform *", "gate open"])
    assert result.ret == 0


CYCLE = "configs:\n" + ENV_CHECKS + integration("g1", "has-path", "g2") + integration("g2", "g1")


def test_a_cycle_of_groups_is_a_config_error(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("groups.yaml", CYCLE)
    result = gate(pytester)
    assert result.ret == 11
    result.stderr.fnmatch_lines(
        [
            "*1 preflight config error:",
            "*.maf/preflight-configs/groups.yaml:17: configs[[]2].config.test_definition.checks: "
            "integration checks name each other in a cycle: g1 -> g2 -> g1;*",
        ]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_group_naming_itself_is_a_config_error(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("groups.yaml", "configs:\n" + ENV_CHECKS + integration("me", "has-path", "me"))
    result = gate(pytester)
    assert result.ret == 11
    result.stderr.fnmatch_lines(["*groups.yaml:17: *name each other in a cycle: me -> me;*"])


def validate(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_maf_preflight.cli", "validate", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_validate_reports_a_cycle_of_groups(tmp_path: Path) -> None:
    (tmp_path / "groups.yaml").write_text(CYCLE)
    result = validate("groups.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "groups.yaml:17: configs[2].config.test_definition.checks: integration checks name "
        "each other in a cycle: g1 -> g2 -> g1; a group can only be decided after its members",
        "invalid: 1 error in 1 file (1 checked)",
    ]
    assert "Traceback" not in result.stderr


def test_validate_reports_a_cycle_in_any_environment(tmp_path: Path) -> None:
    # Only production closes the loop; it is still found when another environment is chosen.
    (tmp_path / "groups.yaml").write_text(
        textwrap.dedent("""\
        configs:
          - id: a
            name: a
            config_type: smoke_test
            config: {test_type: environment, test_definition: {required: [PATH]}}
          - id: g
            name: g
            config_type: smoke_test
            config: {test_type: integration, test_definition: {checks: [a]}}
            environment_overrides:
              production:
                test_definition: {checks: [a, g]}
    """)
    )
    result = validate("groups.yaml", "--env", "development", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "groups.yaml:12: configs[1].environment_overrides.production.test_definition.checks: "
        "integration checks name each other in a cycle in environment 'production': g -> g; "
        "a group can only be decided after its members"
    )
    ok = (tmp_path / "groups.yaml").read_text().replace("[a, g]", "[a]")
    (tmp_path / "groups.yaml").write_text(ok)
    assert validate("groups.yaml", cwd=tmp_path).returncode == 0
