"""``database`` checks: is a data store up and answering?

Schemes:

* ``sqlite:///relative/path`` (from the rootdir) and ``sqlite:////absolute/path``: the file is
  opened read-only (``mode=ro``, ``PRAGMA query_only``); without ``query`` it must pass
  ``PRAGMA quick_check``. A missing file fails; nothing is ever written.
* ``postgresql://`` / ``postgres://``: through psycopg 3 when it is installed (the
  ``postgres`` extra): a real connection (the password may also come from ``PGPASSWORD`` or
  ``~/.pgpass``, as libpq finds it) and the ``query`` (default ``select 1``) in a read-only
  transaction whose ``statement_timeout`` is the time the attempt has left. libpq's own message
  reports a failure (a refused password, a database that does not exist). Without psycopg, a
  protocol-level startup probe (:func:`probe_postgres`) tells "server up" from "authentication
  required", a server error and "nothing listening"; it cannot run a ``query`` or check a
  password, and the check fails saying how to install psycopg.
* ``redis://[[user]:password@]host[:port][/db]``: AUTH when a password is given, SELECT when a
  database is given, then PING, which must answer ``PONG``.
* ``tcp://host:port``: a TCP connect.

``expected_rows`` is the number of rows the query *returns* (``select count(*) ...`` returns one
row, whatever the count); ``expected_value`` is compared with the first column of the first row:
numbers numerically, a number and a string by their text (``42`` matches ``"42"``), a boolean with
a boolean or the integers 0/1 (sqlite has no boolean type); any other pair (``NULL``, bytes, dates)
never matches.

Every socket operation is bounded by the attempt's deadline; running out of time ends the attempt
as ``timeout``. Passwords from URLs never appear in what a check reports.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import socket
import sqlite3
import struct
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import Field

from ..redaction import redact_text
from .base import CheckContext, CheckType, Definition, Observation
from .command import CommandTimeout

#: Seconds an attempt may take when it runs without a deadline (a direct call, not the gate).
DEFAULT_TIMEOUT = 10.0
SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgres", "redis", "tcp")
_PG_INSTALL = "pip install 'pytest-maf-preflight[postgres]'"


class DatabaseDefinition(Definition):
    url: str = Field(min_length=1, description="sqlite:///, postgresql://, redis:// or tcp://")
    query: str | None = None
    expected_rows: int | None = Field(default=None, ge=0)
    expected_value: str | int | float | bool | None = None


class ProbeTimeout(CommandTimeout):
    """The attempt's deadline passed during a connect or while waiting for an answer; the
    runner reports it as ``timeout`` (it knows :class:`CommandTimeout`)."""


def _remaining(ctx: CheckContext) -> float:
    return ctx.remaining(DEFAULT_TIMEOUT)


def _hide(text: str, password: str | None) -> str:
    """``text`` without the password, neither in a URL nor on its own."""
    return redact_text(text, [password] if password else [])


# --- expectations, shared by sqlite and psycopg ------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def value_matches(value: Any, expected: str | int | float | bool) -> bool:
    """The comparison rules of ``expected_value`` (see the module docstring)."""
    if isinstance(expected, bool):
        if isinstance(value, bool):
            return value is expected
        return isinstance(value, int) and value in (0, 1) and bool(value) is expected
    if isinstance(value, bool):
        return False
    if _is_number(expected) and _is_number(value):
        return bool(value == expected)
    if isinstance(value, str) and isinstance(expected, str):
        return value == expected
    if (_is_number(value) and isinstance(expected, str)) or (
        isinstance(value, str) and _is_number(expected)
    ):
        return str(value) == str(expected)
    return False


def _show(value: Any) -> str:
    return "NULL" if value is None else repr(value)


def _judge(
    definition: DatabaseDefinition,
    where: str,
    row_count: int,
    first_row: Sequence[Any] | None,
    details: dict[str, Any],
) -> Observation:
    expected: list[str] = []
    problems: list[str] = []
    if definition.expected_rows is not None:
        expected.append(f"{definition.expected_rows} row(s) returned")
        if row_count != definition.expected_rows:
            problems.append(f"{row_count} row(s) returned")
    if definition.expected_value is not None:
        expected.append(f"first value {definition.expected_value!r}")
        if not first_row:
            problems.append("no value returned")
        elif not value_matches(first_row[0], definition.expected_value):
            problems.append(f"first value {_show(first_row[0])}")
    if not expected:
        expected.append("the query runs")
    observed = (
        "; ".join(problems)
        if problems
        else (
            f"query ran on {where}: {row_count} row(s)"
            + (f", first value {_show(first_row[0])}" if first_row else "")
        )
    )
    details = {
        **details,
        "rows": row_count,
        "first_value": None if not first_row else _show(first_row[0]),
    }
    return Observation(not problems, ", ".join(expected), observed, details)


def _count_rows(rows: Iterable[Sequence[Any]]) -> tuple[int, Sequence[Any] | None]:
    count, first = 0, None
    for row in rows:
        if first is None:
            first = row
        count += 1
    return count, first


# --- sqlite -------------------------------------------------------------------------------------


def _run_sqlite(definition: DatabaseDefinition, ctx: CheckContext) -> Observation:
    raw = definition.url[len("sqlite:///") :] if definition.url.startswith("sqlite:///") else ""
    raw = raw.split("?", 1)[0]
    if not raw:
        return Observation(
            False,
            "sqlite:///relative/path or sqlite:////absolute/path",
            f"not a sqlite file URL: {definition.url!r}",
        )
    path = ctx.path(raw)
    details: dict[str, Any] = {"scheme": "sqlite", "path": str(path)}
    expected = "PRAGMA quick_check is 'ok'" if definition.query is None else "the query runs"
    if not path.is_file():
        return Observation(False, expected, f"database file {str(path)!r} does not exist", details)
    deadline = time.monotonic() + _remaining(ctx)
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=max(0.0, deadline - time.monotonic()),
        )
    except sqlite3.Error as exc:
        return Observation(False, expected, f"cannot open {str(path)!r}: {exc}", details)
    timed_out = False

    def past_deadline() -> int:
        nonlocal timed_out
        timed_out = time.monotonic() > deadline
        return 1 if timed_out else 0  # non-zero interrupts the statement

    try:
        conn.set_progress_handler(past_deadline, 1000)
        conn.execute("PRAGMA query_only = ON")
        if definition.query is None:
            lines = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
            ok = lines == ["ok"]
            return Observation(
                ok,
                expected,
                "quick_check: " + "; ".join(lines[:10]),
                {**details, "quick_check": lines[:50]},
            )
        count, first = _count_rows(conn.execute(definition.query))
    except sqlite3.Error as exc:
        if timed_out:
            raise ProbeTimeout(
                f"sqlite query on {str(path)!r} still running at the deadline; interrupted"
            ) from None
        return Observation(False, expected, f"{type(exc).__name__}: {exc}", details)
    finally:
        conn.close()
    return _judge(definition, repr(str(path)), count, first, details)


# --- sockets ------------------------------------------------------------------------------------


class _Unreachable(Exception):
    pass


def _address(parts: SplitResult, default_port: int | None) -> tuple[str, int]:
    try:
        port = parts.port
    except ValueError as exc:
        raise _Unreachable(f"invalid port in URL: {exc}") from None
    host = parts.hostname or "localhost"
    port = port if port is not None else default_port
    if port is None:
        raise _Unreachable("the URL needs a port (tcp://host:port)")
    return host, port


def _connect(host: str, port: int, ctx: CheckContext) -> socket.socket:
    where = f"{host}:{port}"
    timeout = _remaining(ctx)
    if timeout <= 0:
        raise ProbeTimeout(f"no time left to connect to {where}")
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise _Unreachable(f"nothing listening on {where} (connection refused)") from None
    except TimeoutError:
        raise ProbeTimeout(f"no connection to {where} within {timeout:.3g} s") from None
    except socket.gaierror as exc:
        raise _Unreachable(f"cannot resolve host {host!r}: {exc.strerror}") from None
    except OSError as exc:
        raise _Unreachable(f"cannot connect to {where}: {exc.strerror or exc}") from None


def _recv(sock: socket.socket, size: int, ctx: CheckContext, where: str) -> bytes:
    """Exactly ``size`` bytes, within the deadline."""
    chunks: list[bytes] = []
    missing = size
    while missing:
        timeout = _remaining(ctx)
        if timeout <= 0:
            raise ProbeTimeout(f"no answer from {where} before the deadline")
        sock.settimeout(timeout)
        try:
            chunk = sock.recv(missing)
        except TimeoutError:
            raise ProbeTimeout(f"no answer from {where} within the deadline") from None
        except OSError as exc:
            raise _Unreachable(f"connection to {where} broken: {exc.strerror or exc}") from None
        if not chunk:
            raise _Unreachable(f"{where} closed the connection")
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def _send(sock: socket.socket, data: bytes, ctx: CheckContext, where: str) -> None:
    sock.settimeout(max(0.001, _remaining(ctx)))
    try:
        sock.sendall(data)
    except TimeoutError:
        raise ProbeTimeout(f"cannot send to {where} within the deadline") from None
    except OSError as exc:
        raise _Unreachable(f"connection to {where} broken: {exc.strerror or exc}") from None


# --- tcp ----------------------------------------------------------------------------------------


def _run_tcp(definition: DatabaseDefinition, ctx: CheckContext, parts: SplitResult) -> Observation:
    host, port = _address(parts, None)
    started = time.monotonic()
    with _connect(host, port, ctx):
        pass
    return Observation(
        True,
        f"a TCP connection to {host}:{port}",
        f"connected to {host}:{port}",
        {
            "scheme": "tcp",
            "host": host,
            "port": port,
            "connect_ms": round((time.monotonic() - started) * 1000, 2),
        },
    )


# --- redis --------------------------------------------------------------------------------------


def _resp_command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _resp_line(sock: socket.socket, ctx: CheckContext, where: str) -> str:
    line = bytearray()
    while not line.endswith(b"\r\n"):
        line += _recv(sock, 1, ctx, where)
        if len(line) > 64 * 1024:
            raise _Unreachable(f"{where} does not answer like a Redis server")
    return line[:-2].decode("utf-8", "replace")


def _run_redis(
    definition: DatabaseDefinition, ctx: CheckContext, parts: SplitResult
) -> Observation:
    host, port = _address(parts, 6379)
    where = f"{host}:{port}"
    password = unquote(parts.password) if parts.password else None
    user = unquote(parts.username) if parts.username else None
    db = parts.path.strip("/")
    expected = "PING answered with PONG"
    details: dict[str, Any] = {"scheme": "redis", "host": host, "port": port}
    if db and not db.isdigit():
        return Observation(False, expected, f"invalid Redis database number {db!r}", details)
    if definition.query is not None:
        return Observation(False, expected, "redis checks run PING only; remove `query`", details)
    commands: list[tuple[str, ...]] = []
    if password is not None:
        commands.append(("AUTH", user, password) if user else ("AUTH", password))
    if db:
        commands.append(("SELECT", db))
    commands.append(("PING",))
    with _connect(host, port, ctx) as sock:
        _send(sock, b"".join(_resp_command(*c) for c in commands), ctx, where)
        for command in commands:
            reply = _resp_line(sock, ctx, where)
            if reply.startswith("-"):
                message = _hide(reply[1:], password)
                return Observation(
                    False, expected, f"{command[0]} failed on {where}: {message}", details
                )
            if command[0] == "PING" and reply != "+PONG":
                return Observation(
                    False,
                    expected,
                    f"PING on {where} answered {_hide(reply, password)[:200]!r}",
                    details,
                )
    return Observation(
        True,
        expected,
        f"PONG from {where}" + (" (authenticated)" if password is not None else ""),
        details,
    )


# --- postgresql ---------------------------------------------------------------------------------

_PG_AUTH_METHODS = {
    2: "Kerberos",
    3: "cleartext password",
    5: "MD5 password",
    7: "GSSAPI",
    9: "SSPI",
    10: "SASL (SCRAM)",
}


def _pg_error_text(body: bytes) -> str:
    fields: dict[str, str] = {}
    for field in body.split(b"\0"):
        if field:
            fields[chr(field[0])] = field[1:].decode("utf-8", "replace")
    severity = fields.get("V") or fields.get("S") or "ERROR"
    text = f"{severity}: {fields.get('M', 'unknown error')}"
    return text + (f" (SQLSTATE {fields['C']})" if "C" in fields else "")


def _pg_message(sock: socket.socket, ctx: CheckContext, where: str) -> tuple[str, bytes]:
    header = _recv(sock, 5, ctx, where)
    kind, length = chr(header[0]), struct.unpack("!i", header[1:])[0]
    if not kind.isalpha() or not 4 <= length <= 1 << 20:
        raise _Unreachable(f"{where} does not answer like a PostgreSQL server")
    return kind, _recv(sock, length - 4, ctx, where)


def probe_postgres(url: str, ctx: CheckContext, query: str | None = None) -> Observation:
    """The protocol-level probe used when psycopg is not installed: send a StartupMessage
    (protocol 3.0) and read how the server answers. Never authenticates."""
    parts = urlsplit(url)
    try:
        host, port = _address(parts, 5432)
    except _Unreachable as exc:
        return Observation(False, "a PostgreSQL server", str(exc))
    where = f"{host}:{port}"
    user = unquote(parts.username) if parts.username else "postgres"
    password = unquote(parts.password) if parts.password else None
    database = unquote(parts.path.lstrip("/")) or user
    details: dict[str, Any] = {
        "scheme": "postgresql",
        "host": host,
        "port": port,
        "user": user,
        "database": database,
        "driver": "startup probe",
    }
    expected = f"PostgreSQL on {where} accepting user {user!r} for database {database!r}"
    params = b"".join(
        k.encode() + b"\0" + v.encode() + b"\0"
        for k, v in (("user", user), ("database", database), ("application_name", "maf-preflight"))
    )
    body = struct.pack("!i", 196608) + params + b"\0"
    try:
        with _connect(host, port, ctx) as sock:
            _send(sock, struct.pack("!i", len(body) + 4) + body, ctx, where)
            authenticated = False
            while True:
                kind, payload = _pg_message(sock, ctx, where)
                if kind == "E":
                    return Observation(
                        False,
                        expected,
                        f"server on {where} refused: {_hide(_pg_error_text(payload), password)}",
                        details,
                    )
                if kind == "R":
                    code = struct.unpack("!i", payload[:4])[0] if len(payload) >= 4 else -1
                    if code == 0:
                        authenticated = True
                        continue
                    method = _PG_AUTH_METHODS.get(code, f"method {code}")
                    details["auth"] = method
                    if query is not None or password is not None:
                        return Observation(
                            False,
                            expected,
                            f"server up on {where}, authentication required ({method}); the "
                            "probe does not authenticate, so the "
                            + ("query" if query is not None else "password")
                            + f" cannot be checked without psycopg: {_PG_INSTALL}",
                            details,
                        )
                    return Observation(
                        True,
                        expected,
                        f"server up on {where}, authentication required ({method}); "
                        "authentication was not attempted (no password given)",
                        details,
                    )
                if kind == "Z" and authenticated:
                    with contextlib.suppress(ProbeTimeout, _Unreachable):
                        _send(sock, b"X\0\0\0\4", ctx, where)  # Terminate
                    break
                # S (ParameterStatus), K (BackendKeyData), N (notice), v: read on.
    except _Unreachable as exc:
        return Observation(False, expected, str(exc), details)
    if query is not None:
        return Observation(
            False,
            expected,
            f"server up on {where}, authentication ok; running a query needs "
            f"psycopg: {_PG_INSTALL}",
            details,
        )
    return Observation(True, expected, f"server up on {where}, authentication ok", details)


def _psycopg() -> Any:
    try:
        return importlib.import_module("psycopg")
    except ImportError:
        return None


def _pg_secrets(url: str, psycopg: Any) -> list[str]:
    """Every form the password may take in a message: in the URL (quoted or not), as a
    ``password=`` parameter, and libpq's ``PGPASSWORD``."""
    found = [os.environ.get("PGPASSWORD", "")]
    with contextlib.suppress(ValueError):
        password = urlsplit(url).password
        if password:
            found += [password, unquote(password)]
    with contextlib.suppress(psycopg.Error):
        found.append(str(psycopg.conninfo.conninfo_to_dict(url).get("password") or ""))
    return [secret for secret in found if secret]


