"""The original TypeScript MAF's file leases, read-only, as one more lease source (SPEC S3, S5).

Agents still on the original MAF lease files in three places, all read here, none written:

- its SQLite runtime (``.maf/runtime.db``, ``core/runtime-factory.ts``): a file lease is a task
  ``file_<first 16 hex digits of sha256(path)>`` in state ``LEASED`` or ``RUNNING`` whose
  ``payload_json`` is ``{"type": "synthetic_file_lease", "filePath", "agentId"}``, with a
  ``leases`` row (``agent_id``, ``lease_expires_at`` in epoch milliseconds). The agent is the
  ``leases`` row's: a re-lease keeps the task's first payload.
- its reservation store (``store/reservation.ts``): table ``file_reservations`` (``file_path``,
  ``agent_id``, ``lease_expires_at`` in ms, ``status`` active/expired/released), created in
  ``.maf/runtime.db`` or, by its pre-commit hook, in ``.maf/reservations.db``.
- its file backend (``core/runtime-state.ts``): ``<agent-mail root>/reservations/reservations.db``,
  a JSON document despite the name: ``{"reservations": [{"agentId", "filePath", "expiresAt"
  (ISO text, or ms), "status"}]}``; the root is ``MAF_AGENT_MAIL_ROOT``, else ``.agent-mail``.

Each lease names one file, exactly (no globs) and exclusively (the original grants a file to one
agent at a time). Its path is as the agent gave it: relative paths are taken from the repository
root, absolute ones are mapped to repository paths when they lie in one of its checkouts, and
match nothing otherwise (they are counted in the report).

These places are looked for in every checkout of the repository (the main checkout and every
``git worktree add`` one: the original keeps its files under each agent's working directory, and
every worktree is the same repository), in the rootdir, and in the database our SQLite store
found at its own path and left alone. A place that does not exist is simply absent; one of our
own stores (a database with our migrations) is skipped; one that exists but cannot be read is an
``OriginalMafError``, so a reservation check fails closed. Expired, released and ``READY``
leases do not count; times are compared as numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .patterns import PatternError, normalize_path, validate_pattern

if TYPE_CHECKING:
    import sqlite3

#: The original's databases, relative to a checkout: its runtime, and the file its pre-commit
#: hook keeps ``file_reservations`` in.
DATABASES = (".maf/runtime.db", ".maf/reservations.db")
DEFAULT_MAIL_ROOT = ".agent-mail"
MAIL_ROOT_ENV = "MAF_AGENT_MAIL_ROOT"
#: The file backend's document, relative to the agent-mail root.
FILE_BACKEND = Path("reservations") / "reservations.db"
#: A file backend document larger than this is refused rather than read into memory.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_HELD_STATES = ("LEASED", "RUNNING")
_GLOB_SPECIAL = frozenset("*?[\\ ")


class OriginalMafError(Exception):
    """One line: which of the original's stores, where, and what is wrong with it."""


@dataclasses.dataclass(frozen=True)
class OriginalLease:
    agent: str
    path: str  # relative to the repository root, normalized
    expires_at: float  # epoch seconds
    pattern: str  # a lease pattern naming exactly ``path``
    source: str  # "leases" | "file_reservations" | "file_backend"
    location: str  # the file it was read from
    lease_id: str | None = None


@dataclasses.dataclass(frozen=True)
class OriginalReport:
    #: The stores read: (file, lease table or "file_backend", how many active leases).
    stores: tuple[tuple[str, str, int], ...]
    leases: tuple[OriginalLease, ...]
    #: Active leases' paths outside every checkout of the repository (or not usable as a
    #: path): they match nothing.
    outside: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Raw:
    agent: str
    path: str
    expires_at: float
    lease_id: str | None


# --- where ------------------------------------------------------------------------------------


