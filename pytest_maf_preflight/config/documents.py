"""Reading config files (JSON, YAML, TOML) safely, and finding the line of a path inside them.

Parsing is bounded: a size limit, UTF-8 only, no binary, a budget on YAML alias expansion, a
limit on nesting depth.
Line lookup is only done when there is an error to report, so the common path stays fast.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import json
import os
import re
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .entries import probe, special_kind
from .errors import ConfigError, PathItem
from .migrations import snake

SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}
#: Nodes a YAML document may expand to through aliases before it is called a bomb.
YAML_NODE_BUDGET = 100_000
#: Deepest nesting of mappings and lists a config may have; real configs stay far below it,
#: and every later step (migration, validation, merging) may then safely recurse.
MAX_DEPTH = 64


class DocumentError(Exception):
    def __init__(self, error: ConfigError) -> None:
        self.error = error
        super().__init__(error.format())


@dataclasses.dataclass
class Document:
    """A parsed config file; ``data`` is plain JSON-like Python data."""

    path: Path
    format: str
    text: str
    data: Any
    _locator: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def line_of(self, path: Sequence[PathItem]) -> int | None:
        """1-based line of the deepest part of ``path`` found in the file, or None.

        ``path`` may use the migrated (snake_case) names: keys are compared in snake_case, and
        the fields a migration renames are also looked up under their original names.
        """
        if not self.text:  # data that never was a file (e.g. PreflightConfigManager.validate)
            return None
        try:
            if self._locator is None:
                self._locator = {"json": _JsonLocator, "yaml": _YamlLocator, "toml": _TomlLocator}[
                    self.format
                ](self.text)
            best: tuple[int, int] | None = None
            for spelling in _spellings(path):
                found = self._locator.find(spelling)
                if found is not None and (best is None or found[0] > best[0]):
                    best = found
            return best[1] if best else None
        except Exception:  # a locator must never turn an error report into a crash
            return None


#: Fields a migration renames (see ``migrations``): migrated name -> original (snake) name.
_RENAMED = {"timeout_ms": "timeout", "url": "connection_string"}


def _norm(part: PathItem) -> PathItem:
    return snake(part) if isinstance(part, str) else part


def _spellings(path: Sequence[PathItem]) -> list[tuple[PathItem, ...]]:
    """``path`` in snake_case, and with renamed fields under their original names."""
    normal = tuple(_norm(p) for p in path)
    out = [normal]
    if any(p in _RENAMED for p in normal):
        out.append(tuple(_RENAMED.get(p, p) if isinstance(p, str) else p for p in normal))
    return out


def format_of(path: Path) -> str | None:
    return SUFFIXES.get(path.suffix.lower())


def read_document(path: Path, max_bytes: int, raw: bytes | None = None) -> Document:
    """Read and parse one config file, raising ``DocumentError`` with a located message.

    ``raw``: the file's bytes, already read with ``read_bounded`` (what a cache key was made
    of), parsed instead of reading the file again.
    """
    fmt = format_of(path)
    if fmt is None:
        raise DocumentError(
            ConfigError(str(path), "unsupported file type; expected .json, .yaml, .yml or .toml")
        )
    if raw is None:
        raw = read_bounded(path, max_bytes)
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise DocumentError(
                ConfigError(
                    str(path), f"file is {encoding} text; expected UTF-8 {fmt.upper()}", line=1
                )
            )
    if b"\x00" in raw:
        raise DocumentError(
            ConfigError(
                str(path), f"file is binary (contains NUL bytes), expected {fmt.upper()} text"
            )
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DocumentError(
            ConfigError(str(path), f"file is not UTF-8 text (byte {exc.start})", line=line)
        ) from None
    if not text.strip():
        raise DocumentError(
            ConfigError(
                str(path),
                f"file is empty; expected a {fmt.upper()} config or a list under 'configs'",
                line=1,
            )
        )
    parse = {"json": _parse_json, "yaml": _parse_yaml, "toml": _parse_toml}[fmt]
    data = parse(path, text)
    document = Document(path=path, format=fmt, text=text, data=data)
    too_deep = too_deep_at(data)
    if too_deep is not None:
        raise DocumentError(
            ConfigError(
                str(path),
                f"nested more than {MAX_DEPTH} levels deep (below this path); a config "
                "never needs that",
                too_deep[:4],
                document.line_of(too_deep),
            )
        )
    return document


#: Byte order marks of the encodings a config is not in; UTF-32 LE starts with UTF-16 LE's BOM,
#: so it is tested first.
_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)
#: Open flags that never block (a FIFO swapped in after ``probe``) and never adopt a terminal.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)


def read_bounded(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes``; else a located error.

    Checked with ``stat`` before opening (a FIFO would block ``open``), and again on the open
    file, in case the path was swapped in between.
    """
    entry = probe(path)
    if entry.kind != "file":
        problem = entry.problem or (
            "is a directory; expected a config file" if entry.kind == "dir" else "no such file"
        )
        raise DocumentError(ConfigError(str(path), problem))
    try:
        fd = os.open(path, _OPEN_FLAGS)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise DocumentError(
                    ConfigError(
                        str(path),
                        f"is {special_kind(info.st_mode)}, not a regular file; expected "
                        "a config file",
                    )
                )
            if info.st_size > max_bytes:
                raise _too_big(path, f"{info.st_size:,}", max_bytes)
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentError(
            ConfigError(str(path), f"cannot read file: {exc.strerror or exc}")
        ) from None
    if len(raw) > max_bytes:  # it grew after fstat
        raise _too_big(path, f"more than {max_bytes:,}", max_bytes)
    return raw


