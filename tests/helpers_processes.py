"""Watching processes the tests started, without being their parent."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _gone_now(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    except OSError:  # a /proc entry we may not read: ask the kernel instead
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")


def gone(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (a zombie nobody reaps counts as gone)."""
    end = time.monotonic() + within
    while True:
        if _gone_now(pid):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.02)


def read_pid(path: Path, within: float = 10.0) -> int:
    """The pid a child wrote into ``path``, waiting for it to appear."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"{path} never got a pid")
