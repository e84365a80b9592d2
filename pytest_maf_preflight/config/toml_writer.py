"""A small TOML writer, because the standard library reads TOML (``tomllib``) but cannot write it.

It covers what config documents hold: tables, arrays of tables, inline arrays and tables,
strings (escaped as TOML requires), integers, floats, booleans and the date/time values
``tomllib`` produces, so that ``tomllib.loads(dumps(data)) == data``. Values TOML cannot express
(``None``, non-string keys, other objects) raise ``TomlWriteError`` naming where they are.

Layout: in each table the plain values come first, then sub-tables as ``[a.b]`` and lists of
tables as ``[[a.b]]``; tables that hold only sub-tables get no header of their own.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: Characters a basic string must escape: control characters, DEL, '"' and '\'.
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"',
            "\\": "\\\\"}
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\x7f"\\]')
#: A literal ('...') string may hold anything but a quote, newlines and control characters.
_LITERAL_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f']")
#: Inline arrays longer than this are spread over several lines.
_LINE_WIDTH = 88


class TomlWriteError(ValueError):
    """A value that TOML cannot represent."""


def dumps(data: Mapping[str, Any]) -> str:
    """Serialize a mapping as a TOML document."""
    if not isinstance(data, Mapping):
        raise TomlWriteError(f"a TOML document is a table, got {type(data).__name__}")
    lines: list[str] = []
    _table(data, (), (), lines, header=None)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


def _is_table_array(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
            and all(isinstance(item, Mapping) for item in value))


def _table(table: Mapping[Any, Any], path: tuple[str, ...], where: tuple[str | int, ...],
           lines: list[str], header: str | None) -> None:
    """Write one table; ``path`` names it in headers, ``where`` (with indices) in errors."""
    plain: list[tuple[str, Any]] = []
    tables: list[tuple[str, Mapping[Any, Any]]] = []
    arrays: list[tuple[str, Sequence[Any]]] = []
    for key, value in table.items():
        if not isinstance(key, str):
            raise TomlWriteError(f"{_where(where)}: TOML keys are strings, got {key!r}")
        if isinstance(value, Mapping) and value:
            tables.append((key, value))
        elif _is_table_array(value):
            arrays.append((key, value))
        else:
            plain.append((key, value))
    if header is not None and (plain or header.startswith("[[")):
        if lines:
            lines.append("")
        lines.append(header)
    for key, value in plain:
        lines.append(f"{_key(key)} = {_value(value, (*where, key), spread=True)}")
    for key, value in tables:
        sub = (*path, key)
        _table(value, sub, (*where, key), lines, header=f"[{_dotted(sub)}]")
    for key, items in arrays:
        sub = (*path, key)
        for index, item in enumerate(items):
            _table(item, sub, (*where, key, index), lines, header=f"[[{_dotted(sub)}]]")


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _basic_string(key)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_key(part) for part in path)


def _where(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(document)"


def _basic_string(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        char = match.group(0)
        return _ESCAPES.get(char) or f"\\u{ord(char):04x}"

    return '"' + _NEEDS_ESCAPE.sub(escape, text) + '"'


def _string(text: str) -> str:
    # Regular expressions and Windows paths read better without doubled backslashes.
    if "\\" in text and not _LITERAL_UNSAFE.search(text):
        return f"'{text}'"
    return _basic_string(text)


def _value(value: Any, path: tuple[str | int, ...], spread: bool = False) -> str:
    """One value; ``spread`` allows a long array over several lines (not inside inline values)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # always has a '.' or an exponent, which TOML accepts
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, datetime.time):
        if value.tzinfo is not None:
            raise TomlWriteError(f"{_where(path)}: TOML local times cannot carry a time zone")
        return value.isoformat()
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TomlWriteError(f"{_where(path)}: TOML keys are strings, got {key!r}")
            items.append(f"{_key(key)} = {_value(item, (*path, key))}")
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        parts = [_value(item, (*path, index)) for index, item in enumerate(value)]
        one_line = "[" + ", ".join(parts) + "]"
        if not spread or len(one_line) <= _LINE_WIDTH or len(parts) < 2:
            return one_line
        return "[\n" + "".join(f"    {part},\n" for part in parts) + "]"
    if value is None:
        raise TomlWriteError(f"{_where(path)}: TOML has no null value; remove the key instead")
    raise TomlWriteError(f"{_where(path)}: cannot write a {type(value).__name__} as TOML")
