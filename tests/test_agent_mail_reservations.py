"""mcp_agent_mail reservations, read-only, from a real SQLite file and a real archive
directory (the server source is in test_agent_mail_url.py)."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from helpers_agent_mail import NOW, PROJECT, SLUG, held, read
from pytest_maf_preflight.agent_mail.projects import slugify
from pytest_maf_preflight.agent_mail.reservations import (
    ARCHIVE_WARNING,
    AgentMailError,
    ExternalReservation,
)
from pytest_maf_preflight.config.models import AgentMailSource

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


def make_database(
    path: Path,
    rows: list[tuple[int, str, str, int, str, str | None, int]] = ROWS,
    *,
    schema: str = SCHEMA,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(schema)
        conn.execute(
            "INSERT INTO projects VALUES (1, ?, ?, '2026-01-01 00:00:00')", (SLUG, PROJECT)
        )
        conn.execute(
            "INSERT INTO projects VALUES (2, 'srv-other', '/srv/other', '2026-01-01 00:00:00')"
        )
        for name, number in AGENTS.items():
            conn.execute(
                "INSERT INTO agents (id, project_id, name) VALUES (?, ?, ?)",
                (number, 2 if name == "Elsewhere" else 1, name),
            )
        for row_id, agent, pattern, exclusive, expires, released, project_id in rows:
            conn.execute(
                "INSERT INTO file_reservations VALUES (?, ?, ?, ?, ?, '', "
                "'2026-11-25 08:00:00', ?, ?)",
                (row_id, project_id, AGENTS[agent], pattern, exclusive, expires, released),
            )
    conn.close()
    return path


ACTIVE = {
    ("BlueLake", "src/*.py", True),
    ("RedStone", "lib/b.py", True),
    ("GreenCastle", "README.md", False),
}


def test_database_keeps_active_reservations_comparing_times_as_times(tmp_path: Path) -> None:
    database = make_database(tmp_path / "storage.sqlite3")
    report = read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)
    assert held(report) == ACTIVE
    assert (report.source, report.location, report.project) == ("database", str(database), SLUG)
    assert report.warnings == ()
    [blue] = [r for r in report.reservations if r.agent == "BlueLake"]
    assert blue == ExternalReservation(
        agent="BlueLake",
        path_pattern="src/*.py",
        exclusive=True,
        expires_at=NOW + 1800,
        released_at=None,
        source="database",
        reservation_id="1",
    )


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
            writer.execute(
                "INSERT INTO file_reservations VALUES (1, 1, 1, 'new.py', 1, '', "
                "'2026-11-25 09:00:00', '2026-11-25 10:30:00', NULL)"
            )
        report = read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)
        assert held(report) == {("BlueLake", "new.py", True)}
    finally:
        writer.close()


def test_database_path_expands_home_and_project_defaults_to_rootdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    make_database(tmp_path / "home" / ".mcp_agent_mail" / "storage.sqlite3")
    rootdir = Path(PROJECT)  # the rootdir is the human key when no project is given
    report = read(AgentMailSource(database="~/.mcp_agent_mail/storage.sqlite3"), rootdir)
    assert held(report) == ACTIVE
    assert report.location == str(tmp_path / "home" / ".mcp_agent_mail" / "storage.sqlite3")


@pytest.mark.parametrize("project", ["srv-repos-app", "/srv/repos/app/", "/srv/repos/../repos/app"])
def test_database_project_by_slug_or_by_an_unnormalised_human_key(
    tmp_path: Path, project: str
) -> None:
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
    with pytest.raises(
        AgentMailError,
        match=r"project '/nowhere' \(slug 'nowhere'\) is not in "
        r"its projects table \(known: /srv/repos/app \(srv-repos-app\); "
        r"/srv/other \(srv-other\)\); set agent_mail.project",
    ):
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
    conn.executescript(
        "CREATE TABLE projects (id INTEGER, slug TEXT, human_key TEXT);"
        "CREATE TABLE agents (id INTEGER, name TEXT);"
        "CREATE TABLE claims (id INTEGER);"
    )
    conn.close()
    with pytest.raises(AgentMailError, match=r"no 'file_reservations' table .*'claims'"):
        read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)


def test_a_file_that_is_not_a_database_fails_closed(tmp_path: Path) -> None:
    database = tmp_path / "storage.sqlite3"
    database.write_bytes(b"not a database at all" * 100)
    with pytest.raises(AgentMailError, match="cannot read: file is not a database"):
        read(AgentMailSource(project=PROJECT, database=str(database)), tmp_path)


def test_database_unparseable_time_names_the_row(tmp_path: Path) -> None:
    database = make_database(
        tmp_path / "storage.sqlite3",
        rows=[*ROWS, (10, "BlueLake", "x.py", 1, "tomorrow-ish", None, 1)],
    )
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
    report = read(
        AgentMailSource(project=PROJECT, database=str(database), token_env="TOK"), tmp_path
    )
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
    artifact(
        directory,
        None,
        id=1,
        agent="BlueLake",
        path_pattern="src/*.py",
        exclusive=True,
        expires_ts="2026-11-25T10:00:00+00:00",
    )
    artifact(
        directory,
        None,
        id=2,
        agent="GreenCastle",
        path_pattern="docs/**",
        exclusive=True,
        expires_ts="2026-11-25T09:15:00+00:00",
    )  # expired
    artifact(
        directory,
        None,
        id=3,
        agent="RedStone",
        path_pattern="README.md",
        exclusive=False,
        expires_ts="2026-11-25T11:00:00.5+00:00",
    )
    # Newer: two copies of each reservation, released_ts marked.
    for name in (None, "id-5"):
        artifact(
            directory,
            name,
            id=5,
            agent="PinkPond",
            path_pattern="web/**",
            exclusive=True,
            expires_ts="2026-11-25T12:00:00+00:00",
            released_ts=None,
        )
    artifact(
        directory,
        None,
        id=6,
        agent="PinkPond",
        path_pattern="api/**",
        exclusive=True,
        expires_ts="2026-11-25T12:00:00+00:00",
        released_ts=None,
    )
    artifact(
        directory,
        "id-6",
        id=6,
        agent="PinkPond",
        path_pattern="api/**",
        exclusive=True,
        expires_ts="2026-11-25T12:00:00+00:00",
        released_ts="2026-11-25T09:20:00+00:00",
    )
    (directory / "notes.txt").write_text("not an artifact")
    return directory


def test_archive_reads_active_artifacts_and_warns_that_it_can_over_report(tmp_path: Path) -> None:
    directory = make_archive(tmp_path / "archive")
    report = read(AgentMailSource(project=PROJECT, storage=str(tmp_path / "archive")), tmp_path)
    assert held(report) == {
        ("BlueLake", "src/*.py", True),
        ("RedStone", "README.md", False),
        ("PinkPond", "web/**", True),
    }
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
    with pytest.raises(
        AgentMailError,
        match=r"no archive for project slug 'srv-elsewhere' .*"
        r"known: srv-repos-app",
    ):
        read(AgentMailSource(project="/srv/elsewhere", storage=str(tmp_path / "archive")), tmp_path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "Expecting property name"),
        ("[1, 2]", "expected a JSON object, got list"),
        (json.dumps({"agent": "A", "path_pattern": "x"}), "expires_ts is missing"),
        (
            json.dumps({"agent": "A", "path_pattern": "x", "expires_ts": "later"}),
            "expires_ts: not a time: 'later'",
        ),
        (
            json.dumps({"path_pattern": "x", "expires_ts": "2026-11-26T00:00:00Z"}),
            "agent is missing or not text",
        ),
        (
            json.dumps(
                {
                    "agent": "A",
                    "path_pattern": "x",
                    "exclusive": "maybe",
                    "expires_ts": "2026-11-26T00:00:00Z",
                }
            ),
            "exclusive is not a boolean",
        ),
    ],
)
def test_archive_unreadable_artifact_names_the_file(
    tmp_path: Path, content: str, problem: str
) -> None:
    directory = make_archive(tmp_path / "archive")
    (directory / "broken.json").write_text(content)
    where = re.escape(str(directory))
    with pytest.raises(AgentMailError, match=rf"storage {where}: broken\.json: .*{problem}"):
        read(AgentMailSource(project=PROJECT, storage=str(tmp_path / "archive")), tmp_path)
