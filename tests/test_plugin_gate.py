"""The gate: blocking failures, warnings, maf_smoke, --maf-preflight-only, the switch (S7)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

WriteConfig = Callable[[str, str], Path]

TESTS = """\
import pytest

def test_first():
    pass

def test_second():
    pass

@pytest.mark.maf_smoke
def test_smoke():
    pass
"""


def command_config(check_id: str, argv: list[str], *, severity: str = "critical") -> str:
    return json.dumps(
        {
            "id": check_id,
            "name": f"{check_id} command",
            "config_type": "smoke_test",
            "version": "1.0.0",
            "severity": severity,
            "config": {
                "test_type": "command",
                "timeout_seconds": 5,
                "test_definition": {"argv": argv, "expected_exit_code": 0},
            },
        }
    )


def test_failing_critical_check_closes_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("db-up.json", command_config("db-up", ["false"]))
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-rs")
    result.stdout.fnmatch_lines(
        [
            "*= FAILURES =*",
            "*_ preflight check db-up _*",
            "preflight check 'db-up' (command, critical) FAILED after 1 attempt in *s",
            "  expected: exit code 0",
            "  observed: exit code 1",
            "  config:   .maf/preflight-configs/db-up.json",
            "*= maf-preflight =*",
            "FAILED           db-up  *ms",
            "PASSED           tools  *ms",
            "gate CLOSED (exit code 10): db-up (failed)",
        ]
    )
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]*] test_app.py*: maf-preflight gate closed by: db-up (failed)"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*PreflightCheckFailed*")
    result.assert_outcomes(passed=1, failed=1, skipped=3)
    assert result.ret == 10


def test_all_checks_pass_and_the_session_runs(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stdout.fnmatch_lines(["PASSED           tools  *ms", "gate open"])
    result.assert_outcomes(passed=4)
    assert result.ret == 0


def test_ordinary_test_failure_keeps_pytests_exit_code(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(test_app="def test_broken():\n    assert False\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["gate open"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_failing_warning_check_leaves_the_gate_open(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("lint.json", command_config("lint", ["false"], severity="warning"))
    pytester.makepyfile(test_app=TESTS)
    # In a subprocess: in-process runs inherit this suite's ``filterwarnings = error``.
    result = pytester.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight")
    result.stdout.fnmatch_lines(
        [
            "*= warnings summary =*",
            ".maf/preflight-configs/lint.json::lint",
            "*MafCheckWarning: preflight check 'lint' failed (severity warning): exit code 1",
            "*= maf-preflight =*",
            "WARN (failed)    lint  *ms",
            "gate open",
        ]
    )
    result.assert_outcomes(passed=4, warnings=1)
    assert result.ret == 0


def test_warning_check_under_filterwarnings_error_passes(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    """A project that turns warnings into errors does not turn a warning check into a failure:
    maf_warnings_as_errors decides (more in test_gate_warning_filters.py)."""
    write_config("lint.json", command_config("lint", ["false"], severity="warning"))
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stdout.fnmatch_lines(["WARN (failed)    lint  *ms", "gate open"])
    result.assert_outcomes(passed=4, warnings=1)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    "switch",
    [
        ("-o", "maf_warnings_as_errors=true"),
        ("--maf-warnings-as-errors",),
    ],
    ids=["ini", "cli"],
)
def test_warnings_as_errors_closes_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig, switch: tuple[str, ...]
) -> None:
    write_config("lint.json", command_config("lint", ["false"], severity="warning"))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", *switch)
    result.stdout.fnmatch_lines(
        [
            "preflight check 'lint' (command, warning) FAILED after 1 attempt in *s",
            "FAILED           lint  *ms",
            "gate CLOSED (exit code 10): lint (failed)",
        ]
    )
    result.assert_outcomes(failed=1, skipped=3)
    assert result.ret == 10


def test_warnings_as_errors_from_the_environment(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_PREFLIGHT_WARNINGS_AS_ERRORS", "1")
    write_config("lint.json", command_config("lint", ["false"], severity="warning"))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.assert_outcomes(failed=1, skipped=3)
    assert result.ret == 10


def test_failing_smoke_test_closes_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(
        test_app="""\
import pytest

def test_ordinary():
    pass

@pytest.mark.maf_smoke
def test_smoke_breaks():
    assert 1 == 2

@pytest.mark.maf_smoke
def test_smoke_fine():
    pass
"""
    )
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-v", "-rs")
    result.stdout.fnmatch_lines(
        [
            "*::tools PASSED*",
            "test_app.py::test_smoke_breaks FAILED*",
            "test_app.py::test_smoke_fine PASSED*",
            "test_app.py::test_ordinary SKIPPED*",
            "*= maf-preflight =*",
            "PASSED           tools *",
            "FAILED           test_app.py::test_smoke_breaks  (maf_smoke)",
            "gate CLOSED (exit code 10): test_app.py::test_smoke_breaks (maf_smoke failed)",
            "*short test summary info*",
            "SKIPPED [[]1] test_app.py*: maf-preflight gate closed by: "
            "test_app.py::test_smoke_breaks (maf_smoke failed)",
        ]
    )
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    assert result.ret == 10


def test_smoke_tests_run_right_after_the_checks(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(
        test_a="def test_a_first():\n    pass\n",
        test_b="""\
