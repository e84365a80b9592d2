"""mcp_agent_mail's file reservations, read-only, from its server, its database or its archive.

Exactly one of ``url``, ``database`` and ``storage`` must be set in ``AgentMailSource``; two or
more are an error rather than a silent precedence, because they can disagree (the archive
over-reports) and the config should say which one is trusted. ``token_env`` is used with
``url`` only.

- ``url``: the server's Streamable HTTP MCP endpoint, through ``agent_mail.mcp``:
  ``resources/read`` of ``resource://file_reservations/<slug>?active_only=true``, whose
  ``result.contents[].text`` is a JSON list of ``{id, agent, path_pattern, exclusive, reason,
  created_ts, expires_ts, released_ts, ...}``. Authoritative.
- ``database``: the server's SQLite file, opened ``mode=ro`` (not ``immutable``: it must see
  rows committed while we read) with ``PRAGMA query_only``. Tables ``projects(id, slug,
  human_key)``, ``agents(id, project_id, name)``, ``file_reservations(id, project_id, agent_id,
  path_pattern, exclusive, reason, created_ts, expires_ts, released_ts)``; times are naive UTC
  text (``2026-11-25 10:00:00.123456``). Authoritative.
- ``storage``: the Git archive, ``<root>/projects/<slug>/file_reservations/*.json``. Version
  0.1.0 names each file by the SHA-1 of its pattern alone (a re-reservation of the same pattern
  overwrites the earlier one) and never marks releases; newer versions also write
  ``id-<id>.json`` copies and ``released_ts``. Copies of one id are merged; the report warns
  that the archive can still over-report (and, under 0.1.0, lose overwritten reservations).

The project is ``source.project`` (a human key, i.e. the project's absolute path, or a slug),
defaulting to the pytest rootdir, or in a linked git worktree to the same place in the main
checkout, so that every worktree of a repository reads one project. The database resolves it
through its ``projects`` table (by human key, else by slug). For ``url`` and ``storage`` the
slug is computed as mcp_agent_mail does by default (``agent_mail.projects``); servers with other
slugs need ``project`` set to the slug itself.

Times are parsed by ``agent_mail.times`` and compared as floats, never as strings. Anything
unreadable is an ``AgentMailError``, never an empty result: a reservation check must fail
closed. Nothing is written to any source.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..gitdirs import GitDirError
from ..redaction import redact_url
from .mcp import McpError, McpSession
from .projects import canonical_project_key, default_project_key, project_slug, slugify
from .times import parse_time

if TYPE_CHECKING:
    from ..config.models import AgentMailSource

ARCHIVE_WARNING = (
    "the mcp_agent_mail archive can over-report: version 0.1.0 never marks releases (a "
    "released reservation looks active until it expires) and keeps one file per pattern (a "
    "re-reservation of the same pattern replaces the earlier one); read the server (url) or "
    "its database for an authoritative answer"
)


class AgentMailError(Exception):
    """One clear line: which source, where, and what went wrong."""


@dataclasses.dataclass(frozen=True)
class ExternalReservation:
    agent: str
    path_pattern: str
    exclusive: bool
    expires_at: float  # epoch seconds
    released_at: float | None
    source: str  # "url" | "database" | "storage"
    reservation_id: str | None = None


@dataclasses.dataclass(frozen=True)
class SourceReport:
    source: str
    location: str  # redacted: no tokens, no URL passwords
    project: str  # the slug used
    reservations: tuple[ExternalReservation, ...]  # active ones only
    warnings: tuple[str, ...]


def read_reservations(
    source: AgentMailSource,
    *,
    rootdir: Path,
    environ: Mapping[str, str],
    now: float,
    timeout: float,
) -> SourceReport:
    """The active (unreleased, unexpired at ``now``) reservations of the configured source."""
    chosen = [name for name in ("url", "database", "storage") if getattr(source, name)]
    if len(chosen) != 1:
        given = ", ".join(chosen) if chosen else "none"
        raise AgentMailError(
            f"mcp_agent_mail: set exactly one of url, database, storage (given: {given})"
        )
    try:
        project = source.project or default_project_key(rootdir)
    except GitDirError as exc:
        raise AgentMailError(
            f"mcp_agent_mail: no project is set and the default (the main "
            f"checkout of this worktree) cannot be found: {exc}"
        ) from None
    warnings: list[str] = []
    if source.token_env and chosen[0] != "url":
        warnings.append(f"token_env {source.token_env!r} is ignored: it is used with url only")
    if source.url:
        report = _read_url(source.url, source.token_env, project, rootdir, environ, now, timeout)
    elif source.database:
        report = _read_database(
            _local_path(source.database, rootdir), project, rootdir, now, timeout
        )
    else:
        assert source.storage is not None
        report = _read_storage(_local_path(source.storage, rootdir), project, rootdir, now)
    if warnings:
        report = dataclasses.replace(report, warnings=(*warnings, *report.warnings))
    return report


def _local_path(value: str, rootdir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else rootdir / path


# --- records into reservations ----------------------------------------------------------------


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    raise ValueError(f"exclusive is not a boolean: {value!r}")


@dataclasses.dataclass
class _Record:
    """One stored reservation, before the active filter."""

    reservation_id: str | None
    agent: str
    path_pattern: str
    exclusive: bool
    expires_at: float
    released_at: float | None


def _record(item: Mapping[str, Any]) -> _Record:
    def text(key: str) -> str:
        value = item.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{key} is missing or not text: {value!r}")
        return value.strip()

    if item.get("expires_ts") is None:
        raise ValueError("expires_ts is missing")
    released = item.get("released_ts")
    raw_id = item.get("id")
    return _Record(
        reservation_id=None if raw_id is None else str(raw_id),
        agent=text("agent"),
        path_pattern=text("path_pattern"),
        # A record without the flag is treated as exclusive: the stricter reading.
        exclusive=_flag(item["exclusive"]) if item.get("exclusive") is not None else True,
        expires_at=_timed("expires_ts", item["expires_ts"]),
        released_at=None if released in (None, "") else _timed("released_ts", released),
    )


def _timed(key: str, value: object) -> float:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def _active(records: Sequence[_Record], source: str, now: float) -> tuple[ExternalReservation, ...]:
    kept = [
        ExternalReservation(
            agent=r.agent,
            path_pattern=r.path_pattern,
            exclusive=r.exclusive,
            expires_at=r.expires_at,
            released_at=r.released_at,
            source=source,
            reservation_id=r.reservation_id,
        )
        for r in records
        if r.released_at is None and r.expires_at > now
    ]
    kept.sort(key=lambda r: (r.agent, r.path_pattern, r.reservation_id or "", r.expires_at))
    return tuple(kept)


def _fail(source: str, location: str, what: str) -> AgentMailError:
    return AgentMailError(f"mcp_agent_mail {source} {location}: {what}")


# --- database ---------------------------------------------------------------------------------

_REQUIRED_COLUMNS = {
    "projects": ("id", "slug", "human_key"),
    "agents": ("id", "name"),
    "file_reservations": (
        "id",
        "project_id",
        "agent_id",
        "path_pattern",
        "exclusive",
        "expires_ts",
    ),
}


def _read_database(
    path: Path, project: str, rootdir: Path, now: float, timeout: float
) -> SourceReport:
    location = str(path)
    if not path.is_file():
        raise _fail("database", location, "no such file (fail closed: nothing was read)")
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=max(timeout, 0.001)
        )
    except sqlite3.Error as exc:
        raise _fail("database", location, f"cannot open read-only: {exc}") from None
    try:
        conn.execute("PRAGMA query_only = 1")
        return _query_database(conn, location, project, rootdir, now)
    except sqlite3.Error as exc:
        raise _fail("database", location, f"cannot read: {exc}") from None
    finally:
        conn.close()


def _query_database(
    conn: sqlite3.Connection, location: str, project: str, rootdir: Path, now: float
) -> SourceReport:
    tables = {
        row[0]
        for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
    }
    columns: dict[str, set[str]] = {}
    for table, required in _REQUIRED_COLUMNS.items():
        if table not in tables:
            hint = (
                " (this looks like an old mcp_agent_mail with 'claims', which is not supported)"
                if table == "file_reservations" and "claims" in tables
                else ""
            )
            raise _fail(
                "database",
                location,
                f"no {table!r} table{hint}; is this an mcp_agent_mail database?",
            )
        columns[table] = {
            row[0] for row in conn.execute("SELECT name FROM pragma_table_info(?)", (table,))
        }
        missing = [c for c in required if c not in columns[table]]
        if missing:
            raise _fail(
                "database", location, f"table {table!r} lacks column(s) {', '.join(missing)}"
            )
    project_ids, slug = _database_project(conn, location, project, rootdir)
    warnings: list[str] = []
    released = "fr.released_ts"
    if "released_ts" not in columns["file_reservations"]:
        released = "NULL"
        warnings.append(
            "file_reservations has no released_ts column: every unexpired "
            "reservation counts as active"
        )
    marks = ", ".join("?" for _ in project_ids)
    rows = conn.execute(
        f"SELECT fr.id, fr.agent_id, a.name, fr.path_pattern, fr.exclusive, fr.expires_ts, "  # noqa: S608 - only placeholders and fixed names
        f"{released} FROM file_reservations fr LEFT JOIN agents a ON a.id = fr.agent_id "
        f"WHERE fr.project_id IN ({marks}) ORDER BY fr.id",
        project_ids,
    ).fetchall()
    records = []
    for row_id, agent_id, agent, pattern, exclusive, expires, released_ts in rows:
        item = {
            "id": row_id,
            "agent": agent if agent else f"agent#{agent_id}",
            "path_pattern": pattern,
            "exclusive": exclusive,
            "expires_ts": expires,
            "released_ts": released_ts,
        }
        try:
            records.append(_record(item))
        except ValueError as exc:
            raise _fail("database", location, f"file_reservations row id={row_id}: {exc}") from None
    return SourceReport(
        "database", location, slug, _active(records, "database", now), tuple(warnings)
    )


def _database_project(
    conn: sqlite3.Connection, location: str, project: str, rootdir: Path
) -> tuple[list[int], str]:
    """The ids of the project rows, and its slug: by human key (as given or canonical), else
    by slug (as given or computed). Several rows with one human key are all read."""
    canonical = canonical_project_key(project, rootdir)
    keys = sorted({project, canonical})
    slugs = sorted({project, slugify(canonical)})
    for column, values in (("human_key", keys), ("slug", slugs)):
        marks = ", ".join("?" for _ in values)
        found = conn.execute(
            f"SELECT id, slug FROM projects WHERE {column} IN ({marks}) ORDER BY id",  # noqa: S608 - fixed column names
            values,
        ).fetchall()
        if found:
            return [row[0] for row in found], str(found[0][1])
    known = [
        f"{row[1]} ({row[0]})"
        for row in conn.execute("SELECT slug, human_key FROM projects ORDER BY id LIMIT 6")
    ]
    listing = "; ".join(known[:5]) + ("; ..." if len(known) > 5 else "")
    raise _fail(
        "database",
        location,
        f"project {project!r} (slug {slugify(canonical)!r}) is not in its projects "
        f"table (known: {listing or 'none'}); set agent_mail.project",
    )


# --- storage (the archive) --------------------------------------------------------------------


def _read_storage(root: Path, project: str, rootdir: Path, now: float) -> SourceReport:
    slug = project_slug(project, rootdir)
    project_dir = root / "projects" / slug
    directory = project_dir / "file_reservations"
    location = str(directory)
    if not root.is_dir():
        raise _fail("storage", str(root), "no such directory (fail closed: nothing was read)")
    if not project_dir.is_dir():
        known = sorted(p.name for p in (root / "projects").glob("*") if p.is_dir())[:5]
        raise _fail(
            "storage",
            str(root),
            f"no archive for project slug {slug!r} under "
            f"projects/ (known: {', '.join(known) or 'none'}); set agent_mail.project",
        )
    records: list[_Record] = []
    # A project that never reserved anything has no file_reservations directory yet.
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    for file in files:
        try:
            item = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(item, dict):
                raise ValueError(f"expected a JSON object, got {type(item).__name__}")
            records.append(_record(item))
        except (OSError, ValueError) as exc:
            raise _fail("storage", location, f"{file.name}: {exc}") from None
    return SourceReport(
        "storage",
        location,
        slug,
        _active(_merge_copies(records), "storage", now),
        (ARCHIVE_WARNING,),
    )


def _merge_copies(records: list[_Record]) -> list[_Record]:
    """Newer servers write each reservation twice (``<sha1>.json`` and ``id-<id>.json``); one
    id counts once, as released if any copy says so and until the latest expiry otherwise."""
    merged: dict[str, _Record] = {}
    anonymous: list[_Record] = []
    for record in records:
        if record.reservation_id is None:
            anonymous.append(record)
            continue
        seen = merged.get(record.reservation_id)
        if seen is None:
            merged[record.reservation_id] = dataclasses.replace(record)
            continue
        if record.released_at is not None and (
            seen.released_at is None or record.released_at < seen.released_at
        ):
            seen.released_at = record.released_at
        seen.expires_at = max(seen.expires_at, record.expires_at)
        seen.exclusive = seen.exclusive or record.exclusive
    return [*merged.values(), *anonymous]


# --- url (the MCP server) ---------------------------------------------------------------------


def _read_url(
    url: str,
    token_env: str | None,
    project: str,
    rootdir: Path,
    environ: Mapping[str, str],
    now: float,
    timeout: float,
) -> SourceReport:
    token = None
    if token_env:
        token = environ.get(token_env)
        if not token:
            raise _fail(
                "url",
                redact_url(url),
                f"token_env names {token_env!r}, which is not set in the environment",
            )
    slug = project_slug(project, rootdir)
    location = redact_url(url, [token] if token else [])
    try:
        with McpSession(url, token=token, timeout=timeout) as session:
            result = session.read_resource(f"resource://file_reservations/{slug}?active_only=true")
    except McpError as exc:
        raise _fail("url", exc.location, exc.detail) from None
    records = []
    try:
        for index, item in enumerate(_resource_items(result)):
            where = f"reservation {index}" + (f" (id={item['id']})" if "id" in item else "")
            try:
                records.append(_record(item))
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
    except ValueError as exc:
        raise _fail("url", location, f"resource://file_reservations/{slug}: {exc}") from None
    return SourceReport("url", location, slug, _active(records, "url", now), ())


def _resource_items(result: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    contents = result.get("contents")
    if not isinstance(contents, list):
        raise ValueError("the answer has no contents list")
    for content in contents:
        if not isinstance(content, dict):
            raise ValueError(f"a content entry is not an object: {content!r:.80}")
        if isinstance(content.get("text"), str):
            text = content["text"]
        elif isinstance(content.get("blob"), str):
            try:
                text = base64.b64decode(content["blob"], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError(f"a blob content is not base64 UTF-8: {exc}") from None
        else:
            raise ValueError("a content entry has neither text nor blob")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(
                f"the content is not JSON (is the server set to another output "
                f"format?): {text[:80]!r}"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("file_reservations"), list):
            data = data["file_reservations"]
        if isinstance(data, dict) and "path_pattern" in data:
            data = [data]
        if not isinstance(data, list):
            raise ValueError(f"expected a list of reservations, got {type(data).__name__}")
        for item in data:
            if not isinstance(item, dict):
                raise ValueError(f"a reservation is not an object: {item!r:.80}")
            yield item
