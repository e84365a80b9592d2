"""mcp_agent_mail reservations, read-only: a real SQLite file, a real archive directory, and a
real JSON-RPC server on 127.0.0.1 (stdlib ``http.server`` in a thread)."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import socket
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytest_maf_preflight.config.models import AgentMailSource
from pytest_maf_preflight.reservations.agent_mail import (
    ARCHIVE_WARNING,
    AgentMailError,
    ExternalReservation,
    SourceReport,
    canonical_project_key,
    parse_time,
    read_reservations,
    redact_url,
    slugify,
)

#: "Now" for every test: 2026-11-25 09:30:00 UTC. Times near it hide string-comparison bugs.
NOW = float(calendar.timegm((2026, 11, 25, 9, 30, 0)))
PROJECT = "/srv/repos/app"
SLUG = "srv-repos-app"


def read(source: AgentMailSource, rootdir: Path, *, environ: dict[str, str] | None = None,
         timeout: float = 5.0) -> SourceReport:
    return read_reservations(source, rootdir=rootdir, environ=environ or {}, now=NOW,
                             timeout=timeout)


def held(report: SourceReport) -> set[tuple[str, str, bool]]:
    return {(r.agent, r.path_pattern, r.exclusive) for r in report.reservations}


# --- times and slugs ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-25 09:30:00", NOW),
    ("2026-11-25 9:30:00", NOW),  # an unpadded hour sorts after "10:" as text
    ("2026-11-25T09:30:00", NOW),
    ("2026-11-25T09:30:00Z", NOW),
    ("2026-11-25T09:30:00+00:00", NOW),
    ("2026-11-25T11:30:00+02:00", NOW),
    ("2026-11-25T04:00:00-0530", NOW),
    ("2026-11-25 09:30:00.250000", NOW + 0.25),
    ("2026-11-25T09:30:00.25Z", NOW + 0.25),
    ("2026-11-25T09:30:00.2500009+00:00", NOW + 0.25),  # 7 digits: cut to microseconds
    ("2026-11-25 09:30", NOW),
    (NOW, NOW),
    (int(NOW * 1000), NOW),
    (int(NOW * 1_000_000), NOW),
    (str(int(NOW)), NOW),
])
def test_times_parse_as_times(text: object, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


def test_times_order_as_times_not_as_text() -> None:
    assert "2026-11-25 9:00:00" > "2026-11-25 10:00:00"  # the trap
    assert parse_time("2026-11-25 9:00:00") < parse_time("2026-11-25 10:00:00")
    assert "2026-11-25T09:10:00" > "2026-11-25 09:30:00"
    assert parse_time("2026-11-25T09:10:00") < parse_time("2026-11-25 09:30:00")


@pytest.mark.parametrize("bad", ["", "soon", "2026-13-01 00:00:00", "2026-11-25 25:00:00",
                                 "2026-11-25T09:30:00+24:00", True, None, 12345, [1], 1e30])
def test_what_is_not_a_time_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"not a time|offset"):
        parse_time(bad)


@pytest.mark.parametrize(("key", "slug"), [
    ("/srv/repos/my-project", "srv-repos-my-project"),
    ("  Backend  ", "backend"),
    ("/Users/Me/Code/Web App_2", "users-me-code-web-app-2"),
    ("///", "project"),
    ("srv-repos-app", "srv-repos-app"),  # a slug is its own slug
    ("Ünïcode Pröject", "n-code-pr-ject"),  # str.lower, then non-[a-z0-9] runs become '-'
])
def test_slugify_matches_mcp_agent_mail(key: str, slug: str) -> None:
    assert slugify(key) == slug


def test_path_like_project_keys_are_made_absolute(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert canonical_project_key(".", tmp_path) == str(tmp_path)
    assert canonical_project_key("sub/../x", tmp_path) == str(tmp_path / "x")
    assert canonical_project_key("~/code", tmp_path) == str(tmp_path / "home" / "code")
    assert canonical_project_key("Backend", tmp_path) == "Backend"
    assert canonical_project_key("/a//b/", tmp_path) == "/a/b"


def test_redacted_urls_keep_no_secrets() -> None:
    assert redact_url("http://me:hunter2@h:1/mcp/?token=abc&x=1") == \
        "http://me:***@h:1/mcp/?token=***&x=1"
    assert "tok-123" not in redact_url("http://h/mcp/tok-123", ["tok-123"])


# --- choosing the source ------------------------------------------------------------------------

def test_exactly_one_source_must_be_set(tmp_path: Path) -> None:
    with pytest.raises(AgentMailError, match=r"exactly one of .*given: url, database"):
        read(AgentMailSource(url="http://127.0.0.1:1/", database="x.db"), tmp_path)
    with pytest.raises(AgentMailError, match=r"exactly one of .*given: none"):
        read(AgentMailSource(project=PROJECT), tmp_path)


# --- database -----------------------------------------------------------------------------------

#: As SQLModel creates it (DATETIME columns hold naive UTC text).
SCHEMA = """
CREATE TABLE projects (id INTEGER PRIMARY KEY, slug VARCHAR(255) NOT NULL UNIQUE,
    human_key VARCHAR(255) NOT NULL, created_at DATETIME NOT NULL);