def _one_line(text: str) -> str:
    """libpq's messages (a ``DETAIL``, a ``HINT`` on lines of their own) as one line."""
    return "; ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _run_psycopg(
    definition: DatabaseDefinition, ctx: CheckContext, parts: SplitResult, psycopg: Any
) -> Observation:
    """Connect, run the query (default ``select 1``) in a read-only transaction whose
    ``statement_timeout`` is the time left, and judge what it returned. A connect or query
    still running at the deadline raises :class:`ProbeTimeout`."""
    secrets = _pg_secrets(definition.url, psycopg)
    deadline = time.monotonic() + _remaining(ctx)
    try:
        port = parts.port or 5432
    except ValueError as exc:
        return Observation(False, "a PostgreSQL server", f"invalid port in URL: {exc}")
    where = f"{parts.hostname or 'localhost'}:{port}"
    details: dict[str, Any] = {
        "scheme": "postgresql",
        "host": parts.hostname,
        "port": port,
        "driver": "psycopg",
    }
    expected = f"a connection to PostgreSQL on {where}"
    if deadline <= time.monotonic():
        raise ProbeTimeout(f"no time left to connect to {where}")
    options: dict[str, Any] = {
        # libpq counts whole seconds (and waits at least 2); the deadline is checked after.
        "connect_timeout": max(2, math.ceil(deadline - time.monotonic()))
    }
    with contextlib.suppress(psycopg.Error):
        if "application_name" not in psycopg.conninfo.conninfo_to_dict(definition.url):
            options["application_name"] = "maf-preflight"
    try:
        conn = psycopg.connect(definition.url, **options)
    except psycopg.Error as exc:
        if time.monotonic() >= deadline:
            raise ProbeTimeout(f"no connection to {where} before the deadline") from None
        return Observation(False, expected, redact_text(_one_line(str(exc)), secrets), details)
    try:
        info = conn.info
        where = f"{info.host}:{info.port}" if not info.host.startswith("/") else info.host
        details.update(host=info.host, port=info.port, user=info.user, database=info.dbname)
        conn.read_only = True
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProbeTimeout(f"connected to {where} with no time left for the query")
        with conn.cursor() as cur:
            # Local to the check's transaction, which ends (rolled back) with the connection.
            cur.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                (f"{max(1, int(left * 1000))}ms",),
            )
            cur.execute(definition.query or "select 1")
            count, first = _count_rows(cur if cur.description else ())
    except psycopg.errors.QueryCanceled:
        raise ProbeTimeout(f"query on {where} still running at the deadline; cancelled") from None
    except psycopg.Error as exc:
        return Observation(
            False, "the query runs", redact_text(_one_line(str(exc)), secrets), details
        )
    finally:
        conn.close()
    return _judge(definition, where, count, first, details)


