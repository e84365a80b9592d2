"""Stash keys shared by the always-loaded plugin module and the gate (kept import-cheap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .session import PreflightGate

GATE_KEY: pytest.StashKey[PreflightGate] = pytest.StashKey()