def checkout_roots(start: Path) -> list[Path]:
    """Every checkout of the repository holding ``start`` (its own first, then the main one and
    the linked worktrees), and ``start``; just ``[start]`` outside git. Read from the git
    directories (``<common dir>/worktrees/*/gitdir``), no git subprocess. Raises
    ``GitDirError`` for a ``.git`` file git would not have written."""
    from ..gitdirs import find_checkout

    checkout = find_checkout(start)
    if checkout is None:
        return [start]
    roots = [checkout.top]
    if checkout.main_checkout is not None:
        roots.append(checkout.main_checkout)
    linked = checkout.common_dir / "worktrees"
    for entry in sorted(linked.iterdir()) if linked.is_dir() else ():
        try:
            # Holds the path of the worktree's ``.git`` file; a worktree whose directory is
            # gone (prunable) has nothing left to read.
            dot_git = Path((entry / "gitdir").read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            continue
        if dot_git.is_absolute() and dot_git.parent.is_dir():
            roots.append(dot_git.parent)
    return _unique([*roots, start])


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: set[str] = set()
    kept: list[Path] = []
    for path in paths:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept


def store_files(
    roots: Sequence[Path], environ: Mapping[str, str], extra_databases: Sequence[Path] = ()
) -> tuple[list[Path], list[Path]]:
    """The databases and file-backend documents to look for, existing or not."""
    databases = [root / name for root in roots for name in DATABASES]
    mail = Path(os.path.expanduser(environ.get(MAIL_ROOT_ENV) or DEFAULT_MAIL_ROOT))
    mail_roots = [mail] if mail.is_absolute() else [root / mail for root in roots]
    return (
        _unique([*databases, *extra_databases]),
        _unique(root / FILE_BACKEND for root in mail_roots),
    )


# --- reading ----------------------------------------------------------------------------------


def read_original_leases(
    roots: Sequence[Path],
    *,
    environ: Mapping[str, str],
    now: float,
    timeout: float,
    extra_databases: Sequence[Path] = (),
) -> OriginalReport:
    """The original's active file leases found in ``roots`` (checkouts of one repository)."""
    databases, documents = store_files(roots, environ, extra_databases)
    stores: list[tuple[str, str, int]] = []
    leases: list[OriginalLease] = []
    outside: list[str] = []
    found: list[tuple[Path, str, list[_Raw]]] = []
    for database in databases:
        for source, raws in _read_database(database, now, timeout):
            found.append((database, source, raws))
    for document in documents:
        raws_or_none = _read_document(document, now)
        if raws_or_none is not None:
            found.append((document, "file_backend", raws_or_none))
    for location, source, raws in found:
        kept = 0
        for raw in raws:
            path = repository_path(raw.path, roots)
            try:
                pattern = None if path is None else literal_pattern(path)
            except PatternError:  # a newline in the name, say: no pattern can name it
                pattern = None
            if path is None or pattern is None:
                outside.append(raw.path)
                continue
            kept += 1
            leases.append(
                OriginalLease(
                    raw.agent, path, raw.expires_at, pattern, source, str(location), raw.lease_id
                )
            )
        stores.append((str(location), source, kept))
    leases.sort(key=lambda lease: (lease.path, lease.agent, lease.source, lease.location))
    return OriginalReport(tuple(stores), tuple(leases), tuple(sorted(set(outside))))


def _fail(kind: str, location: Path, what: str) -> OriginalMafError:
    return OriginalMafError(
        f"original MAF {kind} {location}: {what} (fail closed; move it "
        "away if no agent uses the original MAF any more)"
    )


def _read_database(path: Path, now: float, timeout: float) -> list[tuple[str, list[_Raw]]]:
    """``[(source, active leases)]`` per lease table found; ``[]`` when there is no such file,
    it is empty, or it is one of our own stores."""
    import sqlite3

    from ..runtime.sqlite_readonly import header_user_version, read_only

    if not path.exists():
        return []
    try:
        if path.stat().st_size == 0:
            return []
        if header_user_version(path) is None:
            raise _fail("database", path, "not a SQLite database")
        return read_only(path, lambda conn: _query(conn, path, now), timeout=max(timeout, 0.001))
    except OSError as exc:
        raise _fail("database", path, f"cannot read: {exc.strerror or exc}") from None
    except sqlite3.Error as exc:
        raise _fail("database", path, f"cannot read: {exc}") from None


_COLUMNS = {
    "tasks": ("id", "state", "payload_json"),
    "leases": ("task_id", "agent_id", "lease_expires_at"),
    "file_reservations": ("id", "file_path", "agent_id", "lease_expires_at", "status"),
}


def _query(conn: sqlite3.Connection, path: Path, now: float) -> list[tuple[str, list[_Raw]]]:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    tables = {
        str(row[0])
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    }
    if version != 0 or "schema_migrations" in tables:
        return []  # one of our own stores (an older per-worktree one, say)
    for table in tables & set(_COLUMNS):
        columns = {
            str(row[0]) for row in conn.execute("SELECT name FROM pragma_table_info(?)", (table,))
        }
        missing = [c for c in _COLUMNS[table] if c not in columns]
        if missing:
            raise _fail("database", path, f"table {table!r} lacks column(s) {', '.join(missing)}")
    found: list[tuple[str, list[_Raw]]] = []
    if {"tasks", "leases"} <= tables:
        found.append(("leases", _task_leases(conn, path, now)))
    if "file_reservations" in tables:
        found.append(("file_reservations", _file_reservations(conn, path, now)))
    return found


def _task_leases(conn: sqlite3.Connection, path: Path, now: float) -> list[_Raw]:
    rows = conn.execute(
        "SELECT t.id, t.payload_json, l.agent_id, l.lease_expires_at FROM tasks t "
        "JOIN leases l ON l.task_id = t.id WHERE t.state IN (?, ?) "
        "AND t.id LIKE 'file\\_%' ESCAPE '\\' ORDER BY t.id",
        _HELD_STATES,
    ).fetchall()
    kept: list[_Raw] = []
    for task_id, payload_json, agent, expires in rows:
        where = f"task {task_id!r}"
        try:
            payload = json.loads(payload_json)
        except (TypeError, ValueError):
            raise _fail("database", path, f"{where}: payload_json is not JSON") from None
        if not isinstance(payload, dict) or payload.get("type") != "synthetic_file_lease":
            continue  # another synthetic task (a message, a heartbeat) that happens to be held
        raw = _raw(
            payload.get("filePath"),
            agent,
            _millis(expires, where, path, "database"),
            str(task_id),
            where,
            path,
            "database",
        )
        if raw.expires_at > now:
            kept.append(raw)
    return kept


def _file_reservations(conn: sqlite3.Connection, path: Path, now: float) -> list[_Raw]:
    rows = conn.execute(
        "SELECT id, file_path, agent_id, lease_expires_at FROM "
        "file_reservations WHERE status = 'active' ORDER BY id"
    ).fetchall()
    kept = []
    for row_id, file_path, agent, expires in rows:
        where = f"file_reservations row {row_id!r}"
        raw = _raw(
            file_path,
            agent,
            _millis(expires, where, path, "database"),
            None if row_id is None else str(row_id),
            where,
            path,
            "database",
        )
        if raw.expires_at > now:
            kept.append(raw)
    return kept


def _millis(value: object, where: str, path: Path, kind: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value) / 1000.0
    raise _fail(kind, path, f"{where}: lease expiry {value!r} is not epoch milliseconds")


def _raw(
    file_path: object,
    agent: object,
    expires_at: float,
    lease_id: str | None,
    where: str,
    path: Path,
    kind: str,
) -> _Raw:
    if not isinstance(file_path, str) or not file_path.strip():
        raise _fail(kind, path, f"{where}: the file path is missing or not text")
    if not isinstance(agent, str) or not agent.strip():
        raise _fail(kind, path, f"{where}: the agent id is missing or not text")
    return _Raw(agent.strip(), file_path, expires_at, lease_id)


def _read_document(path: Path, now: float) -> list[_Raw] | None:
    """The file backend's active leases; None when there is no such file."""
    from ..agent_mail.times import parse_time

    try:
        if not path.exists():
            return None
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise _fail("file backend", path, f"larger than {MAX_DOCUMENT_BYTES} bytes")
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise _fail("file backend", path, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise _fail("file backend", path, "not UTF-8 text") from None
    try:
        document: Any = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _fail("file backend", path, f"not JSON ({exc})") from None
    items = document.get("reservations") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise _fail("file backend", path, 'expected an object with a "reservations" list')
    kept = []
    for index, item in enumerate(items):
        where = f"reservations[{index}]"
        if not isinstance(item, dict):
            raise _fail("file backend", path, f"{where} is not an object")
        # A record without a status is counted: the stricter reading.
        if item.get("status", "active") != "active":
            continue
        expires = item.get("expiresAt")
        if isinstance(expires, str):
            try:
                expires_at = parse_time(expires)
            except ValueError:
                raise _fail(
                    "file backend", path, f"{where}: expiresAt {expires!r} is not a time"
                ) from None
        else:  # the original also accepts epoch milliseconds here
            expires_at = _millis(expires, where, path, "file backend")
        lease_id = item.get("id")
        raw = _raw(
            item.get("filePath"),
            item.get("agentId"),
            expires_at,
            None if lease_id is None else str(lease_id),
            where,
            path,
            "file backend",
        )
        if raw.expires_at > now:
            kept.append(raw)
    return kept


# --- paths ------------------------------------------------------------------------------------


def repository_path(raw: str, roots: Sequence[Path]) -> str | None:
    """The leased file as a path relative to the repository root, or None when it lies outside
    every checkout in ``roots`` (or is no usable path)."""
    if not os.path.isabs(raw):
        try:
            return normalize_path(raw)
        except PatternError:
            return None
    candidates = {os.path.normpath(raw), os.path.realpath(raw)}
    for root in roots:
        for base in {os.path.abspath(root), os.path.realpath(root)}:
            for candidate in candidates:
                rel = os.path.relpath(candidate, base)
                if rel != os.curdir and rel != os.pardir and not rel.startswith(os.pardir + os.sep):
                    return Path(rel).as_posix()
    return None


def literal_pattern(path: str) -> str:
    """A lease pattern that names exactly ``path`` (a normalized repository path): the path
    itself, or, when it holds glob characters, spaces or a leading ``!``/``#``, an anchored,
    escaped copy."""
    if not any(c in _GLOB_SPECIAL for c in path) and not path.startswith(("!", "#")):
        return path
    pattern = "/" + "".join(f"\\{c}" if c in _GLOB_SPECIAL else c for c in path)
    validate_pattern(pattern)
    return pattern
