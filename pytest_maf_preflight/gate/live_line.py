"""The live line of a slow gate: while the gate has waited longer than a second for its checks,
one terminal line, rewritten in place as pytest's own progress is, says which checks are still
running and for how long (``maf-preflight: waiting for api-health (2.3s), db (1.1s)``); it is
cleared once every check has its result.

Only on a terminal, and not with ``-q``: anywhere else (a CI log, a pipe) a rewritten line is
noise. The checks run on other threads, but every call here comes from the thread that waits
for them (``check_run.CheckRun.join``'s ``on_tick``), so only that thread writes to the
terminal.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import pytest

#: How long the gate waits before the line appears: quick gates show nothing.
LIVE_AFTER = 1.0
#: How often the waiting thread wakes to redraw the line.
LIVE_TICK = 0.1
PREFIX = "maf-preflight: waiting for "


class LineWriter(Protocol):
    """Where the line goes: a terminal line rewritten in place."""

    def rewrite(self, text: str) -> None: ...

    def clear(self) -> None: ...


class TerminalLine:
    """The terminal reporter's current line (``rewrite``, as pytest's collection progress)."""

    def __init__(self, terminalreporter: Any) -> None:
        self.tr = terminalreporter

    def rewrite(self, text: str) -> None:
        self.tr.rewrite(text, erase=True)
        self.tr.flush()

    def clear(self) -> None:
        # Blank the line and leave the cursor at its start: the next output (a test's line)
        # begins with a newline, as it would have without the live line.
        self.tr.rewrite("", erase=True)
        self.tr.rewrite("")
        self.tr.flush()


def waiting_line(running: Sequence[tuple[str, float]], width: int) -> str:
    """The line for checks ``(id, seconds running)``, longest first, shorter than ``width``:
    what does not fit is counted (``and 3 more``)."""
    ordered = sorted(running, key=lambda item: (-item[1], item[0]))
    parts = [f"{check_id} ({seconds:.1f}s)" for check_id, seconds in ordered]
    for shown in range(len(parts), 0, -1):
        rest = len(parts) - shown
        text = PREFIX + ", ".join(parts[:shown]) + (f" and {rest} more" if rest else "")
        if len(text) < width:
            return text
    return (PREFIX + f"{len(parts)} checks")[: max(0, width - 1)]


class LiveLine:
    """Which checks run since when, and the line about them once the gate waited long enough.

    ``clock`` is injectable so that tests step time by hand.
    """

    def __init__(
        self,
        writer: LineWriter,
        *,
        clock: Callable[[], float] = time.monotonic,
        after: float = LIVE_AFTER,
        width: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.after = after
        self.width = width
        self.began = clock()
        #: Check id -> when its first attempt started, until its result is known.
        self.running: dict[str, float] = {}
        #: The text on the terminal now ("" when nothing is).
        self.shown = ""

    def update(self, started: Mapping[str, float], finished: Collection[str]) -> None:
        """Catch up with a run (when each check began, on ``clock``; which have a result),
        then redraw."""
        self.running = {i: at for i, at in started.items() if i not in finished}
        self.tick()

    def tick(self) -> None:
        now = self.clock()
        if now - self.began < self.after or not self.running:
            return
        text = waiting_line(
            [(check_id, now - at) for check_id, at in self.running.items()], self.width()
        )
        if text != self.shown:
            self.writer.rewrite(text)
            self.shown = text

    def close(self) -> None:
        if self.shown:
            self.writer.clear()
            self.shown = ""


def live_line_for(config: pytest.Config) -> LiveLine | None:
    """A live line on this session's terminal, or None: output that is not a terminal, ``-q``,
    or no terminal reporter."""
    if config.get_verbosity() < 0:
        return None
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None or not bool(terminal.isatty):
        return None
    return LiveLine(TerminalLine(terminal))
