"""Child processes for the SQLite runtime's fault tests (run as a script by the tests).

    python helpers_runtime_procs.py record DB WORKER SESSIONS EXECUTIONS GO_FILE
    python helpers_runtime_procs.py open DB GO_FILE
    python helpers_runtime_procs.py victim DB SESSION_ID MODE        (MODE: during | after)
    python helpers_runtime_procs.py lease-race MODE WHERE AGENT PATTERN READY_DIR GO_FILE
    python helpers_runtime_procs.py lease-cycles MODE WHERE AGENT CYCLES LOG READY_DIR GO_FILE
    python helpers_runtime_procs.py escalation-open MODE WHERE KEY AGENT READY_DIR GO_FILE
    python helpers_runtime_procs.py escalation-claim MODE WHERE AGENT NOW READY_DIR GO_FILE
    python helpers_runtime_procs.py escalation-climb MODE WHERE ID TOP AGENT READY_DIR GO_FILE
    python helpers_runtime_procs.py store-open MODE WHERE AGENT READY_DIR GO_FILE

(lease, escalation and store-open commands: MODE is sqlite, json or postgres; WHERE the
database file, the agent-mail root, or the PostgreSQL schema in the database of
MAF_TEST_POSTGRES_URL.)

Every command prints one JSON line on success; an exception ends the process with a traceback
on stderr and a non-zero exit code, which is what the tests look for.

The tests' side is here too: ``run_together`` starts the children, ``where`` and ``open_store``
name and open the store they share, ``own_schema`` gives a postgres test its schema.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.jsonl import JsonRuntime
from pytest_maf_preflight.runtime.records import (
    DeliveryRecord,
    EscalationRecord,
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)
from pytest_maf_preflight.runtime.sql_rows import PreparedBundle
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

#: Short on purpose: lock waits must be survived by the runtime's retries, not SQLite's wait.
CHILD_BUSY_TIMEOUT_MS = 20
CHILD_RETRY_BUDGET = 120.0

#: The PostgreSQL server of the postgres tests. Read when this module is first imported, before
#: tests/conftest.py removes every MAF_* variable from the environment of each test.
POSTGRES_URL = (
    os.environ.get("MAF_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
)
_postgres_reason: list[str | None] = []


#: Set by CI (``.ci/run``), where a missing server is a broken machine, not a reason to skip.
POSTGRES_REQUIRED = os.environ.get("MAF_TEST_POSTGRES_REQUIRED") == "1"


def postgres_unavailable() -> str | None:
    """Why the postgres tests cannot run here (said once, then remembered), or None.

    With ``MAF_TEST_POSTGRES_REQUIRED=1`` there is no reason to skip: the test fails instead.
    """
    if not _postgres_reason:
        _postgres_reason.append(_why_no_postgres())
    reason = _postgres_reason[0]
    if reason is not None and POSTGRES_REQUIRED:
        import pytest

        pytest.fail(f"MAF_TEST_POSTGRES_REQUIRED=1, but {reason}", pytrace=False)
    return reason


def _why_no_postgres() -> str | None:
    try:
        import psycopg
    except ImportError:
        return (
            "psycopg is not installed: pip install 'pytest-maf-preflight[postgres]' "
            "to run the postgres runtime tests"
        )
    from pytest_maf_preflight.runtime.postgres import describe_url, one_line

    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return (
            f"no PostgreSQL server at {describe_url(POSTGRES_URL)} (set "
            f"MAF_TEST_POSTGRES_URL to one): {one_line(str(exc))}"
        )
    return None


def new_schema() -> str:
    """A schema name no other test uses."""
    return f"maf_test_{uuid.uuid4().hex}"


def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def own_schema() -> Iterator[str]:
    """A schema name of the test's own (not created yet), dropped afterwards; the test is
    skipped, with the reason, when no PostgreSQL server can be reached."""
    reason = postgres_unavailable()
    if reason is not None:
        import pytest

        pytest.skip(reason)
    name = new_schema()
    try:
        yield name
    finally:
        drop_schema(name)


# --- the test's side of the races ---------------------------------------------------------------

#: Children per race. Generous: these bound a hang, they do not measure speed.
WORKERS = 8
#: The stores processes on one machine share.
MODES = ["sqlite", "json"]
#: "Now" of the escalation races.
T0 = 1_000.0


def where(mode: str, tmp_path: Path) -> Path:
    """The WHERE argument of the children: the database file or the agent-mail root."""
    return tmp_path / ("runtime.db" if mode == "sqlite" else "agent-mail")


def open_store(mode: str, tmp_path: Path) -> RuntimeState:
    """The store the children share, as the test opens it (default timeouts)."""
    if mode == "sqlite":
        return SqliteRuntime(where(mode, tmp_path))
    return JsonRuntime(where(mode, tmp_path))


def open_due(store: RuntimeState, key: str, next_action_at: float) -> str:
    """An escalation opened at ``T0``, due at ``next_action_at``: its id."""
    record, created = store.open_escalation(
        path_id="critical",
        dedup_key=key,
        check_id="git",
        failure_class="failed",
        path_snapshot={"id": "critical", "version": "1.0.0", "config": {}},
        next_action_at=next_action_at,
        details={},
        now=T0,
    )
    assert created
    return record.id


def assert_one_holder_at_a_time(log: Path, reports: list[dict[str, Any]]) -> None:
    """The critical-section log of ``lease-cycles`` children: every hold logged, enter and
    exit alternate, by the same holder, and the tokens grow in the order the holders came."""
    lines = [line.split() for line in log.read_text().splitlines()]
    assert len(lines) == 2 * sum(int(r["held"]) for r in reports) > 0
    for n, (kind, agent, _) in enumerate(lines):
        assert kind == ("enter" if n % 2 == 0 else "exit"), lines[max(0, n - 2) : n + 1]
        if kind == "exit":
            assert agent == lines[n - 1][1]
    logged = [int(token) for _, _, token in lines]
    assert logged == sorted(set(logged))


def run_together(
    tmp_path: Path,
    commands: list[list[str]],
    *,
    own_homes: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 240,
) -> list[dict[str, Any]]:
    """Start every child (this script with ``command``), wait until each has its store open,
    then let them all go at once; the last JSON line of each child's output, in order.
    ``own_homes``: each child runs in a working directory of its own, like another host."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    ready.mkdir()
    procs = []
    for n, command in enumerate(commands):
        home = None
        if own_homes:
            home = tmp_path / f"host-{n}"
            home.mkdir()
        procs.append(
            subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), *command, str(ready), str(go)],
                cwd=home,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        deadline = time.monotonic() + timeout
        while len(list(ready.iterdir())) < len(procs):
            crashed = [p for p in procs if p.poll() not in (None, 0)]
            assert not crashed, crashed[0].communicate()[1]
            assert time.monotonic() < deadline, "the children never got ready"
            time.sleep(0.005)
        go.touch()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            assert "Traceback" not in err, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return reports