import pytest

def test_b_ordinary():
    pass

@pytest.mark.maf_smoke
def test_b_smoke_defined_last():
    pass
""",
    )
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-v")
    result.stdout.fnmatch_lines(
        [
            "*::tools PASSED*",
            "test_b.py::test_b_smoke_defined_last PASSED*",
            "test_a.py::test_a_first PASSED*",
            "test_b.py::test_b_ordinary PASSED*",
        ]
    )
    assert result.ret == 0


def test_preflight_only_runs_checks_and_smoke_tests(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight-only", "-v")
    result.stdout.fnmatch_lines(
        [
            "*collected 4 items / 2 deselected / 2 selected",
            "*::tools PASSED*",
            "test_app.py::test_smoke PASSED*",
            "gate open",
        ]
    )
    result.stdout.no_fnmatch_line("*test_first*")
    result.assert_outcomes(passed=2, deselected=2)
    assert result.ret == 0


def test_without_the_switch_the_plugin_stays_out_of_the_way(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("db-up.json", command_config("db-up", ["false"]))
    pytester.makepyfile(
        test_app="""\
import pytest

def test_ordinary():
    pass

@pytest.mark.maf_smoke
def test_smoke_breaks():
    assert False

@pytest.mark.maf_requires("db-up")
def test_needs_db():
    pass
"""
    )
    result = pytester.runpytest("-p", "maf_preflight", "-v", "-rs")
    result.stdout.fnmatch_lines(
        [
            "*collected 3 items",
            "",
            "test_app.py::test_ordinary PASSED*",
            "test_app.py::test_smoke_breaks FAILED*",
            "test_app.py::test_needs_db SKIPPED*",
            "*short test summary info*",
            "SKIPPED [[]1] test_app.py:10: maf_requires(db-up) needs the preflight gate "
            "(--maf-preflight)",
        ]
    )
    result.stdout.no_fnmatch_line("*maf-preflight:*")
    result.stdout.no_fnmatch_line("*db-up.json*")
    result.stdout.no_fnmatch_line("*= maf-preflight =*")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_maf_preflight_environment_variable_turns_it_on(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_PREFLIGHT", "1")
    write_config("db-up.json", command_config("db-up", ["false"]))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight")
    result.stdout.fnmatch_lines(["gate CLOSED (exit code 10): db-up (failed)"])
    result.assert_outcomes(failed=1, skipped=3)
    assert result.ret == 10


def test_maf_preflight_environment_variable_off_wins_over_ini(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_PREFLIGHT", "0")
    pytester.makeini("[pytest]\nmaf_preflight = true\n")
    write_config("db-up.json", command_config("db-up", ["false"]))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight")
    result.assert_outcomes(passed=3)
    assert result.ret == 0


def test_bad_maf_preflight_environment_variable_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_PREFLIGHT", "maybe")
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight")
    result.stderr.fnmatch_lines(
        [
            "ERROR: MAF_PREFLIGHT environment variable:"
            " expected one of 1/0/true/false, got 'maybe'",
        ]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_ini_turns_it_on(pytester: pytest.Pytester, write_config: WriteConfig) -> None:
    pytester.makeini("[pytest]\nmaf_preflight = true\n")
    write_config("db-up.json", command_config("db-up", ["false"]))
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight")
    result.stdout.fnmatch_lines(["gate CLOSED (exit code 10): db-up (failed)"])
    result.assert_outcomes(failed=1, skipped=3)
    assert result.ret == 10


def test_config_error_ends_the_session_with_its_own_exit_code(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("broken.json", '{"id": "broken", ')
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stderr.fnmatch_lines(
        [
            "maf-preflight: 1 preflight config error:",
            "  .maf/preflight-configs/broken.json:1: (document): invalid JSON: *",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stderr.no_fnmatch_line("*Traceback*")
    assert result.ret == 11


GC_PROBE = """
import gc

def test_frozen():
    print("FROZEN", gc.get_freeze_count())
"""


@pytest.mark.parametrize(("setting", "frozen"), [(None, True), ("false", False)])
def test_objects_alive_when_the_tests_start_are_frozen_then_thawed(
    pytester: pytest.Pytester, setting: str | None, frozen: bool
) -> None:
    """Full collections during the tests skip what lives for the whole session (the gate's
    heavier heap would otherwise cost every test); the session ends with nothing frozen."""
    import gc

    if setting is not None:
        pytester.makeini(f"[pytest]\nmaf_gc_freeze = {setting}\n")
    pytester.makepyfile(test_probe=GC_PROBE)
    assert gc.get_freeze_count() == 0
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-s")
    assert result.ret == 0
    counts = [
        int(line.split("FROZEN ")[1].split()[0]) for line in result.outlines if "FROZEN " in line
    ]
    assert len(counts) == 1
    assert (counts[0] > 1000) is frozen
    assert gc.get_freeze_count() == 0


def test_nothing_is_frozen_without_the_gate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_probe=GC_PROBE)
    result = pytester.runpytest("-p", "maf_preflight", "-s")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*FROZEN 0*"])
