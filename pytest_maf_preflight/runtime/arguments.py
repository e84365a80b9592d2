"""Checks of the arguments every mode's methods share (times, limits), so that every mode
refuses the same values with the same message before it touches its store."""

from __future__ import annotations

import math
from typing import Any

from .records import now


def checked_limit(limit: int | None) -> int | None:
    """Limits are counts: a negative one is a caller's mistake in every mode."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be at least 0, got {limit}")
    return limit


def at_or_now(given: float | None) -> float:
    """The moment a store operation happens: the injected ``now``, else the clock."""
    return now() if given is None else given


def checked_time(value: float | None, name: str = "now") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    return float(value)


def required_time(at: float, name: str = "now") -> float:
    value = checked_time(at, name)
    if value is None:
        raise ValueError(f"{name} must be a finite number of seconds, got None")
    return value


def checked_text(value: Any, name: str, *, optional: bool = False, allow_nul: bool = False) -> Any:
    """A non-empty string (``None`` too when ``optional``). NUL is refused unless
    ``allow_nul``: PostgreSQL's text cannot hold it, and only fields the SQL stores clean of it
    (an escalation's) may carry one."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if not allow_nul and "\x00" in value:
        raise ValueError(f"{name} must not contain NUL, got {value!r}")
    return value
