"""Durations on the command line (``--for 30m``, ``2h``, ``1d``, ``1h30m``): one parser for every
command that takes one (``waive``, ``silence add``, ``escalations approve``).

Standard library only: argparse calls it while parsing, before any handler runs.
"""

from __future__ import annotations

import argparse
import re

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: Longer than a year is no longer a waiver or a maintenance window but a config change.
LONGEST = 366 * UNITS["d"]
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
EXAMPLES = "a number and a unit s, m, h or d: 90s, 30m, 2h, 1.5d, 1h30m"


def parse_duration(text: str) -> float:
    """``text`` in seconds; ``argparse.ArgumentTypeError`` (argparse's one-line usage error)
    naming what is wrong."""
    given = text.strip().lower()
    parts = _PART.findall(given)
    if not given or "".join(n + u for n, u in parts) != given:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration ({EXAMPLES})")
    seconds = sum(float(number) * UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is no time at all ({EXAMPLES})")
    if seconds > LONGEST:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than the longest allowed, 366d")
    return seconds


def shown(seconds: float) -> str:
    """A duration as ``2h``, ``1h30m``, ``45s`` (whole seconds)."""
    left = round(seconds)
    out = ""
    for unit in ("d", "h", "m", "s"):
        count, left = divmod(left, int(UNITS[unit]))
        if count:
            out += f"{count}{unit}"
    return out or "0s"