def make_execution(session_id: str, index: int, started: float) -> ExecutionRecord:
    return ExecutionRecord(
        id=new_id(),
        session_id=session_id,
        config_id=f"check-{index % 7}",
        config_version="1.0.0",
        agent_id="agent",
        kind="check",
        status="passed" if index % 5 else "failed",
        started_at=started + index,
        completed_at=started + index + 0.25,
        duration=0.25,
        attempts=1,
        result={"index": index, "observed": "x" * 32},
        error_message=None,
    )


def make_bundle(
    executions: int, session_id: str | None = None, started: float = 1000.0
) -> SessionBundle:
    sid = session_id or new_id()
    session = SessionRecord(
        id=sid,
        agent_id="agent",
        environment="test",
        started_at=started,
        completed_at=started + 1,
        status="open",
        exit_code=0,
        runtime_mode="sqlite",
        hostname="host",
        details={"n": executions},
    )
    return SessionBundle(
        session=session,
        executions=tuple(make_execution(sid, i, started) for i in range(executions)),
    )


def wait_for(go_file: Path) -> None:
    """All children start their work at the same moment: when the test creates ``go_file``."""
    deadline = time.monotonic() + 60
    while not go_file.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go_file} never appeared")
        time.sleep(0.002)


def record(db: Path, worker: int, sessions: int, executions: int, go_file: Path) -> None:
    wait_for(go_file)
    runtime = SqliteRuntime(
        db, busy_timeout_ms=CHILD_BUSY_TIMEOUT_MS, retry_budget_seconds=CHILD_RETRY_BUDGET
    )
    with runtime:
        for n in range(sessions):
            runtime.record_session(make_bundle(executions, started=worker * 1e6 + n * 1e3))
        version = runtime.info().schema_version
    print(json.dumps({"worker": worker, "schema_version": version}))


def open_only(db: Path, go_file: Path) -> None:
    wait_for(go_file)
    with SqliteRuntime(
        db, busy_timeout_ms=CHILD_BUSY_TIMEOUT_MS, retry_budget_seconds=CHILD_RETRY_BUDGET
    ) as runtime:
        version = runtime.info().schema_version
    print(json.dumps({"schema_version": version}))


