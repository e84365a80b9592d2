"""The store a checkout kept at ``.maf/runtime.db`` before worktrees shared one.

A run whose store is the shared one (see ``location``) and that finds such a store of ours
beside it says so on every run, until ``maf-preflight runtime sync --from sqlite --from-path
.maf/runtime.db`` has imported it (or the file is gone): a notice printed only once would be
missed by whoever was not at the terminal then, and the records it points at stay split until
imported. An import is remembered in ``<shared store dir>/imported.json`` with the file's size
and modification time; a store written to again after its import is reported again.

The original MAF keeps its database at the same path. That one is not ours and is never
reported or imported: ours sets ``PRAGMA user_version`` and has our migration table and our
sessions table, the original's has neither.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .factory import RuntimeSettings

MARKER_NAME = "imported.json"
#: Tables every schema version of ours has had; the original MAF's schema has neither.
OUR_TABLES = frozenset({"schema_migrations", "preflight_sessions"})


def is_our_store(path: Path) -> bool:
    """Whether ``path`` is a SQLite store of ours; read without leaving a trace on it (it may
    be the original MAF's, which must stay byte-identical)."""
    import sqlite3

    from .sqlite_readonly import header_user_version, schema_of

    try:
        if header_user_version(path) is None:  # not a SQLite file at all
            return False
        version, tables = schema_of(path, timeout=1.0)
    except (sqlite3.Error, OSError):  # unreadable, or locked past the timeout
        return False
    return version > 0 and set(tables) >= OUR_TABLES


def _fingerprint(path: Path) -> list[int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _marker(store_dir: Path) -> dict[str, list[int]]:
    try:
        data = json.loads((store_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def was_imported(store_dir: Path, path: Path) -> bool:
    """Whether ``path`` was imported into the store in ``store_dir`` and not written since."""
    fingerprint = _fingerprint(path)
    return fingerprint is not None and _marker(store_dir).get(str(path.resolve())) == fingerprint


def mark_imported(store_dir: Path, path: Path) -> None:
    """Remember that ``path`` is now imported into the store in ``store_dir``."""
    from ..atomic import write_atomic

    fingerprint = _fingerprint(path)
    if fingerprint is None:
        return
    marker = _marker(store_dir)
    marker[str(path.resolve())] = fingerprint
    store_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(
        store_dir / MARKER_NAME,
        (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode("utf-8"),
    )


def old_store(settings: RuntimeSettings) -> Path | None:
    """The rootdir's older store of ours beside the shared store, not yet imported."""
    path = settings.checkout_db_path
    if not settings.db_shared or path is None or not path.is_file():
        return None
    if os.path.realpath(path) == os.path.realpath(settings.db_path):
        return None
    if was_imported(settings.db_path.parent, path) or not is_our_store(path):
        return None
    return path


def old_store_notice(settings: RuntimeSettings, base: Path | None = None) -> str | None:
    """One line telling of the older store and how to import it, or ``None``; the path is
    shown relative to ``base`` (where the user types the command) when it is below it."""
    path = old_store(settings)
    if path is None:
        return None
    where = str(path)
    if base is not None and path.is_relative_to(base):
        where = str(path.relative_to(base))
    return (
        f"an older store of this checkout is at {where}, not the shared one; import it "
        f"with: maf-preflight runtime sync --from sqlite --from-path {where}"
    )