def _run_postgres(
    definition: DatabaseDefinition, ctx: CheckContext, parts: SplitResult
) -> Observation:
    psycopg = _psycopg()
    if psycopg is not None:
        return _run_psycopg(definition, ctx, parts, psycopg)
    if definition.query is None and (
        definition.expected_rows is not None or definition.expected_value is not None
    ):
        return probe_postgres(definition.url, ctx, query="select 1")
    return probe_postgres(definition.url, ctx, definition.query)


# --- entry point --------------------------------------------------------------------------------


def run(definition: DatabaseDefinition, ctx: CheckContext) -> Observation:
    parts = urlsplit(definition.url)
    scheme = parts.scheme.lower()
    password = unquote(parts.password) if parts.password else None
    if scheme == "sqlite":
        return _run_sqlite(definition, ctx)
    if scheme in ("postgresql", "postgres"):
        return _run_postgres(definition, ctx, parts)
    try:
        if scheme == "redis":
            return _run_redis(definition, ctx, parts)
        if scheme == "tcp":
            return _run_tcp(definition, ctx, parts)
    except _Unreachable as exc:
        expected = "PING answered with PONG" if scheme == "redis" else "a TCP connection"
        return Observation(False, expected, _hide(str(exc), password), {"scheme": scheme})
    shown = _hide(definition.url, password)
    return Observation(
        False,
        "a URL of a supported scheme: " + ", ".join(f"{s}://" for s in SUPPORTED_SCHEMES),
        f"unsupported URL scheme {scheme or '(none)'!r} in {shown!r}",
    )


CHECK_TYPE = CheckType(
    "database",
    DatabaseDefinition,
    run,
    "sqlite (read-only), postgresql, redis or tcp probe",
    waits=True,
)
