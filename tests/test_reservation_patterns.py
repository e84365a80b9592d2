"""Lease patterns: validation, path matching (against the real git) and exact overlap."""

from __future__ import annotations

import fnmatch
import itertools
import random
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_maf_preflight.reservations import patterns as patterns_module
from pytest_maf_preflight.reservations.patterns import (
    Dialect,
    PatternError,
    is_literal,
    literal_prefix,
    normalize_path,
    overlap_witness,
    path_matches,
    patterns_overlap,
    validate_pattern,
)

# --- path_matches ----------------------------------------------------------------------------

GITIGNORE_CASES = [
    # literal files and directories, anchored by a slash at the start or in the middle
    ("src/app.py", "src/app.py", True),
    ("src/app.py", "src/app.pyc", False),
    ("src/app.py", "lib/src/app.py", False),
    ("src", "src/app.py", True),
    # A plain path (no glob character) is a path from the root: the one difference from
    # gitignore, where "src" would also match lib/src (see patterns._parse_gitignore).
    ("src", "lib/src/app.py", False),
    ("s?c", "lib/src/app.py", True),  # a glob without a slash: any depth, as in git
    ("*.lock", "a/b/x.lock", True),
    ("src", "srcx/app.py", False),
    ("/src", "lib/src/app.py", False),
    ("/src", "src/deep/app.py", True),
    ("src/", "src", False),  # a file named "src" is not a directory
    ("src/", "src/app.py", True),
    ("src/", "a/src/b", False),
    ("sr[c]/", "a/src/b", True),
    ("docs/api/", "docs/api", False),
    ("docs/api/", "docs/api/x.md", True),
    # "*" and "?" never cross "/"
    ("src/*.py", "src/a.py", True),
    ("src/*.py", "src/sub/a.py", False),
    ("src/*", "src/sub/a.py", True),  # src/sub is matched, and covers what is below
    ("src/?.py", "src/a.py", True),
    ("src/?.py", "src/ab.py", False),
    ("*.py", "deep/down/x.py", True),
    ("*.py", "x.py/inner.txt", True),
    ("a*/b", "ab/b", True),
    ("a*/b", "a/x/b", False),
    # "**"
    ("**/foo", "foo", True),
    ("**/foo", "a/b/foo", True),
    ("**/foo/bar", "x/foo/bar", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("a/**", "a/x/y", True),
    ("a/**", "a", False),
    ("a**b", "axxb", True),
    ("a**b/c", "ax/yb/c", False),  # not at a slash: like "*"
    ("x/a**/b", "x/ak/l/b", True),  # git's quirk: "**" first after the literal text
    ("x/a**/b", "x/a/b", True),
    # classes
    ("[ab].txt", "a.txt", True),
    ("[ab].txt", "c.txt", False),
    ("[!ab].txt", "c.txt", True),
    ("[^ab].txt", "a.txt", False),
    ("[a-c]x", "bx", True),
    ("[]a]x", "]x", True),
    ("x[[:digit:]]", "x7", True),
    ("x[[:digit:]]", "xa", False),
    ("a[!b]c", "a/c", False),  # a class never matches "/"
    # escapes and spaces
    ("\\*.py", "*.py", True),
    ("\\*.py", "a.py", False),
    ("\\#notes", "#notes", True),
    ("\\!important", "!important", True),
    ("name  ", "name", True),  # trailing spaces are dropped
    ("name\\ ", "name ", True),  # an escaped one is kept
]


@pytest.mark.parametrize(("pattern", "path", "expected"), GITIGNORE_CASES)
def test_path_matches_gitignore(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(path, pattern) is expected


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("src/*", "src/a/b.py", True),  # fnmatch's "*" crosses "/" (and so does git's parent rule)
        ("src/*.py", "src/a/b.py", True),  # only fnmatch takes this one
        ("*.py", "a/b/c.py", True),
        ("src/?", "src/a", True),
        ("src/a?b", "src/a/b", True),  # "?" takes the "/" too
        ("docs/**", "src/x.py", False),
        ("[!s]*", "src/x.py", True),  # git's rule: the component "x.py"
        ("[!s]*", "src/sx.py", False),
        ("[^s]*", "src/sx.py", True),  # fnmatch's "^" is no negation: only fnmatch takes this
        ("/src/*.py", "src/a/b.py", True),  # fnmatch on the pattern without its leading "/"
    ],
)
def test_path_matches_agent_mail(pattern: str, path: str, expected: bool) -> None:
    assert path_matches(path, pattern, "agent_mail") is expected


