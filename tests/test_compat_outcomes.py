"""compat/outcomes.py: outcomes read from JUnit XML per test, and the differences between runs.

The script around it (compat/run.py) is exercised by running it; this is the part that decides
whether two runs of a real project's suite agree, so it is tested against JUnit XML that pytest
itself writes, and against small files written here for the cases a real run rarely shows.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from helpers_configs import WriteConfig

COMPAT = Path(__file__).resolve().parents[1] / "compat"


def _load_outcomes() -> ModuleType:
    # compat/ is neither installed nor on the tests' path (its script puts it there): load the
    # module from its file.
    spec = importlib.util.spec_from_file_location("compat_outcomes", COMPAT / "outcomes.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


outcomes = _load_outcomes()


def _junit(path: Path, *cases: str) -> Path:
    body = "\n".join(cases)
    path.write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="pytest">'
        f"{body}</testsuite></testsuites>\n"
    )
    return path


def _case(classname: str, name: str, inner: str = "") -> str:
    return f'<testcase classname="{classname}" name="{name}" time="0.001">{inner}</testcase>'


SKIP_GATE = '<skipped type="pytest.skip" message="maf-preflight gate closed by: c (failed)"/>'


def test_every_outcome_of_a_real_pytest_run_is_read_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mix="""
        import pytest

        def test_pass():
            pass

        def test_fail():
            assert False, "boom"

        def test_skip():
            pytest.skip("not here")

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False

        @pytest.fixture
        def broken_teardown():
            yield
            raise RuntimeError("teardown broke")

        def test_fail_and_teardown_error(broken_teardown):
            assert False

        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n):
            pass

        class TestGroup:
            def test_in_class(self):
                pass
    """
    )
    result = pytester.runpytest("--junitxml=out.xml")
    result.assert_outcomes(passed=4, failed=2, skipped=1, xfailed=1, errors=1)

    run = outcomes.read_junit(pytester.path / "out.xml")

    kinds = {test: outcome.kind for test, outcome in run.tests.items()}
    assert kinds == {
        "test_mix::test_pass": "passed",
        "test_mix::test_fail": "failed",
        "test_mix::test_skip": "skipped",
        "test_mix::test_xfail": "xfailed",
        "test_mix::test_fail_and_teardown_error": "failed+error",
        "test_mix::test_param[1]": "passed",
        "test_mix::test_param[2]": "passed",
        "test_mix.TestGroup::test_in_class": "passed",
    }
    assert run.tests["test_mix::test_skip"].message == "not here"
    assert run.checks == {}


def test_the_gates_check_items_are_kept_apart_from_the_tests(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config(
        "env.yaml",
        textwrap.dedent("""
        id: has-path
        name: PATH is set
        config_type: smoke_test
        version: 1.0.0
        config:
          test_type: environment
          test_definition:
            required: [PATH]
    """),
    )
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--junitxml=out.xml")
    result.assert_outcomes(passed=2)

    run = outcomes.read_junit(pytester.path / "out.xml")

    assert list(run.tests) == ["test_one::test_one"]
    assert set(run.checks) == {"has-path"}
    assert run.checks["has-path"].status == "passed"
    assert run.checks["has-path"].outcome.kind == "passed"


def test_differences_name_each_changed_missing_and_added_test(tmp_path: Path) -> None:
    baseline = outcomes.read_junit(
        _junit(
            tmp_path / "a.xml",
            _case("t", "same"),
            _case("t", "changed"),
            _case("t", "only_in_baseline"),
            _case("t", "skipped_both", '<skipped type="pytest.skip" message="one reason"/>'),
        )
    )
    other = outcomes.read_junit(
        _junit(
            tmp_path / "b.xml",
            _case("t", "same"),
            _case("t", "changed", '<failure message="warning turned error"/>'),
            _case("t", "only_in_other"),
            # The reason differs, the outcome does not: not a difference.
            _case("t", "skipped_both", '<skipped type="pytest.skip" message="another reason"/>'),
        )
    )

    found = outcomes.differences(baseline, other)

    assert [d.describe() for d in found] == [
        "t::changed: passed -> failed (warning turned error)",
        "t::only_in_baseline: passed -> (not run)",
        "t::only_in_other: (not run) -> passed",
    ]
    assert outcomes.differences(baseline, baseline) == []


def test_check_items_never_count_as_differences(tmp_path: Path) -> None:
    check = _case(
        ".open.yaml",
        "warn-check",
        '<properties><property name="maf_check_id" value="warn-check"/>'
        '<property name="maf_check_status" value="failed"/></properties>'
        '<failure message="MafCheckWarning"/>',
    )
    plain = outcomes.read_junit(_junit(tmp_path / "a.xml", _case("t", "one")))
    gated = outcomes.read_junit(_junit(tmp_path / "b.xml", check, _case("t", "one")))

    assert outcomes.differences(plain, gated) == []
    assert gated.checks["warn-check"].status == "failed"
    assert gated.checks["warn-check"].outcome.kind == "failed"


def test_a_test_reported_twice_is_one_test_with_both_outcomes(tmp_path: Path) -> None:
    run = outcomes.read_junit(
        _junit(
            tmp_path / "a.xml",
            _case("t", "dup", '<failure message="x"/>'),
            _case("t", "dup", '<error message="in teardown"/>'),
            _case("t", "ok"),
            _case("t", "ok"),
        )
    )

    assert {test: o.kind for test, o in run.tests.items()} == {
        "t::dup": "failed+error",
        "t::ok": "passed",
    }
    assert run.tests["t::dup"].message == "x"


def test_a_different_order_is_reported_where_it_starts(tmp_path: Path) -> None:
    first = outcomes.read_junit(_junit(tmp_path / "a.xml", *(_case("t", n) for n in "abc")))
    moved = outcomes.read_junit(_junit(tmp_path / "b.xml", *(_case("t", n) for n in "acb")))

    assert outcomes.order_difference(first, first) is None
    assert outcomes.order_difference(first, moved) == (
        "order differs from test 2: t::b expected, t::c ran"
    )


def test_a_closed_gate_must_skip_every_test_itself(tmp_path: Path) -> None:
    own_skip = '<skipped type="pytest.skip" message="needs windows"/>'
    baseline = outcomes.read_junit(
        _junit(
            tmp_path / "a.xml",
            *(_case("t", n) for n in ("a", "b", "c", "d")),
            _case("t", "skips_anyway", own_skip),
        )
    )
    all_skipped = outcomes.read_junit(
        _junit(
            tmp_path / "b.xml",
            *(_case("t", n, SKIP_GATE) for n in ("a", "b", "c", "d")),
            # Skipped by its own skipif before the gate could: it skips without the gate too.
            _case("t", "skips_anyway", own_skip),
        )
    )
    leaky = outcomes.read_junit(
        _junit(
            tmp_path / "c.xml",
            _case("t", "a", SKIP_GATE),
            _case("t", "b"),
            _case("t", "c", own_skip),
            _case("t", "skips_anyway", own_skip),
        )
    )

    assert outcomes.closed_gate_problems(baseline, all_skipped) == []
    assert outcomes.closed_gate_problems(baseline, leaky) == [
        "t::d: not in the closed-gate run",
        "t::b: passed, expected skipped by the gate",
        "t::c: skipped (needs windows), expected skipped by the gate",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no JUnit XML was written"),
        ("<testsuites><testsuite>", "not JUnit XML"),
    ],
)
def test_a_missing_or_broken_file_is_one_clear_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "out.xml"
    if content is not None:
        path.write_text(content)

    with pytest.raises(outcomes.JUnitError, match=message):
        outcomes.read_junit(path)
