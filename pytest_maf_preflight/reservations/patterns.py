"""Lease patterns (SPEC S3): validation, path matching and exact pattern overlap.

A lease pattern is a gitignore line without negation: a literal path (``src/app.py``), a
directory (``docs/``, which takes everything below it) or a glob (``src/**/*.py``). Matching a
path follows git exactly (``git check-ignore``, including git's own quirks, checked against the
real git in the tests), with two deliberate differences:

- a plain path, one without any glob character, is a path from the repository root, as if it
  began with ``/`` (git would let ``README.md`` match at any depth, and then every two top-level
  files would overlap through paths like ``README.md/setup.py``); globs without a slash
  (``*.lock``) still match at any depth;
- git compares bytes, these functions compare Python code points, so ``?`` or a ``[...]``
  class facing a non-ASCII character may decide differently from git.

Reservations read from mcp_agent_mail carry the ``agent_mail`` dialect: that server decides with
``fnmatch.fnmatchcase`` (``*`` and ``?`` cross ``/``), so a path is covered when either its rule
or the gitignore rule covers it; a conflict the server itself would report is never missed.

Overlap of two patterns is decided exactly: each pattern's cover language (the paths it takes)
is compiled into a small automaton over character ranges, and a breadth-first search over the
product of the two automata and a third one that accepts only valid relative paths looks for a
common path. That search also yields a witness path, which the tests confirm with
:func:`path_matches`.
"""

from __future__ import annotations

import bisect
import dataclasses
import fnmatch
import functools
import re
import warnings
from collections import deque
from collections.abc import Callable
from typing import Literal

Dialect = Literal["gitignore", "agent_mail"]

__all__ = [
    "Dialect",
    "GitignorePattern",
    "PatternError",
    "fnmatch_regex",
    "fnmatch_text",
    "gitignore_regex",
    "is_literal",
    "literal_prefix",
    "normalize_path",
    "overlap_witness",
    "parse_gitignore",
    "path_matches",
    "patterns_overlap",
    "token_regex",
    "validate_pattern",
]

MAX_PATTERN_LENGTH = 4096
# Product states explored before an overlap question is answered "yes" without proof. Patterns
# of realistic length stay far below it (the product of two 100-character patterns has about
# 40,000 states); hitting it errs towards reporting a conflict, as SPEC S3 asks.
OVERLAP_STATE_CAP = 500_000

_GLOB_SPECIAL = frozenset("*?[\\")


class PatternError(ValueError):
    """A lease pattern or a changed path that cannot be used; the message names it."""


# --- character predicates: sorted, disjoint, inclusive code point ranges --------------------

_MAX_CP = 0x10FFFF
Pred = tuple[tuple[int, int], ...]
# A token is ("one", pred): one character; ("star", pred): zero or more characters; or
# ("dirs", ANY): zero or more whole directories, "(.*/)?", including the slash after them.
Token = tuple[str, Pred]

ANY: Pred = ((0, _MAX_CP),)
SLASH: Pred = ((0x2F, 0x2F),)
NOT_SLASH: Pred = ((0, 0x2E), (0x30, _MAX_CP))
_DOT: Pred = ((0x2E, 0x2E),)
# Characters a path component may hold besides ".": everything but NUL, "/" and ".".
_PLAIN: Pred = ((1, 0x2D), (0x30, _MAX_CP))


def _normal(ranges: list[tuple[int, int]]) -> Pred:
    ranges.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _chars(text: str) -> Pred:
    return _normal([(ord(c), ord(c)) for c in text])


@functools.lru_cache(maxsize=4096)
def _one(char: str) -> Token:
    """The token of one literal character (shared: literal patterns are most of them)."""
    return ("one", ((ord(char), ord(char)),))


def _complement(pred: Pred) -> Pred:
    out: list[tuple[int, int]] = []
    start = 0
    for lo, hi in pred:
        if lo > start:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_CP:
        out.append((start, _MAX_CP))
    return tuple(out)


def _intersect(a: Pred, b: Pred) -> Pred:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _contains(pred: Pred, cp: int) -> bool:
    k = bisect.bisect_right(pred, (cp, _MAX_CP + 1)) - 1
    return k >= 0 and pred[k][0] <= cp <= pred[k][1]