def test_agent_mail_covers_whatever_either_rule_covers() -> None:
    # gitignore alone, fnmatch alone, and both.
    assert not path_matches("src/a/b.py", "src/*.py")
    assert path_matches("src/a/b.py", "src/*.py", "agent_mail")
    assert not fnmatch.fnmatchcase("lib/src/app.py", "sr?")
    assert path_matches("lib/src/app.py", "sr?", "agent_mail")


# --- against the real git ----------------------------------------------------------------------


def as_git(pattern: str) -> str:
    """The gitignore line that means what ``pattern`` means here: a plain path (no glob
    character) is anchored to the root."""
    if is_literal(pattern) and not pattern.startswith("/") and "/" not in pattern.rstrip("/"):
        return "/" + pattern
    return pattern


def _git_ignored(tmp_path: Path, patterns: list[str], paths: list[str]) -> set[tuple[int, str]]:
    """Which (pattern number, path) pairs git ignores: pattern i is the only line of
    ``p<i>/.gitignore``, asked about ``p<i>/<path>``; the paths do not exist (files, then)."""
    root = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    queries = []
    for i, pattern in enumerate(patterns):
        (root / f"p{i}").mkdir()
        (root / f"p{i}" / ".gitignore").write_text(as_git(pattern) + "\n")
        queries += [f"p{i}/{path}" for path in paths]
    out = subprocess.run(
        ["git", "-C", str(root), "check-ignore", "--no-index", "--stdin", "-z"],
        input=("\0".join(queries) + "\0").encode(),
        capture_output=True,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    ignored = set(out.stdout.decode().split("\0")) - {""}
    pairs = set()
    for entry in ignored:
        number, _, path = entry.partition("/")
        pairs.add((int(number[1:]), path))
    return pairs


def _random_patterns(rng: random.Random, count: int) -> list[str]:
    atoms = [
        "a",
        "b",
        "/",
        "*",
        "**",
        "?",
        "[ab]",
        "[!a]",
        ".",
        "\\*",
        "x",
        "[a-c]",
        "[]a]",
        "[^b]",
        "[[:alpha:]]",
        "\\ ",
        " ",
    ]
    found: set[str] = set()
    while len(found) < count:
        raw = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 6)))
        try:
            validate_pattern(raw)
        except PatternError:
            continue
        found.add(raw)  # written to the file as given: git trims and parses it itself
    return sorted(found)


def _random_paths(rng: random.Random, count: int) -> list[str]:
    found: set[str] = set()
    while len(found) < count:
        parts = [
            "".join(rng.choice("abcx.* ") for _ in range(rng.randint(1, 3)))
            for _ in range(rng.randint(1, 4))
        ]
        if all(part.strip(".") for part in parts):
            found.add("/".join(parts))
    return sorted(found)


def test_path_matches_agrees_with_git_check_ignore(tmp_path: Path) -> None:
    rng = random.Random(20240505)
    patterns = _random_patterns(rng, 300) + [case[0] for case in GITIGNORE_CASES]
    paths = _random_paths(rng, 120) + [case[1] for case in GITIGNORE_CASES]
    ignored = _git_ignored(tmp_path, patterns, paths)
    assert len(ignored) > 2000  # the sample is not all misses
    wrong = [
        (pattern, path, (i, path) in ignored)
        for i, pattern in enumerate(patterns)
        for path in paths
        if path_matches(path, pattern) != ((i, path) in ignored)
    ]
    assert wrong == []


