"""mcp_agent_mail's stored times as epoch seconds, compared as numbers, never as text.

Its database holds naive UTC text (``2026-11-25 10:00:00.123456``), its server and archive
ISO-8601 with an offset; as text, ``9:00`` sorts after ``10:00`` and ``T`` after a space.
"""

from __future__ import annotations

import datetime as dt
import math
import re

_TIME_RE = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[Tt ]+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?"
    r"\s*(?P<tz>[Zz]|UTC|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$"
)


def parse_time(value: object) -> float:
    """Epoch seconds from a stored time; ``ValueError`` when it is not one.

    Text without an offset is UTC (SQLite stores naive UTC). Numbers are told apart by
    magnitude, which is unambiguous between 2001 and 2286: seconds (1e9..1e10), milliseconds
    (1e12..1e13) or microseconds (1e15..1e16); anything else is refused rather than guessed.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return _epoch_number(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
        return _epoch_number(float(text))
    match = _TIME_RE.match(text)
    if match is None:
        raise ValueError(f"not a time: {value!r}")
    # Digits past the microsecond are cut, not rounded: a rounded 59.9999999 would overflow.
    microsecond = int((match["f"] or "0")[:6].ljust(6, "0"))
    try:
        moment = dt.datetime(
            int(match["y"]),
            int(match["mo"]),
            int(match["d"]),
            int(match["h"] or 0),
            int(match["mi"] or 0),
            int(match["s"] or 0),
            microsecond,
            tzinfo=_zone(match["tz"]),
        )
    except ValueError as exc:
        raise ValueError(f"not a time: {value!r} ({exc})") from None
    return moment.timestamp()


def _zone(text: str | None) -> dt.tzinfo:
    if text is None or text.upper() in ("Z", "UTC"):
        return dt.timezone.utc
    digits = text[1:].replace(":", "")
    seconds = int(digits[0:2]) * 3600 + int(digits[2:4] or 0) * 60 + int(digits[4:6] or 0)
    if seconds >= 86_400:
        raise ValueError(f"offset out of range: {text!r}")
    return dt.timezone(dt.timedelta(seconds=-seconds if text[0] == "-" else seconds))


def _epoch_number(number: float) -> float:
    if not math.isfinite(number):
        raise ValueError(f"not a time: {number!r}")
    for low, scale in ((1e9, 1.0), (1e12, 1e3), (1e15, 1e6)):
        if low <= abs(number) < low * 10:
            return float(number) / scale
    raise ValueError(
        f"not a time: {number!r} (not epoch seconds, milliseconds or "
        "microseconds of a date between 2001 and 2286)"
    )
