"""The original TypeScript MAF's stores, built as it builds them, for tests.

The original's source is public but has no license: its SQL is never copied here. A database
"built from the original's published schema" runs the published files themselves, fetched at
test time from ``MAF_ORIGINAL_SOURCE`` (a directory holding ``maf/lib/maf/store/...``) or from
the mirror of its repository (``git show``). Where neither is available, ``TRANSCRIPTION`` (our
own statement of the tables and columns these tests use) stands in; a test compares the two
table by table and column by column whenever the published files can be had.

The rows are written the way the original writes them (``core/runtime-factory.ts``
``acquireLease``, ``store/reservation.ts`` ``createReservation``, ``core/runtime-state.ts``'s
file backend).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

SOURCE_ENV = "MAF_ORIGINAL_SOURCE"
MIRROR = Path("/work/.mirror/iamnormalfree+maf-project-template/repo")
#: The published schema files, in the order the original loads them.
SCHEMA_FILES = ("store/schema.sql", "store/schema-preflight.sql", "store/schema-reservations.sql")
_PREFIX = "maf/lib/maf/"

#: The original's tables these tests use, in our words: names, declared types, NOT NULL,
#: defaults and keys as the published schema has them (constraints such as CHECK left out).
TRANSCRIPTION = """
CREATE TABLE tasks (
  id TEXT PRIMARY KEY, state TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 100,
  payload_json TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, token_budget INTEGER NOT NULL DEFAULT 0,
  cost_budget_cents INTEGER NOT NULL DEFAULT 0, policy_label TEXT NOT NULL DEFAULT 'private');
CREATE TABLE leases (
  task_id TEXT PRIMARY KEY REFERENCES tasks(id), agent_id TEXT NOT NULL,
  lease_expires_at INTEGER NOT NULL, attempt INTEGER NOT NULL);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL REFERENCES tasks(id),
  ts INTEGER NOT NULL, kind TEXT NOT NULL, data_json TEXT NOT NULL);
CREATE TABLE file_reservations (
  id TEXT PRIMARY KEY, file_path TEXT NOT NULL UNIQUE, agent_id TEXT NOT NULL,
  lease_expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  status TEXT NOT NULL, lease_reason TEXT, metadata TEXT);
CREATE TABLE agents (
  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL, capabilities TEXT,
  status TEXT NOT NULL, last_seen INTEGER, metadata TEXT, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL);