def test_character_classes_agree_with_git(tmp_path: Path) -> None:
    names = [
        "alnum",
        "alpha",
        "blank",
        "cntrl",
        "digit",
        "graph",
        "lower",
        "print",
        "punct",
        "space",
        "upper",
        "xdigit",
    ]
    patterns = [f"x[[:{name}:]]" for name in names] + [
        "x[a-]",
        "x[-a]",
        "x[\\]]",
        "x[a-c-e]",
        "x[[:a]",
        "x[z-a]",
        "x[!]]",
        "x[\\a-c]",
        "x[a-\\c]",
    ]
    paths = ["x" + chr(c) for c in range(1, 128) if chr(c) != "/"]
    ignored = _git_ignored(tmp_path, patterns, paths)
    wrong = [
        (pattern, path)
        for i, pattern in enumerate(patterns)
        for path in paths
        if path_matches(path, pattern) != ((i, path) in ignored)
    ]
    assert wrong == []


def test_root_gitignore_agrees_with_git(tmp_path: Path) -> None:
    """The same answers with the pattern in the repository's top .gitignore."""
    patterns = ["/src", "src/*.py", "x/a**/b", "a/**/b", "**/foo", "docs/", "*.py", "/a/*/"]
    paths = [
        "src/a.py",
        "lib/src/a.py",
        "x/ak/l/b",
        "a/b",
        "a/q/b",
        "q/foo/z",
        "docs/x",
        "docs",
        "z/y.py",
        "a/b/c",
    ]
    for n, pattern in enumerate(patterns):
        root = tmp_path / f"r{n}"
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        (root / ".gitignore").write_text(as_git(pattern) + "\n")
        out = subprocess.run(
            ["git", "-C", str(root), "check-ignore", "--no-index", "--stdin"],
            input="\n".join(paths) + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        ignored = set(out.stdout.splitlines())
        assert {p for p in paths if path_matches(p, pattern)} == ignored, pattern


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("src/app.py", "src/app.py"),
        ("./src/app.py", "src/app.py"),
        ("./src", "/src"),  # still anchored to the root, as "./" meant
        ("./src/", "/src/"),
        ("/src/", "/src/"),
        ("docs/   ", "docs/"),
        ("a\\ ", "a\\ "),
        ("\\!x", "\\!x"),
        ("~$report.docx", "~$report.docx"),  # only "~/" reads as a home directory
    ],
)
def test_validate_pattern_normalizes(raw: str, normalized: str) -> None:
    assert validate_pattern(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("/", "empty"),
        ("!src", "negation"),
        ("#src", "comment"),
        ("a\0b", "NUL"),
        ("a\nb", "newline"),
        ("../src", "'..'"),
        ("src/../x", "'..'"),
        ("src/./x", "'.'"),
        ("src//x", "empty path component"),
        ("//server/share", "absolute"),
        ("C:\\work", "absolute"),
        ("~/x", "absolute"),
        ("src/[ab", "never closed"),
        ("src/[", "never closed"),
        ("x[[:nope:]]", "unknown character class"),
        ("abc\\", "lone backslash"),
        ("a" * 5000, "longer than"),
    ],
)
def test_validate_pattern_rejects(raw: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)) as caught:
        validate_pattern(raw)
    assert repr(raw)[:40] in str(caught.value)  # the message names the pattern


def test_validate_pattern_rejects_non_strings() -> None:
    with pytest.raises(PatternError, match="must be a string"):
        validate_pattern(["src"])  # type: ignore[arg-type]


def test_invalid_patterns_raise_everywhere() -> None:
    with pytest.raises(PatternError):
        path_matches("a", "[a")
    with pytest.raises(PatternError):
        patterns_overlap("a", "!a")


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("src/app.py", "src/app.py"),
        ("./src/app.py", "src/app.py"),
        ("src//app.py", "src/app.py"),
        ("src/./app.py", "src/app.py"),
        ("src/", "src"),
    ],
)
def test_normalize_path(raw: str, normalized: str) -> None:
    assert normalize_path(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/x", "absolute"),
        ("../x", "'..'"),
        ("a/../b", "'..'"),
        ("", "empty"),
        ("./", "empty"),
        ("a\0", "NUL"),
    ],
)
def test_normalize_path_rejects(raw: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)):
        normalize_path(raw)


