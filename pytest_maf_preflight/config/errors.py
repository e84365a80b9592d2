"""Located config errors: file, line (where the format allows), path in the document, and what
was expected."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PathItem = str | int

_KINDS: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def kind(value: Any, article: bool = False) -> str:
    """What ``value`` is, in JSON Schema's words (``object``, ``array``, ``integer``, ...);
    with ``article``: ``an object``, ``a string``. Other types give their Python name."""
    name = _KINDS.get(type(value), type(value).__name__)
    if not article or value is None:
        return name
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def format_path(path: Sequence[PathItem]) -> str:
    """``("config", "argv", 0)`` -> ``config.argv[0]``; the empty path is the whole document."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.isprintable() or not part:  # a key such as "\n" stays on one line
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


@dataclasses.dataclass(frozen=True)
class ConfigError:
    """One problem in one config file."""

    file: str
    message: str
    path: tuple[PathItem, ...] = ()
    line: int | None = None

    def format(self, root: Path | None = None) -> str:
        """``file:line: path: message`` on one line; files under ``root`` relative to it."""
        file, message = self.file, self.message
        if root is not None:
            with contextlib.suppress(ValueError):
                file = str(Path(self.file).relative_to(root))
            # Other files a message names (e.g. where a duplicate id was first defined).
            message = message.replace(f"{str(root).rstrip(os.sep)}{os.sep}", "")
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {format_path(self.path)}: {message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "path": format_path(self.path),
            "message": self.message,
        }


class ConfigLoadError(Exception):
    """Raised when configs cannot be loaded; carries every error found, not just the first."""

    def __init__(self, errors: Iterable[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(e.format() for e in self.errors))

    def format(self, root: Path | None = None) -> str:
        count = len(self.errors)
        head = f"{count} preflight config error{'s' if count != 1 else ''}:"
        return "\n".join([head, *("  " + e.format(root) for e in self.errors)])
