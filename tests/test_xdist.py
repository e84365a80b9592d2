"""Under pytest-xdist the gate runs once, on the controller, and every worker honours it (S7).

Each scenario runs twice, without and with ``-n 2``, and must end the same way: the same
outcomes and the same exit code.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from helpers_configs import WriteConfig, command_config

pytest.importorskip("xdist")


ORDINARY = """\
import pytest

@pytest.mark.parametrize("n", range(20))
def test_ordinary(n):
    pass
"""


def run(pytester: pytest.Pytester, *args: str, xdist: bool) -> pytest.RunResult:
    dist = ("-p", "xdist", "-n", "2") if xdist else ()
    return pytester.runpytest_subprocess(
        "-p", "maf_preflight", *dist, "--maf-preflight", "-v", "-rs", *args, timeout=120
    )


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("seconds",)}


def workers_that(result: pytest.RunResult, outcome: str, name: str) -> set[str]:
    pattern = re.compile(rf"\[(gw\d+)\] \[ *\d+%\] {outcome} \S*{re.escape(name)}")
    return {m.group(1) for line in result.outlines if (m := pattern.search(line))}


@pytest.fixture
def same_with_and_without_xdist(
    pytester: pytest.Pytester,
) -> Callable[..., tuple[pytest.RunResult, pytest.RunResult]]:
    def compare(*args: str) -> tuple[pytest.RunResult, pytest.RunResult]:
        plain = run(pytester, *args, xdist=False)
        dist = run(pytester, *args, xdist=True)
        assert outcomes(dist) == outcomes(plain), dist.stdout.str()
        assert dist.ret == plain.ret
        return plain, dist

    return compare


def test_gate_open(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    same_with_and_without_xdist: Callable[..., tuple[pytest.RunResult, ...]],
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(test_app=ORDINARY)
    _, dist = same_with_and_without_xdist()
    dist.stdout.fnmatch_lines(["PASSED           tools  *ms", "gate open"])
    dist.assert_outcomes(passed=21)
    assert dist.ret == 0


def test_failing_critical_check(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    same_with_and_without_xdist: Callable[..., tuple[pytest.RunResult, ...]],
) -> None:
    write_config("db-up.json", command_config("db-up", ["false"]))
    pytester.makepyfile(test_app=ORDINARY)
    _, dist = same_with_and_without_xdist()
    dist.stdout.fnmatch_lines(
        [
            "*_ preflight check db-up _*",
            "preflight check 'db-up' (command, critical) FAILED after 1 attempt in *s",
            "gate CLOSED (exit code 10): db-up (failed)",
            "SKIPPED [[]20] test_app.py:*: maf-preflight gate closed by: db-up (failed)",
        ]
    )
    dist.assert_outcomes(failed=1, skipped=20)
    assert dist.ret == 10
    assert workers_that(dist, "SKIPPED", "test_ordinary") == {"gw0", "gw1"}


def test_failing_smoke_test_on_one_worker_closes_the_gate_on_all(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    same_with_and_without_xdist: Callable[..., tuple[pytest.RunResult, ...]],
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(
        test_app=ORDINARY
        + """

@pytest.mark.maf_smoke
def test_smoke_fine():
    pass

@pytest.mark.maf_smoke
def test_smoke_breaks():
    assert False, "the app does not start"
"""
    )
    _, dist = same_with_and_without_xdist()
    dist.stdout.fnmatch_lines(
        [
            "FAILED           test_app.py::test_smoke_breaks  (maf_smoke)",
            "gate CLOSED (exit code 10): test_app.py::test_smoke_breaks (maf_smoke failed)",
            "SKIPPED [[]20] test_app.py:*: maf-preflight gate closed by: "
            "test_app.py::test_smoke_breaks (maf_smoke failed)",
        ]
    )
    dist.assert_outcomes(passed=2, failed=1, skipped=20)
    assert dist.ret == 10
    assert workers_that(dist, "SKIPPED", "test_ordinary") == {"gw0", "gw1"}


def test_failing_warning_check(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    same_with_and_without_xdist: Callable[..., tuple[pytest.RunResult, ...]],
) -> None:
    write_config("lint.json", command_config("lint", ["false"], severity="warning"))
    pytester.makepyfile(test_app=ORDINARY)
    _, dist = same_with_and_without_xdist()
    dist.stdout.fnmatch_lines(
        [
            "*MafCheckWarning: preflight check 'lint' failed (severity warning): exit code 1",
            "WARN (failed)    lint  *ms",
            "gate open",
        ]
    )
    dist.assert_outcomes(passed=21, warnings=1)
    assert dist.ret == 0


def test_checks_run_once_on_the_controller(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("count.json", command_config("count", ["sh", "-c", "echo ran >> runs.txt"]))
    pytester.makepyfile(test_app=ORDINARY)
    result = run(pytester, xdist=True)
    result.assert_outcomes(passed=21)
    assert workers_that(result, "PASSED", "test_ordinary") == {"gw0", "gw1"}
    assert (pytester.path / "runs.txt").read_text().splitlines() == ["ran"]


def test_scope_based_distribution_closes_the_gate_with_smoke_tests(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    """--dist loadscope can queue a smoke test behind a test waiting for it: rather than risk
    a deadlock, the gate fails closed and says which modes work."""
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(
        test_app=ORDINARY
        + """

@pytest.mark.maf_smoke
def test_smoke():
    pass
"""
    )
    result = run(pytester, "--dist", "loadscope", xdist=True)
    message = (
        "maf_smoke tests cannot gate a session run with --dist loadscope, which can "
        "queue a smoke test behind a test that waits for it; use --dist load "
        "(the default of -n), worksteal or each"
    )
    result.stdout.fnmatch_lines(
        [
            f"gate CLOSED (exit code 10): {message}",
            f"SKIPPED [[]20] test_app.py:*: maf-preflight gate closed by: {message}",
        ]
    )
    result.assert_outcomes(passed=2, skipped=20)
    assert result.ret == 10


def test_scope_based_distribution_without_smoke_tests_is_fine(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(test_app=ORDINARY)
    result = run(pytester, "--dist", "loadscope", xdist=True)
    result.assert_outcomes(passed=21)
    assert result.ret == 0


def test_smoke_tests_run_by_workers_count_as_checked(
    same_with_and_without_xdist: Callable[..., tuple[pytest.RunResult, pytest.RunResult]],
    pytester: pytest.Pytester,
) -> None:
    """Without configs, smoke tests alone are what the gate checked: the controller, which
    collects nothing under xdist, must not say that nothing was checked."""
    pytester.makepyfile(
        test_smoke="""
        import pytest

        @pytest.mark.maf_smoke
        def test_service_up():
            pass
    """,
        test_app=ORDINARY,
    )
    plain, dist = same_with_and_without_xdist()
    for result in (plain, dist):
        assert result.ret == 0
        result.stdout.fnmatch_lines(["gate open"])
        result.stdout.no_fnmatch_line("*nothing was checked*")
