"""The SQLite runtime under faults, with real processes and real files (SPEC S5, issue 3).

The shared behaviour of every mode is in ``test_runtime_contract.py``; this file covers what only
SQLite has: locks, retries, migrations, killed writers and files that are not databases.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_runtime_procs import make_bundle
from pytest_maf_preflight.runtime.errors import RuntimeStateError, RuntimeUnavailable
from pytest_maf_preflight.runtime.records import ExecutionRecord, Message, new_id
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime
from pytest_maf_preflight.runtime.sqlite_migrations import (
    SCHEMA_VERSION,
    apply_migration,
    migrate,
)

HELPER = Path(__file__).with_name("helpers_runtime_procs.py")
#: Generous: these bound a hang, they do not measure speed.
PROCESS_TIMEOUT = 240


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "runtime.db"


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def scalar(path: Path, sql: str, params: tuple[object, ...] = ()) -> object:
    conn = raw(path)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HELPER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[dict[str, object]]:
    """Wait for every child; fail with its stderr if any did not exit cleanly."""
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
        assert "Error" not in err, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports


# --- opening: pragmas, schema, and the files SQLite cannot use ------------------------------


def test_a_new_database_is_in_wal_mode_with_the_current_schema(db: Path) -> None:
    with SqliteRuntime(db) as runtime:
        info = runtime.info()
    assert db.parent.is_dir()  # created on the way
    assert info.mode == "sqlite"
    assert info.location == str(db)
    assert info.schema_version == SCHEMA_VERSION
    assert info.notes == ()
    assert scalar(db, "PRAGMA journal_mode") == "wal"  # persistent, seen by any connection
    assert scalar(db, "PRAGMA user_version") == SCHEMA_VERSION
    tables = {r[0] for r in raw(db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "preflight_configs",
        "preflight_executions",
        "preflight_sessions",
        "escalation_paths",
        "escalation_tracking",
        "escalation_deliveries",
        "smoke_tests",
        "agents",
        "leases",
        "reservation_conflicts",
        "messages",
    } <= tables


def test_foreign_keys_are_enforced_and_a_failing_bundle_leaves_nothing(db: Path) -> None:
    bundle = make_bundle(5)
    stray = ExecutionRecord(
        **{**vars(bundle.executions[0]), "id": new_id(), "session_id": "no-such-session"}
    )
    broken = type(bundle)(session=bundle.session, executions=(*bundle.executions, stray))
    with SqliteRuntime(db) as runtime:
        with pytest.raises(RuntimeStateError, match="FOREIGN KEY"):
            runtime.record_session(broken)
        # The session row and the five good executions went in before the failing one:
        # all of them were rolled back.
        assert runtime.get_session(bundle.session.id) is None
        assert runtime.executions() == []
        runtime.record_session(bundle)  # and the runtime still works
        assert len(runtime.executions(session_id=bundle.session.id)) == 5


def test_json_columns_have_sorted_keys_and_values_are_bound_not_spliced(db: Path) -> None:
    hostile = "x'); DROP TABLE preflight_executions; --"
    bundle = make_bundle(1)
    execution = ExecutionRecord(
        **{**vars(bundle.executions[0]), "config_id": hostile, "result": {"b": 2, "a": 1}}
    )
    with SqliteRuntime(db) as runtime:
        runtime.record_session(type(bundle)(session=bundle.session, executions=(execution,)))
        assert runtime.executions(config_id=hostile) == [execution]
    assert scalar(db, "SELECT result FROM preflight_executions") == '{"a":1,"b":2}'


def test_a_garbage_file_is_unavailable_and_left_as_it_was(db: Path) -> None:
    with SqliteRuntime(db) as runtime:
        runtime.record_session(make_bundle(3))
    garbage = b"this is not sqlite" + os.urandom(8192)
    db.write_bytes(garbage)
    with pytest.raises(RuntimeUnavailable) as raised:
        SqliteRuntime(db)
    message = str(raised.value)
    assert str(db) in message
    assert "not a database" in message
    assert "\n" not in message
    assert db.read_bytes() == garbage


def test_a_directory_that_cannot_be_made_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("a regular file where a directory should be")
    target = blocker / "runtime.db"  # fails for every user, root included
    with pytest.raises(RuntimeUnavailable, match="cannot create the directory") as raised:
        SqliteRuntime(target)
    assert str(target) in str(raised.value)


def test_a_directory_in_place_of_the_file_is_unavailable(db: Path) -> None:
    db.mkdir(parents=True)
    with pytest.raises(RuntimeUnavailable, match="is a directory"):
        SqliteRuntime(db)


def test_a_newer_schema_is_unavailable_and_untouched(db: Path) -> None:
    SqliteRuntime(db).close()
    conn = raw(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeUnavailable, match="newer schema"):
        SqliteRuntime(db)
    assert scalar(db, "PRAGMA user_version") == SCHEMA_VERSION + 1


def test_a_closed_runtime_says_so(db: Path) -> None:
    runtime = SqliteRuntime(db)
    runtime.close()
    runtime.close()  # twice is fine
    with pytest.raises(RuntimeStateError, match="closed"):
        runtime.sessions()


# --- locks and retries --------------------------------------------------------------------


@pytest.fixture
def exclusive_lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding ``BEGIN EXCLUSIVE`` on an existing database."""
    SqliteRuntime(db).close()
    holder = raw(db)
    holder.execute("BEGIN EXCLUSIVE")
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def test_opening_a_database_locked_beyond_the_budget_is_unavailable(
    db: Path, exclusive_lock: sqlite3.Connection
) -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeUnavailable, match="locked") as raised:
        SqliteRuntime(db, busy_timeout_ms=50, retry_budget_seconds=0.3)
    assert str(db) in str(raised.value)
    assert time.monotonic() - started < 30  # gave up instead of hanging


