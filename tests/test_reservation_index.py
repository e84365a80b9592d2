"""PatternIndex: the same answers as trying every pattern with path_matches."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_maf_preflight.reservations.index import PatternIndex
from pytest_maf_preflight.reservations.patterns import (
    Dialect,
    PatternError,
    path_matches,
    validate_pattern,
)

DIALECTS: list[Dialect] = ["gitignore", "agent_mail"]

# Shapes that land in every part of the index: literal files and directories (anchored or
# not), anchored globs with and without a literal prefix, unanchored globs with a literal start,
# a literal end or neither, and agent_mail's fnmatch rule.
ATOMS = [
    "a",
    "b",
    "ab",
    "x.py",
    "/",
    "*",
    "**",
    "?",
    "[ab]",
    "[!a]",
    ".",
    "\\*",
    "[a-c]",
    "src/",
    "/src",
    "a*",
    "*.py",
]


def _patterns(rng: random.Random, count: int) -> list[tuple[str, Dialect]]:
    out: list[tuple[str, Dialect]] = []
    while len(out) < count:
        raw = "".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 5)))
        try:
            validate_pattern(raw)
        except PatternError:
            continue
        out.append((raw, rng.choice(DIALECTS)))
    return out


def _paths(rng: random.Random, count: int) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        parts = [
            rng.choice(["src", "a", "b", "ab", "x.py", "a.py", "*", "c", "abc", "b.x"])
            for _ in range(rng.randint(1, 4))
        ]
        out.append("/".join(parts))
    return out


def _naive(entries: list[tuple[str, Dialect, int]], path: str) -> list[int]:
    return [
        payload for pattern, dialect, payload in entries if path_matches(path, pattern, dialect)
    ]


@pytest.mark.parametrize("seed", range(8))
def test_covering_matches_every_pair(seed: int) -> None:
    rng = random.Random(seed)
    entries = [(pattern, dialect, n) for n, (pattern, dialect) in enumerate(_patterns(rng, 60))]
    index = PatternIndex(entries)
    paths = _paths(rng, 200)
    hits = 0
    for path in paths:
        expected = _naive(entries, path)
        assert index.covering(path) == expected, path
        hits += len(expected)
    assert hits > 100  # the sample exercises the matching side too


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(ATOMS), st.sampled_from(ATOMS), st.sampled_from(DIALECTS)),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.sampled_from(["src", "a", "ab", "x.py", "b", "*"]), min_size=1, max_size=4),
)
def test_covering_matches_every_pair_property(
    pairs: list[tuple[str, str, Dialect]], parts: list[str]
) -> None:
    entries = []
    for n, (first, second, dialect) in enumerate(pairs):
        try:
            validate_pattern(first + second)
        except PatternError:
            continue
        entries.append((first + second, dialect, n))
    path = "/".join(parts)
    assert PatternIndex(entries).covering(path) == _naive(entries, path)


def test_realistic_leases() -> None:
    entries: list[tuple[str, Dialect, str]] = [
        ("src/pkg1/mod.py", "gitignore", "literal"),
        ("src/pkg1/", "gitignore", "directory"),
        ("src/pkg1/**", "gitignore", "everything below"),
        ("src/pkg1/*.py", "gitignore", "modules"),
        ("src/pkg1/m*", "gitignore", "m-prefix"),
        ("tests/test_*.py", "gitignore", "tests"),
        ("*.lock", "gitignore", "locks"),
        ("**/__pycache__/", "gitignore", "caches"),
        ("**/conftest.py", "gitignore", "conftests"),
        ("*/migrations/*.sql", "gitignore", "migrations"),
        ("src/*", "agent_mail", "agent-mail src"),
        ("src/pkg2/*.py", "agent_mail", "agent-mail pkg2"),
    ]
    index = PatternIndex(entries)
    assert index.covering("src/pkg1/mod.py") == [
        "literal",
        "directory",
        "everything below",
        "modules",
        "m-prefix",
        "agent-mail src",
    ]
    assert index.covering("src/pkg1/sub/x.txt") == [
        "directory",
        "everything below",
        "agent-mail src",
    ]
    assert index.covering("src/pkg2/a/b.py") == ["agent-mail src", "agent-mail pkg2"]
    assert index.covering("tests/test_a.py") == ["tests"]
    assert index.covering("tests/unit/test_a.py") == []
    assert index.covering("poetry.lock") == ["locks"]
    assert index.covering("a/__pycache__/x.pyc") == ["caches"]
    assert index.covering("__pycache__") == []  # a file of that name: not a directory
    assert index.covering("a/b/conftest.py") == ["conftests"]
    assert index.covering("app/migrations/1.sql") == ["migrations"]
    assert index.covering("docs/index.md") == []


def test_duplicate_patterns_keep_every_payload_in_order() -> None:
    index = PatternIndex(
        [
            ("src/*.py", "gitignore", 1),
            ("docs/", "gitignore", 2),
            ("src/*.py", "gitignore", 3),
            ("./src/*.py", "gitignore", 4),
            ("src/*.py", "agent_mail", 5),
        ]
    )
    assert index.covering("src/a.py") == [1, 3, 4, 5]
    assert index.covering("src/a/b.py") == [5]


def test_empty_index_and_invalid_patterns() -> None:
    assert PatternIndex[int]([]).covering("src/a.py") == []
    with pytest.raises(PatternError, match="never closed"):
        PatternIndex([("src/[ab", "gitignore", 1)])
