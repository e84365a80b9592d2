"""``maf_smoke`` tests rerun by pytest-rerunfailures: every attempt is recorded (issue 17).

The gate decides on a smoke test's last attempt, as pytest reports it; the execution row counts
every attempt and its result JSON lists each one's outcome, so a flake stays visible.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pytest_rerunfailures")
pytest.importorskip("xdist")

# Each smoke test counts its attempts in a file beside it and fails while the count is at most
# FAILS; -n 2 is real: the ordinary tests on the other worker wait at the barrier.
TESTS = textwrap.dedent("""
    from pathlib import Path

    import pytest

    def attempt(name):
        counter = Path(__file__).parent / f"{name}.count"
        count = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(count))
        return count

    @pytest.mark.maf_smoke
    def test_flaky():
        assert attempt("flaky") > 1, "first attempt fails"

    @pytest.mark.maf_smoke
    def test_broken():
        assert attempt("broken") > BROKEN_FAILS, "still broken"

    @pytest.mark.parametrize("n", range(6))
    def test_ordinary(n):
        pass
""")


def project(pytester: pytest.Pytester, *, broken_fails: int) -> pytest.Pytester:
    pytester.makepyfile(test_app=TESTS.replace("BROKEN_FAILS", str(broken_fails)))
    return pytester


def gate(pytester: pytest.Pytester, *, xdist: bool) -> pytest.RunResult:
    dist = ("-p", "xdist", "-n", "2") if xdist else ()
    return pytester.runpytest_subprocess(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "-p",
        "rerunfailures",
        "--reruns",
        "2",
        *dist,
        "-rs",
        timeout=120,
    )


def smoke_executions(root: Path) -> dict[str, dict[str, Any]]:
    """The recorded smoke executions; pytester dirs are no git repositories, so the default
    store is ``.maf/runtime.db`` under the rootdir."""
    with sqlite3.connect(root / ".maf" / "runtime.db") as conn:
        rows = conn.execute(
            "select config_id, status, attempts, result, error_message "
            "from preflight_executions where kind = 'smoke'"
        ).fetchall()
    return {
        str(nodeid): {
            "status": status,
            "attempts": attempts,
            "result": json.loads(result),
            "error": error,
        }
        for nodeid, status, attempts, result, error in rows
    }


def counts(result: pytest.RunResult) -> dict[str, int]:
    """The summary line's counts (``assert_outcomes`` knows no ``rerun``)."""
    return {k: v for k, v in result.parseoutcomes().items() if k not in ("seconds", "warnings")}


def outcomes_of(execution: dict[str, Any]) -> list[str]:
    return [a["outcome"] for a in execution["result"]["attempts"]]


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_a_smoke_test_that_passes_on_its_rerun_is_recorded_with_both_attempts(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    project(pytester, broken_fails=0)  # test_broken passes at once
    result = gate(pytester, xdist=xdist)
    assert counts(result) == dict(passed=8, rerun=1)
    result.stdout.fnmatch_lines(["gate open*"])
    assert result.ret == 0
    smoke = smoke_executions(pytester.path)
    flaky = smoke["test_app.py::test_flaky"]
    assert (flaky["status"], flaky["attempts"], flaky["error"]) == ("passed", 2, None)
    assert outcomes_of(flaky) == ["failed", "passed"]
    first, second = flaky["result"]["attempts"]
    assert first["error"].startswith("call: AssertionError: first attempt fails")
    assert "error" not in second
    assert all(isinstance(a["duration"], float) and a["duration"] >= 0 for a in (first, second))
    broken = smoke["test_app.py::test_broken"]
    assert (broken["attempts"], outcomes_of(broken)) == (1, ["passed"])


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_a_smoke_test_that_fails_every_rerun_closes_the_gate(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    project(pytester, broken_fails=3)  # the first attempt and both reruns fail
    result = gate(pytester, xdist=xdist)
    result.stdout.fnmatch_lines(
        ["gate CLOSED (exit code 10): test_app.py::test_broken (maf_smoke failed)"]
    )
    assert counts(result) == dict(passed=1, failed=1, skipped=6, rerun=3)
    assert result.ret == 10
    broken = smoke_executions(pytester.path)["test_app.py::test_broken"]
    assert (broken["status"], broken["attempts"]) == ("failed", 3)
    assert outcomes_of(broken) == ["failed", "failed", "failed"]
    assert broken["error"].startswith("call: AssertionError: still broken")


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_a_smoke_test_that_fails_its_last_rerun_only_closes_the_gate(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    """Under xdist the other worker waits at the barrier: a passing teardown of a rerun
    attempt must not count as the smoke test's outcome."""
    pytester.makepyfile(
        test_app=textwrap.dedent("""
        import time
        from pathlib import Path

        import pytest

        @pytest.mark.maf_smoke
        def test_slow_to_fail():
            counter = Path(__file__).parent / "slow.count"
            count = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(count))
            if count > 1:
                time.sleep(1)  # the waiting worker would pass the barrier meanwhile
            assert False, f"attempt {count}"

        @pytest.mark.parametrize("n", range(6))
        def test_ordinary(n):
            pass
    """)
    )
    result = gate(pytester, xdist=xdist)
    assert counts(result) == dict(failed=1, skipped=6, rerun=2)
    assert result.ret == 10
    slow = smoke_executions(pytester.path)["test_app.py::test_slow_to_fail"]
    assert (slow["status"], slow["attempts"]) == ("failed", 3)
    assert slow["error"].startswith("call: AssertionError: attempt 3")
