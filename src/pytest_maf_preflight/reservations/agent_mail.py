"""mcp_agent_mail's file reservations, read-only, from its server, its database or its archive.

Exactly one of ``url``, ``database`` and ``storage`` must be set in ``AgentMailSource``; two or
more are an error rather than a silent precedence, because they can disagree (the archive
over-reports) and the config should say which one is trusted. ``token_env`` is used with
``url`` only.

- ``url``: the server's Streamable HTTP MCP endpoint (JSON-RPC 2.0 over POST; path ``/mcp/``
  when the URL has none). ``initialize``, ``notifications/initialized``, then ``resources/read``
  of ``resource://file_reservations/<slug>?active_only=true``, whose ``result.contents[].text``
  is a JSON list of ``{id, agent, path_pattern, exclusive, reason, created_ts, expires_ts,
  released_ts, ...}``. Answers may be JSON or an SSE stream (``data:`` lines). Authoritative.
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
defaulting to the pytest rootdir. The database resolves it through its ``projects`` table (by
human key, else by slug). For ``url`` and ``storage`` the slug is computed as mcp_agent_mail
does by default (``slugify`` of the canonical human key; a slug is its own slug). Servers run
with ``WORKTREES_ENABLED`` and a git-based ``PROJECT_IDENTITY_MODE`` use other slugs
(``<name>-<sha1[:10]>``); give that slug as ``project`` there.

Times are parsed (naive = UTC; ISO-8601 with ``T`` or space, any fraction, ``Z`` or an
offset; numbers as epoch seconds, milliseconds or microseconds by magnitude) and compared as
floats, never as strings. Anything unreadable is an ``AgentMailError``, never an empty result:
a reservation check must fail closed. Nothing is written to any source.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import http.client
import json
import math
import os
import re
import socket
import sqlite3
import ssl
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..redaction import REDACTED, is_secret_key, redact_text

if TYPE_CHECKING:
    from ..config.models import AgentMailSource

DEFAULT_MCP_PATH = "/mcp/"
PROTOCOL_VERSION = "2025-03-26"
#: An answer larger than this is not a reservation list; stop reading instead of filling memory.
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_REDIRECTS = 3

ARCHIVE_WARNING = (
    "the mcp_agent_mail archive can over-report: version 0.1.0 never marks releases (a "
    "released reservation looks active until it expires) and keeps one file per pattern (a "
    "re-reservation of the same pattern replaces the earlier one); read the server (url) or "
    "its database for an authoritative answer")


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


def read_reservations(source: AgentMailSource, *, rootdir: Path, environ: Mapping[str, str],
                      now: float, timeout: float) -> SourceReport:
    """The active (unreleased, unexpired at ``now``) reservations of the configured source."""
    chosen = [name for name in ("url", "database", "storage") if getattr(source, name)]
    if len(chosen) != 1:
        given = ", ".join(chosen) if chosen else "none"
        raise AgentMailError(f"mcp_agent_mail: set exactly one of url, database, storage "
                             f"(given: {given})")
    project = source.project or str(rootdir)
    warnings: list[str] = []
    if source.token_env and chosen[0] != "url":
        warnings.append(f"token_env {source.token_env!r} is ignored: it is used with url only")
    if source.url:
        report = _read_url(source.url, source.token_env, project, rootdir, environ, now, timeout)
    elif source.database:
        report = _read_database(_local_path(source.database, rootdir), project, rootdir, now,
                                timeout)
    else:
        assert source.storage is not None
        report = _read_storage(_local_path(source.storage, rootdir), project, rootdir, now)
    if warnings:
        report = dataclasses.replace(report, warnings=(*warnings, *report.warnings))
    return report


# --- project keys and slugs -------------------------------------------------------------------

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def slugify(value: str) -> str:
    """mcp_agent_mail's ``utils.slugify``, exactly (``str.lower`` included, not ASCII-only)."""
    slug = _SLUG_RE.sub("-", value.strip().lower()).strip("-")
    return slug or "project"


def canonical_project_key(project: str, rootdir: Path) -> str:
    """The human key as mcp_agent_mail normalises it: a path-like key becomes absolute
    (relative to ``rootdir``, ``~`` expanded) and normalised, symlinks kept; others unchanged."""
    candidate = Path(project).expanduser()
    looks_like_path = (candidate.is_absolute() or project.startswith(("~", "."))
                       or "/" in project or "\\" in project)
    if not looks_like_path:
        return project
    absolute = candidate if candidate.is_absolute() else rootdir / candidate
    return os.path.normpath(str(absolute))