def _too_big(path: Path, size: str, max_bytes: int) -> DocumentError:
    return DocumentError(
        ConfigError(
            str(path),
            f"file is {size} bytes; config files are limited to {max_bytes:,} bytes "
            "(ini maf_max_config_bytes)",
        )
    )


def too_deep_at(data: Any) -> tuple[PathItem, ...] | None:
    """The path of the first value nested deeper than ``MAX_DEPTH``, or None (no recursion)."""
    stack: list[tuple[Any, tuple[PathItem, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return path
        if isinstance(value, dict):
            stack.extend((item, (*path, str(key))) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
    return None


# --- JSON -------------------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


class _Constant(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise _Constant(name)


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            ConfigError(str(path), f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno)
        ) from None
    except _DuplicateKey as exc:
        locator = _JsonLocator(text)
        where = locator.duplicate or ((), None)
        raise DocumentError(
            ConfigError(
                str(path), f"invalid JSON: duplicate key {exc.args[0]!r}", where[0], where[1]
            )
        ) from None
    except _Constant as exc:
        locator = _JsonLocator(text)
        where = locator.constant or ((), None)
        raise DocumentError(
            ConfigError(
                str(path),
                f"invalid JSON: {exc.args[0]} is not a JSON value; expected a number",
                where[0],
                where[1],
            )
        ) from None
    except RecursionError:
        raise DocumentError(ConfigError(str(path), "invalid JSON: nested too deeply")) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise _conversion_error(path, "json", text, exc) from None


def _conversion_error(path: Path, fmt: str, text: str, exc: ValueError) -> DocumentError:
    """A value the parser read but Python refused to convert: above all an integer with more
    digits than ``sys.get_int_max_str_digits()`` (4300 by default), which no parser catches."""
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if not (limit and "integer string conversion" in str(exc)):
        return DocumentError(ConfigError(str(path), f"invalid {fmt.upper()}: {exc}"))
    # One linear pass over digit runs: a pattern with a {4300,} bound would backtrack.
    line = next(
        (
            text.count("\n", 0, run.start()) + 1
            for run in re.finditer(r"[0-9_]+", text)
            if len(run.group()) > limit
        ),
        None,
    )
    return DocumentError(
        ConfigError(
            str(path),
            f"invalid {fmt.upper()}: an integer has more than {limit:,} digits; no config "
            "value needs that many",
            line=line,
        )
    )


class _JsonLocator:
    """A small position-tracking JSON scanner, used only to report lines of errors.

    Keys are stored in snake_case (see ``Document.line_of``); it also notes the first
    duplicate key and the first NaN/Infinity, which the parser rejects without a position.
    """

    _WS = re.compile(r"[ \t\r\n]*")
    _STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
    _SCALAR = re.compile(r"[^,\]\}\s]+")
    _CONSTANTS = frozenset({"NaN", "Infinity", "-Infinity"})

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: dict[tuple[PathItem, ...], int] = {}
        self.duplicate: tuple[tuple[PathItem, ...], int] | None = None
        self.constant: tuple[tuple[PathItem, ...], int] | None = None
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]
        with contextlib.suppress(ValueError, IndexError, RecursionError):
            self._value(0, (), ())

    def _line(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _ws(self, pos: int) -> int:
        match = self._WS.match(self.text, pos)
        return match.end() if match else pos

    def _value(self, pos: int, path: tuple[PathItem, ...], key_path: tuple[PathItem, ...]) -> int:
        """Scan one value; ``path`` is normalized (snake_case), ``key_path`` as written."""
        pos = self._ws(pos)
        self.lines.setdefault(path, self._line(pos))
        char = self.text[pos]
        if char == "{":
            seen: set[str] = set()
            pos = self._ws(pos + 1)
            if self.text[pos] == "}":
                return pos + 1
            while True:
                pos = self._ws(pos)
                match = self._STRING.match(self.text, pos)
                if match is None:
                    raise ValueError("bad key")
                key = json.loads(match.group(0))
                if key in seen and self.duplicate is None:
                    self.duplicate = ((*key_path, key), self._line(pos))
                seen.add(key)
                self.lines.setdefault((*path, snake(key)), self._line(pos))
                pos = self._ws(match.end())
                pos = self._value(pos + 1, (*path, snake(key)), (*key_path, key))  # skip ':'
                pos = self._ws(pos)
                if self.text[pos] == "}":
                    return pos + 1
                pos += 1  # ','
        if char == "[":
            index = 0
            pos = self._ws(pos + 1)
            if self.text[pos] == "]":
                return pos + 1
            while True:
                pos = self._value(pos, (*path, index), (*key_path, index))
                pos = self._ws(pos)
                index += 1
                if self.text[pos] == "]":
                    return pos + 1
                pos += 1
        match = (self._STRING if char == '"' else self._SCALAR).match(self.text, pos)
        if match is None:
            raise ValueError("bad value")
        if match.group(0) in self._CONSTANTS and self.constant is None:
            self.constant = (key_path, self._line(pos))
        return match.end()

    def find(self, path: Sequence[PathItem]) -> tuple[int, int] | None:
        return _deepest(self.lines, path)


def _deepest(
    lines: dict[tuple[PathItem, ...], int], path: Sequence[PathItem]
) -> tuple[int, int] | None:
    """(how many parts of ``path`` were found, line of the deepest), or None."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return end, line
    return None


# --- YAML -------------------------------------------------------------------------------------


def _yaml_loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_yaml(path: Path, text: str) -> Any:
    import yaml

    try:
        node = yaml.compose(text, Loader=_yaml_loader())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        column = f" (column {mark.column + 1})" if mark else ""
        raise DocumentError(
            ConfigError(
                str(path), f"invalid YAML: {problem}{column}", line=mark.line + 1 if mark else None
            )
        ) from None
    except yaml.reader.ReaderError as exc:  # a character YAML forbids, e.g. a control one
        raise DocumentError(
            ConfigError(
                str(path),
                f"invalid YAML: {exc.reason} ({_codepoint(exc.character)})",
                line=text.count("\n", 0, exc.position) + 1,
            )
        ) from None
    except yaml.YAMLError as exc:  # its text spans lines; an error is reported on one
        raise DocumentError(
            ConfigError(str(path), "invalid YAML: " + " ".join(str(exc).split()))
        ) from None
    except RecursionError:  # the pure-Python composer recurses per nesting level
        raise DocumentError(ConfigError(str(path), "invalid YAML: nested too deeply")) from None
    if node is None:
        raise DocumentError(
            ConfigError(
                str(path), "file is empty; expected a YAML config or a list under 'configs'", line=1
            )
        )
    _check_yaml_nodes(path, node)
    try:
        return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:  # constructor errors, e.g. an unknown tag
        mark = getattr(exc, "problem_mark", None)
        raise DocumentError(
            ConfigError(
                str(path),
                f"invalid YAML: {getattr(exc, 'problem', exc)}",
                line=mark.line + 1 if mark else None,
            )
        ) from None
    except ValueError as exc:  # constructor errors that are not YAMLErrors: huge integers
        raise _conversion_error(path, "yaml", text, exc) from None
    except RecursionError:
        raise DocumentError(ConfigError(str(path), "invalid YAML: nested too deeply")) from None


def _codepoint(character: int | str) -> str:
    """``U+0001``: how a character that cannot be shown is named."""
    return f"U+{character if isinstance(character, int) else ord(character[:1] or ' '):04X}"


def _check_yaml_nodes(path: Path, root: Any) -> None:
    """Bound alias expansion and reject duplicate keys, which PyYAML would silently merge."""
    import yaml

    budget = YAML_NODE_BUDGET
    # Each entry's path is a linked list (parent, part), built into a tuple only for an
    # error: copying paths would make a deep (or self-referencing) document quadratic.
    Link = tuple[Any, PathItem] | None
    stack: list[tuple[Any, Link]] = [(root, None)]
    while stack:
        node, link = stack.pop()
        budget -= 1
        if budget < 0:
            raise DocumentError(
                ConfigError(
                    str(path),
                    f"YAML aliases expand to more than {YAML_NODE_BUDGET:,} nodes "
                    "(an alias bomb?); refusing to load",
                    line=root.start_mark.line + 1,
                )
            )
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen and key.value != "<<":
                        raise DocumentError(
                            ConfigError(
                                str(path),
                                f"duplicate key {key.value!r}",
                                _unlink((link, name)),
                                line=key.start_mark.line + 1,
                            )
                        )
                    seen.add(key.value)
                stack.append((key, link))
                stack.append((value, (link, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (link, i)) for i, item in enumerate(node.value))


def _unlink(link: Any) -> tuple[PathItem, ...]:
    parts: list[PathItem] = []
    while link is not None:
        link, part = link
        parts.append(part)
    return tuple(reversed(parts))


class _YamlLocator:
    """Follows a path through the composed YAML nodes (keys compared in snake_case)."""

    def __init__(self, text: str) -> None:
        import yaml

        self.root = yaml.compose(text, Loader=_yaml_loader())

    def find(self, path: Sequence[PathItem]) -> tuple[int, int] | None:
        import yaml

        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for depth, part in enumerate(path):
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and snake(str(key.value)) == part:
                        line = key.start_mark.line + 1
                        node = value
                        break
                else:
                    return depth, line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return depth, line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return depth, line
        return len(path), line


# --- TOML -------------------------------------------------------------------------------------

_TOML_LINE = re.compile(r"at line (\d+), column (\d+)")


def _parse_toml(path: Path, text: str) -> Any:
    from ..compat import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_LINE.search(message)
        message = _TOML_LINE.sub("", message).replace("()", "").strip().rstrip(".")
        raise DocumentError(
            ConfigError(
                str(path),
                f"invalid TOML: {message}" + (f" (column {match.group(2)})" if match else ""),
                line=int(match.group(1)) if match else None,
            )
        ) from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise DocumentError(ConfigError(str(path), "invalid TOML: nested too deeply")) from None
    except ValueError as exc:  # not a TOMLDecodeError: huge integers
        raise _conversion_error(path, "toml", text, exc) from None


_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+?)\s*=")


class _TomlLocator:
    """Best-effort: follow ``[table]`` / ``[[array]]`` headers and ``key =`` lines to a path."""

    def __init__(self, text: str) -> None:
        self.entries: list[tuple[tuple[PathItem, ...], int]] = []
        array_counts: dict[tuple[str, ...], int] = {}
        table: tuple[PathItem, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = _TOML_HEADER.match(line)
            if header:
                names = tuple(
                    snake(part.strip().strip("\"'")) for part in header.group(2).split(".")
                )
                if header.group(1) == "[[":
                    index = array_counts.get(names, -1) + 1
                    array_counts[names] = index
                    table = (*names[:-1], names[-1], index)
                else:
                    table = _resolve_table(names, array_counts)
                self.entries.append((table, number))
                continue
            key = _TOML_KEY.match(line)
            if key:
                self.entries.append(
                    (
                        (*table, *(snake(k.strip().strip("\"'")) for k in key.group(1).split("."))),
                        number,
                    )
                )

    def find(self, path: Sequence[PathItem]) -> tuple[int, int] | None:
        best: tuple[int, int] | None = None  # (matched length, line)
        for candidate, number in self.entries:
            length = _common_prefix(candidate, path)
            if length == len(candidate) and (best is None or length > best[0]):
                best = (length, number)
        return best


def _resolve_table(
    names: tuple[str, ...], arrays: dict[tuple[str, ...], int]
) -> tuple[PathItem, ...]:
    """``configs.config`` inside the 2nd ``[[configs]]`` is ``configs[1].config``."""
    out: list[PathItem] = []
    for i, name in enumerate(names):
        out.append(name)
        prefix = names[: i + 1]
        if prefix in arrays:
            out.append(arrays[prefix])
    return tuple(out)


def _common_prefix(a: Sequence[PathItem], b: Sequence[PathItem]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
