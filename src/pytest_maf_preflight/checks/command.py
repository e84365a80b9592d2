"""``command`` checks: run an argv (never through a shell) and check exit code and output."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from typing import Annotated

from pydantic import Field, field_validator

from ..config.models import compile_regex
from .base import CheckContext, CheckType, Definition, Observation

_SHOWN = 2000  # characters of output kept in a report


class CommandDefinition(Definition):
    argv: list[str] = Field(min_length=1)
    expected_exit_code: int | Annotated[list[int], Field(min_length=1)] = 0
    stdout_contains: str | None = None
    stdout_regex: str | None = Field(default=None, json_schema_extra={"format": "regex"})
    stderr_contains: str | None = None
    stderr_regex: str | None = Field(default=None, json_schema_extra={"format": "regex"})
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="Added to the environment")

    @field_validator("stdout_regex", "stderr_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else compile_regex(value)


class CommandTimeout(Exception):
    pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run(definition: CommandDefinition, ctx: CheckContext) -> Observation:
    codes = definition.expected_exit_code
    codes = [codes] if isinstance(codes, int) else codes
    expected = [f"exit code {' or '.join(map(str, codes))}"]
    env = {**ctx.environ, **definition.env}
    cwd = ctx.path(definition.cwd) if definition.cwd else ctx.rootdir
    if not cwd.is_dir():
        # Popen raises FileNotFoundError for a missing cwd too; say which one it was.
        return Observation(False, expected[0], f"working directory {str(cwd)!r} does not exist")
    try:
        # Own session, so a timeout kills the whole process group (a shell script's children too).
        proc = subprocess.Popen(definition.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd=cwd, env=env,
                                start_new_session=True)
    except FileNotFoundError:
        return Observation(False, expected[0], f"{definition.argv[0]!r} not found on PATH")
    except OSError as exc:
        return Observation(False, expected[0], f"cannot run {definition.argv[0]!r}: {exc.strerror}")
    try:
        out_b, err_b = proc.communicate(timeout=ctx.remaining(3600.0))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        # Bounded: a grandchild that left the group may still hold the pipes open.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5.0)
        raise CommandTimeout(f"{definition.argv[0]!r} still running at the deadline; killed"
                             ) from None
    finally:
        if proc.poll() is None:  # the attempt was abandoned or interrupted
            _kill_group(proc)
    out = out_b.decode("utf-8", "replace")
    err = err_b.decode("utf-8", "replace")
    problems = []
    if proc.returncode not in codes:
        problems.append(f"exit code {proc.returncode}")
    for stream, text, contains, regex in (("stdout", out, definition.stdout_contains,
                                           definition.stdout_regex),
                                          ("stderr", err, definition.stderr_contains,
                                           definition.stderr_regex)):
        if contains is not None:
            expected.append(f"{stream} containing {contains!r}")
            if contains not in text:
                problems.append(f"{stream} does not contain {contains!r}")
        if regex is not None:
            expected.append(f"{stream} matching {regex!r}")
            if not re.search(regex, text):
                problems.append(f"{stream} does not match {regex!r}")
    observed = "; ".join(problems) if problems else f"exit code {proc.returncode}"
    return Observation(
        passed=not problems, expected=", ".join(expected), observed=observed,
        details={"argv": definition.argv, "exit_code": proc.returncode,
                 "stdout": out[:_SHOWN], "stderr": err[:_SHOWN]},
    )


CHECK_TYPE = CheckType("command", CommandDefinition, run,
                       "Run an argv without a shell; expected exit code and output")
