"""Agents still on the original TypeScript MAF (issue 12, items 3 and 4): its database at our
default path is never written, our store lives beside it, and its file leases (tasks + leases,
``file_reservations``, the JSON file backend) count in reservation checks and the guard.

Real SQLite files built from the original's published schema (``helpers_original_maf``), real
git repositories and worktrees, real pytest runs, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers_cli import cli
from helpers_git import APP_FILES, LOCK_VALIDATION, commit_base, git
from helpers_original_maf import (
    TRANSCRIBED_TABLES,
    build_database,
    fingerprint,
    lease_file,
    published_schema,
    release_file,
    reserve_file,
    table_columns,
    write_file_backend,
)
from pytest_maf_preflight.reservations.original_maf import (
    OriginalMafError,
    checkout_roots,
    literal_pattern,
    read_original_leases,
)
from pytest_maf_preflight.reservations.patterns import path_matches
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime
from pytest_maf_preflight.runtime.sqlite_readonly import read_only

QUIET = ("-W", "ignore::pytest.PytestWarning")
HOUR = 3600.0


@pytest.fixture
def repo(pytester: pytest.Pytester, git_identity: Path) -> Path:
    """The pytester project as a git repository on ``main``, with a lock_validation config."""
    pytester.makepyfile(test_app="def test_ordinary():\n    pass\n")
    return commit_base(
        pytester.path,
        {
            **APP_FILES,
            ".gitignore": ".maf/\n.agent-mail/\n__pycache__/\n",
            ".maf/preflight-configs/leases.yaml": LOCK_VALIDATION,
        },
    )


def gate(pytester: pytest.Pytester, *args: str, agent: str = "agent-a") -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p",
        "maf_preflight",
        "--maf-preflight",
        f"--maf-agent-id={agent}",
        "--maf-runtime=sqlite",
        *QUIET,
        *args,
    )


def original_db(root: Path) -> Path:
    db = root / ".maf" / "runtime.db"
    build_database(db)
    return db


# --- the published schema and our transcription ------------------------------------------------


def test_the_transcription_matches_the_published_schema(tmp_path: Path) -> None:
    texts, where = published_schema()
    if texts is None:
        pytest.skip(f"cannot compare with the published schema: {where}")
    published, transcribed = tmp_path / "published.db", tmp_path / "transcribed.db"
    assert build_database(published, source="published") == "published"
    assert build_database(transcribed, source="transcription") == "transcription"
    for table in TRANSCRIBED_TABLES:
        assert table_columns(transcribed, table) == table_columns(published, table), table
        assert table_columns(published, table), f"{table} is not in the published schema"


# --- item 3: the original database coexists ----------------------------------------------------


def test_our_store_lives_beside_the_original_database_and_never_writes_it(tmp_path: Path) -> None:
    db = original_db(tmp_path)
    lease_file(db, "src/a.py", "BlueLake", time.time() + HOUR)
    before = fingerprint(db)
    assert before["runtime.db-wal"] is None
    assert before["runtime.db-shm"] is None

    with SqliteRuntime(db) as runtime:
        assert runtime.path == tmp_path / ".maf" / "runtime.preflight.db"
        assert runtime.original_path == db
        assert runtime.acquire_leases("agent-a", ["docs/**"], ttl=60).ok
        info = runtime.info()
    assert info.location == str(tmp_path / ".maf" / "runtime.preflight.db")
    assert any(
        "belongs to the original MAF (tables tasks, leases" in n and "runtime.preflight.db" in n
        for n in info.notes
    ), info.notes

    # Outside git, MAF_DB_PATH naming the original's file: every command finds our store.
    env = {"MAF_DB_PATH": ".maf/runtime.db", "MAF_RUNTIME_MODE": "sqlite"}
    for command in (
        ["runtime", "info"],
        ["runtime", "migrate"],
        ["runtime", "sync", "--from", "json", "--to", "sqlite"],
        ["reservations", "list"],
    ):
        result = cli(tmp_path, *command, **env)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    info_out = cli(tmp_path, "runtime", "info", **env).stdout
    assert "mode: sqlite" in info_out
    assert "runtime.preflight.db" in info_out
    assert "docs/**" in cli(tmp_path, "reservations", "list", **env).stdout
    assert fingerprint(db) == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (0,)
        assert "schema_migrations" not in {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master")
        }
    conn.close()


def test_a_foreign_companion_is_refused_not_written(tmp_path: Path) -> None:
    db = original_db(tmp_path)
    companion = build_database(tmp_path / ".maf" / "runtime.preflight.db")
    assert companion
    from pytest_maf_preflight.runtime.errors import RuntimeUnavailable

    with pytest.raises(RuntimeUnavailable, match="both hold another application's tables"):
        SqliteRuntime(db)


def test_reading_a_quiet_wal_database_leaves_no_trace(tmp_path: Path) -> None:
    """A plain ``mode=ro`` connection would create -wal and -shm files here."""
    db = original_db(tmp_path)
    before = fingerprint(db)
    assert read_only(db, lambda c: c.execute("SELECT count(*) FROM tasks").fetchone()) == (0,)
    assert fingerprint(db) == before
    # With the original at work (its -wal present), committed rows are seen through it.
    writer = sqlite3.connect(db)
    try:
        writer.execute(
            "INSERT INTO tasks (id, state, payload_json, created_at, updated_at) "
            "VALUES ('t1', 'READY', '{}', 1, 1)"
        )
        writer.commit()
        assert Path(f"{db}-wal").exists()
        assert read_only(db, lambda c: c.execute("SELECT id FROM tasks").fetchall()) == [("t1",)]
    finally:
        writer.close()


# --- item 4: the original's leases count -------------------------------------------------------


def test_the_original_runtime_lease_closes_the_gate_and_the_file_stays_identical(
    pytester: pytest.Pytester, repo: Path
) -> None:
    db = original_db(repo)
    task = lease_file(db, "src/app/x.py", "BlueLake", time.time() + HOUR)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    before = fingerprint(db)

    result = gate(pytester)
    assert result.ret == 10, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: agent agent-a, environment development, runtime sqlite*",
            "*against 0 active lease(s) in the sqlite lease store and 1 original MAF lease(s) in "
            ".maf/runtime.db (leases, file_reservations)*",
            f"*src/app/x.py: reserved by BlueLake (exclusive original_maf:leases reservation "
            f"{task[:12]} on 'src/app/x.py', expires *",
        ]
    )
    assert "fell back" not in result.stdout.str()
    assert fingerprint(db) == before

    # Released as the original releases (task READY, lease row gone): the gate opens.
    release_file(db, "src/app/x.py")
    assert gate(pytester).ret == 0


def test_with_maf_db_path_on_the_original_file_the_gate_records_beside_it(
    pytester: pytest.Pytester, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = original_db(repo)
    lease_file(db, "src/app/x.py", "BlueLake", time.time() + HOUR)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    before = fingerprint(db)
    monkeypatch.setenv("MAF_DB_PATH", ".maf/runtime.db")
    result = gate(pytester)
    assert result.ret == 10, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*runtime sqlite*", "*src/app/x.py: reserved by BlueLake (exclusive original_maf*"]
    )
    assert fingerprint(db) == before
    with SqliteRuntime(repo / ".maf" / "runtime.preflight.db") as ours:
        [conflict] = ours.reservation_conflicts()
        assert (conflict.holder_agent_id, conflict.path) == ("BlueLake", "src/app/x.py")
        assert len(ours.sessions()) == 1


@pytest.mark.parametrize("kind", ["file_reservations", "file_backend"])
def test_file_reservations_and_the_file_backend_count_until_expired_or_released(
    pytester: pytest.Pytester, repo: Path, kind: str
) -> None:
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    now = time.time()
    if kind == "file_reservations":
        db = original_db(repo)
        reserve_file(db, "src/app/x.py", "GreenCastle", now + HOUR)
        where = ".maf/runtime.db (leases, file_reservations)"
    else:
        db = write_file_backend(
            repo / ".agent-mail",
            [{"agentId": "GreenCastle", "filePath": "src/app/x.py", "expiresAt": now + HOUR}],
        )
        where = ".agent-mail/reservations/reservations.db (file_backend)"
    before = fingerprint(db)
    result = gate(pytester)
    assert result.ret == 10, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"*1 original MAF lease(s) in {where}*",
            f"*src/app/x.py: reserved by GreenCastle (exclusive original_maf:{kind} reservation*",
        ]
    )
    assert fingerprint(db) == before

    # Expired and released ones do not count.
    if kind == "file_reservations":
        for change in ("lease_expires_at = 1000", "status = 'released'"):
            with sqlite3.connect(db) as conn:
                conn.execute(
                    "UPDATE file_reservations SET lease_expires_at = ?, status = 'active'",
                    (int((now + HOUR) * 1000),),
                )
                conn.execute(f"UPDATE file_reservations SET {change}")
            conn.close()
            assert gate(pytester).ret == 0
        return
    else:
        write_file_backend(
            repo / ".agent-mail",
            [
                {"agentId": "GreenCastle", "filePath": "src/app/x.py", "expiresAt": now - 60},
                {
                    "agentId": "GreenCastle",
                    "filePath": "src/app/x.py",
                    "expiresAt": now + HOUR,
                    "status": "released",
                },
                {
                    "agentId": "GreenCastle",
                    "filePath": "src/app/x.py",
                    "expiresAt": now + HOUR,
                    "status": "expired",
                },
            ],
        )
    result = gate(pytester)
    assert result.ret == 0, result.stdout.str()


def test_an_absolute_path_in_the_repository_counts_and_one_outside_matches_nothing(
    pytester: pytest.Pytester, repo: Path, tmp_path: Path
) -> None:
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    db = original_db(repo)
    lease_file(
        db, str(tmp_path / "elsewhere" / "src" / "app" / "x.py"), "Outsider", time.time() + HOUR
    )
    assert gate(pytester).ret == 0
    lease_file(db, str(repo / "src" / "app" / "x.py"), "BlueLake", time.time() + HOUR)
    result = gate(pytester)
    assert result.ret == 10, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*src/app/x.py: reserved by BlueLake*",
            "*note: 1 original MAF lease(s) name files outside this "
            "repository, which match nothing: *elsewhere*",
        ]
    )


@pytest.mark.parametrize("kind", ["database", "file_backend"])
def test_an_unreadable_original_store_fails_closed_naming_it(
    pytester: pytest.Pytester, repo: Path, kind: str
) -> None:
    if kind == "database":
        broken = repo / ".maf" / "runtime.db"
        broken.write_bytes(b"not a database at all " * 200)
    else:
        broken = repo / ".agent-mail" / "reservations" / "reservations.db"
        broken.parent.mkdir(parents=True)
        broken.write_text('{"reservations": [ {"agentId": "BlueLake",')
    # The store the gate records in is the shared one: only the lease source is broken.
    result = gate(pytester)
    assert result.ret == 10, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"*OriginalMafError: original MAF {kind.replace('_', ' ')} {broken}: *",
            "ERROR*no-foreign-leases*",
        ]
    )


def test_a_lease_in_the_main_checkout_counts_in_a_linked_worktree(
    pytester: pytest.Pytester, repo: Path, tmp_path: Path
) -> None:
    worktree = tmp_path / "wt-green"
    git(repo, "worktree", "add", "-q", "-b", "green", str(worktree))
    db = original_db(repo)  # the original agent works in the main checkout
    lease_file(db, "src/app/x.py", "BlueLake", time.time() + HOUR)
    (worktree / "src" / "app" / "x.py").write_text("x = 3\n")
    configs = worktree / ".maf" / "preflight-configs"
    configs.mkdir(parents=True)
    (configs / "leases.yaml").write_text(LOCK_VALIDATION)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "maf_preflight",
            "--maf-preflight",
            "--maf-agent-id=GreenCastle",
            "--maf-runtime=sqlite",
            *QUIET,
        ],
        cwd=worktree,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert result.returncode == 10, result.stdout + result.stderr
    assert "src/app/x.py: reserved by BlueLake (exclusive original_maf:leases" in result.stdout
    assert str(db) in result.stdout


def test_the_guard_blocks_a_commit_of_a_file_leased_through_the_original(repo: Path) -> None:
    db = original_db(repo)
    reserve_file(db, "src/app/x.py", "BlueLake", time.time() + HOUR)
    (repo / "src" / "app" / "x.py").write_text("x = 2\n")
    git(repo, "add", "src/app/x.py")
    before = fingerprint(db)
    result = cli(repo, "guard", "check", "--agent", "agent-a", MAF_RUNTIME_MODE="sqlite")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "src/app/x.py: reserved by BlueLake (exclusive original_maf:file_reservations"
        in result.stdout
    )
    assert fingerprint(db) == before


# --- the reader itself ---------------------------------------------------------------------------


def test_the_reader_skips_our_own_stores_and_other_synthetic_tasks(tmp_path: Path) -> None:
    # One of our stores at the original's path (an older per-checkout one) is not a source.
    with SqliteRuntime(tmp_path / ".maf" / "runtime.db") as ours:
        assert ours.acquire_leases("agent-b", ["src/a.py"], ttl=60).ok
    db = tmp_path / "other" / ".maf" / "runtime.db"
    build_database(db)
    now = time.time()
    lease_file(db, "src/b.py", "BlueLake", now + HOUR, state="RUNNING")
    lease_file(db, "src/c.py", "BlueLake", now + HOUR, state="READY")  # not held
    lease_file(db, "src/d.py", "BlueLake", now - 1)  # expired
    with sqlite3.connect(db) as conn:  # a held task of another kind, as the orchestrator has
        conn.execute(
            "INSERT INTO tasks (id, state, payload_json, created_at, updated_at) "
            "VALUES ('file_0000000000000000', 'LEASED', ?, 1, 1)",
            (json.dumps({"type": "synthetic_heartbeat", "agentId": "x"}),),
        )
        conn.execute(
            "INSERT INTO leases VALUES ('file_0000000000000000', 'x', ?, 1)",
            (int((now + HOUR) * 1000),),
        )
    conn.close()
    report = read_original_leases([tmp_path, tmp_path / "other"], environ={}, now=now, timeout=5)
    assert [(lease.agent, lease.path, lease.source) for lease in report.leases] == [
        ("BlueLake", "src/b.py", "leases")
    ]
    assert {s[0] for s in report.stores} == {str(db)}


def test_a_task_lease_with_a_broken_payload_fails_closed(tmp_path: Path) -> None:
    db = original_db(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO tasks (id, state, payload_json, created_at, updated_at) "
            "VALUES ('file_1234', 'LEASED', '{not json', 1, 1)"
        )
        conn.execute("INSERT INTO leases VALUES ('file_1234', 'BlueLake', 1, 1)")
    conn.close()
    with pytest.raises(OriginalMafError, match=r"task 'file_1234': payload_json is not JSON"):
        read_original_leases([tmp_path], environ={}, now=time.time(), timeout=5)


def test_paths_with_glob_characters_name_exactly_one_file() -> None:
    pattern = literal_pattern("src/a[1]*.py")
    assert path_matches("src/a[1]*.py", pattern)
    assert not path_matches("src/a1x.py", pattern)
    assert literal_pattern("src/plain.py") == "src/plain.py"


def test_every_checkout_is_a_root(repo: Path, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "wt", str(worktree))
    roots = {os.path.realpath(p) for p in checkout_roots(worktree)}
    assert roots == {os.path.realpath(repo), os.path.realpath(worktree)}
    assert checkout_roots(tmp_path / "nowhere") == [tmp_path / "nowhere"]
