"""Selection (-k, -m, --deselect, --lf) never shrinks the gate, and the counts pytest prints
still add up: every collected item is either run or counted as deselected, never both."""

from __future__ import annotations

import json

import pytest

from helpers_configs import WriteConfig

TESTS = """\
import os
import pytest

@pytest.mark.maf_smoke
def test_smoke_one():
    pass

@pytest.mark.maf_smoke
def test_smoke_two():
    pass

def test_ordinary_one():
    pass

def test_ordinary_two():
    assert not os.environ.get("MAF_TEST_FAIL_TWO")

def test_ordinary_three():
    pass
"""


def check(check_id: str) -> str:
    return json.dumps(
        {
            "id": check_id,
            "name": check_id,
            "config_type": "smoke_test",
            "config": {"test_type": "environment", "test_definition": {"required": ["PATH"]}},
        }
    )


@pytest.fixture
def project(pytester: pytest.Pytester, write_config: WriteConfig) -> pytest.Pytester:
    """Seven items: two check items, two maf_smoke tests and three ordinary tests."""
    write_config("first.json", check("first-check"))
    write_config("second.json", check("second-check"))
    pytester.makepyfile(test_app=TESTS)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "--maf-runtime=memory", *args
    )


@pytest.mark.parametrize(
    ("args", "ran", "deselected"),
    [
        # The checks selected; the smoke tests run all the same (they are the gate), and are not
        # counted as deselected: 4 run + 3 deselected = 7 collected.
        pytest.param(["-m", "maf_preflight_check"], 4, 3, id="only-check-items"),
        # Only the ordinary tests shown: the check items are deselected (the checks still run).
        pytest.param(["-m", "not maf_preflight_check"], 5, 2, id="no-check-items"),
        # One ordinary test, and the whole gate's smoke tests.
        pytest.param(["-k", "ordinary_one"], 3, 4, id="keyword"),
        pytest.param(["-k", "not smoke"], 7, 0, id="keyword-against-smoke"),
        pytest.param(["--deselect", "test_app.py::test_smoke_one"], 7, 0, id="deselect-smoke"),
        pytest.param(["-m", "maf_smoke"], 2, 5, id="only-smoke"),
    ],
)
def test_counts_add_up_to_what_was_collected(
    project: pytest.Pytester, args: list[str], ran: int, deselected: int
) -> None:
    result = run(project, *args, "-rA")
    assert result.ret == 0
    result.assert_outcomes(passed=ran, deselected=deselected)
    header = (
        f"collected 7 items / {deselected} deselected / {ran} selected"
        if deselected
        else "collected 7 items"
    )
    result.stdout.fnmatch_lines([header])
    # Whatever was selected, both checks ran and so did every smoke test.
    result.stdout.fnmatch_lines(["PASSED * first-check *", "PASSED * second-check *"])
    for smoke in ("test_smoke_one", "test_smoke_two"):
        result.stdout.fnmatch_lines([f"PASSED test_app.py::{smoke}"])


def test_last_failed_counts_add_up(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_TEST_FAIL_TWO", "1")
    run(project).assert_outcomes(passed=6, failed=1)
    # Named on the command line, the whole file is collected; --lf then keeps the failure and
    # deselects the rest, except the smoke tests, which are put back and run.
    result = run(project, "--lf", "test_app.py", "-rA")
    result.assert_outcomes(passed=2, failed=1, deselected=4)
    result.stdout.fnmatch_lines(["collected 7 items / 4 deselected / 3 selected"])
    for smoke in ("test_smoke_one", "test_smoke_two"):
        result.stdout.fnmatch_lines([f"PASSED test_app.py::{smoke}"])
