"""The TOML writer used by ``maf-preflight config migrate``: what it writes, tomllib reads back."""

from __future__ import annotations

import datetime
import random
import string
import sys
from typing import Any

import pytest

from pytest_maf_preflight.config.toml_writer import TomlWriteError, dumps

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_config_shaped_document_round_trips() -> None:
    document = {
        "configs": [
            {
                "id": "git-available",
                "name": 'quote " backslash \\ tab \t newline \n bell \x07 del \x7f é ☃',
                "version": "1.0.0",
                "is_active": False,
                "tags": [],
                "metadata": {},
                "config": {
                    "test_type": "command",
                    "timeout_seconds": 2.5,
                    "retry_count": 0,
                    "test_definition": {"argv": ["git", "--version"],
                                        "stdout_regex": r"git version \d+\.\d+",
                                        "env": {"GIT PAGER": "cat", "a.b": "dotted key"}},
                },
                "environment_overrides": {"ci": {"test_definition": {"argv": ["git"]}}},
            },
            {
                "id": "esc",
                "config": {
                    "escalation_steps": [{"level": 1, "target": "a"},
                                         {"level": 2, "target": "b", "extra": {"x": 1}}],
                    "mixed": [1, "two", {"three": 3}, [4.0, True]],
                    "big": list(range(40)),
                    "floats": [1e300, -0.0, 1.5e-7, float("inf"), float("-inf")],
                    "when": datetime.date(2024, 5, 1),
                    "stamp": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
                },
            },
        ],
    }
    text = dumps(document)
    assert tomllib.loads(text) == document
    assert "[[configs]]" in text
    assert "[[configs.config.escalation_steps]]" in text
    assert r"stdout_regex = 'git version \d+\.\d+'" in text  # literal string, no doubled '\'


def test_top_level_values_come_before_tables() -> None:
    document = {"table": {"k": 1}, "plain": "v"}
    text = dumps(document)
    assert text.index("plain") < text.index("[table]")
    assert tomllib.loads(text) == document


def test_random_documents_round_trip() -> None:
    rnd = random.Random(20240501)
    alphabet = string.printable + "\x00\x01\x1f\x7fé☃\"'\\"

    def text() -> str:
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10)))

    def scalar() -> Any:
        kind = rnd.randrange(5)
        if kind == 0:
            return rnd.randint(-(2**63), 2**63 - 1)
        if kind == 1:
            return rnd.uniform(-1, 1) * 10 ** rnd.randint(-300, 300)
        if kind == 2:
            return rnd.random() < 0.5
        return text()

    def value(depth: int) -> Any:
        roll = rnd.random()
        if depth > 3 or roll < 0.5:
            return scalar()
        if roll < 0.65:
            return [scalar() for _ in range(rnd.randint(0, 25))]
        if roll < 0.8:
            return [table(depth + 1) for _ in range(rnd.randint(1, 3))]
        if roll < 0.85:
            return [table(depth + 1), scalar()]
        return table(depth + 1)

    def table(depth: int) -> dict[str, Any]:
        return {text(): value(depth) for _ in range(rnd.randint(0, 5))}

    for _ in range(500):
        document = table(0)
        assert tomllib.loads(dumps(document)) == document


@pytest.mark.parametrize(("document", "where"), [
    ({"config": {"description": None}}, "config.description"),
    ({"configs": [{"id": "a", "steps": [1, None]}]}, "configs[0].steps[1]"),
    ({"x": {1: "int key"}}, "x"),
    ({"x": b"bytes"}, "x"),
])
def test_values_toml_cannot_hold_are_named(document: dict[str, Any], where: str) -> None:
    with pytest.raises(TomlWriteError, match=r"^" + where.replace("[", r"\[")):
        dumps(document)