def test_literal_helpers() -> None:
    assert is_literal("src/app.py")
    assert is_literal("/docs/")
    assert not is_literal("src/*.py")
    assert not is_literal("a\\*b")
    assert not is_literal("[a]")
    assert literal_prefix("src/pkg/*.py") == ("src", "pkg")
    assert literal_prefix("/src/pkg/mod.py") == ("src", "pkg")
    assert literal_prefix("src/p*/x/y.py") == ("src",)
    assert literal_prefix("*.py") == ()
    assert literal_prefix("docs/") == ()


# --- overlap -----------------------------------------------------------------------------------

OVERLAP_CASES: list[tuple[str, str, bool]] = [
    ("src/*.py", "src/a*", True),
    ("docs/**", "src/*.py", False),
    ("src", "src/x.py", True),
    ("*.py", "docs/x.py", True),
    ("src/*.py", "src/*.js", False),
    ("src/*.py", "src/sub/*.py", False),
    ("src/*", "src/sub/*.py", True),  # src/sub is covered, with all below it
    ("src/", "src", True),
    ("src/", "/src/x", True),
    ("docs/api/", "docs/api", True),  # docs/api/x: below the directory both name
    ("docs/api/", "/docs/api.md", False),
    ("/src", "lib/src", False),
    ("src", "lib/src", False),  # plain paths are from the root
    ("sr?", "lib/src", True),
    ("/[ab].py", "/c.py", False),
    ("[ab].py", "c.py", True),  # unanchored: a.py/c.py
    ("/[ab].py", "/[!a].py", True),
    ("/[!a].py", "/a.py", False),
    ("/[a-c]x", "/[c-e]x", True),
    ("/[a-b]x", "/[c-e]x", False),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b.py", "a/*.js", True),  # a/x.js/b.py
    ("a/**/*.py", "b/**", False),
    ("**/test_*.py", "tests/unit/test_a.py", True),
    ("/tests/**/test_*.py", "/src/**", False),
    ("/x[[:digit:]]", "/x[[:alpha:]]", False),
    ("/x[[:alnum:]]", "/x[[:alpha:]]", True),
    ("/\\*", "/a", False),
    ("\\*", "*", True),
    ("/?", "/ab", False),
    ("?", "ab", True),  # a/ab
]


@pytest.mark.parametrize(("a", "b", "expected"), OVERLAP_CASES)
def test_patterns_overlap(a: str, b: str, expected: bool) -> None:
    assert patterns_overlap(a, b) is expected
    assert patterns_overlap(b, a) is expected
    witness = overlap_witness(a, b)
    assert (witness is not None) is expected
    if witness is not None:
        assert path_matches(witness, a)
        assert path_matches(witness, b)


@pytest.mark.parametrize(
    ("a", "dialect_a", "b", "dialect_b", "expected"),
    [
        ("src/*", "agent_mail", "src/a/b.py", "gitignore", True),
        ("src/*.py", "agent_mail", "/lib/", "gitignore", False),
        ("src/*.py", "agent_mail", "li?/", "gitignore", True),  # src/lib/x.py, fnmatch's
        ("src/*.py", "agent_mail", "src/a/", "gitignore", True),  # fnmatch: src/a/x.py
        ("src/*.py", "gitignore", "src/a/", "gitignore", False),
        ("src/*.py", "agent_mail", "lib/*.js", "agent_mail", False),
        ("a?b", "agent_mail", "a/b", "gitignore", True),
        ("[!x]*", "agent_mail", "x*", "gitignore", True),  # git's rule: a directory [!x]* above
        ("/[!x]*", "agent_mail", "/x*", "gitignore", False),
    ],
)
def test_patterns_overlap_agent_mail(
    a: str, dialect_a: Dialect, b: str, dialect_b: Dialect, expected: bool
) -> None:
    assert patterns_overlap(a, b, dialect_a, dialect_b) is expected
    assert patterns_overlap(b, a, dialect_b, dialect_a) is expected
    witness = overlap_witness(a, b, dialect_a, dialect_b)
    if expected:
        assert witness is not None
        assert path_matches(witness, a, dialect_a)
        assert path_matches(witness, b, dialect_b)


