"""Reading a SQLite file that belongs to someone else, without leaving a trace on it.

Used for the original MAF's database (``.maf/runtime.db``), which must stay byte-identical, and
for telling such a database apart from ours before our runtime opens anything for writing.

A plain ``mode=ro`` connection is not traceless: on a WAL database whose writers have all closed
(no ``-wal`` file) it creates ``-wal`` and ``-shm`` files and leaves them behind. So when no
``-wal`` or ``-journal`` file is present, the whole database is in the main file and it is read
with ``immutable=1`` (no locks, no side files); the file's identity, size and modification time
are compared before and after, and a read that raced a writer is done again, then the ordinary
``mode=ro`` way (by then the writer's ``-wal`` exists, so nothing new is created). When a
``-wal`` or ``-journal`` is present a writer is (or was) at work: ``mode=ro`` reads its committed
state through it. Every connection also sets ``PRAGMA query_only``.

This module imports :mod:`sqlite3`; it is imported only where a database is read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, TypeVar

T = TypeVar("T")

_MAGIC = b"SQLite format 3\x00"
#: Quiet reads tried before falling back to an ordinary read-only connection.
_QUIET_ATTEMPTS = 3


class _Fingerprint(NamedTuple):
    device: int
    inode: int
    size: int
    mtime_ns: int
    side_files: tuple[bool, bool]


def _fingerprint(path: Path) -> _Fingerprint:
    st = path.stat()
    return _Fingerprint(
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        (Path(f"{path}-wal").exists(), Path(f"{path}-journal").exists()),
    )


def _connect(path: Path, timeout: float, *, immutable: bool) -> sqlite3.Connection:
    uri = path.resolve().as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
    conn = sqlite3.connect(
        uri, uri=True, timeout=max(timeout, 0.001), isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA query_only = 1")
    except BaseException:
        conn.close()
        raise
    return conn


def _read(
    path: Path, timeout: float, work: Callable[[sqlite3.Connection], T], *, immutable: bool
) -> T:
    conn = _connect(path, timeout, immutable=immutable)
    try:
        # One read transaction: every statement of ``work`` sees the same snapshot.
        conn.execute("BEGIN")
        return work(conn)
    finally:
        conn.close()


def read_only(path: Path, work: Callable[[sqlite3.Connection], T], *, timeout: float = 5.0) -> T:
    """``work(conn)`` on a read-only, query-only connection to ``path``, in one read
    transaction; nothing is created, locked for writing or changed. ``sqlite3.Error`` and
    ``OSError`` propagate."""
    for _ in range(_QUIET_ATTEMPTS):
        before = _fingerprint(path)
        if any(before.side_files):
            break
        try:
            result = _read(path, timeout, work, immutable=True)
        except sqlite3.DatabaseError:
            if _fingerprint(path) == before:
                raise  # the file itself is bad, not a writer racing us
            continue
        if _fingerprint(path) == before:
            return result
    return _read(path, timeout, work, immutable=False)


def header_user_version(path: Path) -> int | None:
    """``PRAGMA user_version`` as the main file's header holds it (it can lag behind a WAL),
    or None when the file is not a SQLite database (or is empty)."""
    with open(path, "rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(_MAGIC):
        return None
    return int.from_bytes(header[60:64], "big", signed=True)


def schema_of(path: Path, *, timeout: float = 5.0) -> tuple[int, tuple[str, ...]]:
    """The database's user_version and its table names (SQLite's own ``sqlite_*`` left out)."""

    def work(conn: sqlite3.Connection) -> tuple[int, tuple[str, ...]]:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        names = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name "
            "NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        ).fetchall()
        return version, tuple(str(row[0]) for row in names)

    return read_only(path, work, timeout=timeout)


def foreign_tables(path: Path, *, timeout: float = 5.0) -> tuple[str, ...]:
    """The tables of the database at ``path`` when it is not ours: no migration of ours was
    ever applied (``user_version`` 0) and yet it has tables. Empty when it is ours, new, empty
    or no SQLite file at all (opening it says why)."""
    if not path.is_file():
        return ()
    version = header_user_version(path)
    if version is None or version != 0:
        return ()
    # The header can lag behind a WAL that our migrations were committed to: ask SQLite.
    version, tables = schema_of(path, timeout=timeout)
    return tables if version == 0 else ()
