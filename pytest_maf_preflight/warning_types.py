"""Warnings the plugin issues: ``pytest.PytestWarning`` subclasses, so filters can target them."""

from __future__ import annotations

import pytest


class MafPreflightWarning(pytest.PytestWarning):
    """Base class of every warning pytest-maf-preflight issues."""


class MafCheckWarning(MafPreflightWarning):
    """A ``warning``-severity preflight check did not pass (the gate stays open)."""


class MafReservationOverride(MafPreflightWarning):
    """Reservation conflicts were let through by ``MAF_RESERVATION_OVERRIDE=1`` (and recorded)."""


class MafRuntimeFallback(MafPreflightWarning):
    """The gate's runtime fell back: a mode of the chain could not open or record the session,
    so a later mode (or none) holds it. A filter naming this class (``-W
    error::pytest_maf_preflight.warning_types.MafRuntimeFallback``) makes a fallback end the
    run with a usage error, e.g. in CI where the configured store must be used."""
