"""The process groups our children run in, so that nothing outlives the session.

Every child runs as the leader of a new session (``start_new_session=True``), so its pid is
also its process group id and one ``killpg`` reaches whatever it started. A group is tracked
from its start until its leader is reaped: while tracked, the leader is at most a zombie, so the
id cannot have been reused by an unrelated process.

``kill_all`` runs when a gate run is interrupted (Ctrl-C, SIGTERM), when pytest unconfigures,
and at interpreter exit: attempts abandoned at their deadline run on daemon threads that never
get to clean up after themselves.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_lock = threading.Lock()
_live: set[int] = set()
_stopped = False


def track(pgid: int) -> None:
    """Track a new group; once the session is stopping, kill it at once: an attempt still
    queued when pytest was interrupted must not start a command that outlives it."""
    with _lock:
        _live.add(pgid)
        stopped = _stopped
    if stopped:
        kill(pgid)


def untrack(pgid: int) -> None:
    """Forget ``pgid``; call it before reaping the group's leader."""
    with _lock:
        _live.discard(pgid)


def kill(pgid: int) -> None:
    """SIGKILL the group; one that is gone already, or not ours to signal, is left alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def live() -> frozenset[int]:
    with _lock:
        return frozenset(_live)


def kill_all(*, stop: bool = False) -> int:
    """SIGKILL every tracked group; returns how many there were. Their owners still reap.

    With ``stop``, groups tracked from now on are killed too, until ``resume``.
    """
    global _stopped
    # Bounded: at interpreter exit a daemon thread frozen while holding the lock must not
    # hang the exit; the set is then read without it (its owners are frozen too).
    acquired = _lock.acquire(timeout=1.0)
    try:
        _stopped = _stopped or stop
        groups = list(_live)
        for pgid in groups:
            kill(pgid)
    finally:
        if acquired:
            _lock.release()
    return len(groups)


def resume() -> None:
    """Let new groups run again (a new gate run, or the next session in this process)."""
    global _stopped
    with _lock:
        _stopped = False


atexit.register(kill_all, stop=True)


@contextlib.contextmanager
def killed_when_interrupted() -> Iterator[None]:
    """Kill every tracked group if the block is left by an exception (Ctrl-C included) or
    the process gets SIGTERM while in it.

    pytest installs no SIGTERM handler, so SIGTERM ends it at once and no ``finally`` runs.
    While the block runs (in the main thread), a handler kills the groups first and then ends
    the process as the previous handler would have: the default disposition is restored and the
    signal raised again, so pytest still dies of SIGTERM; a Python handler installed by someone
    else is called instead. An ignored SIGTERM stays ignored.
    """
    previous = signal.getsignal(signal.SIGTERM)
    install = threading.current_thread() is threading.main_thread() and previous not in (
        signal.SIG_IGN,
        None,
    )

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        kill_all(stop=True)
        signal.signal(signal.SIGTERM, previous)
        if callable(previous):
            previous(signum, frame)
        else:
            signal.raise_signal(signal.SIGTERM)

    resume()
    if install:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except BaseException:
        kill_all(stop=True)
        raise
    finally:
        if install and signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)
