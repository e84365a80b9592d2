"""The live line of a slow gate: which checks still run and for how long, rewritten in place on
a terminal after the first second, cleared at the end; nothing off a terminal or with ``-q``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from helpers_configs import WriteConfig, command_config
from pytest_maf_preflight.checks.base import CheckContext, CheckType, Definition, Observation
from pytest_maf_preflight.checks.runner import PlannedCheck
from pytest_maf_preflight.gate.check_run import CheckRun
from pytest_maf_preflight.gate.live_line import LiveLine, waiting_line
from pytest_maf_preflight.gate.messaging import GateMessages


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeWriter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def rewrite(self, text: str) -> None:
        self.calls.append(("rewrite", text))

    def clear(self) -> None:
        self.calls.append(("clear",))


def live(clock: FakeClock, writer: FakeWriter, width: int = 80) -> LiveLine:
    return LiveLine(writer, clock=clock, width=lambda: width)


def test_the_line_appears_after_a_second_updates_and_clears() -> None:
    clock, writer = FakeClock(), FakeWriter()
    line = live(clock, writer)
    began = clock.now
    clock.now += 0.9
    line.update({"api-health": began}, ())
    assert writer.calls == []  # a quick gate shows nothing
    clock.now += 0.3
    started = {"api-health": began, "db": clock.now}
    clock.now += 1.1
    line.update(started, ())
    line.update(started, ())  # the same text is not written again
    assert writer.calls == [("rewrite", "maf-preflight: waiting for api-health (2.3s), db (1.1s)")]
    clock.now += 0.1
    line.update(started, {"api-health"})
    line.update(started, {"api-health", "db"})  # nothing left to name: stays until closed
    line.close()
    line.close()
    assert writer.calls[1:] == [("rewrite", "maf-preflight: waiting for db (1.2s)"), ("clear",)]


def test_a_gate_done_within_a_second_writes_nothing() -> None:
    clock, writer = FakeClock(), FakeWriter()
    line = live(clock, writer)
    started = {"a": clock.now, "b": clock.now}
    clock.now += 0.5
    line.update(started, ())
    clock.now += 2
    line.update(started, {"a", "b"})
    line.close()
    assert writer.calls == []


def test_what_does_not_fit_the_width_is_counted() -> None:
    running = [(f"check-{i}", 10.0 - i) for i in range(8)]
    text = waiting_line(running, 60)
    assert text == "maf-preflight: waiting for check-0 (10.0s) and 7 more"
    assert len(waiting_line(running, 12)) < 12
    assert waiting_line(running, 1000).endswith("check-7 (3.0s)")


def test_the_join_ticks_on_the_waiting_thread_while_checks_run(tmp_path: Path) -> None:
    def slow(definition: Any, ctx: CheckContext) -> Observation:
        time.sleep(0.5)
        return Observation(True, "done", "done")

    check = PlannedCheck(
        check_id="slow",
        name="slow",
        severity="critical",
        check_type=CheckType("slow", Definition, slow),
        definition=None,
        timeout=10.0,
        retry_count=0,
        retry_delay=0.0,
    )
    ticks: list[tuple[str, list[str], list[str]]] = []

    def on_tick(started: Mapping[str, float], finished: Collection[str]) -> None:
        ticks.append((threading.current_thread().name, sorted(started), sorted(finished)))

    ctx = CheckContext(rootdir=tmp_path, environ={}, environment="test", agent_id="a")
    run = CheckRun([check], ctx, 5)
    run.start()
    [result], _ = run.join(
        GateMessages(None, agent_id="a", session_id="s"), on_tick=on_tick, tick=0.05
    )
    assert result.passed
    # Half a second at a tick every 0.05 s: the waiting thread woke to tick, not just at the end.
    assert len(ticks) >= 5
    assert {name for name, _, _ in ticks} == {threading.current_thread().name}
    assert ticks[0][2] == []  # nothing finished while it ran
    assert "slow" in ticks[-1][1]


# --- real runs ----------------------------------------------------------------------------------

SLOW = ("slow-api", ["sleep", "1.6"])


def in_a_terminal(cwd: Path, *args: str) -> str:
    """pytest in a pseudo-terminal of 100 columns; what it wrote there."""
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "LINES": "40"}
    with subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "maf_preflight", "--maf-preflight", *args],
        cwd=cwd,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    ) as child:
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the child (EIO on Linux)
                break
            if not chunk:
                break
            chunks.append(chunk)
        child.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_a_terminal_shows_the_line_and_clears_it(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("slow.json", command_config(*SLOW))
    write_config("fast.json", command_config("fast", ["true"]))
    pytester.makepyfile(test_app="def test_app():\n    pass\n")
    out = in_a_terminal(pytester.path, "-p", "no:cacheprovider")
    assert re.search(r"\rmaf-preflight: waiting for slow-api \(1\.\ds\) +\r", out), out
    assert "fast (" not in out  # done at once: never waited for
    last = out.rindex("maf-preflight: waiting for slow-api")
    # Cleared: the line blanked to the width, the cursor back at its start, then the tests.
    cleared = out.index("\r" + " " * 99 + "\r", last)
    assert out.index("test_app.py", cleared) > cleared
    assert "gate open" in out


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_quiet_in_a_terminal_shows_no_line(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("slow.json", command_config(*SLOW))
    out = in_a_terminal(pytester.path, "-q", "-p", "no:cacheprovider")
    assert "waiting for" not in out
    assert "maf-preflight: gate open" in out


def test_output_that_is_not_a_terminal_shows_no_line(
    pytester: pytest.Pytester, write_config: WriteConfig
) -> None:
    write_config("slow.json", command_config(*SLOW))
    result = pytester.runpytest_subprocess("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 0
    assert "waiting for" not in result.stdout.str()
    result.stdout.fnmatch_lines(["PASSED           slow-api  *"])