_READABLE = [ord(c) for c in "abcdefghijklmnopqrstuvwxyz0123456789_-.ABCDEFGHIJKLMNOPQRSTUVWXYZ"]


def _pick(pred: Pred) -> str:
    """A character of a non-empty predicate, a readable one when there is one."""
    for cp in _READABLE:
        if _contains(pred, cp):
            return chr(cp)
    return chr(pred[0][0])


def _regex_class(pred: Pred) -> str:
    if pred == ANY:
        return "."
    if pred == NOT_SLASH:
        return "[^/]"
    if len(pred) == 1 and pred[0][0] == pred[0][1]:
        return re.escape(chr(pred[0][0]))
    if not pred:
        return "(?!)"
    parts = []
    for lo, hi in pred:
        parts.append(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}")
    return "[" + "".join(parts) + "]"


# --- validation ------------------------------------------------------------------------------


def _trim_trailing_spaces(text: str) -> str:
    """git's ``trim_trailing_spaces``: unescaped trailing spaces are not part of the pattern."""
    if not text.endswith(" "):
        return text
    last_space: int | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if c == " ":
            if last_space is None:
                last_space = i
        elif c == "\\":
            i += 1
            if i >= len(text):
                return text
            last_space = None
        else:
            last_space = None
        i += 1
    return text if last_space is None else text[:last_space]


def validate_pattern(raw: str) -> str:
    """The normalized pattern, or :class:`PatternError` saying what is wrong with it.

    A leading ``./`` goes (``./src`` becomes ``/src``: still anchored to the root, as meant);
    unescaped trailing spaces go, as git drops them. A leading ``/`` anchors the pattern to the
    repository root, it is not a filesystem path.
    """
    if not isinstance(raw, str):
        raise PatternError(f"a lease pattern must be a string, got {raw!r}")
    return _validated(raw)


@functools.lru_cache(maxsize=65536)
def _validated(raw: str) -> str:
    pattern = _trim_trailing_spaces(raw)
    if pattern.startswith("./"):
        rest = pattern[2:].lstrip("/")
        pattern = rest if "/" in rest.rstrip("/") else "/" + rest
    _check_pattern(raw, pattern)
    return pattern


def _check_pattern(raw: str, pattern: str) -> None:
    def bad(why: str) -> PatternError:
        return PatternError(f"invalid lease pattern {raw!r}: {why}")

    if not pattern.strip("/"):
        raise bad("it is empty (a lease must name a path or a glob)")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise bad(f"longer than {MAX_PATTERN_LENGTH} characters")
    if pattern.startswith("!"):
        raise bad("negation ('!') makes no sense for a lease; write \\! for a literal '!'")
    if pattern.startswith("#"):
        raise bad("it would be a comment in gitignore; write \\# for a literal '#'")
    if "\0" in pattern or "\n" in pattern or "\r" in pattern:
        raise bad("it contains a NUL, newline or carriage return")
    if pattern.startswith(("//", "~/")) or re.match(r"[A-Za-z]:[\\/]", pattern):
        raise bad(
            "absolute filesystem paths are not allowed; patterns are relative to the "
            "repository root (a single leading '/' anchors to it)"
        )
    body = pattern[1:] if pattern.startswith("/") else pattern
    body = body[:-1] if body.endswith("/") else body
    for part in body.split("/"):
        if part == "":
            raise bad("it contains an empty path component ('//')")
        if part in (".", ".."):
            raise bad(
                f"it contains a {part!r} component; patterns are relative to the repository root"
            )
    # Parsing raises for unterminated classes, unknown [:name:] classes and dangling escapes.
    _parse_gitignore(raw, pattern)