"""
TRANSCRIBED_TABLES = ("tasks", "leases", "events", "file_reservations", "agents")


def published_schema() -> tuple[list[str], str] | tuple[None, str]:
    """The published schema files' text and where they came from, or None and why not."""
    configured = os.environ.get(SOURCE_ENV)
    if configured:
        base = Path(configured) / _PREFIX
        try:
            return [(base / name).read_text(encoding="utf-8") for name in SCHEMA_FILES], str(base)
        except OSError as exc:
            return None, f"{SOURCE_ENV}={configured}: {exc}"
    if not MIRROR.is_dir():
        return None, (
            f"the original MAF's source is not available (set {SOURCE_ENV} to a "
            f"checkout of iamnormalfree/maf-project-template, or mirror it at {MIRROR})"
        )
    texts = []
    for name in SCHEMA_FILES:
        done = subprocess.run(
            ["git", "-C", str(MIRROR), "show", f"HEAD:{_PREFIX}{name}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return None, f"git show {name} in {MIRROR} failed: {done.stderr.strip()}"
        texts.append(done.stdout)
    return texts, str(MIRROR)


def build_database(path: Path, *, source: str = "best") -> str:
    """Create the original's database at ``path`` as it does (WAL journal, its schema files
    in order); ``source`` "published", "transcription" or "best" (published when available).
    Returns the source used. The connection is closed: the WAL is checkpointed away."""
    texts, _ = published_schema() if source in ("best", "published") else (None, "")
    if texts is None and source == "published":
        raise RuntimeError("the published schema is not available")
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for text in texts or [TRANSCRIPTION]:
            conn.executescript(text)
        conn.commit()
    finally:
        conn.close()
    return "published" if texts is not None else "transcription"


def synthetic_task_id(file_path: str) -> str:
    return "file_" + hashlib.sha256(file_path.encode("utf-8")).hexdigest()[:16]


def ms(at: float) -> int:
    return int(at * 1000)


def lease_file(
    db: Path, file_path: str, agent: str, expires_at: float, *, state: str = "LEASED"
) -> str:
    """A file lease as the original's SQLite runtime takes it: a synthetic task and its
    ``leases`` row (``acquireLease``). Returns the task id."""
    task_id = synthetic_task_id(file_path)
    now = ms(time.time())
    payload = json.dumps(
        {"type": "synthetic_file_lease", "filePath": file_path, "agentId": agent},
        separators=(",", ":"),
    )
    with _connect(db) as conn:
        conn.execute(
            "INSERT INTO tasks (id, state, priority, payload_json, created_at, "
            "updated_at, policy_label) VALUES (?, ?, 100, ?, ?, ?, 'private')",
            (task_id, state, payload, now, now),
        )
        conn.execute(
            "INSERT INTO leases (task_id, agent_id, lease_expires_at, attempt) VALUES (?, ?, ?, 1)",
            (task_id, agent, ms(expires_at)),
        )
    return task_id


def release_file(db: Path, file_path: str) -> None:
    """``releaseLease``: the task goes back to READY and its lease row is deleted."""
    task_id = synthetic_task_id(file_path)
    with _connect(db) as conn:
        conn.execute(
            "UPDATE tasks SET state = 'READY', updated_at = ? WHERE id = ?",
            (ms(time.time()), task_id),
        )
        conn.execute("DELETE FROM leases WHERE task_id = ?", (task_id,))


def reserve_file(
    db: Path, file_path: str, agent: str, expires_at: float, *, status: str = "active"
) -> str:
    """A ``file_reservations`` row as ``ReservationStore.createReservation`` writes it."""
    row_id = str(uuid.uuid4())
    now = ms(time.time())
    with _connect(db) as conn:
        conn.execute(
            "INSERT INTO file_reservations (id, file_path, agent_id, lease_expires_at, "
            "created_at, updated_at, status, lease_reason, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            (row_id, file_path, agent, ms(expires_at), now, now, status, "editing"),
        )
    return row_id


@contextlib.contextmanager
def _connect(db: Path) -> Iterator[sqlite3.Connection]:
    """One transaction, committed, and the connection closed (as the original's process
    closing leaves no -wal or -shm file behind)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            yield conn
    finally:
        conn.close()


def iso(at: float) -> str:
    """``new Date(ms).toISOString()``: UTC with milliseconds and a Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{ms(at) % 1000:03d}Z"


def write_file_backend(mail_root: Path, reservations: list[dict[str, object]]) -> Path:
    """The file backend's ``reservations/reservations.db``, as ``saveReservations`` writes it
    (``JSON.stringify(data, null, 2)``). Each reservation needs ``agentId``, ``filePath``,
    ``expiresAt`` (seconds, written as ISO text) and may set ``status`` (default active)."""
    now = time.time()
    items = [
        {
            "id": f"lease_{ms(now)}_{index:09d}",
            "agentId": r["agentId"],
            "filePath": r["filePath"],
            "createdAt": iso(now),
            "expiresAt": iso(float(r["expiresAt"])),  # type: ignore[arg-type]
            "status": r.get("status", "active"),
            "purpose": "File lease for multi-agent coordination",
        }
        for index, r in enumerate(reservations)
    ]
    path = mail_root / "reservations" / "reservations.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "reservations": items,
        "version": "1.0.0",
        "metadata": {"createdAt": iso(now), "lastUpdated": iso(now)},
    }
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


def fingerprint(db: Path) -> dict[str, str | None]:
    """The database file's and its side files' SHA-256 (None: absent)."""
    out: dict[str, str | None] = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{db}{suffix}")
        out[path.name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
    return out


def table_columns(db: Path, table: str) -> list[tuple[str, str, int, object, int]]:
    """``PRAGMA table_info``: (name, type, notnull, default, pk) per column, in order."""
    with _connect(db) as conn:
        return [
            (r[1], r[2], r[3], r[4], r[5])
            for r in conn.execute("SELECT * FROM pragma_table_info(?)", (table,))
        ]