def project_slug(project: str, rootdir: Path) -> str:
    return slugify(canonical_project_key(project, rootdir))


def _local_path(value: str, rootdir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else rootdir / path


# --- times ------------------------------------------------------------------------------------

_TIME_RE = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[Tt ]+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?)?"
    r"\s*(?P<tz>[Zz]|UTC|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$")


def parse_time(value: object) -> float:
    """Epoch seconds from a stored time; ``ValueError`` when it is not one.

    Text without an offset is UTC (SQLite stores naive UTC). Numbers are told apart by
    magnitude, which is unambiguous between 2001 and 2286: seconds (1e9..1e10), milliseconds
    (1e12..1e13) or microseconds (1e15..1e16); anything else is refused rather than guessed.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return _epoch_number(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    if re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
        return _epoch_number(float(text))
    match = _TIME_RE.match(text)
    if match is None:
        raise ValueError(f"not a time: {value!r}")
    # Digits past the microsecond are cut, not rounded: a rounded 59.9999999 would overflow.
    microsecond = int((match["f"] or "0")[:6].ljust(6, "0"))
    try:
        moment = dt.datetime(int(match["y"]), int(match["mo"]), int(match["d"]),
                             int(match["h"] or 0), int(match["mi"] or 0), int(match["s"] or 0),
                             microsecond, tzinfo=_zone(match["tz"]))
    except ValueError as exc:
        raise ValueError(f"not a time: {value!r} ({exc})") from None
    return moment.timestamp()


def _zone(text: str | None) -> dt.tzinfo:
    if text is None or text.upper() in ("Z", "UTC"):
        return dt.timezone.utc
    digits = text[1:].replace(":", "")
    seconds = int(digits[0:2]) * 3600 + int(digits[2:4] or 0) * 60 + int(digits[4:6] or 0)
    if seconds >= 86_400:
        raise ValueError(f"offset out of range: {text!r}")
    return dt.timezone(dt.timedelta(seconds=-seconds if text[0] == "-" else seconds))


def _epoch_number(number: float) -> float:
    if not math.isfinite(number):
        raise ValueError(f"not a time: {number!r}")
    for low, scale in ((1e9, 1.0), (1e12, 1e3), (1e15, 1e6)):
        if low <= abs(number) < low * 10:
            return float(number) / scale
    raise ValueError(f"not a time: {number!r} (not epoch seconds, milliseconds or "
                     "microseconds of a date between 2001 and 2286)")


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    raise ValueError(f"exclusive is not a boolean: {value!r}")


# --- records into reservations ----------------------------------------------------------------

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


def _active(records: Sequence[_Record], source: str, now: float
            ) -> tuple[ExternalReservation, ...]:
    kept = [ExternalReservation(agent=r.agent, path_pattern=r.path_pattern,
                                exclusive=r.exclusive, expires_at=r.expires_at,
                                released_at=r.released_at, source=source,
                                reservation_id=r.reservation_id)
            for r in records if r.released_at is None and r.expires_at > now]
    kept.sort(key=lambda r: (r.agent, r.path_pattern, r.reservation_id or "", r.expires_at))
    return tuple(kept)


def _fail(source: str, location: str, what: str) -> AgentMailError:
    return AgentMailError(f"mcp_agent_mail {source} {location}: {what}")


# --- database ---------------------------------------------------------------------------------

_REQUIRED_COLUMNS = {
    "projects": ("id", "slug", "human_key"),
    "agents": ("id", "name"),
    "file_reservations": ("id", "project_id", "agent_id", "path_pattern", "exclusive",
                          "expires_ts"),
}


def _read_database(path: Path, project: str, rootdir: Path, now: float, timeout: float
                   ) -> SourceReport:
    location = str(path)
    if not path.is_file():
        raise _fail("database", location, "no such file (fail closed: nothing was read)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               timeout=max(timeout, 0.001))
    except sqlite3.Error as exc:
        raise _fail("database", location, f"cannot open read-only: {exc}") from None
    try:
        conn.execute("PRAGMA query_only = 1")
        return _query_database(conn, location, project, rootdir, now)
    except sqlite3.Error as exc:
        raise _fail("database", location, f"cannot read: {exc}") from None
    finally:
        conn.close()


def _query_database(conn: sqlite3.Connection, location: str, project: str, rootdir: Path,
                    now: float) -> SourceReport:
    tables = {row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    columns: dict[str, set[str]] = {}
    for table, required in _REQUIRED_COLUMNS.items():
        if table not in tables:
            hint = (" (this looks like an old mcp_agent_mail with 'claims', which is not "
                    "supported)" if table == "file_reservations" and "claims" in tables else "")
            raise _fail("database", location, f"no {table!r} table{hint}; is this an "
                        "mcp_agent_mail database?")
        columns[table] = {row[0] for row in conn.execute(
            "SELECT name FROM pragma_table_info(?)", (table,))}
        missing = [c for c in required if c not in columns[table]]
        if missing:
            raise _fail("database", location, f"table {table!r} lacks column(s) "
                        f"{', '.join(missing)}")
    project_ids, slug = _database_project(conn, location, project, rootdir)
    warnings: list[str] = []
    released = "fr.released_ts"
    if "released_ts" not in columns["file_reservations"]:
        released = "NULL"
        warnings.append("file_reservations has no released_ts column: every unexpired "
                        "reservation counts as active")
    marks = ", ".join("?" for _ in project_ids)
    rows = conn.execute(
        f"SELECT fr.id, fr.agent_id, a.name, fr.path_pattern, fr.exclusive, fr.expires_ts, "  # noqa: S608 - only placeholders and fixed names
        f"{released} FROM file_reservations fr LEFT JOIN agents a ON a.id = fr.agent_id "
        f"WHERE fr.project_id IN ({marks}) ORDER BY fr.id", project_ids).fetchall()
    records = []
    for row_id, agent_id, agent, pattern, exclusive, expires, released_ts in rows:
        item = {"id": row_id, "agent": agent if agent else f"agent#{agent_id}",
                "path_pattern": pattern, "exclusive": exclusive, "expires_ts": expires,
                "released_ts": released_ts}
        try:
            records.append(_record(item))
        except ValueError as exc:
            raise _fail("database", location, f"file_reservations row id={row_id}: {exc}"
                        ) from None
    return SourceReport("database", location, slug, _active(records, "database", now),
                        tuple(warnings))


def _database_project(conn: sqlite3.Connection, location: str, project: str, rootdir: Path
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
            values).fetchall()
        if found:
            return [row[0] for row in found], str(found[0][1])
    known = [f"{row[1]} ({row[0]})" for row in conn.execute(
        "SELECT slug, human_key FROM projects ORDER BY id LIMIT 6")]
    listing = "; ".join(known[:5]) + ("; ..." if len(known) > 5 else "")
    raise _fail("database", location,
                f"project {project!r} (slug {slugify(canonical)!r}) is not in its projects "
                f"table (known: {listing or 'none'}); set agent_mail.project")


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
        raise _fail("storage", str(root), f"no archive for project slug {slug!r} under "
                    f"projects/ (known: {', '.join(known) or 'none'}); set agent_mail.project")
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
    return SourceReport("storage", location, slug, _active(_merge_copies(records), "storage",
                                                           now), (ARCHIVE_WARNING,))


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
        if record.released_at is not None and (seen.released_at is None
                                               or record.released_at < seen.released_at):
            seen.released_at = record.released_at
        seen.expires_at = max(seen.expires_at, record.expires_at)
        seen.exclusive = seen.exclusive or record.exclusive
    return [*merged.values(), *anonymous]


# --- url (the MCP server) ---------------------------------------------------------------------

@dataclasses.dataclass
class _Endpoint:
    scheme: str
    host: str
    port: int | None
    path: str
    headers: dict[str, str]
    location: str
    deadline: float
    timeout: float
    session: str | None = None
    protocol: str | None = None

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


def redact_url(url: str, secrets: Sequence[str] = ()) -> str:
    """The URL without its password or secret-looking query values (and without ``secrets``)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = "&".join(
        f"{key}={REDACTED if is_secret_key(key) else value}" if sep else key
        for key, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair))
    cleaned = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    return redact_text(cleaned, secrets)


