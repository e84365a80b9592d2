"""The ``postgres`` runtime (SPEC S5): one schema of a PostgreSQL database, shared by the agents
and CI runners of a team across hosts.

psycopg 3 is an optional extra, imported when this mode is opened; without it the mode cannot
start, and says how to install it. One connection per runtime (autocommit; every write is one
explicit ``READ COMMITTED`` transaction), used by one thread at a time. The schema comes from
the versioned migrations in :mod:`.postgres_migrations`; the statements and the rules are
shared with the ``sqlite`` runtime (:mod:`.sql_store`), this module holds what PostgreSQL does
differently.

What makes the live state safe across hosts:

- leases: every lease write first locks the fencing counter's row (an upsert, so the row is
  there even if someone deleted it), then reads the other agents' leases, decides with the
  rules of :mod:`.lease_rules`, and writes. The lock is held to the commit, and under ``READ
  COMMITTED`` each statement after it sees what the previous holder committed, so the
  conflict check and the insert of two acquires never interleave. Fencing tokens come from
  that counter, inside the same transaction: strictly increasing in grant order, no gaps.
- escalations: opening one takes a transaction-level advisory lock on its dedup key; claims
  and transitions lock the row (``SELECT ... FOR UPDATE``), apply the rules of
  :mod:`.escalation_rules`, and write with a compare-and-set ``UPDATE`` that still names the
  level and deadline the claimer expects, so of any number of ticks exactly one wins a level.

No password reaches a message: locations are built from the connection's user, host, port and
database, and every error text goes through :func:`redaction.redact_text` with the URL's
password and ``PGPASSWORD``.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from ..redaction import redact_text
from .errors import RuntimeStateError, RuntimeUnavailable
from .postgres_migrations import NewerSchemaError, advisory_key, migrate, schema_version
from .records import now
from .sql_store import SqlDialect, SqlStore

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.Connection[tuple[Any, ...]]

T = TypeVar("T")

INSTALL_HINT = (
    "the postgres runtime needs psycopg 3, which is not installed: "
    "pip install 'pytest-maf-preflight[postgres]'"
)
#: PostgreSQL truncates longer identifiers, which would put the tables somewhere else.
MAX_SCHEMA_BYTES = 63
#: From how many executions on a session is written by COPY.
COPY_FROM = 64

# Every statement is a constant; values are always bound parameters.
#: Large sessions go in by COPY into a temporary table of this connection (emptied at each
#: commit), then on into the table, ``ON CONFLICT DO NOTHING`` as ever: three times the rows
#: per second of ``executemany``. (Not ``pg_temp.preflight_executions``: a temporary table
#: comes first in every search_path and would hide the real one.)
_CREATE_INCOMING = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS maf_incoming_executions "
    "(LIKE preflight_executions) ON COMMIT DELETE ROWS"
)
_COPY_INCOMING = (
    "COPY maf_incoming_executions (id, session_id, config_id, config_version, "
    "agent_id, kind, status, started_at, completed_at, duration, attempts, result, "
    "error_message) FROM STDIN"
)
_INSERT_INCOMING = (
    "INSERT INTO preflight_executions (id, session_id, config_id, "
    "config_version, agent_id, kind, status, started_at, completed_at, duration, "
    "attempts, result, error_message) "
    "SELECT id, session_id, config_id, config_version, agent_id, kind, status, "
    "started_at, completed_at, duration, attempts, result, error_message "
    "FROM maf_incoming_executions ON CONFLICT DO NOTHING"
)
#: The lease store's lock: locks the fencing counter's row until the commit (and creates it,
#: should it be missing).
_LOCK_LEASES = (
    "INSERT INTO counters (name, value) VALUES ('fencing_token', 0) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value"
)
_LOCK_KEY = "SELECT pg_advisory_xact_lock(%s)"
_SERVER_CLOCK = "SELECT extract(epoch FROM clock_timestamp())::double precision"


def load_psycopg() -> ModuleType:
    """psycopg, or ``RuntimeUnavailable`` saying how to install it."""
    try:
        import psycopg
    except ImportError as exc:
        raise RuntimeUnavailable(INSTALL_HINT) from exc
    return psycopg


def url_secrets(url: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every form the password of ``url`` (a URL or a ``key=value`` string) may take in a
    message, and libpq's ``PGPASSWORD``."""
    env = os.environ if environ is None else environ
    found = [env.get("PGPASSWORD", "")]
    try:
        password = urllib.parse.urlsplit(url).password
    except ValueError:
        password = None
    if password:
        found += [password, urllib.parse.unquote(password)]
    try:
        from psycopg.conninfo import conninfo_to_dict

        found.append(str(conninfo_to_dict(url).get("password") or ""))
    except Exception:  # noqa: S110 - an unparseable URL has no parsed password to hide
        pass
    return [s for s in found if s]


