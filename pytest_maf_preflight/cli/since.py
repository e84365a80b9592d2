"""``--since``: how far back a command reads, as a duration (``30s``, ``10m``, ``2h``, ``7d``)
before now or an ISO 8601 time; shared by every command that takes the option."""

from __future__ import annotations

import datetime
import re

from .common import CliError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: The option's help, the same wherever it is taken.
SINCE_HELP = (
    "Only what started this long ago (30s, 10m, 2h, 7d) or from this time "
    "(ISO 8601, UTC unless it says otherwise)"
)


def parse_since(value: str | None, at: float) -> float | None:
    """``--since`` as epoch seconds: a duration before ``at``, or an ISO 8601 time."""
    if value is None:
        return None
    text = value.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        return at - float(duration.group(1)) * _UNITS[duration.group(2)]
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"--since: {value!r} is neither a duration (30s, 10m, 2h, 1d) nor an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()