def _read_url(url: str, token_env: str | None, project: str, rootdir: Path,
              environ: Mapping[str, str], now: float, timeout: float) -> SourceReport:
    token = None
    if token_env:
        token = environ.get(token_env)
        if not token:
            raise _fail("url", redact_url(url), f"token_env names {token_env!r}, which is not "
                        "set in the environment")
    location = redact_url(url, [token] if token else [])
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("url", location, "not an http(s) URL")
    if timeout <= 0:
        raise _fail("url", location, "no time left to ask the server")
    headers = {"Content-Type": "application/json",
               "Accept": "application/json, text/event-stream",
               "User-Agent": "pytest-maf-preflight"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()
    path = parts.path if parts.path not in ("", "/") else DEFAULT_MCP_PATH
    endpoint = _Endpoint(parts.scheme, parts.hostname, parts.port,
                         path + (f"?{parts.query}" if parts.query else ""), headers, location,
                         time.monotonic() + timeout, timeout)
    slug = project_slug(project, rootdir)
    try:
        init = _call(endpoint, 1, "initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "pytest-maf-preflight", "version": "1"}})
        version = init.get("protocolVersion")
        endpoint.protocol = version if isinstance(version, str) else PROTOCOL_VERSION
        _notify(endpoint, "notifications/initialized")
        result = _call(endpoint, 2, "resources/read",
                       {"uri": f"resource://file_reservations/{slug}?active_only=true"})
    except TimeoutError:
        raise _fail("url", location, f"no answer within {timeout:g}s") from None
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        raise _fail("url", location, f"cannot reach the server: {exc or type(exc).__name__}"
                    ) from None
    finally:
        _close_session(endpoint)
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
            raise ValueError(f"the content is not JSON (is the server set to another output "
                             f"format?): {text[:80]!r}") from None
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


def _call(endpoint: _Endpoint, request_id: int, method: str, params: dict[str, Any]
          ) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
    answer = _post(endpoint, message, expect=request_id)
    assert answer is not None
    if "error" in answer:
        error = answer["error"]
        if isinstance(error, dict):
            detail = f"{error.get('code')}: {error.get('message')}"
        else:
            detail = repr(error)
        raise _fail("url", endpoint.location, f"{method} failed with JSON-RPC error {detail}")
    result = answer.get("result")
    if not isinstance(result, dict):
        raise _fail("url", endpoint.location, f"{method} answered without a result object")
    return result


def _notify(endpoint: _Endpoint, method: str) -> None:
    _post(endpoint, {"jsonrpc": "2.0", "method": method}, expect=None)


def _post(endpoint: _Endpoint, message: dict[str, Any], *, expect: int | None
          ) -> dict[str, Any] | None:
    body = json.dumps(message).encode()
    path = endpoint.path
    for _ in range(MAX_REDIRECTS + 1):
        headers = dict(endpoint.headers)
        if endpoint.session:
            headers["Mcp-Session-Id"] = endpoint.session
        if endpoint.protocol:
            headers["MCP-Protocol-Version"] = endpoint.protocol
        conn = _connect(endpoint)
        try:
            conn.request("POST", path, body=body, headers=headers)
            sock = conn.sock
            response = conn.getresponse()
            if response.status in (307, 308):
                path = _same_origin_redirect(endpoint, response.getheader("Location"))
                continue
            session = response.getheader("Mcp-Session-Id")
            if session:
                endpoint.session = session
            content_type = (response.getheader("Content-Type") or "").lower()
            if response.status >= 300:
                raw = _read_body(response, sock, endpoint, limit=2048)
                raise _fail("url", endpoint.location, _status_problem(
                    str(message.get("method")), response, raw, endpoint))
            if expect is None:
                return None  # a notification: 202 Accepted, nothing to read
            if "text/event-stream" in content_type:
                return _answer_from_events(response, sock, endpoint, expect)
            return _answer_from_json(_read_body(response, sock, endpoint), endpoint, expect)
        finally:
            conn.close()
    raise _fail("url", endpoint.location, f"more than {MAX_REDIRECTS} redirects")


def _connect(endpoint: _Endpoint) -> http.client.HTTPConnection:
    if endpoint.scheme == "https":
        return http.client.HTTPSConnection(endpoint.host, endpoint.port,
                                           timeout=endpoint.remaining())
    return http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=endpoint.remaining())


def _same_origin_redirect(endpoint: _Endpoint, target: str | None) -> str:
    base = f"{endpoint.scheme}://{endpoint.host}" + (f":{endpoint.port}" if endpoint.port else "")
    resolved = urllib.parse.urlsplit(urllib.parse.urljoin(base + endpoint.path, target or ""))
    if (resolved.scheme, resolved.hostname, resolved.port) != (
            endpoint.scheme, endpoint.host, endpoint.port) or not target:
        raise _fail("url", endpoint.location, f"redirected elsewhere ({target!r}); set url to "
                    "the MCP endpoint itself")
    path = resolved.path + (f"?{resolved.query}" if resolved.query else "")
    endpoint.path = path
    return path


def _status_problem(method: str, response: http.client.HTTPResponse, raw: bytes,
                    endpoint: _Endpoint) -> str:
    text = raw.decode("utf-8", "replace").strip()
    hint = ""
    if response.status in (401, 403):
        hint = (" (the bearer token was refused; check token_env)"
                if "Authorization" in endpoint.headers else
                " (the server wants a bearer token; set token_env)")
    try:  # a JSON-RPC error in an error status says more than the status line
        error = json.loads(text).get("error") if text.startswith("{") else None
    except (json.JSONDecodeError, AttributeError):
        error = None
    detail = (f": JSON-RPC error {error.get('code')}: {error.get('message')}"
              if isinstance(error, dict) else (f": {text[:200]}" if text else ""))
    secrets = [endpoint.headers["Authorization"].split(" ", 1)[-1]] \
        if "Authorization" in endpoint.headers else []
    return redact_text(f"{method}: HTTP {response.status} {response.reason}{hint}{detail}",
                       secrets)


def _read_body(response: http.client.HTTPResponse, sock: socket.socket | None,
               endpoint: _Endpoint, limit: int = MAX_BODY_BYTES) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        if sock is not None:
            sock.settimeout(endpoint.remaining())
        chunk = response.read1(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    if limit < MAX_BODY_BYTES:
        return b"".join(chunks)[:limit]
    raise _fail("url", endpoint.location, f"the answer is larger than {MAX_BODY_BYTES} bytes")


def _answer_from_json(raw: bytes, endpoint: _Endpoint, expect: int) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _fail("url", endpoint.location, f"the answer is not JSON: {raw[:80]!r}") from None
    for message in data if isinstance(data, list) else [data]:
        if _answers(message, expect):
            return message  # type: ignore[no-any-return]
    raise _fail("url", endpoint.location, f"the answer is not a JSON-RPC response to request "
                f"{expect}: {raw[:80]!r}")


def _answer_from_events(response: http.client.HTTPResponse, sock: socket.socket | None,
                        endpoint: _Endpoint, expect: int) -> dict[str, Any]:
    """The response to ``expect`` from an SSE stream; other messages (logs, progress) are
    skipped, and reading stops as soon as it arrives (the stream may stay open)."""
    data: list[str] = []
    size = 0
    while True:
        if sock is not None:
            sock.settimeout(endpoint.remaining())
        line = response.readline(MAX_BODY_BYTES)
        size += len(line)
        if size > MAX_BODY_BYTES:
            raise _fail("url", endpoint.location, "the event stream is too large")
        end = line == b""
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text.startswith("data:"):
            data.append(text[5:].removeprefix(" "))
            continue
        if text and not end:
            continue  # event:, id:, retry: and comments
        # A blank line (or the end of the stream) dispatches the event gathered so far.
        if data:
            try:
                message = json.loads("\n".join(data))
            except json.JSONDecodeError:
                raise _fail("url", endpoint.location, "an event's data is not JSON: "
                            f"{data[0][:80]!r}") from None
            data = []
            if _answers(message, expect):
                return message  # type: ignore[no-any-return]
        if end:
            raise _fail("url", endpoint.location, f"the event stream ended without an answer "
                        f"to request {expect}")


def _answers(message: object, expect: int) -> bool:
    return (isinstance(message, dict) and message.get("id") == expect
            and ("result" in message or "error" in message))


def _close_session(endpoint: _Endpoint) -> None:
    """End our MCP session so the server can free it; a courtesy, so failures are ignored."""
    if not endpoint.session:
        return
    try:
        remaining = min(endpoint.deadline - time.monotonic(), 1.0)
        if remaining <= 0:
            return
        conn = (http.client.HTTPSConnection if endpoint.scheme == "https"
                else http.client.HTTPConnection)(endpoint.host, endpoint.port, timeout=remaining)
        try:
            headers = {k: v for k, v in endpoint.headers.items() if k != "Content-Type"}
            headers["Mcp-Session-Id"] = endpoint.session
            conn.request("DELETE", endpoint.path, headers=headers)
            conn.getresponse().read(4096)
        finally:
            conn.close()
    except (OSError, http.client.HTTPException):
        pass
