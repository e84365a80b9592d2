"""The ``sqlite`` runtime (SPEC S5): one database file shared by every process of a project.

WAL journal, a busy timeout, foreign keys on, ``synchronous=NORMAL``. Every write is one
``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on any error), retried on lock errors with the
backoff of :mod:`.backoff` until the retry budget is spent. The write lock is held from a
transaction's first read to its commit, which is what makes a lease or an escalation step
atomic across processes. The statements and the rules are shared with the ``postgres`` runtime
(:mod:`.sql_store`); the schema comes from the versioned migrations in
:mod:`.sqlite_migrations`.

This module imports :mod:`sqlite3`, so it is imported only when the sqlite mode is chosen.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .arguments import at_or_now
from .errors import RuntimeStateError, RuntimeUnavailable
from .sql_store import SqlDialect, SqlStore
from .sqlite_migrations import NewerSchemaError, migrate, user_version

T = TypeVar("T")

#: SQLite's primary result codes for "another connection holds the lock".
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def _is_lock_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteRuntime(SqlStore[sqlite3.Connection]):
    """Records in one SQLite file; safe across threads (one lock) and processes (SQLite locks)."""

    mode = "sqlite"
    # No row locks: a write transaction holds the whole database's lock to its commit.
    dialect = SqlDialect(
        placeholder="?", keep_stored=("INSERT OR IGNORE", ""), same_next_action_at="IS ?"
    )

    def __init__(
        self, path: Path, *, busy_timeout_ms: int = 5000, retry_budget_seconds: float = 10.0
    ) -> None:
        super().__init__(retry_budget_seconds)
        #: The database found at the path asked for when it is not ours (the original MAF's
        #: ``.maf/runtime.db``, typically): never opened for writing; this store then lives
        #: in ``self.path``, the companion file beside it.
        self.original_path: Path | None = None
        self._original_tables: tuple[str, ...] = ()
        self.path = self._store_path(Path(path))
        # SQLite's own wait never outlasts the budget, so a held lock cannot hang a caller
        # longer than the budget promises.
        self.busy_timeout_ms = max(
            0, min(int(busy_timeout_ms), int(self.retry_budget_seconds * 1000))
        )
        self._journal_mode = ""
        self._conn = self._open()

    # --- opening ---------------------------------------------------------------------------

    def _store_path(self, requested: Path) -> Path:
        """``requested``, or its companion when ``requested`` holds another schema.

        The original MAF keeps its runtime at the same default path with tables of the same
        names (``leases``, ``agents``, ...): migrating it would fail, and writing to it at all
        would change a database other agents still use. It is looked at read-only, traceless
        (``sqlite_readonly``), before anything opens it for writing.
        """
        from .sqlite_readonly import foreign_tables

        try:
            tables = foreign_tables(requested, timeout=self.retry_budget_seconds)
        except (sqlite3.Error, OSError) as exc:
            # Never write into a file that could not be told apart from ours.
            raise RuntimeUnavailable(
                f"cannot tell whether {requested} is a preflight store "
                f"(read-only look failed: {exc})"
            ) from exc
        if not tables:
            return requested
        companion = companion_path(requested)
        try:
            companion_tables = foreign_tables(companion, timeout=self.retry_budget_seconds)
        except (sqlite3.Error, OSError) as exc:
            raise RuntimeUnavailable(
                f"cannot tell whether {companion} is a preflight store "
                f"(read-only look failed: {exc})"
            ) from exc
        if companion_tables:
            raise RuntimeUnavailable(
                f"{requested} and {companion} both hold another application's tables "
                f"({', '.join(companion_tables[:5])}); set MAF_DB_PATH to a file of its own"
            )
        self.original_path, self._original_tables = requested, tables
        return companion

    def _coexistence_note(self) -> str | None:
        if self.original_path is None:
            return None
        known = [t for t in ORIGINAL_MAF_TABLES if t in self._original_tables]
        owner = "the original MAF" if known else "another application"
        shown = ", ".join((known or list(self._original_tables))[:4])
        return (
            f"{self.original_path} belongs to {owner} (tables {shown}, ...) and is never "
            f"written; this store lives beside it in {self.path.name}"
        )

    def _open(self) -> sqlite3.Connection:
        """Connect, configure, migrate and prove the file writable, or raise RuntimeUnavailable."""
        where = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeUnavailable(
                f"cannot create the directory of {where}: {exc.strerror or exc}"
            ) from exc
        if self.path.is_dir():
            raise RuntimeUnavailable(f"{where} is a directory, not a database file")
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise RuntimeUnavailable(f"cannot write to the directory of {where}")
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise RuntimeUnavailable(f"{where} is not writable")

        deadline = time.monotonic() + self.retry_budget_seconds
        attempt = 0
        while True:
            conn: sqlite3.Connection | None = None
            try:
                conn = sqlite3.connect(
                    where,
                    timeout=self.busy_timeout_ms / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
                self._configure(conn)
                # Probe: the write lock can be had and the file takes writes.
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return conn
            except NewerSchemaError as exc:
                self._discard(conn)
                raise RuntimeUnavailable(f"{where}: {exc}") from exc
            except sqlite3.Error as exc:
                self._discard(conn)
                if not _is_lock_error(exc):
                    raise RuntimeUnavailable(self._describe_open_error(exc)) from exc
                attempt += 1
                if not self._backoff(attempt, deadline):
                    raise RuntimeUnavailable(
                        f"{where} is locked by another connection beyond the retry budget "
                        f"of {self.retry_budget_seconds:g}s ({exc})"
                    ) from exc
            except BaseException:
                self._discard(conn)
                raise

    def _configure(self, conn: sqlite3.Connection) -> None:
        # PRAGMA takes no bound parameters; the value is an int computed in __init__.
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        # Reading the header here is also what tells a garbage file apart from a database.
        row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        self._journal_mode = str(row[0]).lower() if row else ""
        migrate(conn)

    def _describe_open_error(self, exc: sqlite3.Error) -> str:
        where = str(self.path)
        text = str(exc)
        lowered = text.lower()
        if "not a database" in lowered:
            return f"{where} is not a SQLite database (file is not a database)"
        if "malformed" in lowered or "corrupt" in lowered:
            return f"{where} is corrupt ({text})"
        if "readonly" in lowered or "read-only" in lowered:
            return f"{where} is not writable ({text})"
        if "unable to open" in lowered:
            return f"cannot open {where} ({text})"
        return f"cannot use {where} ({text})"

    def _discard(self, conn: sqlite3.Connection | None) -> None:
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    @property
    def where(self) -> str:
        return str(self.path)

    def _notes(self) -> tuple[str, ...]:
        notes: tuple[str, ...] = ()
        if self._journal_mode != "wal":
            notes = (f"journal mode is {self._journal_mode or 'unknown'}, not wal",)
        coexistence = self._coexistence_note()
        return notes if coexistence is None else (*notes, coexistence)

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        return user_version(conn)

    # --- running statements ----------------------------------------------------------------

    def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run ``work`` in one transaction, retrying the whole of it on lock errors."""
        deadline = time.monotonic() + self.retry_budget_seconds
        attempt = 0
        while True:
            with self._lock:
                conn = self._conn
                if conn is None:
                    raise RuntimeStateError(f"the sqlite runtime at {self.path} is closed")
                try:
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        result = work(conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    return result
                except sqlite3.Error as exc:
                    if not _is_lock_error(exc):
                        raise RuntimeStateError(f"{self.path}: {exc}") from exc
                    last: sqlite3.Error = exc
            attempt += 1
            if not self._backoff(attempt, deadline):
                raise RuntimeStateError(
                    f"{self.path} is locked by another connection beyond the retry budget of "
                    f"{self.retry_budget_seconds:g}s ({last})"
                ) from last

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._run(work, write=True)

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._run(work, write=False)

    def _driver_executemany(
        self, conn: sqlite3.Connection, sql: str, rows: Iterable[Sequence[Any]]
    ) -> None:
        conn.executemany(sql, rows)

    # --- locks and the clock ---------------------------------------------------------------
    # Every write runs in BEGIN IMMEDIATE: the transaction holds the database's write lock from
    # its first statement, so the lease store and every dedup key are locked already, and the
    # clock read inside it is read after the lock was had. The processes of one SQLite file
    # share a host, and so its clock.

    def _lock_leases(self, conn: sqlite3.Connection) -> None:
        pass

    def _lock_dedup_key(self, conn: sqlite3.Connection, dedup_key: str) -> None:
        pass

    def _clock(self, conn: sqlite3.Connection, given: float | None) -> float:
        return at_or_now(given)

    def _clock_sql(self, given: float | None) -> tuple[str, Any]:
        return "?", at_or_now(given)


#: The tables the original MAF creates (its store/schema*.sql): a database holding them at
#: our path is its runtime, left alone.
ORIGINAL_MAF_TABLES = (
    "tasks",
    "leases",
    "file_reservations",
    "events",
    "evidence",
    "preflight_configs",
    "preflight_executions",
    "escalation_paths",
    "escalation_tracking",
    "smoke_tests",
    "agents",
    "reservation_conflicts",
)


def companion_path(path: Path) -> Path:
    """Where this store lives when ``path`` holds another schema: ``runtime.db`` ->
    ``runtime.preflight.db``, beside it."""
    return path.with_name(f"{path.stem}.preflight{path.suffix or '.db'}")