def test_overlap_gives_up_towards_a_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = "/a*b*c*d*e*f*.py", "/*f*e*d*c*b*a*.js"
    assert not patterns_overlap(a, b)
    patterns_module._overlap.cache_clear()
    monkeypatch.setattr(patterns_module, "OVERLAP_STATE_CAP", 10)
    try:
        assert patterns_overlap(a, b)
        assert overlap_witness(a, b) is None
    finally:
        patterns_module._overlap.cache_clear()


def test_overlap_witness_is_a_normalized_path() -> None:
    # "." and ".." are no path components, so they witness nothing.
    assert not patterns_overlap("[.]", "*")
    assert overlap_witness("[.]", "*") is None
    assert overlap_witness("[.][.]", "*") is None
    assert overlap_witness("[.][.][.]", "*") == "..."


# --- property tests: overlap against brute force -----------------------------------------------

ALPHABET = "abc.z"  # every literal character the generated patterns use, plus a fresh one
ATOMS = ["a", "b", ".", "*", "**", "?", "[ab]", "[!a]", "[a-c]", "a*"]


def _all_paths(max_length: int) -> list[str]:
    out = []
    for length in range(1, max_length + 1):
        for chars in itertools.product(ALPHABET + "/", repeat=length):
            text = "".join(chars)
            try:
                if normalize_path(text) == text:
                    out.append(text)
            except PatternError:
                pass
    return out


PATHS = _all_paths(5)


@st.composite
def lease_patterns(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.lists(st.sampled_from(ATOMS), min_size=1, max_size=3).map("".join),
            min_size=1,
            max_size=3,
        )
    )
    text = ("/" if draw(st.booleans()) else "") + "/".join(parts)
    text += "/" if draw(st.booleans()) else ""
    try:
        validate_pattern(text)
    except PatternError:
        assume(False)
    return text


def _covered(pattern: str, dialect: Dialect) -> set[str]:
    return {path for path in PATHS if path_matches(path, pattern, dialect)}


DIALECTS: list[Dialect] = ["gitignore", "agent_mail"]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(lease_patterns(), lease_patterns(), st.sampled_from(DIALECTS), st.sampled_from(DIALECTS))
def test_overlap_is_exact(a: str, b: str, dialect_a: Dialect, dialect_b: Dialect) -> None:
    overlap = patterns_overlap(a, b, dialect_a, dialect_b)
    witness = overlap_witness(a, b, dialect_a, dialect_b)
    common = _covered(a, dialect_a) & _covered(b, dialect_b)
    if common:
        assert overlap, sorted(common)[:3]
    if overlap:
        # every "yes" is proved by a path both cover
        assert witness is not None
        assert normalize_path(witness) == witness
        assert path_matches(witness, a, dialect_a)
        assert path_matches(witness, b, dialect_b)
        if len(witness) <= 5:
            assert witness in common
    else:
        assert witness is None
    assert patterns_overlap(b, a, dialect_b, dialect_a) is overlap


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab!^-][*?\\", min_size=1, max_size=7),
    st.text(alphabet="ab/!^-]\\", max_size=6),
)
def test_fnmatch_tokens_follow_python_fnmatch(pattern: str, text: str) -> None:
    """The automaton's reading of fnmatch patterns (classes, ranges, stray brackets) is
    Python's."""
    tokens = patterns_module._fnmatch_tokens(pattern)
    ours = re.fullmatch(f"(?s:{patterns_module.token_regex(tokens)})", text) is not None
    assert ours is fnmatch.fnmatchcase(text, pattern)
