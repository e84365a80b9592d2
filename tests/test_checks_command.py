"""``command`` checks run real subprocesses, never through a shell."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pytest_maf_preflight.checks import command
from pytest_maf_preflight.checks.base import CheckContext, CheckStatus, Observation
from pytest_maf_preflight.checks.command import CommandDefinition
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks

PY = sys.executable


def _ctx(root: Path, **extra_env: str) -> CheckContext:
    return CheckContext(
        rootdir=root, environ={**os.environ, **extra_env}, environment="test", agent_id="agent-1"
    )


def _run(root: Path, **definition: Any) -> Observation:
    return command.run(CommandDefinition.model_validate(definition), _ctx(root))


def _py(code: str) -> list[str]:
    return [PY, "-c", code]


def test_expected_exit_code_zero_passes(tmp_path: Path) -> None:
    obs = _run(tmp_path, argv=_py("print('ok')"))
    assert obs.passed
    assert obs.observed == "exit code 0"
    assert obs.details["exit_code"] == 0
    assert obs.details["stdout"].strip() == "ok"


def test_unexpected_exit_code_fails(tmp_path: Path) -> None:
    obs = _run(tmp_path, argv=_py("raise SystemExit(3)"))
    assert not obs.passed
    assert obs.observed == "exit code 3"
    assert obs.expected == "exit code 0"


def test_non_zero_exit_code_can_be_expected(tmp_path: Path) -> None:
    assert _run(tmp_path, argv=_py("raise SystemExit(3)"), expected_exit_code=3).passed


def test_list_of_exit_codes(tmp_path: Path) -> None:
    obs = _run(tmp_path, argv=_py("raise SystemExit(2)"), expected_exit_code=[0, 2])
    assert obs.passed
    assert obs.expected == "exit code 0 or 2"
    obs = _run(tmp_path, argv=_py("raise SystemExit(1)"), expected_exit_code=[0, 2])
    assert not obs.passed
    assert obs.observed == "exit code 1"


def test_stdout_and_stderr_contains(tmp_path: Path) -> None:
    code = "import sys; print('version 1.2.3'); print('warning: old', file=sys.stderr)"
    assert _run(
        tmp_path, argv=_py(code), stdout_contains="version 1.2", stderr_contains="warning: old"
    ).passed
    obs = _run(
        tmp_path, argv=_py(code), stdout_contains="version 9", stderr_contains="version 1.2"
    )  # right text, wrong stream
    assert not obs.passed
    assert obs.observed == (
        "stdout does not contain 'version 9'; stderr does not contain 'version 1.2'"
    )


def test_stdout_and_stderr_regex(tmp_path: Path) -> None:
    code = "import sys; print('version 1.2.3'); print('E42 failure', file=sys.stderr)"
    assert _run(
        tmp_path, argv=_py(code), stdout_regex=r"version \d+\.\d+", stderr_regex=r"^E\d+"
    ).passed
    obs = _run(tmp_path, argv=_py(code), stdout_regex=r"^\d", stderr_regex=r"W\d+")
    assert not obs.passed
    assert "stdout does not match '^\\\\d'" in obs.observed
    assert "stderr does not match 'W\\\\d+'" in obs.observed


def test_exit_code_and_output_problems_together(tmp_path: Path) -> None:
    obs = _run(tmp_path, argv=_py("print('x'); raise SystemExit(1)"), stdout_contains="y")
    assert obs.observed == "exit code 1; stdout does not contain 'y'"


def test_invalid_regex_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError, match="invalid regular expression"):
        CommandDefinition.model_validate({"argv": ["true"], "stdout_regex": "("})


def test_empty_argv_is_rejected_at_load() -> None:
    with pytest.raises(ValidationError):
        CommandDefinition.model_validate({"argv": []})


def test_argv_not_found(tmp_path: Path) -> None:
    obs = _run(tmp_path, argv=["maf-no-such-program-xyz", "--version"])
    assert not obs.passed
    assert obs.observed == "'maf-no-such-program-xyz' not found on PATH"


def test_argv_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    obs = _run(tmp_path, argv=[str(script)])
    assert not obs.passed
    assert obs.observed.startswith(f"cannot run {str(script)!r}: ")


def test_missing_cwd_is_named_as_such(tmp_path: Path) -> None:
    obs = _run(tmp_path, argv=_py("pass"), cwd="no/such/dir")
    assert not obs.passed
    assert obs.observed == f"working directory {str(tmp_path / 'no/such/dir')!r} does not exist"


def test_cwd_defaults_to_rootdir_and_relative_cwd_is_under_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    code = "import os; print(os.getcwd())"
    obs = _run(tmp_path, argv=_py(code))
    assert Path(obs.details["stdout"].strip()) == tmp_path.resolve()
    obs = _run(tmp_path, argv=_py(code), cwd="sub")
    assert Path(obs.details["stdout"].strip()) == (tmp_path / "sub").resolve()


def test_env_is_the_context_environment_plus_definition_env(tmp_path: Path) -> None:
    code = "import os; print(os.environ.get('FROM_CTX'), os.environ.get('FROM_DEF'))"
    definition = CommandDefinition.model_validate(
        {"argv": _py(code), "env": {"FROM_DEF": "def-value"}}
    )
    obs = command.run(definition, _ctx(tmp_path, FROM_CTX="ctx-value"))
    assert obs.details["stdout"].strip() == "ctx-value def-value"


def test_no_shell_metacharacters_are_printed_literally(tmp_path: Path) -> None:
    echo = shutil.which("echo")
    assert echo is not None
    victim = tmp_path / "x"
    victim.write_text("still here")
    obs = _run(tmp_path, argv=[echo, "$HOME; rm -rf x"], stdout_contains="$HOME; rm -rf x")
    assert obs.passed, obs.observed
    assert obs.details["stdout"] == "$HOME; rm -rf x\n"
    assert victim.read_text() == "still here"


def test_output_is_kept_but_bounded(tmp_path: Path) -> None:
    obs = _run(tmp_path, argv=_py("print('a' * 100_000)"))
    assert obs.passed
    assert obs.details["stdout"] == "a" * 2000


def test_undecodable_output_does_not_crash(tmp_path: Path) -> None:
    obs = _run(
        tmp_path,
        argv=_py("import sys; sys.stdout.buffer.write(b'\\xff\\xfe ok')"),
        stdout_contains="ok",
    )
    assert obs.passed


def _planned(
    definition: dict[str, Any], check_id: str = "cmd", timeout: float = 10.0
) -> PlannedCheck:
    return PlannedCheck(
        check_id=check_id,
        name=check_id,
        severity="critical",
        check_type=command.CHECK_TYPE,
        definition=CommandDefinition.model_validate(definition),
        timeout=timeout,
        retry_count=0,
        retry_delay=0.0,
    )


def test_printed_secret_env_value_is_redacted_through_the_runner(tmp_path: Path) -> None:
    secret = "sup3r-s3cret-t0ken"
    code = (
        "import os, sys; t = os.environ['SERVICE_API_TOKEN']; print('token is', t); "
        "print('stderr', t, file=sys.stderr); sys.exit(1)"
    )
    [result] = run_checks(
        [_planned({"argv": _py(code), "stdout_contains": secret})],
        _ctx(tmp_path, SERVICE_API_TOKEN=secret),
    )
    assert result.status is CheckStatus.FAILED
    everything = json.dumps(result.to_dict())
    assert secret not in everything
    assert result.details["stdout"] == "token is ***\n"
    assert result.details["stderr"] == "stderr ***\n"
    assert "***" in result.expected  # the expectation quoted the secret too


def test_secret_given_in_definition_env_is_redacted_through_the_runner(tmp_path: Path) -> None:
    secret = "def1n1tion-secret"
    code = "import os; print(os.environ['DB_PASSWORD'])"
    [result] = run_checks(
        [_planned({"argv": _py(code), "env": {"DB_PASSWORD": secret}})], _ctx(tmp_path)
    )
    assert result.status is CheckStatus.PASSED
    assert result.details["stdout"] == "***\n"
    assert secret not in json.dumps(result.to_dict())
