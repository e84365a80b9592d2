"""Child processes for the SQLite runtime's fault tests (run as a script by the tests).

    python helpers_runtime_procs.py record DB WORKER SESSIONS EXECUTIONS GO_FILE
    python helpers_runtime_procs.py open DB GO_FILE
    python helpers_runtime_procs.py victim DB SESSION_ID MODE        (MODE: during | after)

Every command prints one JSON line on success; an exception ends the process with a traceback
on stderr and a non-zero exit code, which is what the tests look for.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pytest_maf_preflight.runtime.records import (
    ExecutionRecord,
    SessionBundle,
    SessionRecord,
    new_id,
)
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime, _PreparedBundle

#: Short on purpose: lock waits must be survived by the runtime's retries, not SQLite's wait.
CHILD_BUSY_TIMEOUT_MS = 20
CHILD_RETRY_BUDGET = 120.0


def make_execution(session_id: str, index: int, started: float) -> ExecutionRecord:
    return ExecutionRecord(
        id=new_id(), session_id=session_id, config_id=f"check-{index % 7}",
        config_version="1.0.0", agent_id="agent", kind="check",
        status="passed" if index % 5 else "failed", started_at=started + index,
        completed_at=started + index + 0.25, duration=0.25, attempts=1,
        result={"index": index, "observed": "x" * 32}, error_message=None)


def make_bundle(executions: int, session_id: str | None = None,
                started: float = 1000.0) -> SessionBundle:
    sid = session_id or new_id()
    session = SessionRecord(id=sid, agent_id="agent", environment="test", started_at=started,
                            completed_at=started + 1, status="open", exit_code=0,
                            runtime_mode="sqlite", hostname="host", details={"n": executions})
    return SessionBundle(session=session,
                         executions=tuple(make_execution(sid, i, started)
                                          for i in range(executions)))


def wait_for(go_file: Path) -> None:
    """All children start their work at the same moment: when the test creates ``go_file``."""
    deadline = time.monotonic() + 60
    while not go_file.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{go_file} never appeared")
        time.sleep(0.002)


def record(db: Path, worker: int, sessions: int, executions: int, go_file: Path) -> None:
    wait_for(go_file)
    runtime = SqliteRuntime(db, busy_timeout_ms=CHILD_BUSY_TIMEOUT_MS,
                            retry_budget_seconds=CHILD_RETRY_BUDGET)
    with runtime:
        for n in range(sessions):
            runtime.record_session(make_bundle(executions, started=worker * 1e6 + n * 1e3))
        version = runtime.info().schema_version
    print(json.dumps({"worker": worker, "schema_version": version}))


def open_only(db: Path, go_file: Path) -> None:
    wait_for(go_file)
    with SqliteRuntime(db, busy_timeout_ms=CHILD_BUSY_TIMEOUT_MS,
                       retry_budget_seconds=CHILD_RETRY_BUDGET) as runtime:
        version = runtime.info().schema_version
    print(json.dumps({"schema_version": version}))


class _Victim(SqliteRuntime):
    """Says READY on stdout from inside ``record_session``'s open transaction, then keeps it open.

    ``during``: READY after the first rows are inserted, then rows are inserted forever (the
    kill lands inside ``executemany``). ``after``: READY once every row is inserted, before
    ``COMMIT``, then sleeps.
    """

    victim_mode = "during"

    def _insert_bundle(self, conn: sqlite3.Connection, prepared: _PreparedBundle) -> None:
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
                yield (e.id, e.session_id, e.config_id, e.config_version, e.agent_id, e.kind,
                       e.status, e.started_at, e.completed_at, e.duration, e.attempts,
                       json.dumps(dict(e.result)), e.error_message)

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


def main(argv: list[str]) -> None:
    command, db = argv[0], Path(argv[1])
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