def normalize_path(raw: str) -> str:
    """A changed file's path as a POSIX path relative to the repository root.

    ``./`` and ``.`` components and repeated slashes go; absolute paths, ``..`` components,
    NUL and empty paths raise :class:`PatternError`.
    """
    if not isinstance(raw, str):
        raise PatternError(f"a path must be a string, got {raw!r}")
    if "\0" in raw:
        raise PatternError(f"invalid path {raw!r}: it contains a NUL")
    if raw.startswith("/") or re.match(r"[A-Za-z]:[\\/]", raw):
        raise PatternError(
            f"invalid path {raw!r}: absolute paths are not allowed; give it "
            "relative to the repository root"
        )
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PatternError(f"invalid path {raw!r}: '..' components are not allowed")
    if not parts:
        raise PatternError(f"invalid path {raw!r}: it is empty")
    return "/".join(parts)


def is_literal(pattern: str) -> bool:
    """True when the pattern has no glob or escape character (``*?[\\``): it names one path."""
    return not any(c in _GLOB_SPECIAL for c in pattern)


def literal_prefix(pattern: str) -> tuple[str, ...]:
    """The leading literal directories of an anchored pattern, above its last component.

    ``src/pkg/*.py`` -> ``("src", "pkg")``, ``a/b/c`` -> ``("a", "b")``, ``/docs/`` -> ``()``;
    unanchored patterns (``*.py``, ``docs/``) -> ``()``.
    """
    parsed = parse_gitignore(pattern)
    if not parsed.anchored:
        return ()
    parts = parsed.body.split("/")[:-1]
    out: list[str] = []
    for part in parts:
        if not is_literal(part):
            break
        out.append(part)
    return tuple(out)


# --- parsing into tokens ---------------------------------------------------------------------
_POSIX_CLASSES: dict[str, Pred] = {
    "alnum": _normal([(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)]),
    "alpha": _normal([(0x41, 0x5A), (0x61, 0x7A)]),
    "blank": _chars(" \t"),
    "cntrl": _normal([(0, 0x1F), (0x7F, 0x7F)]),
    "digit": _normal([(0x30, 0x39)]),
    "graph": _normal([(0x21, 0x7E)]),
    "lower": _normal([(0x61, 0x7A)]),
    "print": _normal([(0x20, 0x7E)]),
    "punct": _normal([(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)]),
    "space": _chars(" \t\n\r"),  # git's own ctype: no \v or \f
    "upper": _normal([(0x41, 0x5A)]),
    "xdigit": _normal([(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)]),
}


@dataclasses.dataclass(frozen=True)
class GitignorePattern:
    """A parsed gitignore pattern: its matching part as tokens, and how it applies."""

    anchored: bool
    must_be_dir: bool
    body: str  # without the anchoring "/" and the trailing "/"
    tokens: tuple[Token, ...]


def _simple_length(text: str) -> int:
    for i, c in enumerate(text):
        if c in _GLOB_SPECIAL:
            return i
    return len(text)


def parse_gitignore(pattern: str) -> GitignorePattern:
    """The pattern validated and parsed (cached); :class:`PatternError` when invalid."""
    return _parse_gitignore(pattern, validate_pattern(pattern))


@functools.lru_cache(maxsize=65536)
def _parse_gitignore(raw: str, pattern: str) -> GitignorePattern:
    must_be_dir = pattern.endswith("/")
    body = pattern[:-1] if must_be_dir else pattern
    # A plain path (no glob character) is a path from the repository root, as it is for
    # mcp_agent_mail: under gitignore's rule "README.md" would match at any depth, and every
    # two top-level files would "overlap" through paths like README.md/setup.py.
    anchored = "/" in body or _simple_length(body) == len(body)
    if body.startswith("/"):
        body = body[1:]
    # git hands the pattern to wildmatch after its literal prefix, so a "**" right at the
    # first special character counts as being at the start of the pattern (git's quirk:
    # "a/b**/c" matches "a/bx/y/c").
    start = _simple_length(body) if anchored else 0
    tokens = _wildmatch_tokens(raw, body, start, pathname=anchored)
    return GitignorePattern(anchored, must_be_dir, body, tokens)


