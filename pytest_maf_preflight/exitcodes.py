"""Exit codes of our own, outside pytest's 0-6 so CI can tell a closed gate from failed tests."""

from __future__ import annotations

import enum


class MafExitCode(enum.IntEnum):
    """Exit codes pytest returns when ``--maf-preflight`` decided the session.

    Documented in the README; values are part of the public contract.
    """

    #: A blocking preflight check or ``maf_smoke`` test failed; the rest of the session was skipped.
    GATE_CLOSED = 10
    #: A preflight config could not be loaded or validated; no check ran.
    CONFIG_ERROR = 11
