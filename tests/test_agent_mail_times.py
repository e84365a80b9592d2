"""mcp_agent_mail's stored times, read as epoch seconds and compared as numbers."""

from __future__ import annotations

import calendar

import pytest

from pytest_maf_preflight.agent_mail.times import parse_time

#: 2026-11-25 09:30:00 UTC. Times near it hide string-comparison bugs.
NOW = float(calendar.timegm((2026, 11, 25, 9, 30, 0)))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25 09:30:00", NOW),
        ("2026-11-25 9:30:00", NOW),  # an unpadded hour sorts after "10:" as text
        ("2026-11-25T09:30:00", NOW),
        ("2026-11-25T09:30:00Z", NOW),
        ("2026-11-25T09:30:00+00:00", NOW),
        ("2026-11-25T11:30:00+02:00", NOW),
        ("2026-11-25T04:00:00-0530", NOW),
        ("2026-11-25 09:30:00.250000", NOW + 0.25),
        ("2026-11-25T09:30:00.25Z", NOW + 0.25),
        ("2026-11-25T09:30:00.2500009+00:00", NOW + 0.25),  # 7 digits: cut to microseconds
        ("2026-11-25 09:30", NOW),
        (NOW, NOW),
        (int(NOW * 1000), NOW),
        (int(NOW * 1_000_000), NOW),
        (str(int(NOW)), NOW),
    ],
)
def test_times_parse_as_times(text: object, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


def test_times_order_as_times_not_as_text() -> None:
    assert "2026-11-25 9:00:00" > "2026-11-25 10:00:00"  # the trap
    assert parse_time("2026-11-25 9:00:00") < parse_time("2026-11-25 10:00:00")
    assert "2026-11-25T09:10:00" > "2026-11-25 09:30:00"
    assert parse_time("2026-11-25T09:10:00") < parse_time("2026-11-25 09:30:00")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "soon",
        "2026-13-01 00:00:00",
        "2026-11-25 25:00:00",
        "2026-11-25T09:30:00+24:00",
        True,
        None,
        12345,
        [1],
        1e30,
    ],
)
def test_what_is_not_a_time_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"not a time|offset"):
        parse_time(bad)