def _wildmatch_tokens(raw: str, text: str, start: int, *, pathname: bool) -> tuple[Token, ...]:
    """git's ``wildmatch`` with ``WM_PATHNAME``, as tokens."""

    def bad(why: str) -> PatternError:
        return PatternError(f"invalid lease pattern {raw!r}: {why}")

    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                raise bad("it ends with a lone backslash (an escape of nothing)")
            tokens.append(_one(text[i + 1]))
            i += 2
        elif c == "?":
            tokens.append(("one", NOT_SLASH))
            i += 1
        elif c == "*":
            j = i
            while j < n and text[j] == "*":
                j += 1
            if j - i >= 2 and pathname and (i == start or text[i - 1] == "/"):
                if j == n or text[j] == "/":
                    if j < n:
                        tokens.append(("dirs", ANY))
                        i = j + 1
                        continue
                    tokens.append(("star", ANY))
                    i = j
                    continue
                if text.startswith("\\/", j):
                    tokens.append(("star", ANY))
                    i = j
                    continue
            tokens.append(("star", NOT_SLASH))
            i = j
        elif c == "[":
            pred, i = _git_class(text, i, bad)
            tokens.append(("one", pred))
        else:
            tokens.append(_one(c))
            i += 1
    return tuple(tokens)


def _git_class(text: str, i: int, bad: Callable[[str], PatternError]) -> tuple[Pred, int]:
    """The ``[...]`` starting at ``text[i]``: its predicate and the index after its ``]``."""
    n = len(text)
    j = i + 1
    negated = j < n and text[j] in "!^"
    if negated:
        j += 1
    ranges: list[tuple[int, int]] = []
    prev: str | None = None
    first = True
    while True:
        if j >= n:
            raise bad("'[' opens a character class that is never closed with ']'")
        ch = text[j]
        if ch == "]" and not first:
            break
        first = False
        if ch == "\\":
            j += 1
            if j >= n:
                raise bad("'[' opens a character class that is never closed with ']'")
            ch = text[j]
            ranges.append((ord(ch), ord(ch)))
            prev = ch
        elif ch == "-" and prev is not None and j + 1 < n and text[j + 1] != "]":
            j += 1
            hi = text[j]
            if hi == "\\":
                j += 1
                if j >= n:
                    raise bad("'[' opens a character class that is never closed with ']'")
                hi = text[j]
            ranges.append((ord(prev), ord(hi)))
            prev = None
        elif ch == "[" and j + 1 < n and text[j + 1] == ":":
            close = text.find("]", j + 2)
            if close < 0:
                raise bad("'[' opens a character class that is never closed with ']'")
            name = text[j + 2 : close]
            if len(name) < 1 or not name.endswith(":"):
                # Not a [:name:] class after all: a literal "[", then go on after it.
                ranges.append((ord("["), ord("[")))
                prev = "["
            else:
                cls = _POSIX_CLASSES.get(name[:-1])
                if cls is None:
                    raise bad(
                        f"unknown character class '[:{name}]'; known: "
                        + ", ".join(sorted(_POSIX_CLASSES))
                    )
                ranges.extend(cls)
                prev = None
                j = close
        else:
            ranges.append((ord(ch), ord(ch)))
            prev = ch
        j += 1
    pred = _normal(ranges)
    if negated:
        pred = _complement(pred)
    return _intersect(pred, NOT_SLASH), j + 1


def _fnmatch_tokens(pattern: str) -> tuple[Token, ...]:
    """Python's ``fnmatch.translate`` (3.10 to 3.13), as tokens."""
    tokens: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            tokens.append(("star", ANY))
        elif c == "?":
            tokens.append(("one", ANY))
        elif c == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                tokens.append(("one", _chars("[")))
                continue
            tokens.append(("one", _fnmatch_class(pattern, i, j)))
            i = j + 1
        else:
            tokens.append(_one(c))
    return tuple(tokens)


