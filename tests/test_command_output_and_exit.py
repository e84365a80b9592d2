"""``command`` checks hold a bounded amount of output whatever the command prints, and are
decided by the command's own exit, not by whatever it left holding its pipes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from helpers_processes import gone, read_pid
from pytest_maf_preflight.checks import command
from pytest_maf_preflight.checks.base import CheckContext, CheckStatus
from pytest_maf_preflight.checks.command import CommandDefinition
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks
from pytest_maf_preflight.processes import groups
from pytest_maf_preflight.processes.run import KEEP, Output, run_process

PY = sys.executable
MIB = 1024 * 1024


def _ctx(root: Path) -> CheckContext:
    return CheckContext(
        rootdir=root, environ=dict(os.environ), environment="test", agent_id="agent-1"
    )


def _planned(definition: dict[str, Any], timeout: float) -> PlannedCheck:
    return PlannedCheck(
        check_id="cmd",
        name="cmd",
        severity="critical",
        check_type=command.CHECK_TYPE,
        definition=CommandDefinition.model_validate(definition),
        timeout=timeout,
        retry_count=0,
        retry_delay=0.0,
    )


# --- bounded output -------------------------------------------------------------------------

#: Runs one command check in a fresh interpreter and prints what it saw, with how far that
#: process's peak memory grew during the check (ru_maxrss is in KiB on Linux).
_MEASURE = textwrap.dedent("""\
    import json, os, resource, sys
    from pathlib import Path
    from pytest_maf_preflight.checks import command
    from pytest_maf_preflight.checks.base import CheckContext
    from pytest_maf_preflight.checks.command import CommandDefinition

    ctx = CheckContext(rootdir=Path.cwd(), environ=dict(os.environ), environment="test",
                       agent_id="agent-1")
    definition = CommandDefinition.model_validate(json.loads(sys.argv[1]))
    command.run(CommandDefinition.model_validate({"argv": ["true"]}), ctx)  # warm up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    obs = command.run(definition, ctx)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"passed": obs.passed, "observed": obs.observed,
                      "details": dict(obs.details), "grown_kib": grown}))
    """)

#: Prints a head mark, 300 MiB of filler with a mark in the middle, and a tail mark.
_FLOOD = textwrap.dedent("""\
    import sys
    out = sys.stdout.buffer
    block = b"x" * (1024 * 1024)
    out.write(b"HEAD-MARK\\n")
    for i in range(300):
        out.write(b"MIDDLE-MARK\\n" if i == 150 else block)
    out.write(b"\\nTAIL-MARK\\n")
    """)


def _measure(tmp_path: Path, definition: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [PY, "-c", _MEASURE, json.dumps(definition)],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_flood_of_output_keeps_memory_flat_and_counts_every_byte(tmp_path: Path) -> None:
    seen = _measure(tmp_path, {"argv": [PY, "-c", _FLOOD], "stdout_contains": "TAIL-MARK"})
    assert seen["passed"], seen["observed"]
    total = len(b"HEAD-MARK\n") + 299 * MIB + len(b"MIDDLE-MARK\n") + len(b"\nTAIL-MARK\n")
    assert seen["details"]["stdout_bytes"] == total
    assert "stderr_bytes" not in seen["details"]  # nothing dropped there
    assert seen["details"]["stdout"].startswith("HEAD-MARK\nxxx")
    assert len(seen["details"]["stdout"]) == 2000  # what a report shows stays small
    # Holding the output would take 300 MiB at least (3.2 GB for 1 GiB before the fix).
    assert seen["grown_kib"] < 64 * 1024, f"peak memory grew by {seen['grown_kib']} KiB"


def test_output_is_matched_against_head_and_tail_not_the_dropped_middle(tmp_path: Path) -> None:
    seen = _measure(tmp_path, {"argv": [PY, "-c", _FLOOD], "stdout_contains": "MIDDLE-MARK"})
    assert not seen["passed"]
    assert seen["observed"] == "stdout does not contain 'MIDDLE-MARK'"


def test_the_marker_says_how_many_bytes_were_dropped(tmp_path: Path) -> None:
    # 3 MiB: what was not kept is named where it was, so a pattern cannot match across it
    # without saying so.
    code = "import sys; sys.stdout.write('a' * (3 * 1024 * 1024) + 'END')"
    done = run_process([PY, "-c", code], deadline=time.monotonic() + 30)
    out = done.stdout
    assert (out.total, len(out.head), len(out.tail)) == (3 * MIB + 3, KEEP, KEEP)
    assert out.tail.endswith(b"aEND")
    dropped = 3 * MIB + 3 - 2 * KEEP
    assert out.dropped == dropped
    assert out.text() == f"{'a' * KEEP}\n[... {dropped} bytes not kept ...]\n{'a' * (KEEP - 3)}END"


def test_output_that_fits_is_kept_whole_without_a_marker() -> None:
    assert Output(b"abc", b"def", 6).text() == "abcdef"


def test_both_streams_are_read_at_once(tmp_path: Path) -> None:
    # Each stream alone overflows a pipe buffer: reading one after the other would deadlock
    # until the deadline.
    code = (
        "import sys\nfor _ in range(64):\n"
        "    sys.stdout.write('o' * 65536); sys.stderr.write('e' * 65536)"
    )
    done = run_process([PY, "-c", code], deadline=time.monotonic() + 30)
    assert (done.returncode, done.stdout.total, done.stderr.total) == (0, 4 * MIB, 4 * MIB)


# --- decided on the command's exit ----------------------------------------------------------


def _spawner(pidfile: Path, *, keep_stdout: bool) -> str:
    """A command that starts a grandchild sleeping 30 s, records its pid, and exits 0."""
    stdout = "None" if keep_stdout else "subprocess.DEVNULL"
    return textwrap.dedent(f"""\
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                                 stdout={stdout}, stderr={stdout})
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("started", child.pid)
        """)


def test_a_command_that_exited_passes_though_a_grandchild_holds_its_stdout(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    check = _planned(
        {"argv": [PY, "-c", _spawner(pidfile, keep_stdout=True)], "stdout_contains": "started"},
        timeout=10.0,
    )
    start = time.monotonic()
    [result] = run_checks([check], _ctx(tmp_path))
    assert result.status is CheckStatus.PASSED, result.observed or result.message
    assert time.monotonic() - start < 8  # decided on the exit, not at the 10 s deadline
    # What the command left in its process group is killed once the grace has passed.
    assert gone(read_pid(pidfile)), "the grandchild outlived its check"


def test_what_a_command_left_behind_is_killed_even_when_it_holds_no_pipe(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    check = _planned({"argv": [PY, "-c", _spawner(pidfile, keep_stdout=False)]}, timeout=10.0)
    [result] = run_checks([check], _ctx(tmp_path))
    assert result.status is CheckStatus.PASSED
    assert gone(read_pid(pidfile)), "the grandchild outlived its check"
    assert not groups.live()  # nothing is tracked once a check ended


def test_a_command_still_running_at_the_deadline_is_a_timeout(tmp_path: Path) -> None:
    check = _planned({"argv": [PY, "-c", "import time; time.sleep(30)"]}, timeout=0.5)
    start = time.monotonic()
    [result] = run_checks([check], _ctx(tmp_path))
    assert result.status is CheckStatus.TIMEOUT
    assert time.monotonic() - start < 10


def test_leaving_survivors_alone_keeps_a_background_job_running(tmp_path: Path) -> None:
    # What the escalation ``command`` channel asks for: a notifier may hand its message to a
    # job of its own, which must survive it (and not keep the delivery waiting).
    pidfile = tmp_path / "grandchild.pid"
    done = run_process(
        [PY, "-c", _spawner(pidfile, keep_stdout=True)],
        deadline=time.monotonic() + 10,
        kill_on_exit=False,
    )
    pid = read_pid(pidfile)
    try:
        assert done.returncode == 0
        assert not gone(pid, within=0.0)
    finally:
        os.kill(pid, 9)


def test_exits_are_seen_where_the_platform_has_no_pidfd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linux before 5.3, macOS: the exit is polled for instead of waited on.
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    done = run_process([PY, "-c", "print('quick')"], deadline=time.monotonic() + 10)
    assert (done.returncode, done.stdout.head) == (0, b"quick\n")
    pidfile = tmp_path / "grandchild.pid"
    start = time.monotonic()
    done = run_process(
        [PY, "-c", _spawner(pidfile, keep_stdout=True)], deadline=time.monotonic() + 10
    )
    assert done.returncode == 0
    assert time.monotonic() - start < 8
    assert gone(read_pid(pidfile))
