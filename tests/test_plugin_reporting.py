"""Header, terminal summary, JSON report, environment selection and hard timeouts (S7)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from helpers_configs import WriteConfig, command_config


def test_header_names_agent_and_environment(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("a.json", command_config("a", ["true"]))
    write_config("b.json", command_config("b", ["true"]))
    result = pytester.runpytest(
        "-p", "maf_preflight", "--maf-preflight", "--maf-agent-id", "claude-1", "--maf-env", "ci"
    )
    result.stdout.fnmatch_lines(
        [
            "platform *",
            "maf-preflight: agent claude-1, environment ci, runtime sqlite (rootdir .maf, not a "
            "git repository), 2 checks from 2 config files",
            "rootdir: *",
        ]
    )


def test_terminal_summary_lists_each_check_with_status_and_duration(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    write_config("broken.json", command_config("broken", ["false"]))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    result.stdout.fnmatch_lines(
        [
            "*= maf-preflight =*",
            "FAILED           broken  * ms",
            "PASSED           fast    * ms",
            "gate CLOSED (exit code 10): broken (failed)",
        ]
    )
    assert result.ret == 10


def test_report_file_records_the_gate(pytester: pytest.Pytester, write_config: WriteConfig) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    write_config("broken.json", command_config("broken", ["false"]))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        "--maf-report=out/gate.json",
        "--maf-agent-id",
        "codex-2",
    )
    assert result.ret == 10
    report = json.loads((pytester.path / "out" / "gate.json").read_text())
    assert report["agent_id"] == "codex-2"
    assert report["environment"] == "development"
    assert report["exit_code"] == 10
    assert report["gate"]["open"] is False
    assert report["gate"]["blocking"] == ["broken (failed)"]
    statuses = {check["check_id"]: check["status"] for check in report["checks"]}
    assert statuses == {"broken": "failed", "fast": "passed"}


def test_report_file_for_an_open_gate_from_ini(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("fast.json", command_config("fast", ["true"]))
    pytester.makeini("[pytest]\nmaf_preflight = true\nmaf_report = gate.json\n")
    result = pytester.runpytest("-p", "maf_preflight")
    assert result.ret == 0
    report = json.loads((pytester.path / "gate.json").read_text())
    assert report["gate"] == {
        "ran": True,
        "open": True,
        "blocking": [],
        "warnings": [],
        "waived": [],
    }
    assert [c["status"] for c in report["checks"]] == ["passed"]


ENV_OVERRIDE: dict[str, Any] = {
    "environment_overrides": {"ci": {"test_definition": {"argv": ["false"]}}},
}


@pytest.mark.parametrize(
    ("args", "env", "ini"),
    [
        (("--maf-env", "ci"), {"MAF_ENV": "development"}, None),
        ((), {"MAF_ENV": "ci", "NODE_ENV": "development"}, None),
        ((), {"NODE_ENV": "ci"}, "development"),
        ((), {}, "ci"),
    ],
    ids=["cli", "MAF_ENV", "NODE_ENV", "ini"],
)
def test_environment_selects_the_override(
    pytester: pytest.Pytester,
    write_config: WriteConfig,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    ini: str | None,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    if ini is not None:
        pytester.makeini(f"[pytest]\nmaf_env = {ini}\n")
    write_config("cmd.json", command_config("cmd", ["true"], **ENV_OVERRIDE))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", *args)
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: agent anonymous, environment ci, runtime sqlite (rootdir .maf, not a "
            "git repository), 1 check from 1 config file",
            "FAILED           cmd  * ms",
        ]
    )
    assert result.ret == 10


def test_other_environments_keep_the_base_config(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("cmd.json", command_config("cmd", ["true"], **ENV_OVERRIDE))
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--maf-env", "staging")
    result.stdout.fnmatch_lines(["PASSED           cmd  * ms"])
    assert result.ret == 0


def test_hung_check_times_out_and_the_session_ends(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("hang.json", command_config("hang", ["sleep", "30"], timeout=1))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight", timeout=60)
    elapsed = time.monotonic() - started
    result.stdout.fnmatch_lines(
        [
            "preflight check 'hang' (command, critical) TIMEOUT after 1 attempt in *s",
            "TIMEOUT          hang  * ms",
            "gate CLOSED (exit code 10): hang (timeout)",
        ]
    )
    result.assert_outcomes(failed=1, skipped=1)
    assert result.ret == 10
    assert elapsed < 20, f"a 1 s timeout let the session run {elapsed:.1f} s"
