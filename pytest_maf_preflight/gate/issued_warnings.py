"""Issuing the plugin's warnings so that only the plugin's settings make them fail a test.

A failing ``warning``-severity check is reported as a ``MafCheckWarning``; whether it fails
anything is ``maf_preflight_warnings_as_errors``' decision, not the project's warning filters.
Projects that set ``filterwarnings = error`` (or ``-W error``, ``error::pytest.PytestWarning``)
mean the warnings of their own code: such a generic ``error`` filter shows the plugin's warning
instead of raising it. A filter whose category is one of the plugin's classes
(``MafCheckWarning``, ``MafReservationOverride`` or their base ``MafPreflightWarning``) is an
explicit choice and applies as written, ``error`` included.

The decision reads the filters in force where the warning is issued, so every source pytest
applies counts the same way: ini ``filterwarnings``, ``-W``, ``PYTHONWARNINGS`` and
``@pytest.mark.filterwarnings`` marks. Nothing of pytest's private API is involved: the filters
are the public ``warnings.filters`` list, matched as the warnings module matches them.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from ..warning_types import MafPreflightWarning


def issue(warning: MafPreflightWarning, *, stacklevel: int = 1) -> None:
    """``warnings.warn(warning)``, with a generic ``error`` filter shown instead of raised.

    ``stacklevel`` as for ``warnings.warn``, counted from the caller. Raises ``warning`` only
    when a filter naming the plugin's classes turned it into an error.
    """
    caller = sys._getframe(stacklevel)
    module = str(caller.f_globals.get("__name__", "<string>"))
    entry = _first_match(type(warning), str(warning), module, caller.f_lineno)
    if entry is None or entry[0] != "error" or _names_ours(entry[2]):
        warnings.warn(warning, stacklevel=stacklevel + 1)
        return
    with warnings.catch_warnings():  # restores the filters as they were
        warnings.filterwarnings("always", category=type(warning))
        warnings.warn(warning, stacklevel=stacklevel + 1)


def _names_ours(category: Any) -> bool:
    return isinstance(category, type) and issubclass(category, MafPreflightWarning)


def _first_match(
    category: type[Warning], text: str, module: str, lineno: int
) -> tuple[Any, ...] | None:
    """The filter the warnings module would apply, as ``warn_explicit`` finds it."""
    for entry in warnings.filters:
        _, message, filter_category, filter_module, filter_lineno = entry
        if (
            _matches(message, text)
            and isinstance(filter_category, type)
            and issubclass(category, filter_category)
            and _matches(filter_module, module)
            and filter_lineno in (0, lineno)
        ):
            return entry
    return None


def _matches(pattern: Any, value: str) -> bool:
    if pattern is None:
        return True
    if isinstance(pattern, str):  # the interpreter's own default filters hold plain text
        return pattern == value
    return bool(pattern.match(value))  # a compiled regex, as filterwarnings stores it