def _fnmatch_class(pat: str, i: int, j: int) -> Pred:
    """The set ``fnmatch.translate`` builds for ``pat[i:j]`` (the text between the brackets)."""
    negated = pat[i] == "!" if i < j else False
    if "-" not in pat[i:j]:
        chunks = [pat[i:j]]
    else:
        chunks = []
        k = i + 2 if pat[i] == "!" else i + 1
        while True:
            k = pat.find("-", k, j)
            if k < 0:
                break
            chunks.append(pat[i:k])
            i = k + 1
            k = k + 3
        chunk = pat[i:j]
        if chunk:
            chunks.append(chunk)
        else:
            chunks[-1] += "-"
        for k in range(len(chunks) - 1, 0, -1):
            if chunks[k - 1][-1] > chunks[k][0]:
                chunks[k - 1] = chunks[k - 1][:-1] + chunks[k][1:]
                del chunks[k]
    stuff = "-".join(chunks)
    if not stuff:
        return ()
    if stuff == "!":
        return ANY
    if negated:
        chunks[0] = chunks[0][1:]
    # Between chunks a "-" makes a range of the characters either side; everything else is
    # literal (translate escapes it).
    ranges: list[tuple[int, int]] = []
    for k, chunk in enumerate(chunks):
        lo_skip = 1 if k > 0 else 0
        hi_skip = 1 if k < len(chunks) - 1 else 0
        ranges.extend((ord(ch), ord(ch)) for ch in chunk[lo_skip : len(chunk) - hi_skip])
        if k < len(chunks) - 1:
            ranges.append((ord(chunk[-1]), ord(chunks[k + 1][0])))
    pred = _normal(ranges)
    return _complement(pred) if negated else pred


# --- cover regexes for path_matches ----------------------------------------------------------


def token_regex(tokens: tuple[Token, ...]) -> str:
    """The regex text of a token sequence (no anchors, no flags)."""
    out = []
    for kind, pred in tokens:
        cls = _regex_class(pred)
        out.append(cls if kind == "one" else "(?:.*/)?" if kind == "dirs" else cls + "*")
    return "".join(out)


@functools.lru_cache(maxsize=65536)
def gitignore_regex(pattern: str) -> re.Pattern[str]:
    """The regex whose ``fullmatch`` tells whether a path is covered by a gitignore pattern."""
    parsed = _parse_gitignore(pattern, validate_pattern(pattern))
    body = token_regex(parsed.tokens)
    tail = "/.+" if parsed.must_be_dir else "(?:/.+)?"
    head = "" if parsed.anchored else "(?:.*/)?"
    return re.compile(f"(?s:{head}{body}{tail})")


def fnmatch_text(pattern: str) -> str:
    """The text agent_mail's fnmatch rule is applied to: the normalized pattern without a
    leading "/" (reservations are relative to the project; stripping it only widens)."""
    return validate_pattern(pattern).lstrip("/")


@functools.lru_cache(maxsize=65536)
def fnmatch_regex(pattern: str) -> re.Pattern[str]:
    """``fnmatch.fnmatchcase``'s regex for a pattern's :func:`fnmatch_text` (use ``match``; it
    ends with ``\\Z``)."""
    # Python's own translation, so the server's rule is followed to the letter; re may warn
    # about sets it reads as possibly nested ("[[").
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return re.compile(fnmatch.translate(fnmatch_text(pattern)))


def path_matches(path: str, pattern: str, dialect: Dialect = "gitignore") -> bool:
    """Is ``path`` (a normalized file path relative to the root) covered by ``pattern``?

    gitignore: as ``git check-ignore`` decides it for a file at ``path``: the pattern matches the
    path or one of its parent directories. ``agent_mail``: that, or ``fnmatch.fnmatchcase``.
    Raises :class:`PatternError` for an invalid pattern.
    """
    if gitignore_regex(pattern).fullmatch(path) is not None:
        return True
    return dialect == "agent_mail" and fnmatch_regex(pattern).match(path) is not None


# --- automata and overlap --------------------------------------------------------------------


@dataclasses.dataclass
class _NFA:
    edges: list[list[tuple[Pred, int]]] = dataclasses.field(default_factory=list)
    eps: list[list[int]] = dataclasses.field(default_factory=list)
    accept: set[int] = dataclasses.field(default_factory=set)

    def state(self) -> int:
        self.edges.append([])
        self.eps.append([])
        return len(self.edges) - 1

    def chain(self, cur: int, tokens: tuple[Token, ...]) -> int:
        for kind, pred in tokens:
            if kind == "one":
                nxt = self.state()
                self.edges[cur].append((pred, nxt))
                cur = nxt
            elif kind == "star":
                loop = self.state()
                self.eps[cur].append(loop)
                self.edges[loop].append((pred, loop))
                cur = loop
            else:  # dirs: (.*/)?
                loop, nxt = self.state(), self.state()
                self.eps[cur] += [nxt, loop]
                self.edges[loop] += [(ANY, loop), (SLASH, nxt)]
                cur = nxt
        return cur

    def tail(self, cur: int, must_be_dir: bool) -> None:
        """Everything below a matched directory: "/" and anything (the path check keeps it
        non-empty); optional unless the pattern names directories only."""
        below = self.state()
        self.edges[cur].append((SLASH, below))
        self.edges[below].append((ANY, below))
        self.accept.add(below)
        if not must_be_dir:
            self.accept.add(cur)


