"""Many lease patterns against many paths, without trying every pair (SPEC S10).

:meth:`PatternIndex.covering` answers exactly what checking every pattern with
:func:`~.patterns.path_matches` would, in the order the patterns were given. Only candidates are
tried:

- literal patterns (``src/app.py``, ``docs/``) by dict lookups: anchored ones under each of the
  path's ancestors, unanchored ones (``build``) under each of its components;
- anchored globs under their literal text prefix (``src/pkg/`` for ``src/pkg/*.py``), looked up
  with the prefixes of the path of each length in use;
- unanchored globs (``*.lock``, ``test_*``) under the literal start or end of the one component
  they match, looked up with each component's starts and ends;
- agent_mail's fnmatch rule under its literal text prefix;
- the rest (globs starting with a wildcard: ``*/x.py``, ``**/build``) behind one combined
  regex, so a path none of them covers costs one match.

Candidates are confirmed with the pattern's own matcher; regexes are compiled once per pattern
and cached across indexes.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from .patterns import (
    ANY,
    NOT_SLASH,
    Dialect,
    Token,
    fnmatch_regex,
    fnmatch_text,
    gitignore_regex,
    parse_gitignore,
    token_regex,
    validate_pattern,
)

T = TypeVar("T")

__all__ = ["PatternIndex"]


@dataclasses.dataclass(frozen=True)
class _Matcher:
    """An anchored glob's test for "covers this path" (same answers as its regex)."""

    pattern: str
    test: Callable[[str], bool]


@functools.lru_cache(maxsize=65536)
def _anchored_matcher(pattern: str) -> _Matcher:
    return _Matcher(pattern, _anchored_test(pattern))


def _anchored_test(pattern: str) -> Callable[[str], bool]:
    """The usual shapes tested without a regex: compiling thousands of them is what would
    take the time in a fresh process."""
    parsed = parse_gitignore(pattern)
    tokens = parsed.tokens
    prefix = "".join(_literal_run(tokens))
    rest = tokens[len(prefix) :]
    if not parsed.must_be_dir and rest == (("star", ANY),):
        # "src/pkg/**": everything starting with the prefix.
        return lambda path: path.startswith(prefix)
    suffix_tokens = rest[1:]
    suffix = "".join(_literal_run(tuple(reversed(suffix_tokens))))[::-1]
    if (
        rest
        and rest[0] == ("star", NOT_SLASH)
        and len(suffix) == len(suffix_tokens)
        and "/" not in suffix
    ):
        # "src/pkg/*.py", "tests/test_*.py": the prefix, then one component's remainder that
        # ends with the suffix; below it only for a directory.
        start = len(prefix)
        need = len(suffix)
        must_be_dir = parsed.must_be_dir

        def match(path: str) -> bool:
            if not path.startswith(prefix):
                return False
            end = path.find("/", start)
            if end < 0:
                return not must_be_dir and len(path) - start >= need and path.endswith(suffix)
            return end - start >= need and path.endswith(suffix, start, end)

        return match
    regex = gitignore_regex(pattern)
    return lambda path: regex.fullmatch(path) is not None


def _literal_run(tokens: tuple[Token, ...]) -> list[str]:
    """The characters of the leading tokens that match exactly one character."""
    out = []
    for kind, pred in tokens:
        if kind != "one" or len(pred) != 1 or pred[0][0] != pred[0][1]:
            break
        out.append(chr(pred[0][0]))
    return out