CREATE TABLE agents (id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects(id),
    name VARCHAR(128) NOT NULL, program VARCHAR(128) NOT NULL DEFAULT '',
    model VARCHAR(128) NOT NULL DEFAULT '');
CREATE TABLE file_reservations (id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    agent_id INTEGER NOT NULL REFERENCES agents(id), path_pattern VARCHAR(512) NOT NULL,
    exclusive BOOLEAN NOT NULL, reason VARCHAR(512) NOT NULL DEFAULT '',
    created_ts DATETIME NOT NULL, expires_ts DATETIME NOT NULL, released_ts DATETIME);
"""
AGENTS = {"BlueLake": 1, "GreenCastle": 2, "RedStone": 3, "PinkPond": 4, "Elsewhere": 5}
#: (id, agent, pattern, exclusive, expires_ts, released_ts, project id); NOW is 09:30 UTC.
ROWS: list[tuple[int, str, str, int, str, str | None, int]] = [
    (1, "BlueLake", "src/*.py", 1, "2026-11-25 10:00:00", None, 1),  # active; "1" < "9"
    (2, "GreenCastle", "docs/**", 1, "2026-11-25 9:15:00", None, 1),  # expired; "9" > "0"
    (3, "RedStone", "lib/a.py", 1, "2026-11-25T09:10:00", None, 1),  # expired; "T" > " "
    (4, "RedStone", "lib/b.py", 1, "2026-11-25 09:45:00.123456", None, 1),  # active
    (5, "PinkPond", "web/**", 1, "2026-11-25T11:00:00+02:00", None, 1),  # 09:00 UTC: expired
    (6, "PinkPond", "api/**", 1, "2026-11-26 09:00:00", "2026-11-25 09:00:00", 1),  # released
    (7, "GreenCastle", "README.md", 0, "2026-11-25 12:00:00", None, 1),  # shared, active
    (8, "BlueLake", "setup.py", 1, "2026-11-25 09:30:00", None, 1),  # expires right now
    (9, "Elsewhere", "src/*.py", 1, "2026-11-26 00:00:00", None, 2),  # another project
]


def make_database(path: Path, rows: list[tuple[int, str, str, int, str, str | None, int]] = ROWS,
                  *, schema: str = SCHEMA) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(schema)
        conn.execute("INSERT INTO projects VALUES (1, ?, ?, '2026-01-01 00:00:00')",
                     (SLUG, PROJECT))
        conn.execute("INSERT INTO projects VALUES (2, 'srv-other', '/srv/other', "
                     "'2026-01-01 00:00:00')")
        for name, number in AGENTS.items():
            conn.execute("INSERT INTO agents (id, project_id, name) VALUES (?, ?, ?)",
                         (number, 2 if name == "Elsewhere" else 1, name))
        for row_id, agent, pattern, exclusive, expires, released, project_id in rows:
            conn.execute("INSERT INTO file_reservations VALUES (?, ?, ?, ?, ?, '', "
                         "'2026-11-25 08:00:00', ?, ?)",
                         (row_id, project_id, AGENTS[agent], pattern, exclusive, expires,
                          released))
    conn.close()
    return path


ACTIVE = {("BlueLake", "src/*.py", True), ("RedStone", "lib/b.py", True),
          ("GreenCastle", "README.md", False)}


def test_database_keeps_active_reservations_comparing_times_as_times(tmp_path: Path) -> None:
    database = make_database(tmp_path / "storage.sqlite3")
    report = read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)
    assert held(report) == ACTIVE
    assert (report.source, report.location, report.project) == ("database", str(database), SLUG)
    assert report.warnings == ()
    [blue] = [r for r in report.reservations if r.agent == "BlueLake"]
    assert blue == ExternalReservation(agent="BlueLake", path_pattern="src/*.py", exclusive=True,
                                       expires_at=NOW + 1800, released_at=None,
                                       source="database", reservation_id="1")


def test_database_file_is_left_exactly_as_it_was(tmp_path: Path) -> None:
    database = make_database(tmp_path / "db" / "storage.sqlite3")
    before = (database.read_bytes(), database.stat().st_mtime_ns)
    listing = sorted(p.name for p in database.parent.iterdir())
    read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)
    assert (database.read_bytes(), database.stat().st_mtime_ns) == before
    assert sorted(p.name for p in database.parent.iterdir()) == listing


def test_database_sees_rows_committed_to_a_live_wal(tmp_path: Path) -> None:
    """``immutable=1`` would skip the WAL; a committed, uncheckpointed row must be seen."""
    database = make_database(tmp_path / "storage.sqlite3", rows=[])
    writer = sqlite3.connect(database)
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        with writer:
            writer.execute("INSERT INTO file_reservations VALUES (1, 1, 1, 'new.py', 1, '', "
                           "'2026-11-25 09:00:00', '2026-11-25 10:30:00', NULL)")
        report = read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)
        assert held(report) == {("BlueLake", "new.py", True)}
    finally:
        writer.close()


def test_database_path_expands_home_and_project_defaults_to_rootdir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    make_database(tmp_path / "home" / ".mcp_agent_mail" / "storage.sqlite3")
    rootdir = Path(PROJECT)  # the rootdir is the human key when no project is given
    report = read(AgentMailSource(database="~/.mcp_agent_mail/storage.sqlite3"), rootdir)
    assert held(report) == ACTIVE
    assert report.location == str(tmp_path / "home" / ".mcp_agent_mail" / "storage.sqlite3")


@pytest.mark.parametrize("project", ["srv-repos-app", "/srv/repos/app/", "/srv/repos/../repos/app"])
def test_database_project_by_slug_or_by_an_unnormalised_human_key(tmp_path: Path,
                                                                 project: str) -> None:
    database = make_database(tmp_path / "storage.sqlite3")
    report = read(AgentMailSource(project=project, database=str(database)), tmp_path)
    assert held(report) == ACTIVE


def test_database_other_project_reads_only_its_own_rows(tmp_path: Path) -> None:
    database = make_database(tmp_path / "storage.sqlite3")
    report = read(AgentMailSource(project="/srv/other", database=str(database)), tmp_path)
    assert held(report) == {("Elsewhere", "src/*.py", True)}
    assert report.project == "srv-other"


def test_database_unknown_project_is_an_error_listing_known_ones(tmp_path: Path) -> None:
    database = make_database(tmp_path / "storage.sqlite3")
    with pytest.raises(AgentMailError, match=r"project '/nowhere' \(slug 'nowhere'\) is not in "
                       r"its projects table \(known: /srv/repos/app \(srv-repos-app\); "
                       r"/srv/other \(srv-other\)\); set agent_mail.project"):
        read(AgentMailSource(project="/nowhere", database=str(database)), tmp_path)


def test_database_missing_file_fails_closed(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite3"
    where = re.escape(str(missing))
    with pytest.raises(AgentMailError, match=rf"mcp_agent_mail database {where}: no such file"):
        read(AgentMailSource(project=PROJECT, database=str(missing)), tmp_path)
    assert not missing.exists()  # opening read-only never creates it


def test_database_missing_table_fails_closed(tmp_path: Path) -> None:
    database = tmp_path / "storage.sqlite3"
    conn = sqlite3.connect(database)
    conn.executescript("CREATE TABLE projects (id INTEGER, slug TEXT, human_key TEXT);"
                       "CREATE TABLE agents (id INTEGER, name TEXT);"
                       "CREATE TABLE claims (id INTEGER);")
    conn.close()
    with pytest.raises(AgentMailError, match=r"no 'file_reservations' table .*'claims'"):
        read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)


def test_a_file_that_is_not_a_database_fails_closed(tmp_path: Path) -> None:
    database = tmp_path / "storage.sqlite3"
    database.write_bytes(b"not a database at all" * 100)
    with pytest.raises(AgentMailError, match="cannot read: file is not a database"):
        read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)


def test_database_unparseable_time_names_the_row(tmp_path: Path) -> None:
    database = make_database(tmp_path / "storage.sqlite3", rows=[
        *ROWS, (10, "BlueLake", "x.py", 1, "tomorrow-ish", None, 1)])
    with pytest.raises(AgentMailError, match=r"row id=10: expires_ts: not a time: 'tomorrow-ish'"):
        read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)


def test_database_row_of_a_deleted_agent_still_counts(tmp_path: Path) -> None:
    database = make_database(tmp_path / "storage.sqlite3", rows=ROWS[:1])
    conn = sqlite3.connect(database)
    with conn:
        conn.execute("DELETE FROM agents WHERE name = 'BlueLake'")
    conn.close()
    report = read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)
    assert held(report) == {("agent#1", "src/*.py", True)}


def test_token_env_beside_a_database_is_reported_as_ignored(tmp_path: Path) -> None:
    database = make_database(tmp_path / "storage.sqlite3")
    report = read(AgentMailSource(project=PROJECT, database=str(database), token_env="TOK"),
                  tmp_path)
    assert report.warnings == ("token_env 'TOK' is ignored: it is used with url only",)


# --- storage (the archive) ----------------------------------------------------------------------

def artifact(directory: Path, name: str | None, **fields: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    pattern = str(fields["path_pattern"])
    name = name or hashlib.sha1(pattern.encode()).hexdigest()  # upstream's naming
    (directory / f"{name}.json").write_text(json.dumps(fields, indent=2))


def make_archive(root: Path, slug: str = SLUG) -> Path:
    directory = root / "projects" / slug / "file_reservations"
    # 0.1.0: one file per pattern, no released_ts, ISO times with an offset.
    artifact(directory, None, id=1, agent="BlueLake", path_pattern="src/*.py", exclusive=True,
             expires_ts="2026-11-25T10:00:00+00:00")
    artifact(directory, None, id=2, agent="GreenCastle", path_pattern="docs/**", exclusive=True,
             expires_ts="2026-11-25T09:15:00+00:00")  # expired
    artifact(directory, None, id=3, agent="RedStone", path_pattern="README.md", exclusive=False,
             expires_ts="2026-11-25T11:00:00.5+00:00")
    # Newer: two copies of each reservation, released_ts marked.
    for name in (None, "id-5"):
        artifact(directory, name, id=5, agent="PinkPond", path_pattern="web/**", exclusive=True,
                 expires_ts="2026-11-25T12:00:00+00:00", released_ts=None)
    artifact(directory, None, id=6, agent="PinkPond", path_pattern="api/**", exclusive=True,
             expires_ts="2026-11-25T12:00:00+00:00", released_ts=None)
    artifact(directory, "id-6", id=6, agent="PinkPond", path_pattern="api/**", exclusive=True,
             expires_ts="2026-11-25T12:00:00+00:00", released_ts="2026-11-25T09:20:00+00:00")
    (directory / "notes.txt").write_text("not an artifact")
    return directory


def test_archive_reads_active_artifacts_and_warns_that_it_can_over_report(tmp_path: Path
                                                                          ) -> None:
    directory = make_archive(tmp_path / "archive")
    report = read(AgentMailSource(project=PROJECT, storage=str(tmp_path / "archive")), tmp_path)
    assert held(report) == {("BlueLake", "src/*.py", True), ("RedStone", "README.md", False),
                            ("PinkPond", "web/**", True)}
    assert len(report.reservations) == 3  # id 5's two copies count once
    assert (report.source, report.location, report.project) == ("storage", str(directory), SLUG)
    assert report.warnings == (ARCHIVE_WARNING,)
    assert "over-report" in ARCHIVE_WARNING


def test_archive_slug_comes_from_the_rootdir_and_files_stay_untouched(tmp_path: Path) -> None:
    rootdir = tmp_path / "My Repo"
    slug = slugify(str(rootdir))
    directory = make_archive(tmp_path / "archive", slug)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}
    report = read(AgentMailSource(storage=str(tmp_path / "archive")), rootdir)
    assert report.project == slug
    assert len(report.reservations) == 3
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()} == before


def test_archive_of_a_project_that_never_reserved_is_empty(tmp_path: Path) -> None:
    (tmp_path / "archive" / "projects" / SLUG / "agents").mkdir(parents=True)
    report = read(AgentMailSource(project=PROJECT, storage=str(tmp_path / "archive")), tmp_path)
    assert report.reservations == ()


def test_archive_missing_root_or_project_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(AgentMailError, match=r"storage .*: no such directory"):
        read(AgentMailSource(project=PROJECT, storage=str(tmp_path / "none")), tmp_path)
    make_archive(tmp_path / "archive")
    with pytest.raises(AgentMailError, match=r"no archive for project slug 'srv-elsewhere' .*"
                       r"known: srv-repos-app"):
        read(AgentMailSource(project="/srv/elsewhere", storage=str(tmp_path / "archive")),
             tmp_path)


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "Expecting property name"),
    ("[1, 2]", "expected a JSON object, got list"),
    (json.dumps({"agent": "A", "path_pattern": "x"}), "expires_ts is missing"),
    (json.dumps({"agent": "A", "path_pattern": "x", "expires_ts": "later"}),
     "expires_ts: not a time: 'later'"),
    (json.dumps({"path_pattern": "x", "expires_ts": "2026-11-26T00:00:00Z"}),
     "agent is missing or not text"),
    (json.dumps({"agent": "A", "path_pattern": "x", "exclusive": "maybe",
                 "expires_ts": "2026-11-26T00:00:00Z"}), "exclusive is not a boolean"),
])
def test_archive_unreadable_artifact_names_the_file(tmp_path: Path, content: str,
                                                    problem: str) -> None:
    directory = make_archive(tmp_path / "archive")
    (directory / "broken.json").write_text(content)
    where = re.escape(str(directory))
    with pytest.raises(AgentMailError, match=rf"storage {where}: broken\.json: .*{problem}"):
        read(AgentMailSource(project=PROJECT, storage=str(tmp_path / "archive")), tmp_path)


# --- url (a real JSON-RPC server) ---------------------------------------------------------------

TOKEN = "s3cret-token"
RESERVATIONS = [
    {"id": 1, "agent": "BlueLake", "path_pattern": "src/*.py", "exclusive": True,
     "reason": "", "created_ts": "2026-11-25T08:00:00+00:00",
     "expires_ts": "2026-11-25T10:00:00+00:00", "released_ts": None, "stale": False},
    {"id": 2, "agent": "GreenCastle", "path_pattern": "docs/**", "exclusive": False,
     "expires_ts": "2026-11-25T09:45:00.123456+00:00", "released_ts": None},
    {"id": 3, "agent": "RedStone", "path_pattern": "lib/**", "exclusive": True,
     "expires_ts": "2026-11-25T09:10:00+00:00", "released_ts": None},  # expired
    {"id": 4, "agent": "PinkPond", "path_pattern": "web/**", "exclusive": True,
     "expires_ts": "2026-11-26T00:00:00+00:00", "released_ts": "2026-11-25T09:00:00+00:00"},
]


class McpServer(ThreadingHTTPServer):
    daemon_threads = True
    mode = "json"
    contents: Any = None
    release = threading.Event()

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), McpHandler)
        self.requests: list[dict[str, Any]] = []
        self.initialized = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) is expected here


class McpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: McpServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:
        self.server.requests.append({"http": "DELETE", "path": self.path,
                                     "session": self.headers.get("Mcp-Session-Id")})
        self._send(200)

    def do_POST(self) -> None:
        server = self.server
        message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server.requests.append({
            "http": "POST", "path": self.path, "method": message.get("method"),
            "params": message.get("params"), "session": self.headers.get("Mcp-Session-Id"),
            "protocol": self.headers.get("MCP-Protocol-Version"),
            "accept": self.headers.get("Accept")})
        if server.mode == "redirect" and self.path == "/mcp":
            self._send(307, headers={"Location": "/mcp/"})
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, b'{"detail": "Unauthorized"}')
            return
        method = message.get("method")
        if method == "initialize":
            self._reply(message, {"protocolVersion": "2025-03-26", "capabilities": {},
                                  "serverInfo": {"name": "mcp-agent-mail", "version": "0"}},
                        {"Mcp-Session-Id": "session-1"})
        elif method == "notifications/initialized":
            server.initialized = self.headers.get("Mcp-Session-Id") == "session-1"
            self._send(202)
        elif method == "resources/read":
            self._read_resource(message)
        else:
            self._reply(message, error={"code": -32601, "message": "Method not found"})

    def _read_resource(self, message: dict[str, Any]) -> None:
        server = self.server
        if not server.initialized or self.headers.get("Mcp-Session-Id") != "session-1":
            self._send(400, b'{"error": {"code": -32600, "message": "Bad Request: no session"}}')
        elif server.mode == "rpc_error":
            self._reply(message, error={"code": -32002, "message": "Unknown resource"})
        elif server.mode == "http500":
            self._send(500, b"Internal Server Error", "text/plain")
        elif server.mode == "hang":
            server.release.wait(10)
        else:
            uri = message["params"]["uri"]
            contents = server.contents if server.contents is not None else [
                {"uri": uri, "mimeType": "application/json", "text": json.dumps(RESERVATIONS)}]
            self._reply(message, {"contents": contents})

    def _reply(self, message: dict[str, Any], result: Any = None,
               headers: dict[str, str] | None = None, error: Any = None) -> None:
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        answer.update({"error": error} if error is not None else {"result": result})
        if self.server.mode != "sse":
            self._send(200, json.dumps(answer).encode(), headers=headers)
            return
        # An SSE stream: a log notification first, then the answer split over two data lines.
        log = {"jsonrpc": "2.0", "method": "notifications/message",
               "params": {"level": "info", "data": "reading"}}
        text = json.dumps(answer)
        half = text.index(", ") + 1  # the data lines are joined with a newline: JSON whitespace
        body = (f": keep-alive\r\nevent: message\r\ndata: {json.dumps(log)}\r\n\r\n"
                f"event: message\r\nid: 7\r\ndata: {text[:half]}\r\ndata:{text[half:]}\r\n"
                f"\r\n").encode()
        self._send(200, body, "text/event-stream", headers)


@pytest.fixture
def mcp() -> Iterator[McpServer]:
    server = McpServer()
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def url_of(server: McpServer, path: str = "/mcp/") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def read_url(server: McpServer, tmp_path: Path, path: str = "/mcp/",
             token: str | None = TOKEN, timeout: float = 5.0) -> SourceReport:
    source = AgentMailSource(project=PROJECT, url=url_of(server, path), token_env="AM_TOKEN")
    return read(source, tmp_path, environ={"AM_TOKEN": token} if token else {}, timeout=timeout)


URL_ACTIVE = {("BlueLake", "src/*.py", True), ("GreenCastle", "docs/**", False)}


@pytest.mark.parametrize("mode", ["json", "sse"])
def test_url_reads_active_reservations_over_mcp(mcp: McpServer, tmp_path: Path,
                                                mode: str) -> None:
    mcp.mode = mode
    report = read_url(mcp, tmp_path)
    assert held(report) == URL_ACTIVE
    assert (report.source, report.location, report.project) == ("url", url_of(mcp), SLUG)
    assert report.warnings == ()
    assert TOKEN not in repr(report)
    posts = [r for r in mcp.requests if r["http"] == "POST"]
    assert [r["method"] for r in posts] == ["initialize", "notifications/initialized",
                                            "resources/read"]
    assert posts[2]["params"] == {"uri": f"resource://file_reservations/{SLUG}?active_only=true"}
    assert [r["session"] for r in posts] == [None, "session-1", "session-1"]
    assert [r["protocol"] for r in posts] == [None, "2025-03-26", "2025-03-26"]
    assert all("text/event-stream" in r["accept"] for r in posts)
    assert mcp.requests[-1] == {"http": "DELETE", "path": "/mcp/", "session": "session-1"}


def test_url_without_a_path_uses_mcp_and_follows_a_redirect(mcp: McpServer,
                                                             tmp_path: Path) -> None:
    assert held(read_url(mcp, tmp_path, path="")) == URL_ACTIVE
    assert {r["path"] for r in mcp.requests} == {"/mcp/"}
    mcp.mode, mcp.requests = "redirect", []
    assert held(read_url(mcp, tmp_path, path="/mcp")) == URL_ACTIVE
    assert [r["path"] for r in mcp.requests][:2] == ["/mcp", "/mcp/"]


def test_url_refused_token_is_an_error_without_the_token(mcp: McpServer, tmp_path: Path) -> None:
    with pytest.raises(AgentMailError, match=r"initialize: HTTP 401 Unauthorized \(the bearer "
                       r"token was refused; check token_env\)") as caught:
        read_url(mcp, tmp_path, token="wrong-token-value")
    assert "wrong-token-value" not in str(caught.value)


def test_url_missing_token_variable_is_named(mcp: McpServer, tmp_path: Path) -> None:
    with pytest.raises(AgentMailError, match="token_env names 'AM_TOKEN', which is not set"):
        read_url(mcp, tmp_path, token=None)
    assert mcp.requests == []


def test_url_json_rpc_error_is_an_error(mcp: McpServer, tmp_path: Path) -> None:
    mcp.mode = "rpc_error"
    with pytest.raises(AgentMailError, match=r"resources/read failed with JSON-RPC error "
                       r"-32002: Unknown resource"):
        read_url(mcp, tmp_path)


def test_url_http_500_is_an_error(mcp: McpServer, tmp_path: Path) -> None:
    mcp.mode = "http500"
    with pytest.raises(AgentMailError, match=r"resources/read: HTTP 500 Internal Server Error: "
                       r"Internal Server Error"):
        read_url(mcp, tmp_path)


def test_url_that_hangs_past_the_timeout_is_an_error(mcp: McpServer, tmp_path: Path) -> None:
    mcp.mode = "hang"
    with pytest.raises(AgentMailError, match=r"mcp_agent_mail url http://127\.0\.0\.1:\d+/mcp/: "
                       r"no answer within 0\.3s"):
        read_url(mcp, tmp_path, timeout=0.3)


def test_url_that_cannot_be_reached_hides_its_password(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    source = AgentMailSource(project=PROJECT, url=f"http://me:hunter2@127.0.0.1:{port}/mcp/")
    with pytest.raises(AgentMailError, match=rf"url http://me:\*\*\*@127\.0\.0\.1:{port}/mcp/: "
                       r"cannot reach the server") as caught:
        read(source, tmp_path)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(("contents", "problem"), [
    ([{"uri": "x", "text": "project: [toon]"}], "the content is not JSON"),
    ([{"uri": "x", "text": '{"count": 1}'}], "expected a list of reservations, got dict"),
    ([{"uri": "x"}], "neither text nor blob"),
    ([{"uri": "x", "text": json.dumps([{"agent": "A", "path_pattern": "p"}])}],
     "reservation 0: expires_ts is missing"),
    ("nope", "no contents list"),
])
def test_url_unexpected_resource_content_is_an_error(mcp: McpServer, tmp_path: Path,
                                                     contents: Any, problem: str) -> None:
    mcp.contents = contents
    with pytest.raises(AgentMailError, match=problem):
        read_url(mcp, tmp_path)


def test_url_blob_content_is_read(mcp: McpServer, tmp_path: Path) -> None:
    import base64

    mcp.contents = [{"uri": "x", "mimeType": "application/json",
                     "blob": base64.b64encode(json.dumps(RESERVATIONS).encode()).decode()}]
    assert held(read_url(mcp, tmp_path)) == URL_ACTIVE