def test_a_write_locked_beyond_the_budget_fails_whole(db: Path) -> None:
    runtime = SqliteRuntime(db, busy_timeout_ms=5000, retry_budget_seconds=0.3)
    holder = raw(db)
    holder.execute("BEGIN EXCLUSIVE")
    bundle = make_bundle(10)
    started = time.monotonic()
    try:
        with pytest.raises(RuntimeStateError, match="locked") as raised:
            runtime.record_session(bundle)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(db) in str(raised.value)
    # busy_timeout 5 s was capped by the 0.3 s budget: no 5 s wait per attempt.
    assert time.monotonic() - started < 4
    assert runtime.retries >= 1
    assert runtime.get_session(bundle.session.id) is None
    runtime.record_session(bundle)  # the lock is gone: the same write now succeeds
    assert len(runtime.executions(session_id=bundle.session.id)) == 10
    runtime.close()


def test_a_write_retries_through_a_lock_shorter_than_the_budget(db: Path) -> None:
    # SQLite alone would give up after 10 ms; the runtime's own retries must carry the write.
    runtime = SqliteRuntime(db, busy_timeout_ms=10, retry_budget_seconds=30)
    holder = raw(db)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.3, holder.execute, args=("COMMIT",))
    release.start()
    try:
        bundle = make_bundle(10)
        runtime.record_session(bundle)
    finally:
        release.join()
        holder.close()
    assert runtime.retries >= 1
    assert len(runtime.executions(session_id=bundle.session.id)) == 10
    runtime.close()


