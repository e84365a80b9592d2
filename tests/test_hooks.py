"""The extension hooks (S8), each used by a conftest plugin in a real pytest run."""

from __future__ import annotations

import json

import pytest

from helpers_configs import WriteConfig, command_config


def marker_config(check_id: str, marker: str) -> str:
    return json.dumps(
        {
            "id": check_id,
            "name": f"{marker} is present",
            "config_type": "smoke_test",
            "version": "1.0.0",
            "config": {"test_type": "marker_file", "test_definition": {"marker": marker}},
        }
    )


CUSTOM_TYPE = """\
from pydantic import Field

from pytest_maf_preflight.checks.base import CheckType, Definition, Observation


class MarkerFile(Definition):
    marker: str = Field(min_length=1)


def run(definition, ctx):
    path = ctx.path(definition.marker)
    return Observation(passed=path.is_file(), expected=f"{definition.marker} exists",
                       observed="present" if path.is_file() else "missing")


def pytest_maf_preflight_register_check_types(registry, config):
    registry.register(CheckType("marker_file", MarkerFile, run, "A marker file exists"))
"""


def test_register_check_types_adds_a_test_type(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makeconftest(CUSTOM_TYPE)
    pytester.path.joinpath("READY").write_text("")
    write_config("ready.json", marker_config("ready", "READY"))
    write_config("deployed.json", marker_config("deployed", "DEPLOYED"))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-v")
    result.stdout.fnmatch_lines(
        [
            ".maf/preflight-configs/deployed.json::deployed FAILED*",
            ".maf/preflight-configs/ready.json::ready PASSED*",
            "preflight check 'deployed' (marker_file, critical) FAILED after 1 attempt in *s",
            "  expected: DEPLOYED exists",
            "  observed: missing",
            "gate CLOSED (exit code 10): deployed (failed)",
        ]
    )
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    assert result.ret == 10


def test_registered_type_definitions_are_validated(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makeconftest(CUSTOM_TYPE)
    config = json.loads(marker_config("ready", "READY"))
    config["config"]["test_definition"] = {"markr": "READY"}
    write_config("ready.json", json.dumps(config))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stderr.fnmatch_lines(["maf-preflight: * config error*", "*ready.json*"])
    assert result.ret == 11


def test_unknown_test_type_without_the_hook_is_a_config_error(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("ready.json", marker_config("ready", "READY"))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stderr.fnmatch_lines(["*ready.json*marker_file*"])
    assert result.ret == 11


def test_gate_decision_hook_can_open_a_closed_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makeconftest("""\
from pytest_maf_preflight.gate.decision import GateDecision


def pytest_maf_preflight_gate_decision(config, results, smoke_failures, default):
    if not default.open and set(default.blocking) == {"flaky-service (failed)"}:
        return GateDecision(open=True, warnings=default.blocking)
    return None
""")
    write_config("flaky.json", command_config("flaky-service", ["false"]))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stdout.fnmatch_lines(["FAILED           flaky-service  *ms", "gate open"])
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_gate_decision_hook_can_close_an_open_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makeconftest("""\
from pytest_maf_preflight.gate.decision import GateDecision


def pytest_maf_preflight_gate_decision(config, results, smoke_failures, default):
    return GateDecision(open=False, blocking=("change freeze",))
""")
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-rs")
    result.stdout.fnmatch_lines(
        [
            "PASSED           tools  *ms",
            "gate CLOSED (exit code 10): change freeze",
            "SKIPPED [[]1] test_app.py*: maf-preflight gate closed by: change freeze",
        ]
    )
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == 10


def test_gate_decision_hook_sees_smoke_failures(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytester.makeconftest("""\
from pytest_maf_preflight.gate.decision import GateDecision


def pytest_maf_preflight_gate_decision(config, results, smoke_failures, default):
    if list(smoke_failures) == ["test_app.py::test_known_flaky_smoke"]:
        return GateDecision(open=True)
    return None
""")
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(
        test_app="""\
import pytest

def test_app():
    pass

@pytest.mark.maf_smoke
def test_known_flaky_smoke():
    assert False
"""
    )
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stdout.fnmatch_lines(["gate open"])
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_check_executed_hook_observes_every_check_once(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    log = pytester.path / "executed.log"
    pytester.makeconftest(f"""\
def pytest_maf_preflight_check_executed(config, result):
    with open({str(log)!r}, "a") as handle:
        handle.write(f"{{result.check_id}} {{result.status.value}}\\n")
""")
    write_config("a.json", command_config("alpha", ["true"]))
    write_config("b.json", command_config("beta", ["false"]))
    write_config("c.json", command_config("gamma", ["true"], severity="warning"))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-k", "alpha")
    assert result.ret == 10
    assert sorted(log.read_text().splitlines()) == ["alpha passed", "beta failed", "gamma passed"]


def test_check_executed_hook_runs_on_the_controller_only_under_xdist(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    pytest.importorskip("xdist")
    log = pytester.path / "executed.log"
    pytester.makeconftest(f"""\
def pytest_maf_preflight_check_executed(config, result):
    with open({str(log)!r}, "a") as handle:
        handle.write(result.check_id + "\\n")
""")
    write_config("a.json", command_config("alpha", ["true"]))
    write_config("b.json", command_config("beta", ["true"]))
    pytester.makepyfile(
        test_app="""\
import pytest

@pytest.mark.parametrize("n", range(6))
def test_app(n):
    pass
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "maf_preflight", "-p", "xdist", "-n", "2", "--maf-preflight", timeout=120
    )
    result.assert_outcomes(passed=8)
    assert sorted(log.read_text().splitlines()) == ["alpha", "beta"]
