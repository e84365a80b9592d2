"""A failing ``warning`` check under the project's own warning filters, and under ``-x``.

The plugin's setting (``maf_warnings_as_errors``) decides whether such a check fails
anything; a project's generic ``filterwarnings = error`` does not, and a filter that names the
plugin's warning classes applies as written (issue 17).
"""

from __future__ import annotations

import json

import pytest

from helpers_configs import WriteConfig

TESTS = """\
import pytest

@pytest.mark.parametrize("n", range(3))
def test_ordinary(n):
    pass

@pytest.mark.maf_smoke
def test_smoke():
    pass
"""
CHECK_WARNING = "pytest_maf_preflight.warning_types.MafCheckWarning"


@pytest.fixture
def project(pytester: pytest.Pytester, write_config: WriteConfig) -> pytest.Pytester:
    """One passing check, one failing ``warning`` check, three ordinary tests, one smoke test."""
    for check_id, argv, severity in (
        ("tools", ["true"], "critical"),
        ("lint", ["false"], "warning"),
    ):
        write_config(
            f"{check_id}.json",
            json.dumps(
                {
                    "id": check_id,
                    "name": f"{check_id} command",
                    "config_type": "smoke_test",
                    "version": "1.0.0",
                    "severity": severity,
                    "config": {
                        "test_type": "command",
                        "timeout_seconds": 10,
                        "test_definition": {"argv": argv},
                    },
                }
            ),
        )
    pytester.makepyfile(test_app=TESTS)
    return pytester


def ini(pytester: pytest.Pytester, *lines: str) -> None:
    pytester.makeini("[pytest]\n" + "\n".join(lines) + "\n")


def gate(pytester: pytest.Pytester, *args: str, xdist: bool = False) -> pytest.RunResult:
    # In a subprocess: nothing of this suite's own warning filters reaches the run.
    dist = ("-p", "xdist", "-n", "2") if xdist else ()
    return pytester.runpytest_subprocess(
        "-p", "maf_preflight", "--maf-preflight", *dist, *args, timeout=120
    )


def assert_warned_and_open(result: pytest.RunResult) -> None:
    result.stdout.fnmatch_lines(
        [
            "*MafCheckWarning: preflight check 'lint' failed (severity warning): exit code 1",
            "*= maf-preflight =*",
            "WARN (failed)    lint  *ms",
            "gate open",
        ]
    )
    result.assert_outcomes(passed=6, warnings=1)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    "filters",
    [
        ("filterwarnings = error",),
        ("filterwarnings =\n    error::pytest.PytestWarning",),
        (),
    ],
    ids=["ini-error", "ini-error-pytestwarning", "cli-W-error"],
)
def test_a_generic_error_filter_does_not_fail_a_warning_check(
    project: pytest.Pytester, filters: tuple[str, ...]
) -> None:
    ini(project, *filters)
    result = gate(project, *(() if filters else ("-W", "error")))
    assert_warned_and_open(result)


def test_a_generic_error_filter_does_not_fail_it_in_process(project: pytest.Pytester) -> None:
    """In-process, this suite's own ``filterwarnings = error`` is in force as well."""
    ini(project, "filterwarnings = error")
    result = project.runpytest("-p", "maf_preflight", "--maf-preflight", "-W", "error")
    assert_warned_and_open(result)


def test_other_actions_of_generic_filters_still_apply(project: pytest.Pytester) -> None:
    """Only a generic ``error`` is overruled: ``ignore`` is a display choice and holds."""
    ini(project, "filterwarnings =\n    error\n    ignore::pytest.PytestWarning")
    result = gate(project)
    result.stdout.no_fnmatch_line("*MafCheckWarning*")
    result.stdout.fnmatch_lines(["WARN (failed)    lint  *ms", "gate open"])
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.OK


def test_warnings_as_errors_decides_whatever_the_filters(project: pytest.Pytester) -> None:
    ini(project, "filterwarnings = error", "maf_warnings_as_errors = true")
    result = gate(project)
    result.stdout.fnmatch_lines(
        [
            "preflight check 'lint' (command, warning) FAILED after 1 attempt in *s",
            "FAILED           lint  *ms",
            "gate CLOSED (exit code 10): lint (failed)",
        ]
    )
    result.assert_outcomes(passed=1, failed=1, skipped=4)
    assert result.ret == 10


@pytest.mark.parametrize(
    "named",
    [
        ("filterwarnings =\n    error::" + CHECK_WARNING,),
        ("filterwarnings =\n    error::pytest_maf_preflight.warning_types.MafPreflightWarning",),
        ("filterwarnings =\n    error\n    error::" + CHECK_WARNING,),
    ],
    ids=["class", "base-class", "generic-and-class"],
)
def test_a_filter_naming_the_class_applies_as_written(
    project: pytest.Pytester, named: tuple[str, ...]
) -> None:
    """The user's explicit choice: the check's item fails (briefly); the gate stays open,
    since the check's severity and the plugin's setting decide the gate."""
    ini(project, *named)
    result = gate(project)
    result.stdout.fnmatch_lines(
        [
            "preflight check 'lint' (command, warning) FAILED after 1 attempt in *s",
            "  expected: exit code 0",
            "  observed: exit code 1",
            "WARN (failed)    lint  *ms",
            "gate open",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.assert_outcomes(passed=5, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_filter_naming_the_class_on_the_command_line(project: pytest.Pytester) -> None:
    ini(project, "filterwarnings = ignore")
    result = gate(project, "-W", "error::" + CHECK_WARNING)
    result.assert_outcomes(passed=5, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_filter_naming_the_class_can_also_silence_it(project: pytest.Pytester) -> None:
    ini(project, "filterwarnings =\n    error\n    ignore::" + CHECK_WARNING)
    result = gate(project)
    result.stdout.no_fnmatch_line("*MafCheckWarning*")
    result.assert_outcomes(passed=6)
    assert result.ret == pytest.ExitCode.OK


# --- -x and --maxfail ---------------------------------------------------------------------


@pytest.mark.parametrize("stop", [("-x",), ("--maxfail=1",)], ids=["x", "maxfail"])
@pytest.mark.parametrize("filters", [(), ("filterwarnings = error",)], ids=["plain", "error"])
@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_stopping_at_the_first_failure_never_stops_at_a_warning_check(
    project: pytest.Pytester, filters: tuple[str, ...], stop: tuple[str, ...], xdist: bool
) -> None:
    ini(project, *filters)
    result = gate(project, *stop, xdist=xdist)
    assert_warned_and_open(result)
    result.stdout.no_fnmatch_line("*stopping after*")


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_with_warnings_as_errors_x_stops_at_the_closed_gate(
    project: pytest.Pytester, xdist: bool
) -> None:
    """The check closes the gate, as any blocking check: -x ends the session there, with the
    gate's exit code, and no ordinary test passes."""
    ini(project, "filterwarnings = error", "maf_warnings_as_errors = true")
    result = gate(project, "-x", "-v", xdist=xdist)
    result.stdout.fnmatch_lines(["gate CLOSED (exit code 10): lint (failed)"])
    assert result.parseoutcomes().get("failed") == 1
    for line in ("*PASSED*test_app.py*", "*test_app.py*PASSED*"):  # no test of the project
        result.stdout.no_fnmatch_line(line)
    assert result.ret == 10