def test_an_acquire_waits_out_a_lock_and_decides_on_what_is_there_then(db: Path) -> None:
    # The lease is taken by another connection inside the very transaction that holds the
    # lock: the waiting acquire must see it once it gets the lock, not what it saw before.
    with SqliteRuntime(db) as setup:
        setup.acquire_leases("agent-a", ["old/**"], ttl=60, now=100.0)
    runtime = SqliteRuntime(db, busy_timeout_ms=10, retry_budget_seconds=30)
    holder = raw(db)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute(
        "INSERT INTO leases (id, agent_id, path_pattern, exclusive, reason, "
        "created_at, expires_at, released_at, fencing_token) "
        "VALUES ('theirs', 'agent-b', 'src/**', 1, '', 100.0, 200.0, NULL, 50)"
    )
    release = threading.Timer(0.3, holder.execute, args=("COMMIT",))
    release.start()
    try:
        grant = runtime.acquire_leases("agent-c", ["src/a.py"], ttl=60, now=150.0)
    finally:
        release.join()
        holder.close()
    assert runtime.retries >= 1
    assert [lease.id for lease in grant.conflicts] == ["theirs"]
    # A token above the one written behind the counter's back.
    assert (
        runtime.acquire_leases("agent-c", ["docs/**"], ttl=60, now=150.0).granted[0].fencing_token
        == 51
    )
    runtime.close()


def test_eight_processes_recording_at_once_lose_nothing(tmp_path: Path, db: Path) -> None:
    workers, sessions, executions = 8, 50, 20
    go = tmp_path / "go"
    # The database does not exist yet: the children also race to create its schema.
    procs = [
        spawn("record", str(db), str(w), str(sessions), str(executions), str(go))
        for w in range(workers)
    ]
    go.touch()
    reports = finish(procs)
    assert [r["schema_version"] for r in reports] == [SCHEMA_VERSION] * workers
    assert scalar(db, "SELECT count(*) FROM preflight_executions") == (
        workers * sessions * executions
    )
    assert scalar(db, "SELECT count(*) FROM preflight_sessions") == workers * sessions
    assert scalar(db, "SELECT count(DISTINCT id) FROM preflight_executions") == (
        workers * sessions * executions
    )
    assert scalar(db, "PRAGMA integrity_check") == "ok"


# --- a writer killed mid-transaction ------------------------------------------------------


def _read_ready(proc: subprocess.Popen[str], timeout: float = PROCESS_TIMEOUT) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the victim never reached its transaction"
    line = proc.stdout.readline()
    assert line.strip() == "READY", (line, proc.stderr.read() if proc.stderr else "")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("moment", ["during", "after"], ids=["inside-executemany", "before-commit"])
def test_a_writer_killed_mid_transaction_leaves_no_partial_session(db: Path, moment: str) -> None:
    victim_session = new_id()
    proc = spawn("victim", str(db), victim_session, moment)
    try:
        _read_ready(proc)
        time.sleep(0.2)
        assert proc.poll() is None, "the victim finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=PROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    assert scalar(db, "PRAGMA integrity_check") == "ok"
    # Nothing of the killed session, not even its session row...
    assert (
        scalar(db, "SELECT count(*) FROM preflight_sessions WHERE id = ?", (victim_session,)) == 0
    )
    assert (
        scalar(
            db, "SELECT count(*) FROM preflight_executions WHERE session_id = ?", (victim_session,)
        )
        == 0
    )
    # ...and everything committed before it.
    assert (
        scalar(db, "SELECT count(*) FROM preflight_executions WHERE session_id = ?", ("committed",))
        == 10
    )
    with SqliteRuntime(db) as runtime:  # the next writer takes over normally
        runtime.record_session(make_bundle(2000, session_id=victim_session))
        assert len(runtime.executions(session_id=victim_session)) == 2000
    assert scalar(db, "PRAGMA integrity_check") == "ok"


# --- migrations ---------------------------------------------------------------------------


