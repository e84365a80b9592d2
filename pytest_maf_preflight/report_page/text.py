"""Times, durations and spans as the page writes them (plain text; escaping is the caller's)."""

from __future__ import annotations

import time

from ..time_text import span


def utc(epoch: float) -> str:
    """``2025-01-02 03:04:05Z``."""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def iso(epoch: float) -> str:
    """For ``<time datetime=...>``: ``2025-01-02T03:04:05Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def duration(seconds: float) -> str:
    """``0 ms``, ``12.3 ms``, ``340 ms``, ``1.25 s``, ``42 s``, ``3m05s``."""
    if seconds < 0.1:
        ms = seconds * 1000
        return "0 ms" if ms == 0 else f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return span(seconds)


def relative(epoch: float, now: float) -> str:
    """``in 14m59s`` or ``3h05m ago``, from ``now``."""
    return f"in {span(epoch - now)}" if epoch > now else f"{span(now - epoch)} ago"
