"""``command`` checks: run an argv (never through a shell) and check exit code and output."""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from .. import matching
from ..config.models import compile_regex
from ..processes.run import Finished, ProcessTimeout, run_process
from .base import CheckContext, CheckTimeout, CheckType, Definition, Observation

_SHOWN = 2000  # characters of output kept in a report


def _os_text(value: str) -> str:
    """``value`` if the operating system can take it as an argument, a path or an environment
    entry; such values would otherwise fail every run, at the moment the command starts."""
    if "\0" in value:
        raise ValueError(
            "contains a NUL character, which no command line, path or environment can carry"
        )
    surrogate = next((c for c in value if "\ud800" <= c <= "\udfff"), None)
    if surrogate is not None:
        raise ValueError(
            f"contains a lone surrogate (U+{ord(surrogate):04X}), "
            "which is not text; write the character itself"
        )
    return value


OsText = Annotated[str, AfterValidator(_os_text)]


class CommandDefinition(Definition):
    argv: list[OsText] = Field(min_length=1)
    expected_exit_code: int | Annotated[list[int], Field(min_length=1)] = 0
    stdout_contains: str | None = None
    stdout_regex: str | None = Field(default=None, json_schema_extra={"format": "regex"})
    stderr_contains: str | None = None
    stderr_regex: str | None = Field(default=None, json_schema_extra={"format": "regex"})
    cwd: OsText | None = None
    env: dict[OsText, OsText] = Field(default_factory=dict, description="Added to the environment")

    @field_validator("stdout_regex", "stderr_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else compile_regex(value)


class CommandTimeout(CheckTimeout):
    pass


def run(definition: CommandDefinition, ctx: CheckContext) -> Observation:
    codes = definition.expected_exit_code
    codes = [codes] if isinstance(codes, int) else codes
    expected = [f"exit code {' or '.join(map(str, codes))}"]
    env = {**ctx.environ, **definition.env}
    cwd = ctx.path(definition.cwd) if definition.cwd else ctx.rootdir
    if not cwd.is_dir():
        # Popen raises FileNotFoundError for a missing cwd too; say which one it was.
        return Observation(False, expected[0], f"working directory {str(cwd)!r} does not exist")
    # Decided by the command's own exit: what it left running in its group is killed after
    # a short grace for output (see processes.run), and only a command still running at the
    # deadline is a timeout.
    try:
        finished = run_process(definition.argv, deadline=_deadline(ctx), cwd=cwd, env=env)
    except FileNotFoundError:
        return Observation(False, expected[0], f"{definition.argv[0]!r} not found on PATH")
    except ProcessTimeout:
        raise CommandTimeout(
            f"{definition.argv[0]!r} still running at the deadline; killed"
        ) from None
    except OSError as exc:
        return Observation(False, expected[0], f"cannot run {definition.argv[0]!r}: {exc.strerror}")
    # Matched against the kept head and tail of each stream, with a marker line in between
    # when bytes were dropped: the memory a check uses does not grow with what it prints.
    out = finished.stdout.text()
    err = finished.stderr.text()
    problems = []
    if finished.returncode not in codes:
        problems.append(f"exit code {finished.returncode}")
    for stream, text, contains, regex in (
        ("stdout", out, definition.stdout_contains, definition.stdout_regex),
        ("stderr", err, definition.stderr_contains, definition.stderr_regex),
    ):
        if contains is not None:
            expected.append(f"{stream} containing {contains!r}")
            if contains not in text:
                problems.append(f"{stream} does not contain {contains!r}")
        if regex is not None:
            expected.append(f"{stream} matching {regex!r}")
            if not matching.search(regex, text, ctx.remaining(3600.0)):
                problems.append(f"{stream} does not match {regex!r}")
    observed = "; ".join(problems) if problems else f"exit code {finished.returncode}"
    return Observation(
        passed=not problems,
        expected=", ".join(expected),
        observed=observed,
        details={
            "argv": definition.argv,
            "exit_code": finished.returncode,
            "stdout": out[:_SHOWN],
            "stderr": err[:_SHOWN],
            **_sizes(finished),
        },
    )


def _deadline(ctx: CheckContext) -> float:
    return time.monotonic() + ctx.remaining(3600.0)


def _sizes(finished: Finished) -> dict[str, int]:
    """How much each stream printed, where more than was kept."""
    return {
        f"{name}_bytes": output.total
        for name, output in (("stdout", finished.stdout), ("stderr", finished.stderr))
        if output.dropped
    }


CHECK_TYPE = CheckType(
    "command",
    CommandDefinition,
    run,
    "Run an argv without a shell; expected exit code and output",
    waits=True,
)
