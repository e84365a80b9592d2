"""``database`` checks against real stores: sqlite files made here, the PostgreSQL and Redis
servers on loopback (``MAF_TEST_POSTGRES_URL``, ``MAF_TEST_REDIS_URL``), and sockets we open.

PostgreSQL has two paths: psycopg when it is installed, else the protocol-level startup probe.
Both are tested in one run: the ``no_psycopg`` fixture makes ``import psycopg`` fail, as it does
where the extra is not installed, so the check takes the probe path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sqlite3
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from helpers_loopback import closed_port
from pytest_maf_preflight.checks import database
from pytest_maf_preflight.checks.base import CheckContext, CheckStatus, Observation
from pytest_maf_preflight.checks.builtin import builtin_registry
from pytest_maf_preflight.checks.database import DatabaseDefinition, probe_postgres, value_matches
from pytest_maf_preflight.checks.runner import PlannedCheck, run_checks

# Read at import: the autouse fixture in conftest.py removes MAF_* variables during tests.
POSTGRES_URL = os.environ.get(
    "MAF_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
HOW_TO = (
    "start it (Debian: apt-get install postgresql redis-server; `.ci/run` does this) or "
    "point {var} at one"
)


def _ctx(root: Path, timeout: float | None = None) -> CheckContext:
    deadline = None if timeout is None else time.monotonic() + timeout
    return CheckContext(
        rootdir=root, environ={}, environment="test", agent_id="agent-1", deadline=deadline
    )


def _run(root: Path, **definition: Any) -> Observation:
    return database.run(DatabaseDefinition.model_validate(definition), _ctx(root, 5.0))


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1.0):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> str:
    if not _reachable(POSTGRES_URL):
        pytest.skip(
            f"no PostgreSQL at {POSTGRES_URL}: " + HOW_TO.format(var="MAF_TEST_POSTGRES_URL")
        )
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    if not _reachable(REDIS_URL):
        pytest.skip(f"no Redis at {REDIS_URL}: " + HOW_TO.format(var="MAF_TEST_REDIS_URL"))
    return REDIS_URL


@pytest.fixture
def no_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import psycopg`` fails for this test, as without the ``postgres`` extra."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    assert database._psycopg() is None


@pytest.fixture
def with_psycopg() -> None:
    if database._psycopg() is None:
        pytest.skip("psycopg is not installed: pip install 'pytest-maf-preflight[postgres]'")


PASSWORD = "maf-s3cret-pw"


class PasswordServer:
    """A loopback server speaking just enough of the PostgreSQL protocol to ask for a cleartext
    password and refuse it. Its refusal quotes the password back, as no real server does, so
    that a message passed on unredacted would show it. (The test server trusts every local
    connection and cannot refuse a password.)"""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn = self.sock.accept()[0]
            except OSError:
                continue
            # The probe hangs up instead of sending a password.
            with conn, contextlib.suppress(OSError, struct.error):
                self.refuse(conn)

    @staticmethod
    def read(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def refuse(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        while True:
            length = struct.unpack("!i", self.read(conn, 4))[0]
            body = self.read(conn, length - 4)
            if struct.unpack("!i", body[:4])[0] in (80877103, 80877104):  # SSL, GSS encryption
                conn.sendall(b"N")
                continue
            break  # the StartupMessage
        conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        kind = self.read(conn, 1)
        body = self.read(conn, struct.unpack("!i", self.read(conn, 4))[0] - 4)
        assert kind == b"p"
        password = body.rstrip(b"\0").decode()
        self.received.append(password)
        message = f'password authentication failed for user "postgres" (got {password!r})'
        fields = b"SFATAL\0VFATAL\0C28P01\0M" + message.encode() + b"\0\0"
        conn.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def password_server() -> Iterator[PasswordServer]:
    server = PasswordServer()
    yield server
    server.close()


def _make_db(path: Path, rows: int = 3) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("create table preflight_executions (id integer primary key, name text)")
        conn.executemany(
            "insert into preflight_executions (name) values (?)",
            [(f"run-{i}",) for i in range(rows)],
        )
    conn.close()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- registration -----------------------------------------------------------------------------


def test_registered_as_a_builtin() -> None:
    check_type = builtin_registry().get("database")
    assert check_type is database.CHECK_TYPE
    assert check_type.run is database.run
    assert check_type.definition is DatabaseDefinition


# --- sqlite -----------------------------------------------------------------------------------


def test_sqlite_quick_check_ok_relative_to_rootdir(tmp_path: Path) -> None:
    (tmp_path / ".maf").mkdir()
    _make_db(tmp_path / ".maf" / "runtime.db")
    obs = _run(tmp_path, url="sqlite:///.maf/runtime.db")
    assert obs.passed, obs
    assert obs.observed == "quick_check: ok"
    assert obs.expected == "PRAGMA quick_check is 'ok'"


def test_sqlite_absolute_path(tmp_path: Path) -> None:
    db = _make_db(tmp_path / "abs.db")
    assert db.is_absolute()
    assert _run(Path("/nonexistent-root"), url=f"sqlite:///{db}").passed


def test_sqlite_file_that_is_not_a_database_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.db").write_bytes(b"this is not a sqlite database at all" * 200)
    obs = _run(tmp_path, url="sqlite:///bad.db")
    assert not obs.passed
    assert "not a database" in obs.observed


def test_sqlite_corrupted_pages_fail_quick_check(tmp_path: Path) -> None:
    db = _make_db(tmp_path / "corrupt.db", rows=2000)
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[page + 8 : 2 * page] = b"\xff" * (page - 8)  # wreck the second page past its header
    db.write_bytes(bytes(data))
    obs = _run(tmp_path, url="sqlite:///corrupt.db")
    assert not obs.passed
    assert obs.observed != "quick_check: ok"


def test_sqlite_missing_file_fails_and_is_not_created(tmp_path: Path) -> None:
    obs = _run(tmp_path, url="sqlite:///missing.db")
    assert not obs.passed
    assert "does not exist" in obs.observed
    assert not (tmp_path / "missing.db").exists()


def test_sqlite_expected_rows_counts_returned_rows(tmp_path: Path) -> None:
    _make_db(tmp_path / "r.db", rows=3)
    assert _run(
        tmp_path, url="sqlite:///r.db", query="select * from preflight_executions", expected_rows=3
    ).passed
    obs = _run(
        tmp_path, url="sqlite:///r.db", query="select * from preflight_executions", expected_rows=2
    )
    assert not obs.passed
    assert obs.expected == "2 row(s) returned"
    assert obs.observed == "3 row(s) returned"


def test_sqlite_count_query_returns_one_row(tmp_path: Path) -> None:
    """The shipped example (runtime-db.yaml): ``select count(*)`` with ``expected_rows: 1``
    passes because count(*) returns one row, whatever the count."""
    _make_db(tmp_path / "r.db", rows=5)
    obs = _run(
        tmp_path,
        url="sqlite:///r.db",
        query="select count(*) from preflight_executions",
        expected_rows=1,
    )
    assert obs.passed, obs
    assert obs.details["first_value"] == "5"


def test_sqlite_expected_value(tmp_path: Path) -> None:
    _make_db(tmp_path / "v.db", rows=5)
    query = "select count(*) from preflight_executions"
    assert _run(tmp_path, url="sqlite:///v.db", query=query, expected_value=5).passed
    assert _run(tmp_path, url="sqlite:///v.db", query=query, expected_value="5").passed
    obs = _run(tmp_path, url="sqlite:///v.db", query=query, expected_value=4)
    assert not obs.passed
    assert obs.observed == "first value 5"
    obs = _run(
        tmp_path,
        url="sqlite:///v.db",
        query="select name from preflight_executions where id = 1",
        expected_value="run-0",
        expected_rows=1,
    )
    assert obs.passed, obs
    obs = _run(
        tmp_path,
        url="sqlite:///v.db",
        query="select name from preflight_executions where id = 99",
        expected_value="run-0",
    )
    assert not obs.passed
    assert obs.observed == "no value returned"


def test_sqlite_bad_query_fails(tmp_path: Path) -> None:
    _make_db(tmp_path / "q.db")
    obs = _run(tmp_path, url="sqlite:///q.db", query="select * from no_such_table")
    assert not obs.passed
    assert "no such table" in obs.observed


@pytest.mark.parametrize(
    "query",
    [
        "insert into preflight_executions (name) values ('written')",
        "delete from preflight_executions",
        "create table other (x)",
    ],
)
def test_sqlite_is_read_only(tmp_path: Path, query: str) -> None:
    db = _make_db(tmp_path / "ro.db")
    before = _digest(db)
    obs = _run(tmp_path, url="sqlite:///ro.db", query=query)
    assert not obs.passed
    assert "readonly" in obs.observed.replace("-", "").replace(" ", "").lower()
    assert _digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro.db"]  # no journal left behind


def test_sqlite_runaway_query_ends_at_deadline(tmp_path: Path) -> None:
    _make_db(tmp_path / "slow.db")
    endless = (
        "with recursive n(i) as (select 1 union all select i + 1 from n) select count(*) from n"
    )
    started = time.monotonic()
    with pytest.raises(database.ProbeTimeout, match="deadline"):
        database.run(
            DatabaseDefinition(url="sqlite:///slow.db", query=endless), _ctx(tmp_path, 0.3)
        )
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("value", "expected", "matches"),
    [
        (5, 5, True),
        (5, 5.0, True),
        (5, "5", True),
        ("5", 5, True),
        ("x", "x", True),
        (1, True, True),
        (0, False, True),
        (True, True, True),
        (2, True, False),
        (True, 1, False),
        (None, "None", False),
        (b"x", "x", False),
        (5, 6, False),
        ("5.0", 5, False),
    ],
)
def test_value_comparison_rules(value: Any, expected: Any, matches: bool) -> None:
    assert value_matches(value, expected) is matches


# --- postgresql -------------------------------------------------------------------------------


def _pg_with(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    netloc = changes.get("netloc", parts.netloc)
    return parts._replace(netloc=netloc, path=changes.get("path", parts.path)).geturl()


def test_postgres_probe_server_up(tmp_path: Path, postgres_url: str) -> None:
    obs = probe_postgres(postgres_url, _ctx(tmp_path, 5.0))
    assert obs.passed, obs
    assert "server up" in obs.observed
    assert "authentication ok" in obs.observed


def test_postgres_probe_path_without_psycopg(
    tmp_path: Path, postgres_url: str, no_psycopg: None
) -> None:
    obs = _run(tmp_path, url=postgres_url)
    assert obs.passed, obs
    assert obs.details["driver"] == "startup probe"
    assert (
        obs.observed == f"server up on {urlsplit(postgres_url).netloc.split('@')[-1]}, "
        "authentication ok"
    )
    for definition in ({"query": "select 1"}, {"expected_rows": 1}):
        obs = _run(tmp_path, url=postgres_url, **definition)
        assert not obs.passed
        assert obs.observed.endswith(
            "running a query needs psycopg: pip install 'pytest-maf-preflight[postgres]'"
        )


def test_postgres_missing_database_reports_server_message(
    tmp_path: Path, postgres_url: str
) -> None:
    url = _pg_with(postgres_url, path="/maf_no_such_database")
    obs = probe_postgres(url, _ctx(tmp_path, 5.0))
    assert not obs.passed
    assert 'database "maf_no_such_database" does not exist' in obs.observed
    assert obs.observed.startswith("server on ")


def test_postgres_missing_database_with_psycopg(
    tmp_path: Path, postgres_url: str, with_psycopg: None
) -> None:
    obs = _run(tmp_path, url=_pg_with(postgres_url, path="/maf_no_such_database"))
    assert not obs.passed
    assert obs.details["driver"] == "psycopg"
    assert obs.expected.startswith("a connection to PostgreSQL on ")
    assert 'database "maf_no_such_database" does not exist' in obs.observed
    assert "\n" not in obs.observed


@pytest.mark.parametrize("driver", ["psycopg", "probe"])
def test_postgres_closed_port(tmp_path: Path, driver: str, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("with_psycopg" if driver == "psycopg" else "no_psycopg")
    port = closed_port()
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
    obs = _run(tmp_path, url=url)
    assert not obs.passed
    if driver == "probe":
        assert obs.observed.startswith(f"nothing listening on 127.0.0.1:{port}")
    else:
        assert f'"127.0.0.1", port {port} failed: Connection refused' in obs.observed
    assert PASSWORD not in repr(obs)


def test_postgres_refused_password_is_reported_without_it(
    tmp_path: Path,
    password_server: PasswordServer,
    with_psycopg: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = password_server.port
    obs = _run(tmp_path, url=f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres")
    assert password_server.received == [PASSWORD]  # it was sent, and the server quoted it
    assert not obs.passed
    assert obs.expected == f"a connection to PostgreSQL on 127.0.0.1:{port}"
    assert "password authentication failed for user \"postgres\" (got '***')" in obs.observed
    assert PASSWORD not in repr(obs)
    # The password of libpq's environment is hidden alike.
    monkeypatch.setenv("PGPASSWORD", "maf-env-pw")
    obs = _run(tmp_path, url=f"postgresql://postgres@127.0.0.1:{port}/postgres")
    assert password_server.received[-1] == "maf-env-pw"
    assert "maf-env-pw" not in repr(obs)
    assert "(got '***')" in obs.observed


def test_postgres_probe_cannot_check_a_password(
    tmp_path: Path, password_server: PasswordServer, no_psycopg: None
) -> None:
    port = password_server.port
    obs = _run(tmp_path, url=f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres")
    assert not obs.passed
    assert obs.observed.startswith(
        f"server up on 127.0.0.1:{port}, authentication required "
        "(cleartext password); the probe does not authenticate"
    )
    assert password_server.received == []
    assert PASSWORD not in repr(obs)
    without = _run(tmp_path, url=f"postgresql://postgres@127.0.0.1:{port}/postgres")
    assert without.passed, without  # up, and no password was asked of the check


def test_postgres_query_and_expectations_with_psycopg(
    tmp_path: Path, postgres_url: str, with_psycopg: None
) -> None:
    obs = _run(tmp_path, url=postgres_url)
    assert obs.passed, obs
    assert obs.details["driver"] == "psycopg"
    assert obs.details["database"] == urlsplit(postgres_url).path.lstrip("/")
    assert obs.observed.endswith(": 1 row(s), first value 1")
    series = "select i from generate_series(1, 3) as i"
    assert _run(tmp_path, url=postgres_url, query=series, expected_rows=3).passed
    obs = _run(tmp_path, url=postgres_url, query=series, expected_rows=2, expected_value=1)
    assert not obs.passed
    assert (obs.expected, obs.observed) == ("2 row(s) returned, first value 1", "3 row(s) returned")
    count = "select count(*) from pg_database where datname = current_database()"
    assert _run(tmp_path, url=postgres_url, query=count, expected_rows=1, expected_value=1).passed
    assert _run(tmp_path, url=postgres_url, query=count, expected_value="1").passed
    assert _run(tmp_path, url=postgres_url, query="select 2.50::numeric", expected_value=2.5).passed
    assert _run(
        tmp_path,
        url=postgres_url,
        query="select current_setting('transaction_read_only')",
        expected_value="on",
    ).passed
    obs = _run(tmp_path, url=postgres_url, query="select 1 where false", expected_value=1)
    assert (obs.passed, obs.observed) == (False, "no value returned")
    obs = _run(tmp_path, url=postgres_url, query="select * from maf_no_such_table")
    assert not obs.passed
    assert obs.expected == "the query runs"
    assert 'relation "maf_no_such_table" does not exist' in obs.observed
    assert "\n" not in obs.observed


def test_postgres_query_is_read_only_with_psycopg(
    tmp_path: Path, postgres_url: str, with_psycopg: None
) -> None:
    import psycopg

    table = f"maf_check_{uuid.uuid4().hex}"
    obs = _run(tmp_path, url=postgres_url, query=f"create table {table} (x int)")
    assert not obs.passed
    assert "read-only transaction" in obs.observed
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("select to_regclass(%s)", (table,)).fetchone() == (None,)


def test_postgres_query_past_the_deadline_is_cancelled(
    tmp_path: Path, postgres_url: str, with_psycopg: None
) -> None:
    with pytest.raises(database.ProbeTimeout, match="still running at the deadline; cancelled"):
        database.run(
            DatabaseDefinition(url=postgres_url, query="select pg_sleep(30)"), _ctx(tmp_path, 0.5)
        )
    check = PlannedCheck(
        check_id="db",
        name="db",
        severity="critical",
        check_type=database.CHECK_TYPE,
        definition=DatabaseDefinition(url=postgres_url, query="select pg_sleep(30)"),
        timeout=0.5,
        retry_count=0,
        retry_delay=0.0,
    )
    [result] = run_checks([check], _ctx(tmp_path))
    assert result.status is CheckStatus.TIMEOUT


# --- redis ------------------------------------------------------------------------------------


def test_redis_ping(tmp_path: Path, redis_url: str) -> None:
    obs = _run(tmp_path, url=redis_url)
    assert obs.passed, obs
    assert obs.observed.startswith("PONG from ")


def test_redis_wrong_password_fails_with_server_error(tmp_path: Path, redis_url: str) -> None:
    parts = urlsplit(redis_url)
    url = parts._replace(netloc=f":maf-wrong-pw@{parts.hostname}:{parts.port or 6379}").geturl()
    obs = _run(tmp_path, url=url)
    assert not obs.passed
    assert obs.observed.startswith("AUTH failed on ")
    # The server's own error: WRONGPASS when a password is set, ERR ... when none is.
    assert "WRONGPASS" in obs.observed or "ERR" in obs.observed
    assert "maf-wrong-pw" not in repr(obs)


def test_redis_closed_port(tmp_path: Path) -> None:
    obs = _run(tmp_path, url=f"redis://127.0.0.1:{closed_port()}/0")
    assert not obs.passed
    assert obs.observed.startswith("nothing listening on")


# --- tcp and other schemes --------------------------------------------------------------------


def test_tcp_open_and_closed(tmp_path: Path, silent_port: int) -> None:
    obs = _run(tmp_path, url=f"tcp://127.0.0.1:{silent_port}")
    assert obs.passed, obs
    assert obs.observed == f"connected to 127.0.0.1:{silent_port}"
    port = closed_port()
    obs = _run(tmp_path, url=f"tcp://127.0.0.1:{port}")
    assert not obs.passed
    assert obs.observed == f"nothing listening on 127.0.0.1:{port} (connection refused)"


def test_tcp_needs_a_port(tmp_path: Path) -> None:
    obs = _run(tmp_path, url="tcp://127.0.0.1")
    assert not obs.passed
    assert "needs a port" in obs.observed


def test_unknown_scheme_fails_and_hides_password(tmp_path: Path) -> None:
    obs = _run(tmp_path, url="mysql://user:hunter22@127.0.0.1/db")
    assert not obs.passed
    assert "unsupported URL scheme 'mysql'" in obs.observed
    for scheme in ("sqlite://", "postgresql://", "redis://", "tcp://"):
        assert scheme in obs.expected
    assert "hunter22" not in repr(obs)


# --- deadlines through the runner -------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "redis"])
def test_server_that_never_answers_ends_at_deadline(
    tmp_path: Path, silent_port: int, scheme: str
) -> None:
    check = PlannedCheck(
        check_id="db",
        name="db",
        severity="critical",
        check_type=database.CHECK_TYPE,
        definition=DatabaseDefinition(url=f"{scheme}://127.0.0.1:{silent_port}/0"),
        timeout=0.5,
        retry_count=0,
        retry_delay=0.0,
    )
    started = time.monotonic()
    [result] = run_checks([check], _ctx(tmp_path))
    elapsed = time.monotonic() - started
    assert result.status is CheckStatus.TIMEOUT
    assert elapsed < 1.5
    assert result.duration == pytest.approx(0.5, abs=0.4)