def describe_url(url: str) -> str:
    """Where ``url`` points, as it may be shown: user, host, port and database, nothing else."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
    except Exception:  # the message would repeat the URL, password and all
        return "the database URL given (it cannot be parsed)"
    return _location(
        str(params.get("user") or ""),
        str(params.get("host") or ""),
        str(params.get("port") or ""),
        str(params.get("dbname") or ""),
    )


def _location(user: str, host: str, port: str, dbname: str) -> str:
    who = f"{user}@" if user else ""
    if host.startswith("/"):  # a Unix socket directory
        return f"postgresql://{who}/{dbname}?host={host}" + (f"&port={port}" if port else "")
    return f"postgresql://{who}{host}" + (f":{port}" if port else "") + f"/{dbname}"


def one_line(text: str) -> str:
    """libpq's multi-line messages (a ``DETAIL``, a ``HINT``) as one line."""
    return "; ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _pg_text(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; an error message quoting binary output would otherwise
    cost the whole record. Shown the way JSON shows it."""
    return value.replace("\x00", "\\u0000") if value is not None and "\x00" in value else value


def _checked_schema(schema: str | None) -> str | None:
    if schema is None:
        return None
    if not isinstance(schema, str) or not schema.strip():
        raise ValueError(f"schema must be a non-empty string, got {schema!r}")
    if len(schema.encode()) > MAX_SCHEMA_BYTES or "\x00" in schema:
        raise ValueError(
            f"schema must be at most {MAX_SCHEMA_BYTES} bytes without NUL, got {schema!r}"
        )
    return schema


class PostgresRuntime(SqlStore["Conn"]):
    """Records in one schema of a PostgreSQL database; safe across threads, processes and hosts.

    ``url``: a libpq URL or ``key=value`` string; what it leaves out (password, host, ...) comes
    from libpq's environment (``PGPASSWORD``, ``PGHOST``, ``~/.pgpass``). ``schema``: where the
    tables live, created when missing; by default the first existing schema of the
    connection's ``search_path``. Either way the connection's ``search_path`` is pinned to it.
    """

    mode = "postgres"
    dialect = SqlDialect(
        placeholder="%s",
        keep_stored=("INSERT", " ON CONFLICT DO NOTHING"),
        # The cast: a NULL parameter has no type of its own to compare with.
        same_next_action_at="IS NOT DISTINCT FROM ?::double precision",
        lock_rows=" FOR UPDATE",
        # Two hosts dequeuing at once each take other messages, never one message twice.
        lock_queue=" FOR UPDATE SKIP LOCKED",
        text=_pg_text,
    )

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout: float = 5.0,
        lock_timeout: float = 30.0,
        retry_budget_seconds: float = 10.0,
    ) -> None:
        super().__init__(retry_budget_seconds)
        self._psycopg = load_psycopg()
        if not isinstance(url, str) or not url.strip():
            raise RuntimeUnavailable("no database URL: set MAF_DB_URL, --maf-db-url or maf_db_url")
        self._url = url
        self._requested_schema = _checked_schema(schema)
        self.connect_timeout = max(1, round(connect_timeout))
        self.lock_timeout = float(lock_timeout)
        self._secrets = url_secrets(url)
        #: Where the runtime is, without a password; exact once connected.
        self.location = describe_url(url)
        self.schema = self._requested_schema or ""
        self._conn = self._open()

    # --- opening ---------------------------------------------------------------------------

    def _open(self) -> Conn:
        """Connect, choose and migrate the schema, or raise ``RuntimeUnavailable`` saying why."""
        psycopg = self._psycopg
        conn: Conn | None = None
        try:
            conn = psycopg.connect(self._url, autocommit=True, **self._connect_options())
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            info = conn.info
            self.location = _location(info.user, info.host, str(info.port), info.dbname)
            # On a reconnect, the schema chosen the first time.
            schema = self._requested_schema or self.schema or None
            if schema is None:
                row = conn.execute("SELECT current_schema()").fetchone()
                if row is None or row[0] is None:
                    raise RuntimeUnavailable(
                        f"{self.location}: the search_path names no existing schema; create "
                        "one or give the runtime a schema"
                    )
                schema = str(row[0])
            self.schema = schema
            # Set before migrating, so a stuck migrator cannot hold every other host forever;
            # a client that stalls inside a transaction (a host cut off while holding the lease
            # lock) is cut off by the server after a minute.
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false), "
                "set_config('idle_in_transaction_session_timeout', '60s', false)",
                (f"{max(1, round(self.lock_timeout * 1000))}ms",),
            )
            migrate(conn, schema)
            # Pinned for the life of the connection: a schema created later, earlier in the
            # search_path, must not move the tables under a running runtime.
            conn.execute(
                "SELECT set_config('search_path', %s, false)",
                (psycopg.sql.Identifier(schema).as_string(conn),),
            )
            return conn
        except NewerSchemaError as exc:
            self._discard(conn)
            raise RuntimeUnavailable(f"{self.where}: {exc}") from exc
        except psycopg.Error as exc:
            self._discard(conn)
            raise RuntimeUnavailable(self._say(exc, "cannot use")) from exc
        except BaseException:
            self._discard(conn)
            raise

    def _connect_options(self) -> dict[str, Any]:
        """Defaults for what neither the URL nor libpq's environment says."""
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self._url)
        options: dict[str, Any] = {}
        if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
            options["connect_timeout"] = self.connect_timeout
        if "application_name" not in given and not os.environ.get("PGAPPNAME"):
            options["application_name"] = "pytest-maf-preflight"
        if "keepalives" not in given:
            # A dead peer is noticed within a minute or so, not after the kernel's two hours.
            options.update(
                keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3
            )
        return options

    @property
    def where(self) -> str:
        return f"{self.location}, schema {self.schema}" if self.schema else self.location

    def _say(self, exc: BaseException, doing: str) -> str:
        """``exc`` as one line naming the database, with no password in it."""
        return redact_text(
            f"{doing} {self.where}: {one_line(str(exc)) or type(exc).__name__}", self._secrets
        )

    def _discard(self, conn: Conn | None) -> None:
        if conn is not None:
            # Closing a broken connection may fail too; there is nothing left to release.
            with contextlib.suppress(Exception):
                conn.close()

    def _connection(self) -> Conn:
        """The open connection; a broken one (the server restarted) is replaced first."""
        conn = self._conn
        if conn is None:
            raise RuntimeStateError(f"the postgres runtime at {self.where} is closed")
        if conn.closed:
            self._discard(conn)
            self._conn = None
            try:
                self._conn = conn = self._open()
            except RuntimeUnavailable as exc:
                raise RuntimeStateError(f"lost the connection and cannot reconnect: {exc}") from exc
        return conn

    def _schema_version(self, conn: Conn) -> int:
        return schema_version(conn, self.schema)

    # --- running statements ----------------------------------------------------------------

    def _run(self, work: Callable[[Conn], T], *, transaction: bool = True) -> T:
        """``work`` in one transaction (rolled back on any error), retried after a serialization
        failure or a deadlock (PostgreSQL rolled it back; nothing was written); other database
        errors become ``RuntimeStateError``. The work functions may run again, so they only
        compute and write."""
        psycopg = self._psycopg
        deadline = time.monotonic() + self.retry_budget_seconds
        attempt = 0
        while True:
            with self._lock:
                conn = self._connection()
                try:
                    if not transaction:
                        return work(conn)
                    with conn.transaction():
                        return work(conn)
                except (
                    psycopg.errors.SerializationFailure,
                    psycopg.errors.DeadlockDetected,
                ) as exc:
                    last: Exception = exc
                except psycopg.errors.LockNotAvailable as exc:
                    raise RuntimeStateError(
                        self._say(exc, f"waited longer than {self.lock_timeout:g}s for a lock in")
                    ) from exc
                except psycopg.Error as exc:
                    raise RuntimeStateError(self._say(exc, "failed in")) from exc
            attempt += 1
            if not self._backoff(attempt, deadline):
                raise RuntimeStateError(
                    self._say(last, f"gave up after retrying for {self.retry_budget_seconds:g}s in")
                ) from last

    def _write(self, work: Callable[[Conn], T]) -> T:
        return self._run(work)

    def _read(self, work: Callable[[Conn], T]) -> T:
        # One statement sees one snapshot (and under READ COMMITTED, so would each statement
        # of a transaction): reads need no transaction around them.
        return self._run(work, transaction=False)

    def _driver_executemany(self, conn: Conn, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with conn.cursor() as cur:
            cur.executemany(sql, rows)

    def _insert_executions(self, conn: Conn, rows: Iterable[tuple[Any, ...]]) -> None:
        executions = list(rows)  # counted: the count chooses COPY
        if len(executions) < COPY_FROM:
            if executions:
                super()._insert_executions(conn, executions)
            return
        with conn.cursor() as cur:
            cur.execute(_CREATE_INCOMING)
            with cur.copy(_COPY_INCOMING) as copy:
                for row in executions:
                    copy.write_row(row)
            cur.execute(_INSERT_INCOMING)

    # --- locks and the clock ---------------------------------------------------------------

    def _lock_leases(self, conn: Conn) -> None:
        # Under READ COMMITTED each statement after the lock sees what the previous holder
        # committed, so the conflict check and the insert of two acquires never interleave.
        conn.execute(_LOCK_LEASES)

    def _lock_dedup_key(self, conn: Conn, dedup_key: str) -> None:
        conn.execute(_LOCK_KEY, (advisory_key("escalation", self.schema, dedup_key),))

    def _clock(self, conn: Conn, given: float | None) -> float:
        """``given``, or the server's time: on many hosts, only the server's clock is shared."""
        if given is not None:
            return given
        row = conn.execute(_SERVER_CLOCK).fetchone()
        return float(row[0]) if row else now()

    def _clock_sql(self, given: float | None) -> tuple[str, Any]:
        # The server's clock, not this host's: hosts' clocks drift apart.
        return "COALESCE(?::double precision, extract(epoch FROM clock_timestamp()))", given
