"""Lengths of time as people read them, shared by the command line and the report page.

It imports nothing: ``maf-preflight --help`` and the report page load it.
"""

from __future__ import annotations


def span(seconds: float) -> str:
    """A length of time for people: ``45s``, ``14m59s``, ``3h05m``, ``2d04h`` (the sign is
    dropped: the caller says ``in`` or ``ago``)."""
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
