"""The one retry backoff of the SQL stores: how long each wait is, and that none outlasts the
retry budget."""

from __future__ import annotations

import time

import pytest

from pytest_maf_preflight.runtime.backoff import RETRY_BACKOFF


def test_each_wait_doubles_from_five_milliseconds_up_to_half_a_second() -> None:
    longest = [RETRY_BACKOFF.delay(attempt, draw=1.0) for attempt in range(1, 11)]
    assert longest == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5, 0.5])
    assert RETRY_BACKOFF.delay(10_000, draw=1.0) == pytest.approx(0.5)  # no overflow


def test_half_of_each_wait_is_fixed_and_half_drawn() -> None:
    # Stores that collided once must not retry in lockstep, and none retries at once.
    assert RETRY_BACKOFF.delay(3, draw=0.0) == pytest.approx(0.01)
    assert RETRY_BACKOFF.delay(3, draw=0.5) == pytest.approx(0.015)
    assert RETRY_BACKOFF.delay(30, draw=0.0) == pytest.approx(0.25)


def test_a_wait_never_passes_the_deadline() -> None:
    started = time.monotonic()
    assert RETRY_BACKOFF.wait(30, started + 0.05, draw=1.0)  # 0.5 s asked, 0.05 s left
    assert 0.04 <= time.monotonic() - started < 0.4


def test_a_spent_budget_is_said_without_sleeping() -> None:
    started = time.monotonic()
    assert not RETRY_BACKOFF.wait(1, started - 1.0, draw=0.5)
    assert time.monotonic() - started < 0.05
