"""What the runtime raises: one base class, so a caller can catch every store failure at once.

Import-cheap (no records, no SQL): every layer that handles a store failure imports these.
"""

from __future__ import annotations


class RuntimeStateError(Exception):
    """A runtime could not do what was asked (and said why); never a half-written record."""


class RuntimeUnavailable(RuntimeStateError):
    """A mode cannot start here (unwritable directory, corrupt database, locked too long)."""


class LeaseError(RuntimeStateError):
    """A lease cannot be renewed or released: unknown, someone else's, released, or blocked."""
