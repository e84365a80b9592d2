"""Preflight checks as pytest items: node ids, order, --collect-only, -k and JUnit XML (S7)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import pytest

from helpers_configs import WriteConfig, command_config

TOOLCHAIN = """\
[[configs]]
id = "python-toolchain"
name = "Python is recent enough"
config_type = "smoke_test"
version = "1.0.0"
[configs.config]
test_type = "python"
[configs.config.test_definition]
python = ">=3.8"

[[configs]]
id = "git-available"
name = "A command that must succeed"
config_type = "smoke_test"
version = "1.0.0"
[configs.config]
test_type = "command"
timeout_seconds = 5
[configs.config.test_definition]
argv = ["{git_argv}"]
"""


@pytest.fixture
def toolchain(pytester: pytest.Pytester, write_config: WriteConfig) -> Callable[[bool], None]:
    """A TOML file with two checks; ``git-available`` passes or fails as asked."""

    def make(git_ok: bool = True) -> None:
        write_config(
            "toolchain.toml", TOOLCHAIN.replace("{git_argv}", "true" if git_ok else "false")
        )
        pytester.makepyfile(test_app="def test_app():\n    pass\n")

    return make


def test_one_item_per_check_first_in_the_run(
    pytester: pytest.Pytester, toolchain: Callable[[bool], None]
) -> None:
    toolchain(True)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-v")
    result.stdout.fnmatch_lines(
        [
            "*collected 3 items",
            "",
            ".maf/preflight-configs/toolchain.toml::python-toolchain PASSED*",
            ".maf/preflight-configs/toolchain.toml::git-available PASSED*",
            "test_app.py::test_app PASSED*",
        ]
    )
    result.assert_outcomes(passed=3)
    assert result.ret == 0


def test_collect_only_lists_the_checks_without_running_them(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    marker = pytester.path / "ran"
    write_config("toolchain.toml", TOOLCHAIN.replace("{git_argv}", "true"))
    write_config("probe.json", command_config("probe", ["touch", str(marker)]))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            ".maf/preflight-configs/probe.json::probe",
            ".maf/preflight-configs/toolchain.toml::python-toolchain",
            ".maf/preflight-configs/toolchain.toml::git-available",
            "test_app.py::test_app",
            "",
            "4 tests collected in *",
        ]
    )
    assert result.ret == 0
    assert not marker.exists(), "--collect-only must not run checks"


def test_dash_k_selects_one_check_item(
    pytester: pytest.Pytester, toolchain: Callable[[bool], None]
) -> None:
    toolchain(True)
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "-v", "-k", "git-available"
    )
    result.stdout.fnmatch_lines(
        [
            "*collected 3 items / 2 deselected / 1 selected",
            "*toolchain.toml::git-available PASSED*",
        ]
    )
    result.stdout.no_fnmatch_line("*python-toolchain PASSED*")
    result.assert_outcomes(passed=1, deselected=2)
    assert result.ret == 0


def test_dash_k_does_not_stop_the_gate_from_running_every_check(
    pytester: pytest.Pytester, toolchain: Callable[[bool], None]
) -> None:
    """-k chooses which results are shown as items; the gate still runs and honours all checks.

    A failing critical check that -k deselected still closes the gate: selecting tests must not
    be a way around the preflight.
    """
    toolchain(False)
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "-k", "python-toolchain or test_app"
    )
    result.assert_outcomes(passed=1, skipped=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "PASSED           python-toolchain *",
            "FAILED           git-available *",
            "gate CLOSED (exit code 10): git-available (failed)",
        ]
    )
    assert result.ret == 10


def test_junitxml_has_a_testcase_per_check_with_properties(
    pytester: pytest.Pytester, toolchain: Callable[[bool], None]
) -> None:
    toolchain(False)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--junitxml=report.xml")
    assert result.ret == 10
    root = ET.parse(pytester.path / "report.xml").getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(cases) == {"python-toolchain", "git-available", "test_app"}
    for name, status in (("python-toolchain", "passed"), ("git-available", "failed")):
        props = {p.get("name"): p.get("value") for p in cases[name].iter("property")}
        assert props["maf_check_id"] == name
        assert props["maf_check_status"] == status
    failure = cases["git-available"].find("failure")
    assert failure is not None
    assert "expected: exit code 0" in (failure.text or "")
    assert "Traceback" not in (failure.text or "")
    assert cases["test_app"].find("skipped") is not None


def test_inactive_and_escalation_path_configs_give_no_item(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("on.json", command_config("on", ["true"]))
    write_config("off.json", command_config("off", ["false"], is_active=False))
    write_config(
        "escalate.yaml",
        """\
id: escalate
name: Tell the lead
config_type: escalation_path
version: 1.0.0
config:
  trigger_conditions:
    - {condition: preflight_failure, operator: gte, threshold: 1}
  escalation_steps:
    - {level: 1, action: notify, target: lead, timeout_minutes: 15}
""",
    )
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "-v")
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: agent anonymous, environment development, runtime sqlite (rootdir "
            ".maf, not a git repository), 1 check from 1 config file",
            "*collected 1 item",
            "",
            ".maf/preflight-configs/on.json::on PASSED*",
        ]
    )
    result.stdout.no_fnmatch_line("*::off*")
    result.stdout.no_fnmatch_line("*::escalate*")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
