"""Run an argv (never through a shell) with a deadline, reading a bounded amount of its output.

The child is the leader of its own process group (see ``groups``). The outcome is decided by
the child itself: once it has exited, output still arriving is read for a short grace period
(a grandchild that inherited stdout may hold the pipes open forever), then the whole group is
killed and the pipes closed. So a finished command is never reported as timed out, and nothing
it started is left running. At the deadline a command that has not exited is killed with its
group and ``ProcessTimeout`` is raised.

Of each stream the first and the last ``keep`` bytes are kept and the rest only counted, so
memory stays flat however much a command prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from . import groups

#: Bytes kept at each end of a stream by default (so at most 512 KiB a stream).
KEEP = 256 * 1024
#: How long output is still read after the command exited, when something else holds its
#: pipes open.
GRACE = 0.5
#: How often a command that holds its pipes open (or has closed them) is checked for exit.
_POLL = 0.05
#: The first wait for an exit once the pipes are closed; it doubles up to ``_POLL``.
_FIRST_TICK = 0.0005
#: After SIGKILL, how long to wait for the leader to be reaped before giving up on it.
_REAP_SECONDS = 5.0
_CHUNK = 64 * 1024
_STDIN, _EXIT = object(), object()  # what a selector key stands for besides output
_PIPE_BUF = 512  # a write of at most this much to a writable pipe never blocks


@dataclasses.dataclass(frozen=True)
class Output:
    """What was kept of one stream: its first and last bytes, and how much there was."""

    head: bytes = b""
    tail: bytes = b""
    total: int = 0

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        """Head and tail decoded (invalid bytes replaced); when bytes were dropped between
        them, a line ``[... N bytes not kept ...]`` stands in their place."""
        head = self.head.decode("utf-8", "replace")
        if not self.dropped:
            return head + self.tail.decode("utf-8", "replace")
        return f"{head}\n[... {self.dropped} bytes not kept ...]\n" + self.tail.decode(
            "utf-8", "replace"
        )


class _Capture:
    def __init__(self, keep: int | None) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.keep is None:
            self.head += chunk
            return
        room = self.keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.keep:
                del self.tail[: len(self.tail) - self.keep]  # amortised O(1) at the front

    def output(self) -> Output:
        return Output(bytes(self.head), bytes(self.tail), self.total)


@dataclasses.dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: Output
    stderr: Output


class ProcessTimeout(Exception):
    """The command had not exited at the deadline; it was killed with its group."""

    def __init__(self, stdout: Output, stderr: Output) -> None:
        super().__init__("still running at the deadline")
        self.stdout = stdout
        self.stderr = stderr


def run_process(
    argv: Sequence[str],
    *,
    deadline: float,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    keep: int | None = KEEP,
    grace: float = GRACE,
    kill_on_exit: bool = True,
) -> Finished:
    """Run ``argv`` until it exits or ``deadline`` (``time.monotonic()``) passes.

    ``stdin`` is written to the command (None: it reads /dev/null); ``keep`` bytes are kept at
    each end of stdout and stderr (None: everything). With ``kill_on_exit`` False, what the
    command leaves running in its group after it exited is left alone (only its pipes are
    closed); at the deadline or on an error the group is killed all the same. Raises
    ``OSError`` (``FileNotFoundError`` among them) when the command cannot start,
    ``ProcessTimeout`` at the deadline.
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=None if env is None else dict(env),
        start_new_session=True,
    )
    groups.track(proc.pid)
    captures = (_Capture(keep), _Capture(keep))
    exited = False
    try:
        exited = _pump(proc, stdin, captures, deadline, grace)
    finally:
        # At the deadline or on an error in this thread the group goes; after an exit too
        # (unless asked not to): it holds whatever the command started and left behind.
        if kill_on_exit or not exited:
            groups.kill(proc.pid)
        groups.untrack(proc.pid)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_REAP_SECONDS)
    stdout, stderr = (c.output() for c in captures)
    if not exited or proc.returncode is None:
        raise ProcessTimeout(stdout, stderr)
    return Finished(proc.returncode, stdout, stderr)


def _pump(
    proc: subprocess.Popen[bytes],
    stdin: bytes | None,
    captures: tuple[_Capture, _Capture],
    deadline: float,
    grace: float,
) -> bool:
    """Feed stdin and read output until the command exited and its pipes closed, the grace
    after its exit ran out, or the deadline passed; True when the command exited."""
    assert proc.stdout is not None  # both are pipes: run_process asked for them
    assert proc.stderr is not None
    with selectors.DefaultSelector() as selector, _exit_fd(proc.pid) as exit_fd:
        selector.register(proc.stdout, selectors.EVENT_READ, captures[0])
        selector.register(proc.stderr, selectors.EVENT_READ, captures[1])
        if exit_fd is not None:
            selector.register(exit_fd, selectors.EVENT_READ, _EXIT)
        pending = memoryview(stdin or b"")
        if proc.stdin is not None:
            if pending:
                selector.register(proc.stdin, selectors.EVENT_WRITE, _STDIN)
            else:
                proc.stdin.close()
        end = deadline
        exited = False
        tick = _FIRST_TICK
        while True:
            if not exited and _has_exited(proc):
                exited = True
                end = min(deadline, time.monotonic() + grace)
                if exit_fd is not None and exit_fd in selector.get_map():
                    selector.unregister(exit_fd)  # it stays readable from now on
            now = time.monotonic()
            reading = any(isinstance(key.data, _Capture) for key in selector.get_map().values())
            if now >= end or (exited and not reading):
                return exited
            if exited or exit_fd is not None:  # nothing to look for but output and the end
                wait = end - now
            elif reading:
                wait = min(end - now, _POLL)
            else:  # pipes closed: the exit is usually a moment away, so look again soon
                wait = min(end - now, tick)
                tick = min(2 * tick, _POLL)
            for key, _ in selector.select(wait):
                if key.data is _STDIN:
                    pending = _write_some(selector, proc.stdin, pending)
                elif isinstance(key.data, _Capture):
                    chunk = os.read(key.fd, _CHUNK)
                    if chunk:
                        key.data.add(chunk)
                    else:
                        selector.unregister(key.fileobj)
                # _EXIT: the exit is confirmed (and the fd let go) at the top of the loop


@contextlib.contextmanager
def _exit_fd(pid: int) -> Iterator[int | None]:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), so an exit is seen
    the moment it happens; None where there is none, and the exit is polled for."""
    pidfd_open = getattr(os, "pidfd_open", None)
    fd = None
    if pidfd_open is not None:
        with contextlib.suppress(OSError):  # an older kernel, or seccomp refusing it
            fd = pidfd_open(pid)
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _write_some(
    selector: selectors.BaseSelector, pipe: IO[bytes] | None, pending: memoryview
) -> memoryview:
    assert pipe is not None  # registered for writing only when it is a pipe
    try:
        written = os.write(pipe.fileno(), pending[:_PIPE_BUF])
    except BrokenPipeError:  # the command does not read its input: not an error
        written = len(pending)
    pending = pending[written:]
    if not pending:
        selector.unregister(pipe)
        with contextlib.suppress(OSError):
            pipe.close()  # end of input
    return pending


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the command has exited, without reaping it where the platform allows: an
    unreaped leader keeps its group id from being reused until the group is killed."""
    waitid = getattr(os, "waitid", None)
    if waitid is None:  # pragma: no cover - platforms without waitid
        return proc.poll() is not None
    try:
        return waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already (someone called poll or wait)
        return True
