"""The gate stays closed, and the session ends, in the odd corners a review found."""

from __future__ import annotations

import json
import textwrap

import pytest

from helpers_configs import PASSING_CHECK, WriteConfig

FAILING_CRITICAL = """\
id: needs-var
name: A variable nobody set
config_type: smoke_test
config:
  test_type: environment
  test_definition: {required: [MAF_TEST_SURELY_UNSET]}
"""
SMOKE_AND_TESTS = """\
import os
import pytest

def test_ordinary():
    assert os.environ.get("PASSME") == "1"

@pytest.mark.maf_smoke
def test_smoke():
    assert os.environ.get("SMOKEFAIL") != "1"
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "maf_preflight", "--maf-preflight", *args)


def test_path_option_with_a_separate_value_is_refused(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", FAILING_CRITICAL)
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    report = pytester.path.parent / "elsewhere-report.json"
    report.write_text("{}")  # an existing file is what pytest mistakes for a test path
    result = run(pytester, "--maf-report", str(report))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*write --maf-report=PATH (with '=')*"])
    result = run(pytester, f"--maf-report={report}")
    assert result.ret == 10
    assert json.loads(report.read_text())["gate"]["open"] is False


def test_continue_on_collection_errors_still_runs_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", FAILING_CRITICAL)
    pytester.makepyfile(
        test_ok="def test_ok():\n    pass\n", test_broken="import surely_not_a_module_here\n"
    )
    result = run(pytester, "--continue-on-collection-errors", "-rs")
    result.assert_outcomes(failed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(["*gate closed by: needs-var (failed)*"])
    assert result.ret == 10


def test_failed_first_does_not_run_a_test_before_the_smoke_tests(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makepyfile(test_app=SMOKE_AND_TESTS)
    run(pytester)  # test_ordinary fails and is remembered by the cache
    monkeypatch.setenv("PASSME", "1")
    monkeypatch.setenv("SMOKEFAIL", "1")
    result = run(pytester, "--ff", "-v")
    result.stdout.fnmatch_lines(
        ["*test_app.py::test_smoke FAILED*", "*test_app.py::test_ordinary SKIPPED*"]
    )
    assert result.ret == 10


def test_keyword_selection_cannot_leave_out_the_smoke_tests(
    pytester: pytest.Pytester, write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makepyfile(test_app=SMOKE_AND_TESTS)
    monkeypatch.setenv("PASSME", "1")
    monkeypatch.setenv("SMOKEFAIL", "1")
    result = run(pytester, "-k", "not smoke")
    result.stdout.fnmatch_lines(["*gate CLOSED*test_smoke (maf_smoke failed)*"])
    assert result.ret == 10


def test_a_directory_named_maf_smoke_holds_no_smoke_tests(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", PASSING_CHECK)
    tests = pytester.mkpydir("maf_smoke")
    (tests / "test_x.py").write_text("def test_x():\n    assert False\n")
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_decision_hook_returning_garbage_closes_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makeconftest("def pytest_maf_preflight_gate_decision(default):\n    return True\n")
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = run(pytester, "-rs")
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*returned bool, not a GateDecision*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_an_observer_that_raises_is_reported_not_fatal(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makeconftest(
        "def pytest_maf_preflight_check_executed(result):\n"
        "    raise RuntimeError('observer broke')\n"
    )
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*check_executed raised RuntimeError('observer broke')*"])


def test_an_unwritable_report_keeps_the_exit_code(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", FAILING_CRITICAL)
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    (pytester.path / "taken").mkdir()
    result = run(pytester, "--maf-report=taken")
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*cannot write the report to *taken*"])
    result.stdout.no_fnmatch_line("*Traceback*")


@pytest.mark.parametrize("args", ['["has-path"]', ""])
def test_maf_requires_with_bad_arguments_is_a_clear_error(
    pytester: pytest.Pytester, write_config: WriteConfig, args: str
) -> None:
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makepyfile(
        test_a=textwrap.dedent(f"""
        import pytest

        @pytest.mark.maf_requires({args})
        def test_a():
            pass
    """)
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*maf_requires takes one or more check ids as strings*"])
    result.stdout.no_fnmatch_line("*KeyError*")


def test_a_gate_with_nothing_to_check_says_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = run(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: *0 checks from 0 config files"
            " (no active checks in .maf/preflight-configs)",
            "*gate open: nothing was checked*",
        ]
    )


@pytest.mark.parametrize("agent", ["..", ".hidden", "a/b", "x\n"])
def test_names_that_could_leave_a_directory_are_refused(
    pytester: pytest.Pytester, agent: str
) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = run(pytester, f"--maf-agent-id={agent}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--maf-agent-id*is not a valid name*"])


XDIST = ("-p", "xdist", "-n", "2")


def test_a_smoke_test_that_kills_its_worker_does_not_hang_the_session(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makepyfile(
        test_app=textwrap.dedent("""
        import os
        import pytest

        @pytest.mark.maf_smoke
        def test_smoke_crashes():
            os._exit(1)

        @pytest.mark.parametrize("n", range(6))
        def test_ordinary(n):
            pass
    """)
    )
    result = pytester.runpytest_subprocess(
        "-p", "maf_preflight", "--maf-preflight", *XDIST, timeout=120
    )
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*gate CLOSED*test_smoke_crashes (maf_smoke failed)*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped") == 6
    assert outcomes.get("passed") == 1  # the check item


def test_exitfirst_under_xdist_ends_promptly_with_the_gate_code(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("checks.yaml", PASSING_CHECK)
    pytester.makepyfile(
        test_app=textwrap.dedent("""
        import pytest

        @pytest.mark.maf_smoke
        @pytest.mark.parametrize("n", range(2))
        def test_smoke(n):
            assert n == 1

        @pytest.mark.parametrize("n", range(6))
        def test_ordinary(n):
            pass
    """)
    )
    result = pytester.runpytest_subprocess(
        "-p", "maf_preflight", "--maf-preflight", "-x", *XDIST, timeout=120
    )
    assert result.ret == 10