def _fnmatch_prefix(pattern: str) -> str:
    """The text before fnmatch's first wildcard: every path it matches starts with it."""
    for i, c in enumerate(pattern):
        if c in "*?[":
            return pattern[:i]
    return pattern


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Where a pattern is filed in an index, worked out once per pattern (cached)."""

    key: tuple[str, Dialect]  # the normalized pattern and its dialect
    kind: str  # exact, name, anchored, rest, comp_start, comp_end or comp_rest
    text: str  # the literal text it is filed under
    must_be_dir: bool
    matcher: _Matcher | None  # anchored and rest
    component: re.Pattern[str] | None  # comp_*: matches the one component an unanchored glob
    fn_prefix: str  # agent_mail: fnmatch's literal prefix and regex
    fn_regex: re.Pattern[str] | None


@functools.lru_cache(maxsize=65536)
def _plan(pattern: str, dialect: Dialect) -> _Plan:
    normalized = validate_pattern(pattern)
    parsed = parse_gitignore(normalized)
    literal = "".join(_literal_run(parsed.tokens))
    fn_prefix, fn_regex = "", None
    if dialect == "agent_mail":
        fn_prefix, fn_regex = _fnmatch_prefix(fnmatch_text(normalized)), fnmatch_regex(normalized)
    matcher, component = None, None
    if len(literal) == len(parsed.tokens):
        kind = "exact" if parsed.anchored else "name"
    elif parsed.anchored:
        kind = "anchored" if literal else "rest"
        matcher = _anchored_matcher(normalized)
    else:
        component = re.compile(f"(?s:{token_regex(parsed.tokens)})")
        end = "".join(_literal_run(tuple(reversed(parsed.tokens))))[::-1]
        kind = "comp_start" if literal else "comp_end" if end else "comp_rest"
        literal = literal or end
    return _Plan(
        (normalized, dialect),
        kind,
        literal,
        parsed.must_be_dir,
        matcher,
        component,
        fn_prefix,
        fn_regex,
    )


@functools.lru_cache(maxsize=1024)
def _combined(regexes: tuple[re.Pattern[str], ...]) -> re.Pattern[str]:
    """One regex whose ``fullmatch`` succeeds when one of ``regexes`` would."""
    return re.compile("|".join(f"(?:{r.pattern})" for r in regexes))


class _Lookup:
    """Keys of patterns filed under strings, looked up by the prefixes (or suffixes) of a text
    for every length in use."""

    def __init__(self) -> None:
        self.table: dict[str, list[int]] = {}
        self.lengths: list[int] = []

    def add(self, text: str, key: int) -> None:
        self.table.setdefault(text, []).append(key)

    def freeze(self) -> None:
        self.lengths = sorted({len(text) for text in self.table})

    def prefixes(self, text: str) -> list[int]:
        table, size = self.table, len(text)
        return [
            key for length in self.lengths if length <= size for key in table.get(text[:length], ())
        ]

    def suffixes(self, text: str) -> list[int]:
        table, size = self.table, len(text)
        return [
            key
            for length in self.lengths
            if length <= size
            for key in table.get(text[size - length :], ())
        ]


class PatternIndex(Generic[T]):
    """Patterns with payloads; :meth:`covering` gives the payloads of those covering a path.

    Invalid patterns raise :class:`~.patterns.PatternError` when the index is built.
    """

    def __init__(self, entries: Iterable[tuple[str, Dialect, T]]) -> None:
        self._payloads: list[T] = []
        self._owners: list[list[int]] = []  # per key: the entries (payload indexes) it has
        keys: dict[tuple[str, Dialect], int] = {}
        self._exact: dict[str, list[int]] = {}  # literal anchored: covers what is below
        self._exact_files: dict[str, list[int]] = {}  # ... and itself, unless dir-only
        self._names: dict[str, list[tuple[int, bool]]] = {}
        self._anchored = _Lookup()
        self._comp_start = _Lookup()
        self._comp_end = _Lookup()
        self._fn = _Lookup()
        self._tests: dict[int, Callable[[str], bool]] = {}
        self._fn_regex: dict[int, re.Pattern[str]] = {}
        self._comp_regex: dict[int, tuple[re.Pattern[str], bool]] = {}
        self._comp_rest: list[int] = []
        self._rest: list[int] = []
        self._rest_regexes: list[re.Pattern[str]] = []
        for pattern, dialect, payload in entries:
            self._payloads.append(payload)
            plan = _plan(pattern, dialect)
            key = keys.get(plan.key)
            if key is None:
                key = keys[plan.key] = len(self._owners)
                self._owners.append([])
                self._file(key, plan)
            self._owners[key].append(len(self._payloads) - 1)
        for lookup in (self._anchored, self._comp_start, self._comp_end, self._fn):
            lookup.freeze()
        self._single = len(self._payloads) == len(self._owners)
        self._prefilter = _combined(tuple(self._rest_regexes)) if self._rest else None
        self._comp_prefilter = (
            _combined(tuple(self._comp_regex[k][0] for k in self._comp_rest))
            if self._comp_rest
            else None
        )

    def _file(self, key: int, plan: _Plan) -> None:
        if plan.kind == "exact":
            self._exact.setdefault(plan.text, []).append(key)
            if not plan.must_be_dir:
                self._exact_files.setdefault(plan.text, []).append(key)
        elif plan.kind == "name":
            self._names.setdefault(plan.text, []).append((key, plan.must_be_dir))
        elif plan.kind in ("anchored", "rest"):
            assert plan.matcher is not None
            self._tests[key] = plan.matcher.test
            if plan.kind == "anchored":
                self._anchored.add(plan.text, key)
            else:
                self._rest.append(key)
                self._rest_regexes.append(gitignore_regex(plan.matcher.pattern))
        else:
            assert plan.component is not None
            self._comp_regex[key] = (plan.component, plan.must_be_dir)
            if plan.kind == "comp_start":
                self._comp_start.add(plan.text, key)
            elif plan.kind == "comp_end":
                self._comp_end.add(plan.text, key)
            else:
                self._comp_rest.append(key)
        if plan.fn_regex is not None:
            self._fn.add(plan.fn_prefix, key)
            self._fn_regex[key] = plan.fn_regex

    def covering(self, path: str) -> list[T]:
        """The payloads of the patterns covering ``path`` (a normalized relative path), in the
        order the patterns were given."""
        found: set[int] = set()
        add = found.add
        names = self._names
        if self._exact:
            exact = self._exact
            slash = path.find("/")
            while slash >= 0:
                found.update(exact.get(path[:slash], ()))
                slash = path.find("/", slash + 1)
            found.update(self._exact_files.get(path, ()))
        if names:
            components = path.split("/")
            last = len(components) - 1
            for i, name in enumerate(components):
                for key, must_be_dir in names.get(name, ()):
                    if i < last or not must_be_dir:
                        add(key)
        tests = self._tests
        if tests:
            table, size = self._anchored.table, len(path)
            for length in self._anchored.lengths:
                if length > size:
                    break
                for key in table.get(path[:length], ()):
                    if key not in found and tests[key](path):
                        add(key)
        if self._comp_regex:
            self._components(path.split("/"), found)
        if self._prefilter is not None and self._prefilter.fullmatch(path) is not None:
            for key in self._rest:
                if key not in found and tests[key](path):
                    add(key)
        if self._fn_regex:
            fn_regex = self._fn_regex
            for key in self._fn.prefixes(path):
                if key not in found and fn_regex[key].match(path) is not None:
                    add(key)
        if not found:
            return []
        payloads = self._payloads
        if self._single:
            return [payloads[self._owners[key][0]] for key in sorted(found)]
        return [payloads[i] for i in sorted(i for key in found for i in self._owners[key])]

    def _components(self, components: list[str], found: set[int]) -> None:
        last = len(components) - 1
        regexes = self._comp_regex
        for i, name in enumerate(components):
            candidates = [*self._comp_start.prefixes(name), *self._comp_end.suffixes(name)]
            if self._comp_prefilter is not None and self._comp_prefilter.fullmatch(name):
                candidates += self._comp_rest
            for key in candidates:
                if key in found:
                    continue
                regex, must_be_dir = regexes[key]
                if (i < last or not must_be_dir) and regex.fullmatch(name) is not None:
                    found.add(key)