class _Victim(SqliteRuntime):
    """Says READY on stdout from inside ``record_session``'s open transaction, then keeps it open.

    ``during``: READY after the first rows are inserted, then rows are inserted forever (the
    kill lands inside ``executemany``). ``after``: READY once every row is inserted, before
    ``COMMIT``, then sleeps.
    """

    victim_mode = "during"

    def _insert_bundle(self, conn: sqlite3.Connection, prepared: PreparedBundle) -> None:
        if self.victim_mode == "after":
            super()._insert_bundle(conn, prepared)
            _ready()
            time.sleep(600)
            return
        session_id = prepared.session[0]

        def endless() -> Iterator[tuple[object, ...]]:
            for n in itertools.count():
                e = make_execution(session_id, n, 1000.0)
                if n == 5000:
                    _ready()
                yield (
                    e.id,
                    e.session_id,
                    e.config_id,
                    e.config_version,
                    e.agent_id,
                    e.kind,
                    e.status,
                    e.started_at,
                    e.completed_at,
                    e.duration,
                    e.attempts,
                    json.dumps(dict(e.result)),
                    e.error_message,
                )

        prepared.executions = endless()
        super()._insert_bundle(conn, prepared)


def _ready() -> None:
    sys.stdout.write("READY\n")
    sys.stdout.flush()


def victim(db: Path, session_id: str, mode: str) -> None:
    with SqliteRuntime(db) as runtime:  # a committed session first: it must survive the kill
        runtime.record_session(make_bundle(10, session_id="committed"))
    runtime = _Victim(db)
    runtime.victim_mode = mode
    runtime.record_session(make_bundle(2000, session_id=session_id))
    print(json.dumps({"error": "the victim was not killed"}))


def open_child_store(mode: str, where: Path) -> RuntimeState:
    if mode == "sqlite":
        return SqliteRuntime(
            where, busy_timeout_ms=CHILD_BUSY_TIMEOUT_MS, retry_budget_seconds=CHILD_RETRY_BUDGET
        )
    if mode == "json":
        return JsonRuntime(where)
    if mode == "postgres":
        from pytest_maf_preflight.runtime.postgres import PostgresRuntime

        return PostgresRuntime(
            POSTGRES_URL, schema=str(where), retry_budget_seconds=CHILD_RETRY_BUDGET
        )
    raise SystemExit(f"unknown mode {mode!r}")


def ready_then_wait(ready_dir: Path, agent: str, go_file: Path) -> None:
    """Say this child has its store open, then wait with the others for the start."""
    (ready_dir / agent).touch()
    wait_for(go_file)


def lease_race(
    mode: str, where: Path, agent: str, pattern: str, ready_dir: Path, go_file: Path
) -> None:
    with open_child_store(mode, where) as store:
        ready_then_wait(ready_dir, agent, go_file)
        grant = store.acquire_leases(agent, [pattern], ttl=600, reason="race")
    print(
        json.dumps(
            {
                "agent": agent,
                "ok": grant.ok,
                "tokens": [lease.fencing_token for lease in grant.granted],
                "blocked_by": [lease.agent_id for lease in grant.conflicts],
            }
        )
    )


def lease_cycles(
    mode: str, where: Path, agent: str, cycles: int, log: Path, ready_dir: Path, go_file: Path
) -> None:
    """Acquire, renew and release, ``cycles`` times, contending for one shared file.

    While it holds the shared lease, the child appends ``enter``/``exit`` lines (with its
    fencing tokens) to ``log``: with mutual exclusion they never interleave, and the tokens
    in the log grow line by line. When the shared file is taken, it leases a file of its own
    instead, so every cycle hands out tokens.
    """
    tokens: list[int] = []
    held = 0
    with open_child_store(mode, where) as store:
        ready_then_wait(ready_dir, agent, go_file)
        for _ in range(cycles):
            grant = store.acquire_leases(agent, ["shared/state.json"], ttl=600)
            shared = grant.ok
            if not shared:
                grant = store.acquire_leases(agent, [f"own/{agent}/**"], ttl=600)
                assert grant.ok, grant
            lease = grant.granted[0]
            tokens.append(lease.fencing_token)
            if shared:
                _log(log, f"enter {agent} {lease.fencing_token}")
            renewed = store.renew_lease(lease.id, agent, ttl=600)
            tokens.append(renewed.fencing_token)
            if shared:
                held += 1
                _log(log, f"exit {agent} {renewed.fencing_token}")
            store.release_lease(lease.id, agent)
    print(json.dumps({"agent": agent, "tokens": tokens, "held": held}))


