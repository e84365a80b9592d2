"""The gate's header and summary follow pytest's verbosity, as pytest's own plugins do.

``-q`` drops the header line and shrinks the summary to the gate's line with the checks'
counts (what says something went wrong stays); the default is one line per check; ``-v`` adds
under each check what it is and what it observed.
"""

from __future__ import annotations

import json

import pytest

from helpers_configs import WriteConfig

# The warning check fails by design; the outer suite's filterwarnings=error must not turn its
# MafCheckWarning into a failed item in these in-process runs.
QUIET = ("-W", "ignore::pytest.PytestWarning")


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
                "timeout_seconds": 10,
                "test_definition": {"argv": argv},
            },
        }
    )


@pytest.fixture
def project(pytester: pytest.Pytester, write_config: WriteConfig) -> pytest.Pytester:
    write_config("fast.json", command_config("fast", ["true"]))
    write_config("slow.json", command_config("slow", ["false"], severity="warning"))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    pytester.makeini("[pytest]\n")
    return pytester


def gate(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest("-p", "maf_preflight", "--maf-preflight", *QUIET, *args)


def test_quiet_shows_the_gate_in_one_line(project: pytest.Pytester) -> None:
    result = gate(project, "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["maf-preflight: gate open (2 checks: 1 passed, 1 warned)", "3 passed in *"]
    )
    for shown_by_default in (
        "maf-preflight: agent *",
        "*= maf-preflight =*",
        "PASSED           fast*",
        "WARN (failed)    slow*",
        "*recorded 2 execution(s) in sqlite*",
        "gate open",
    ):
        result.stdout.no_fnmatch_line(shown_by_default)


def test_quiet_says_what_closed_the_gate(
    project: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("broken.json", command_config("broken", ["false"]))
    result = gate(project, "-q")
    assert result.ret == 10
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: gate CLOSED (exit code 10; 3 checks: 1 passed, 1 failed, 1 warned): "
            "broken (failed)"
        ]
    )
    result.stdout.no_fnmatch_line("FAILED           broken*")


def test_quiet_keeps_what_went_wrong(project: pytest.Pytester) -> None:
    project.makeconftest(
        "def pytest_maf_preflight_check_executed(config, result):\n"
        "    raise RuntimeError('observer broke')\n"
    )
    result = gate(project, "-q")
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: pytest_maf_preflight_check_executed raised RuntimeError('observer "
            "broke') for *",
            "maf-preflight: gate open (2 checks: 1 passed, 1 warned)",
        ]
    )


def test_default_shows_a_line_per_check(project: pytest.Pytester) -> None:
    result = gate(project)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: agent anonymous, environment development, runtime sqlite *, 2 checks "
            "from 2 config files",
            "*= maf-preflight =*",
            "PASSED           fast  * ms",
            "WARN (failed)    slow  * ms",
            "maf-preflight: recorded 2 execution(s) in sqlite *",
            "gate open",
        ]
    )
    result.stdout.no_fnmatch_line("*fast command (command, critical)*")


def test_verbose_adds_what_each_check_is_and_observed(project: pytest.Pytester) -> None:
    result = gate(project, "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "PASSED           fast  * ms",
            "                 fast command (command, critical), 1 attempt, "
            ".maf/preflight-configs/fast.json: exit code 0",
            "WARN (failed)    slow  * ms",
            "                 slow command (command, warning), 1 attempt, "
            ".maf/preflight-configs/slow.json: exit code 1",
            "gate open",
        ],
        consecutive=False,
    )
    lines = result.outlines
    below_fast = lines[
        next(i for i, line in enumerate(lines) if line.startswith("PASSED           fast")) + 1
    ]
    assert below_fast.lstrip().startswith("fast command (command, critical)")