@functools.lru_cache(maxsize=4096)
def _cover_nfa(pattern: str, dialect: Dialect) -> _NFA:
    normalized = validate_pattern(pattern)
    parsed = _parse_gitignore(pattern, normalized)
    nfa = _NFA()
    start = nfa.state()
    cur = start
    if not parsed.anchored:
        cur = nfa.chain(start, (("dirs", ANY),))
    nfa.tail(nfa.chain(cur, parsed.tokens), parsed.must_be_dir)
    if dialect == "agent_mail":
        fn_start = nfa.state()
        nfa.eps[start].append(fn_start)
        nfa.accept.add(nfa.chain(fn_start, _fnmatch_tokens(fnmatch_text(normalized))))
    return nfa


# The valid-path automaton: 0 at the start of a component, 1 after "." , 2 after "..", 3 inside
# a proper component (the only accepting state). Empty, "." and ".." components never occur in
# a normalized path, so no overlap is claimed on the strength of one.
_PATH_MOVES: dict[int, tuple[tuple[Pred, int], ...]] = {
    0: ((_DOT, 1), (_PLAIN, 3)),
    1: ((_DOT, 2), (_PLAIN, 3)),
    2: ((_DOT, 3), (_PLAIN, 3)),
    3: ((_DOT, 3), (_PLAIN, 3), (SLASH, 0)),
}


@functools.lru_cache(maxsize=65536)
def _overlap(a: str, b: str, dialect_a: Dialect, dialect_b: Dialect) -> tuple[bool, str | None]:
    na, nb = _cover_nfa(a, dialect_a), _cover_nfa(b, dialect_b)
    start = (0, 0, 0)
    parent: dict[tuple[int, int, int], tuple[tuple[int, int, int], str] | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        qa, qb, qp = node
        if qp == 3 and qa in na.accept and qb in nb.accept:
            chars: list[str] = []
            step = parent[node]
            while step is not None:
                chars.append(step[1])
                step = parent[step[0]]
            return True, "".join(reversed(chars))
        moves: list[tuple[tuple[int, int, int], str]] = []
        moves += [((ea, qb, qp), "") for ea in na.eps[qa]]
        moves += [((qa, eb, qp), "") for eb in nb.eps[qb]]
        for pa, ta in na.edges[qa]:
            for pb, tb in nb.edges[qb]:
                both = _intersect(pa, pb)
                if not both:
                    continue
                for pp, tp in _PATH_MOVES[qp]:
                    common = _intersect(both, pp)
                    if common:
                        moves.append(((ta, tb, tp), _pick(common)))
        for nxt, char in moves:
            if nxt not in parent:
                parent[nxt] = (node, char)
                queue.append(nxt)
        if len(parent) > OVERLAP_STATE_CAP:
            return True, None
    return False, None


def overlap_witness(
    a: str, b: str, dialect_a: Dialect = "gitignore", dialect_b: Dialect = "gitignore"
) -> str | None:
    """A shortest path covered by both patterns, or None when there is none (or when the
    search hit :data:`OVERLAP_STATE_CAP`, where :func:`patterns_overlap` says True)."""
    return _overlap(a, b, dialect_a, dialect_b)[1]


def patterns_overlap(
    a: str, b: str, dialect_a: Dialect = "gitignore", dialect_b: Dialect = "gitignore"
) -> bool:
    """True iff some valid relative file path is covered by both patterns (exact; True also
    when the search is too big to finish, erring towards a conflict)."""
    return _overlap(a, b, dialect_a, dialect_b)[0]
