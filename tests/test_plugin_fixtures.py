"""The maf_requires marker and the fixtures maf_agent, maf_config, maf_preflight_results (S7)."""

from __future__ import annotations

import json

import pytest

from helpers_configs import WriteConfig, command_config

# --- maf_requires -------------------------------------------------------------------------

REQUIRES = """\
import pytest

@pytest.mark.maf_requires("tools")
def test_needs_tools():
    pass

@pytest.mark.maf_requires("tools", "optional-lint")
def test_needs_lint_too():
    pass
"""


def test_maf_requires_runs_when_its_checks_passed(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    write_config("lint.json", command_config("optional-lint", ["true"], severity="warning"))
    pytester.makepyfile(test_app=REQUIRES)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.assert_outcomes(passed=4)
    assert result.ret == 0


def test_maf_requires_skips_when_a_check_did_not_pass(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    """A warning check that failed keeps the gate open but still skips tests needing it."""
    write_config("tools.json", command_config("tools", ["true"]))
    write_config("lint.json", command_config("optional-lint", ["false"], severity="warning"))
    pytester.makepyfile(test_app=REQUIRES)
    result = pytester.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight", "-v", "-rs")
    result.stdout.fnmatch_lines(
        [
            "test_app.py::test_needs_tools PASSED*",
            "test_app.py::test_needs_lint_too SKIPPED*",
            "*short test summary info*",
            "SKIPPED [[]1] test_app.py:7: maf_requires: check(s) did not pass:"
            " optional-lint (failed)",
        ]
    )
    result.assert_outcomes(passed=3, skipped=1, warnings=1)
    assert result.ret == 0


def test_maf_requires_with_an_unknown_check_fails_clearly(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(
        test_app="""\
import pytest

@pytest.mark.maf_requires("tols")
def test_typo():
    pass
"""
    )
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR at setup of test_typo _*",
            "maf_requires names unknown check(s): tols (known: tools)",
            "*short test summary info*",
            "ERROR test_app.py::test_typo - Failed: maf_requires names unknown check(s): *",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.assert_outcomes(passed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


# --- maf_agent ----------------------------------------------------------------------------

AGENT_TEST = """\
def test_agent(maf_agent):
    print(f"agent={maf_agent.id} env={maf_agent.environment}")
"""


@pytest.mark.parametrize(
    ("args", "env", "ini", "expected"),
    [
        ((), {}, None, "anonymous"),
        ((), {}, "from-ini", "from-ini"),
        ((), {"AGENT_NAME": "from-agent-name"}, "from-ini", "from-agent-name"),
        ((), {"MAF_AGENT_ID": "from-maf", "AGENT_NAME": "from-agent-name"}, "from-ini", "from-maf"),
        (("--maf-agent-id", "from-cli"), {"MAF_AGENT_ID": "from-maf"}, "from-ini", "from-cli"),
    ],
    ids=["default", "ini", "AGENT_NAME", "MAF_AGENT_ID", "cli"],
)
def test_maf_agent_id_precedence(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    ini: str | None,
    expected: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if ini is not None:
        pytester.makeini(f"[pytest]\nmaf_agent_id = {ini}\n")
    pytester.makepyfile(test_agent=AGENT_TEST)
    result = pytester.runpytest("-p", "maf_preflight", "-s", *args)
    result.stdout.fnmatch_lines([f"*agent={expected} env=development*"])
    result.assert_outcomes(passed=1)


def test_invalid_agent_id_names_its_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAF_AGENT_ID", "../etc")
    pytester.makepyfile(test_agent=AGENT_TEST)
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stderr.fnmatch_lines(
        [
            "ERROR: MAF_AGENT_ID environment variable: '../etc' is not a valid name*",
        ]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


# --- maf_config ---------------------------------------------------------------------------


def test_maf_config_loads_a_config_by_id(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    config = json.loads(command_config("tools", ["true"]))
    config["environment_overrides"] = {"ci": {"test_definition": {"argv": ["false"]}}}
    write_config("tools.json", json.dumps(config))
    pytester.makepyfile(
        test_config="""\
def test_load(maf_config):
    loaded = maf_config.load("tools")
    assert loaded.id == "tools"
    assert loaded.definition.argv == ["false"]  # the session's environment: ci
    assert maf_config.load("tools", env="development").definition.argv == ["true"]
    assert maf_config.list() == ["tools"]
"""
    )
    result = pytester.runpytest("-p", "maf_preflight", "--maf-env", "ci")
    result.assert_outcomes(passed=1)


# --- maf_preflight_results ----------------------------------------------------------------


def test_maf_preflight_results_maps_ids_to_results(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    write_config("lint.json", command_config("lint", ["false"], severity="warning"))
    pytester.makepyfile(
        test_results="""\
def test_results(maf_preflight_results):
    assert set(maf_preflight_results) == {"tools", "lint"}
    assert maf_preflight_results["tools"].passed
    assert maf_preflight_results["tools"].status.value == "passed"
    assert not maf_preflight_results["lint"].passed
    assert maf_preflight_results["lint"].status.value == "failed"
"""
    )
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "-W",
        "ignore::pytest_maf_preflight.warning_types.MafCheckWarning",
    )
    result.assert_outcomes(passed=3)
    assert result.ret == 0


def test_maf_preflight_results_is_empty_without_the_gate(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("tools.json", command_config("tools", ["true"]))
    pytester.makepyfile(
        test_results="""\
def test_results(maf_preflight_results):
    assert dict(maf_preflight_results) == {}
"""
    )
    result = pytester.runpytest("-p", "maf_preflight")
    result.assert_outcomes(passed=1)
