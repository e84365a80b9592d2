"""Warnings the plugin issues: ``pytest.PytestWarning`` subclasses, so filters can target them."""

from __future__ import annotations

import pytest


class MafPreflightWarning(pytest.PytestWarning):
    """Base class of every warning pytest-maf-preflight issues."""


class MafCheckWarning(MafPreflightWarning):
    """A ``warning``-severity preflight check did not pass (the gate stays open)."""


class MafReservationOverride(MafPreflightWarning):
    """Reservation conflicts were let through by ``MAF_RESERVATION_OVERRIDE=1`` (and recorded)."""
