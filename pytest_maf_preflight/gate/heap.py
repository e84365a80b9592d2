"""The objects alive when the tests start, frozen out of the garbage collector's walks.

What is alive then (pytest's collection, the gate's pydantic and jsonschema objects) lives
until the session ends, yet every full collection during the tests would walk it again: a cost
that grows with the number of tests (``maf_preflight_gc_freeze``, on by default).
"""

from __future__ import annotations

import gc

#: ``freeze``'s answers: nothing frozen, frozen for good, frozen until the session ends.
NOT_FROZEN, KEEP, THAW = "", "keep", "thaw"


def freeze(enabled: bool, nested: bool) -> str:
    """``gc.freeze()`` unless disabled, or unless something else froze objects already
    (thawing would undo its freeze); return what the session's end must do (``thaw``)."""
    if not enabled or gc.get_freeze_count():
        return NOT_FROZEN
    gc.freeze()
    # A session inside another one (pytester) thaws at its end, so the process goes on as it
    # was; the outermost one does not: thawing costs a full walk just before exit.
    return THAW if nested else KEEP


def thaw(frozen: str) -> None:
    if frozen == THAW:
        gc.unfreeze()
