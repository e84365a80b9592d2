"""Validated configs kept between runs, under a key made of everything that decides them.

Every gated run loads its configs: it parses each file, migrates the original camelCase format
and validates each config against the JSON Schema and the pydantic models, for the base body and
for every environment's override. Configs rarely change between runs, so what validation
produced is kept: a set of files whose key has an entry is rebuilt by the pydantic models alone
(``ConfigLoader.restore``), without YAML, migrations or jsonschema.

The key is a SHA-256 over:

- the path and the bytes of every config file, in loading order (the bytes hashed are the bytes
  parsed on a miss, so a file changed meanwhile is never stored under its old content's key);
- the environment whose overrides apply, ``maf_max_config_bytes``, the registered check types;
- what validates them: this package's version, the size and modification time of each of its
  source files (an editable install changes without a new version), the site directory of its
  dependencies (installing or upgrading a package changes it), the Python version, ``FORMAT``.

Nothing else goes into a loaded config: ``${ENV:...}`` references are resolved when a check
runs, never at load. The references between configs (escalation paths, integration cycles),
which also depend on ini settings, are checked on every run by ``gate.loading``.

Only what rebuilds exactly is stored:

- valid sets only: a set with an error loads in full every run, reporting it every time (exit
  code 11);
- no set with a config of a check type defined outside this package (a plugin's): its
  validation is the plugin's code, which the key cannot see;
- no set whose documents hold a value that JSON does not give back as it was (a YAML date).

An entry is used only when it reads back whole: a regular file of bounded size, JSON of the
shape written, the same key inside, every config validating again. Anything else (garbage, a
truncated or foreign file, a directory or a FIFO in its place) is a miss: the configs load in
full and a new entry replaces it. Entries are written atomically (``atomic.write_atomic``):
runs writing one key at once write the same bytes, and a reader sees a whole file or none.
Entries are JSON, never pickle: reading one runs no code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..atomic import write_atomic
from ..checks.base import CheckRegistry
from .documents import Document, DocumentError, format_of, read_bounded
from .loader import ConfigLoader, LoadedConfig

#: The entry format; change it whenever what is stored, or how it is rebuilt, changes.
FORMAT = 1
#: Entries kept in the directory: the newest, for the sets a checkout switches between.
KEEP = 16
#: Seconds after which a temporary file that was never renamed is a crashed writer's.
_STALE_TMP = 3600.0
_ENTRY_KEYS = frozenset({"format", "key", "files"})
_CONFIG_KEYS = frozenset({"path", "line", "source_format", "document"})


@dataclasses.dataclass(frozen=True)
class CacheKey:
    #: The entry's name: a SHA-256 of ``material``.
    digest: str
    #: What it is made of, also stored in the entry and compared when it is read.
    material: dict[str, Any]


def read_sources(files: Sequence[Path], max_bytes: int) -> dict[Path, bytes] | None:
    """The bytes of each file, read as loading reads them (regular files, at most
    ``max_bytes``); None when one cannot be read: the full load then says why."""
    sources: dict[Path, bytes] = {}
    for file in files:
        try:
            sources[file] = read_bounded(file, max_bytes)
        except DocumentError:
            return None
    return sources


def cache_key(
    sources: Mapping[Path, bytes], *, environment: str, max_bytes: int, registry: CheckRegistry
) -> CacheKey:
    material: dict[str, Any] = {
        "format": FORMAT,
        "code": _code_fingerprint(),
        "environment": environment,
        "max_bytes": max_bytes,
        "check_types": registry.names(),
        "files": [[str(path), hashlib.sha256(raw).hexdigest()] for path, raw in sources.items()],
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return CacheKey(hashlib.sha256(text.encode()).hexdigest(), material)


def _code_fingerprint() -> str:
    """This package's version and source files, its dependencies' site directory, Python."""
    import pydantic  # imported already: the loader's models are pydantic models

    from .. import __version__

    digest = hashlib.sha256(f"{__version__}\0{sys.version}\0".encode())
    pending = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    while pending:
        with os.scandir(pending.pop()) as scanned:
            for entry in sorted(scanned, key=lambda e: e.name):
                if entry.name.endswith(".py"):
                    info = entry.stat()
                    digest.update(f"{entry.path}\0{info.st_mtime_ns}\0{info.st_size}\0".encode())
                elif entry.name != "__pycache__" and entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
    site = os.path.dirname(os.path.dirname(os.path.abspath(pydantic.__file__)))
    digest.update(f"{site}\0{os.stat(site).st_mtime_ns}".encode())
    return digest.hexdigest()


def _entry_limit(sources: Mapping[Path, bytes]) -> int:
    """The largest entry read for these files: about as big as the documents they hold (JSON's
    escapes can triple that); YAML aliases can make it bigger, and such a set is not cached."""
    return 65_536 + 8 * sum(len(raw) for raw in sources.values())


def entry_for(
    key: CacheKey,
    sources: Mapping[Path, bytes],
    loaded: Sequence[LoadedConfig],
    registry: CheckRegistry,
) -> bytes | None:
    """The entry of a valid set loaded from ``sources``, or None when it could not be rebuilt
    exactly from one (or would be too big to be read back)."""
    index = {path: i for i, (path, _) in enumerate(key.material["files"])}
    files: list[list[dict[str, Any]]] = [[] for _ in index]
    for config in loaded:
        at = index.get(str(config.file))
        if (
            at is None
            or not _own_types(config, registry)
            or not _exact(config.document)
            or not all(_exact(part) for part in config.path)
        ):
            return None
        files[at].append(
            {
                "path": list(config.path),
                "line": config.line,
                "source_format": config.source_format,
                "document": config.document,
            }
        )
    entry = {"format": FORMAT, "key": key.material, "files": files}
    data = json.dumps(entry, separators=(",", ":")).encode()
    return data if len(data) <= _entry_limit(sources) else None


def _own_types(config: LoadedConfig, registry: CheckRegistry) -> bool:
    """Whether every check type the config names (base body and overrides) is this package's."""
    if config.config_type != "smoke_test":
        return True
    bodies = [config.config.config, *config.config.environment_overrides.values()]
    names = {body["test_type"] for body in bodies if "test_type" in body}
    return all(isinstance(name, str) and registry.is_builtin(name) for name in names)


