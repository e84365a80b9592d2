"""A pytest run stopped (Ctrl-C, SIGTERM) while command checks run leaves none of them behind.

Real pytest processes, real signals: each check's command writes its pid and sleeps a minute,
in a process group of its own that a terminal's Ctrl-C would never reach.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers_processes import gone

SLEEPER = (
    "import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); "
    "os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(60)"
)


def _wait_for(path: Path, proc: subprocess.Popen[bytes], within: float = 30.0) -> int:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if path.exists():
            return int(path.read_text())
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"pytest ended first ({proc.returncode}): {out!r} {err!r}")
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


Started = Callable[[], tuple[subprocess.Popen[bytes], list[int]]]


@pytest.fixture
def started(
    pytester: pytest.Pytester, write_config: Callable[[str, str], Any]
) -> Iterator[Started]:
    """Start ``pytest --maf-preflight`` on a project with two sleeping command checks; return
    the pytest process and the checks' pids once both run."""
    pidfiles = [pytester.path / f"check-{n}.pid" for n in (1, 2)]
    for n, pidfile in enumerate(pidfiles, 1):
        write_config(
            f"sleep-{n}.json",
            json.dumps(
                {
                    "id": f"sleeps-{n}",
                    "name": "Sleeps a minute",
                    "config_type": "smoke_test",
                    "config": {
                        "test_type": "command",
                        "timeout_seconds": 120,
                        "test_definition": {"argv": [sys.executable, "-c", SLEEPER, str(pidfile)]},
                    },
                }
            ),
        )
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    procs: list[subprocess.Popen[bytes]] = []
    pids: list[int] = []

    def start() -> tuple[subprocess.Popen[bytes], list[int]]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "maf_preflight",
                "--maf-preflight",
                "-p",
                "no:cacheprovider",
            ],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        pids.extend(_wait_for(path, proc) for path in pidfiles)
        return proc, pids

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    for pid in pids:  # never leave a sleeper behind, whatever the test found
        if not gone(pid, within=0.0):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_during_command_checks_kills_them(started: Started) -> None:
    proc, pids = started()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out.decode()
    for pid in pids:
        assert gone(pid, within=5.0), f"check process {pid} outlived the interrupted session"


def test_sigterm_during_command_checks_kills_them(started: Started) -> None:
    proc, pids = started()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    # pytest still ends as SIGTERM ends it (the default disposition, restored and re-raised)
    assert proc.returncode == -signal.SIGTERM
    for pid in pids:
        assert gone(pid, within=5.0), f"check process {pid} outlived the terminated session"


def test_a_command_started_after_the_interrupt_is_killed_at_once() -> None:
    # An attempt still queued when pytest was interrupted runs on a daemon thread: the command
    # it starts must not outlive the session either.
    from pytest_maf_preflight.processes import groups
    from pytest_maf_preflight.processes.run import run_process

    groups.kill_all(stop=True)
    try:
        start = time.monotonic()
        done = run_process(
            [sys.executable, "-c", "import time; time.sleep(60)"], deadline=time.monotonic() + 30
        )
    finally:
        groups.resume()
    assert done.returncode == -signal.SIGKILL
    assert time.monotonic() - start < 20
    done = run_process([sys.executable, "-c", "pass"], deadline=time.monotonic() + 30)
    assert done.returncode == 0  # resumed: commands run again