def _log(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def escalation_open(
    mode: str, where: Path, key: str, agent: str, ready_dir: Path, go_file: Path
) -> None:
    """Open (or add an occurrence to) the escalation of ``key``, all children at once."""
    with open_child_store(mode, where) as store:
        ready_then_wait(ready_dir, agent, go_file)
        record, created = store.open_escalation(
            path_id="critical",
            dedup_key=key,
            check_id="git",
            failure_class="failed",
            path_snapshot={"id": "critical", "version": "1.0.0", "config": {}},
            next_action_at=time.time() + 600,
            details={"agent_id": agent},
        )
    print(
        json.dumps(
            {"agent": agent, "id": record.id, "created": created, "occurrences": record.occurrences}
        )
    )


def _deliver(store: RuntimeState, record: EscalationRecord, agent: str) -> None:
    store.record_delivery(
        DeliveryRecord(
            escalation_id=record.id,
            level=record.level,
            channel="mailbox",
            target=agent,
            attempt=1,
            status="delivered",
            error=None,
            response={"by": agent},
            attempted_at=time.time(),
        )
    )


def escalation_claim(
    mode: str, where: Path, agent: str, at: float, ready_dir: Path, go_file: Path
) -> None:
    """What a tick does: read what is due, then (all children at once) claim the next level,
    and deliver it only when the claim was won."""
    with open_child_store(mode, where) as store:
        due = store.due_escalations(at)
        ready_then_wait(ready_dir, agent, go_file)
        won = []
        for record in due:
            claimed = store.claim_escalation(
                record.id,
                expect_level=record.level,
                expect_next_action_at=record.next_action_at,
                level=record.level + 1,
                next_action_at=at + 60,
                state="escalated",
                details={"claimed_by": agent},
            )
            if claimed is not None:
                _deliver(store, claimed, agent)
                won.append([claimed.id, claimed.level])
    print(json.dumps({"agent": agent, "due": len(due), "won": won}))


def escalation_climb(
    mode: str, where: Path, escalation_id: str, top: int, agent: str, ready_dir: Path, go_file: Path
) -> None:
    """Tick again and again until the escalation reaches level ``top``; the levels won."""
    won: list[int] = []
    with open_child_store(mode, where) as store:
        ready_then_wait(ready_dir, agent, go_file)
        while True:
            record = store.get_escalation(escalation_id)
            assert record is not None
            assert record.next_action_at is not None
            if record.level >= top:
                break
            claimed = store.claim_escalation(
                escalation_id,
                expect_level=record.level,
                expect_next_action_at=record.next_action_at,
                level=record.level + 1,
                next_action_at=record.next_action_at + 1,
                state="escalated",
            )
            if claimed is not None:
                _deliver(store, claimed, agent)
                won.append(claimed.level)
    print(json.dumps({"agent": agent, "won": won}))


def store_open(mode: str, where: Path, agent: str, ready_dir: Path, go_file: Path) -> None:
    """Open the store only once every child is ready: they create (migrate) it together."""
    (ready_dir / agent).touch()
    wait_for(go_file)
    with open_child_store(mode, where) as store:
        version = store.info().schema_version
    print(json.dumps({"agent": agent, "schema_version": version, "cwd": os.getcwd()}))


def main(argv: list[str]) -> None:
    command = argv[0]
    if command == "store-open":
        store_open(argv[1], Path(argv[2]), argv[3], Path(argv[4]), Path(argv[5]))
        return
    if command == "escalation-open":
        escalation_open(argv[1], Path(argv[2]), argv[3], argv[4], Path(argv[5]), Path(argv[6]))
        return
    if command == "escalation-claim":
        escalation_claim(
            argv[1], Path(argv[2]), argv[3], float(argv[4]), Path(argv[5]), Path(argv[6])
        )
        return
    if command == "escalation-climb":
        escalation_climb(
            argv[1], Path(argv[2]), argv[3], int(argv[4]), argv[5], Path(argv[6]), Path(argv[7])
        )
        return
    if command == "lease-race":
        lease_race(argv[1], Path(argv[2]), argv[3], argv[4], Path(argv[5]), Path(argv[6]))
        return
    if command == "lease-cycles":
        lease_cycles(
            argv[1],
            Path(argv[2]),
            argv[3],
            int(argv[4]),
            Path(argv[5]),
            Path(argv[6]),
            Path(argv[7]),
        )
        return
    db = Path(argv[1])
    if command == "record":
        record(db, int(argv[2]), int(argv[3]), int(argv[4]), Path(argv[5]))
    elif command == "open":
        open_only(db, Path(argv[2]))
    elif command == "victim":
        victim(db, argv[2], argv[3])
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
