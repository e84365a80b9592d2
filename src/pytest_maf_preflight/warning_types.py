"""Warnings the plugin issues: ``pytest.PytestWarning`` subclasses, so filters can target them."""

from __future__ import annotations

import pytest


class MafPreflightWarning(pytest.PytestWarning):
    """Base class of every warning pytest-maf-preflight issues."""


class MafCheckWarning(MafPreflightWarning):
    """A ``warning``-severity preflight check did not pass (the gate stays open)."""