def test_a_version_1_database_upgrades_in_place_without_losing_rows(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = raw(db)
    assert migrate(conn, target=1) == 1
    conn.execute(
        "INSERT INTO preflight_sessions (id, agent_id, environment, started_at, "
        "completed_at, status, exit_code, runtime_mode) "
        "VALUES ('old', 'agent', 'dev', 10.0, 11.0, 'closed', 0, 'sqlite')"
    )
    conn.executemany(
        "INSERT INTO preflight_executions (id, session_id, config_id, config_version, "
        "agent_id, kind, status, started_at, completed_at, duration, attempts, result, "
        "error_message) VALUES (?, 'old', 'git', '1.0', 'agent', 'check', 'passed', ?, ?, "
        "0.5, 1, '{\"n\":1}', NULL)",
        [(f"e{i}", 10.0 + i, 10.5 + i) for i in range(25)],
    )
    conn.execute(
        "INSERT INTO messages (id, type, agent_id, payload, created_at, recipient) "
        "VALUES ('m1', 'PREFLIGHT_RESULT', 'agent', '{}', 10.0, 'lead')"
    )
    with pytest.raises(sqlite3.OperationalError, match="hostname"):
        conn.execute("SELECT hostname FROM preflight_sessions")  # truly the old schema
    conn.close()

    with SqliteRuntime(db) as runtime:
        assert runtime.info().schema_version == SCHEMA_VERSION
        old = runtime.get_session("old")
        assert old is not None
        assert (old.status, old.hostname, dict(old.details)) == ("closed", "", {})
        executions = runtime.executions(session_id="old")
        assert len(executions) == 25
        assert executions[0].id == "e24"
        assert executions[0].result == {"n": 1}
        assert [m.id for m in runtime.dequeue("lead")] == ["m1"]
        fresh = make_bundle(3)
        runtime.record_session(fresh)
        assert runtime.get_session(fresh.session.id) == fresh.session  # new columns in use
    assert scalar(db, "PRAGMA user_version") == SCHEMA_VERSION
    assert scalar(db, "SELECT group_concat(version) FROM schema_migrations") == ",".join(
        str(v) for v in range(1, SCHEMA_VERSION + 1)
    )


def test_a_migration_already_applied_elsewhere_is_skipped(db: Path) -> None:
    # What a second process sees when the first finished while it waited for the lock:
    # the version is re-read inside the transaction, so nothing is applied twice.
    db.parent.mkdir(parents=True)
    conn = raw(db)
    assert migrate(conn) == SCHEMA_VERSION
    assert [apply_migration(conn, v) for v in range(1, SCHEMA_VERSION + 1)] == (
        [False] * SCHEMA_VERSION
    )
    assert not conn.in_transaction
    assert migrate(conn) == SCHEMA_VERSION
    conn.close()


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(
    tmp_path: Path, db: Path
) -> None:
    go = tmp_path / "go"
    procs = [spawn("open", str(db), str(go)) for _ in range(4)]
    go.touch()
    reports = finish(procs)
    assert [r["schema_version"] for r in reports] == [SCHEMA_VERSION] * 4
    conn = raw(db)
    applied = conn.execute(
        "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version"
    ).fetchall()
    conn.close()
    assert applied == [(v, 1) for v in range(1, SCHEMA_VERSION + 1)]


# --- threads ------------------------------------------------------------------------------


def test_threads_share_one_runtime_for_reads_and_writes(db: Path) -> None:
    errors: list[BaseException] = []
    with SqliteRuntime(db) as runtime:

        def work(n: int) -> None:
            try:
                for k in range(5):
                    runtime.record_session(make_bundle(10, started=n * 100.0 + k))
                    runtime.enqueue(
                        Message(
                            id=new_id(),
                            type="PREFLIGHT_RESULT",
                            agent_id=f"t{n}",
                            payload={},
                            created_at=k,
                            recipient="lead",
                        )
                    )
                    runtime.executions(limit=5)
                    runtime.heartbeat(f"t{n}")
            except BaseException as exc:  # collected for the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        counts = runtime.info().counts
        delivered = runtime.dequeue("lead", limit=100)
    assert counts == {
        "sessions": 30,
        "executions": 300,
        "config_snapshots": 0,
        "messages": 30,
        "agents": 6,
        "leases": 0,
        "reservation_conflicts": 0,
        "escalations": 0,
        "escalation_deliveries": 0,
        "smoke_tests": 0,
        "escalation_paths": 0,
        "waivers": 0,
        "escalation_decisions": 0,
        "silences": 0,
    }
    assert len(delivered) == 30