def _exact(value: Any) -> bool:
    """Whether JSON gives ``value`` back as it is: the same types, not just equal values."""
    stack = [value]
    while stack:  # not recursive: the nesting depth is the document's
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            if not all(type(key) is str for key in item):
                return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            if math.isnan(item):
                return False
        elif kind not in (str, int, bool, type(None)):
            return False
    return True


class ConfigCache:
    """The entries in one directory (see ``gate.loading`` for which)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: CacheKey) -> Path:
        return self.directory / f"{key.digest}.json"

    def load(
        self, key: CacheKey, sources: Mapping[Path, bytes], loader: ConfigLoader
    ) -> list[LoadedConfig] | None:
        """The configs of ``key``'s entry, rebuilt; None when there is none that can be used."""
        try:
            data = json.loads(read_bounded(self._path(key), _entry_limit(sources)))
            return _rebuild(data, key, sources, loader)
        except Exception:  # an entry that cannot be used is a miss, whatever is wrong with it
            return None

    def store(self, key: CacheKey, entry: bytes) -> None:
        """Write ``key``'s entry and drop the oldest beyond ``KEEP``; a cache that cannot be
        written is no error: the next run loads in full again."""
        try:
            write_atomic(self._path(key), entry)
        except OSError:
            return
        self._prune()

    def _prune(self) -> None:
        try:
            with os.scandir(self.directory) as scanned:
                found = [(e.stat().st_mtime, e.name) for e in scanned if e.is_file()]
        except OSError:
            return
        entries = sorted((m, n) for m, n in found if n.endswith(".json") and n[0] != ".")
        stale = [n for m, n in found if n.endswith(".tmp") and m < time.time() - _STALE_TMP]
        for name in [n for _, n in entries[:-KEEP]] + stale:
            # Another run may have removed it first, or it cannot be: either is fine.
            with contextlib.suppress(OSError):
                (self.directory / name).unlink()


def _rebuild(
    data: Any, key: CacheKey, sources: Mapping[Path, bytes], loader: ConfigLoader
) -> list[LoadedConfig]:
    """The configs of an entry read back; raises on anything not exactly as written."""
    if (
        not isinstance(data, dict)
        or data.keys() != _ENTRY_KEYS
        or data["format"] != FORMAT
        or data["key"] != key.material
        or not isinstance(data["files"], list)
        or len(data["files"]) != len(sources)
    ):
        raise ValueError("not an entry of this key")
    loaded: list[LoadedConfig] = []
    for (path, raw), configs in zip(sources.items(), data["files"], strict=True):
        # Line numbers of errors found later (duplicates, cycles) are read from the text.
        document = Document(path, format_of(path) or "", raw.decode("utf-8-sig"), data=None)
        if not isinstance(configs, list):
            raise ValueError("not a list of configs")
        for item in configs:
            if not isinstance(item, dict) or item.keys() != _CONFIG_KEYS:
                raise ValueError("not a config entry")
            where, line, source_format = item["path"], item["line"], item["source_format"]
            if (
                not isinstance(where, list)
                or not all(type(part) in (str, int) for part in where)
                or not (line is None or type(line) is int)
                or type(source_format) is not int
                or type(item["document"]) is not dict
            ):
                raise ValueError("not a config entry")
            loaded.append(
                loader.restore(document, tuple(where), line, source_format, item["document"])
            )
    return loaded
