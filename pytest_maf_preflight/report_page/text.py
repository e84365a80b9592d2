"""Times, durations and spans as the page writes them (plain text; escaping is the caller's)."""

from __future__ import annotations

import time


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


def span(seconds: float) -> str:
    """A length of time for people: ``45s``, ``14m59s``, ``3h05m``, ``2d04h``."""
    whole = round(abs(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, whole = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{whole:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def relative(epoch: float, now: float) -> str:
    """``in 14m59s`` or ``3h05m ago``, from ``now``."""
    return f"in {span(epoch - now)}" if epoch > now else f"{span(now - epoch)} ago"
