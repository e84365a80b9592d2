"""The postgres runtime (SPEC S5) on a real PostgreSQL server: what the shared contract suite in
``test_runtime_contract.py`` cannot say.

Lease grants and escalation claims raced by 8 processes, each acting as a host of its own (its
own working directory and agent id); migrations raced on a fresh schema; exact round trips;
lost connections; the mode chain falling through when the server is down, psycopg is missing
or no URL is set; and no password in any message.

The server comes from ``MAF_TEST_POSTGRES_URL`` (default: trust auth on 127.0.0.1:5432); the
tests that need it are skipped, with the reason, when it cannot be reached. Each test works in
a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import sys
import textwrap
import threading
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpers_loopback import closed_port
from helpers_runtime_procs import (
    POSTGRES_URL,
    T0,
    WORKERS,
    assert_one_holder_at_a_time,
    drop_schema,
    make_bundle,
    new_schema,
    open_due,
    own_schema,
    postgres_unavailable,
)
from helpers_runtime_procs import run_together as start_together
from pytest_maf_preflight.runtime.errors import RuntimeStateError, RuntimeUnavailable
from pytest_maf_preflight.runtime.factory import open_chain, resolve_runtime_settings
from pytest_maf_preflight.runtime.records import (
    ExecutionRecord,
    Message,
    SessionBundle,
    SessionRecord,
    new_id,
)

if TYPE_CHECKING:
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

#: Generous: these bound a hang, they do not measure speed.
PROCESS_TIMEOUT = 240
#: Where a race of a few processes proves the point as well as eight (each one pays for
#: importing psycopg).
FEW = 4
PASSWORD = "pw-Secr3t-9f2"
INSTALL = "pip install 'pytest-maf-preflight[postgres]'"


@pytest.fixture
def schema() -> Iterator[str]:
    with own_schema() as name:
        yield name


def open_pg(schema: str | None, url: str = POSTGRES_URL, **options: Any) -> PostgresRuntime:
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    return PostgresRuntime(url, schema=schema, **options)


def sql(query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """``query`` on a connection of its own (the test's view from outside the runtime)."""
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        cursor = conn.execute(query.encode(), params)
        return cursor.fetchall() if cursor.description else []


def with_params(url: str, **params: str) -> str:
    """``url`` with libpq parameters added (the test server's URL may be a URL or key=value)."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, **params)


def with_password(url: str, password: str = PASSWORD) -> str:
    return with_params(url, password=password)


# --- 8 processes, each a host of its own ------------------------------------------------------


def run_together(tmp_path: Path, commands: list[list[str]]) -> list[dict[str, Any]]:
    """Every child in a working directory of its own, as another host would be."""
    return start_together(
        tmp_path,
        commands,
        own_homes=True,
        timeout=PROCESS_TIMEOUT,
        env={**os.environ, "MAF_TEST_POSTGRES_URL": POSTGRES_URL},
    )


def test_processes_migrating_a_fresh_schema_at_once_apply_each_step_once(
    schema: str, tmp_path: Path
) -> None:
    from pytest_maf_preflight.runtime.postgres_migrations import SCHEMA_VERSION

    assert sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)) == []
    reports = run_together(
        tmp_path, [["store-open", "postgres", schema, f"host-{n}"] for n in range(FEW)]
    )
    assert [r["schema_version"] for r in reports] == [SCHEMA_VERSION] * FEW
    assert len({r["cwd"] for r in reports}) == FEW
    versions = sql(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


# Every two of these overlap (``src/a.py`` is under all of them), none is the same text.
OVERLAPPING = [
    "src/**",
    "src/a.py",
    "src/*.py",
    "src/a*",
    "**/a.py",
    "src/?.py",
    "src/[ab].py",
    "*.py",
]


def test_eight_hosts_racing_for_overlapping_patterns_get_one_grant(
    schema: str, tmp_path: Path
) -> None:
    open_pg(schema).close()  # the children race for the lease, not for the schema
    reports = run_together(
        tmp_path,
        [
            ["lease-race", "postgres", schema, f"agent@host-{n}", pattern]
            for n, pattern in enumerate(OVERLAPPING)
        ],
    )
    winners = [r for r in reports if r["ok"]]
    assert len(winners) == 1, reports
    winner = winners[0]["agent"]
    assert all(r["blocked_by"] == [winner] for r in reports if not r["ok"])
    with open_pg(schema) as store:
        active = store.leases()
    assert [lease.agent_id for lease in active] == [winner]
    assert [lease.fencing_token for lease in active] == winners[0]["tokens"]


def test_fencing_tokens_stay_unique_and_ordered_across_hosts(schema: str, tmp_path: Path) -> None:
    cycles = 8
    log = tmp_path / "critical-section.log"
    open_pg(schema).close()
    reports = run_together(
        tmp_path,
        [
            ["lease-cycles", "postgres", schema, f"agent@host-{n}", str(cycles), str(log)]
            for n in range(WORKERS)
        ],
    )
    every: list[int] = []
    for report in reports:
        tokens = report["tokens"]
        assert len(tokens) == 2 * cycles  # a grant and a renewal per cycle
        assert tokens == sorted(set(tokens)), report["agent"]
        every.extend(tokens)
    # From a counter in the granting transaction: no token twice, and none skipped.
    assert sorted(every) == list(range(1, 2 * cycles * WORKERS + 1))
    # The shared lease was held by one host at a time.
    assert_one_holder_at_a_time(log, reports)
    with open_pg(schema) as store:
        assert store.leases() == []
        fresh = store.acquire_leases("late", ["shared/state.json"], ttl=5).granted[0]
    assert fresh.fencing_token == max(every) + 1


def test_eight_ticks_claiming_one_due_level_have_one_winner(schema: str, tmp_path: Path) -> None:
    with open_pg(schema) as store:
        due = open_due(store, "critical:git:failed", T0 + 30.1)
        later = open_due(store, "critical:lint:failed", T0 + 5000)
    reports = run_together(
        tmp_path,
        [
            ["escalation-claim", "postgres", schema, f"tick-{n}", str(T0 + 31)]
            for n in range(WORKERS)
        ],
    )
    assert all(r["due"] == 1 for r in reports)  # every tick saw the level as due
    winners = [r for r in reports if r["won"]]
    assert len(winners) == 1, reports
    assert winners[0]["won"] == [[due, 2]]
    with open_pg(schema) as store:
        record = store.get_escalation(due)
        assert record is not None
        assert (record.state, record.level, record.next_action_at) == ("escalated", 2, T0 + 31 + 60)
        assert record.details == {"claimed_by": winners[0]["agent"]}
        assert [(d.escalation_id, d.level) for d in store.deliveries()] == [(due, 2)]
        untouched = store.get_escalation(later)
        assert untouched is not None
        assert untouched.level == 1


def test_eight_ticks_climbing_together_deliver_each_level_once(schema: str, tmp_path: Path) -> None:
    top = 10
    with open_pg(schema) as store:
        # A deadline with a long binary fraction: every claim compares it for equality.
        escalation = open_due(store, "critical:git:timeout", T0 + 0.1 + 0.2)
    reports = run_together(
        tmp_path,
        [
            ["escalation-climb", "postgres", schema, escalation, str(top), f"tick-{n}"]
            for n in range(WORKERS)
        ],
    )
    won = Counter(level for r in reports for level in r["won"])
    assert won == Counter(range(2, top + 1))  # every level won, none twice
    with open_pg(schema) as store:
        assert sorted(d.level for d in store.deliveries(escalation)) == list(range(2, top + 1))


def test_processes_opening_one_key_share_one_escalation(schema: str, tmp_path: Path) -> None:
    open_pg(schema).close()
    reports = run_together(
        tmp_path,
        [
            ["escalation-open", "postgres", schema, "critical:git:failed", f"host-{n}"]
            for n in range(FEW)
        ],
    )
    assert sum(bool(r["created"]) for r in reports) == 1, reports
    assert len({r["id"] for r in reports}) == 1
    assert sorted(r["occurrences"] for r in reports) == list(range(1, FEW + 1))
    with open_pg(schema) as store:
        stored = store.escalations()
    assert [(e.occurrences, e.state) for e in stored] == [(FEW, "triggered")]


# --- one process ----------------------------------------------------------------------------


def test_a_fresh_schema_gets_every_table_and_one_row_per_migration(schema: str) -> None:
    from pytest_maf_preflight.runtime.postgres_migrations import SCHEMA_VERSION

    with open_pg(schema) as runtime:
        info = runtime.info()
    assert (info.mode, info.schema_version) == ("postgres", SCHEMA_VERSION)
    assert info.location.endswith(f", schema {schema}")
    tables = {r[0] for r in sql("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))}
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
        "schema_migrations",
    } <= tables
    columns = dict(
        sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'escalation_tracking'",
            (schema,),
        )
    )
    assert columns["next_action_at"] == columns["created_at"] == "double precision"
    # Opening again finds the schema current: nothing applied twice.
    open_pg(schema).close()
    rows = sql(f'SELECT version FROM "{schema}".schema_migrations')
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_newer_schema_is_unavailable_and_untouched(schema: str) -> None:
    open_pg(schema).close()
    sql(f'INSERT INTO "{schema}".schema_migrations VALUES (99, 0)')
    with pytest.raises(RuntimeUnavailable, match="schema version 99 is newer"):
        open_pg(schema)
    assert sql(f'SELECT max(version) FROM "{schema}".schema_migrations') == [(99,)]


def test_migrating_an_up_to_date_schema_needs_no_lock(schema: str) -> None:
    """A second runtime opens while another transaction holds the migration lock."""
    import psycopg

    from pytest_maf_preflight.runtime.postgres_migrations import SCHEMA_VERSION, advisory_key

    open_pg(schema).close()
    with psycopg.connect(POSTGRES_URL) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("migrate", schema),))
        with open_pg(schema) as runtime:
            assert runtime.info().schema_version == SCHEMA_VERSION
        holder.rollback()


def test_times_and_json_round_trip_exactly(schema: str) -> None:
    awkward = [0.1 + 0.2, 1 / 3, 1_700_000_000.123456789, 5e-324, 1e300, -0.0]
    with open_pg(schema) as runtime:
        e, _ = runtime.open_escalation(
            path_id="p",
            dedup_key="k",
            check_id=None,
            failure_class=None,
            path_snapshot={"big": 1e300, "small": 5e-324, "text": "nul\x00and é"},
            next_action_at=awkward[0],
            details={"n": 10**20},
            now=awkward[2],
        )
        assert runtime.get_escalation(e.id) == e
        assert runtime.due_escalations(awkward[0]) == [e]
        # The deadline compared for equality is the float first written, not a rounded one.
        claimed = runtime.claim_escalation(
            e.id,
            expect_level=1,
            expect_next_action_at=0.3,
            level=2,
            next_action_at=awkward[1],
            state="escalated",
        )
        assert claimed is None  # 0.30000000000000004 was stored, not 0.3
        claimed = runtime.claim_escalation(
            e.id,
            expect_level=1,
            expect_next_action_at=awkward[0],
            level=2,
            next_action_at=awkward[1],
            state="escalated",
        )
        assert claimed is not None
        assert runtime.get_escalation(e.id) == claimed
        stored = runtime.get_escalation(e.id)
        assert stored is not None
        assert stored.path_snapshot == {"big": 1e300, "small": 5e-324, "text": "nul\x00and é"}
        assert isinstance(stored.path_snapshot["big"], float)
        for n, at in enumerate(awkward):
            lease = runtime.acquire_leases("a", [f"f{n}"], ttl=1, now=at).granted[0]
            stored_leases = {s.id: s for s in runtime.leases(active_only=False)}
            assert stored_leases[lease.id] == lease


def test_json_is_stored_as_compact_sorted_text_like_sqlite(schema: str) -> None:
    s = SessionRecord(
        id=new_id(),
        agent_id="a",
        environment="dev",
        started_at=T0,
        completed_at=T0 + 1,
        status="open",
        exit_code=0,
        runtime_mode="postgres",
        details={"z": 1, "a": [Path("/x"), "y"]},
    )
    run = ExecutionRecord(
        id=new_id(),
        session_id=s.id,
        config_id="c",
        config_version="1",
        agent_id="a",
        kind="check",
        status="error",
        started_at=T0,
        completed_at=T0,
        duration=0.0,
        attempts=1,
        result={"b": 2, "a": 1},
        error_message="binary\x00output",
    )
    with open_pg(schema) as runtime:
        runtime.record_session(SessionBundle(session=s, executions=(run,)))
        [stored] = runtime.executions()
    assert sql(f'SELECT details FROM "{schema}".preflight_sessions') == [
        ('{"a":["/x","y"],"z":1}',)
    ]
    assert sql(f'SELECT result FROM "{schema}".preflight_executions') == [('{"a":1,"b":2}',)]
    # PostgreSQL text cannot hold NUL: the message is kept, the NUL shown as JSON shows it.
    assert stored.error_message == "binary\\u0000output"


def test_a_large_session_goes_in_whole_and_once(schema: str) -> None:
    from pytest_maf_preflight.runtime.postgres import COPY_FROM

    big = make_bundle(COPY_FROM * 3)
    first_half = dataclasses.replace(big, executions=big.executions[: COPY_FROM + 1])
    odd = dataclasses.replace(big.executions[-1], error_message="nul\x00", result={"x": 0.1})
    big = dataclasses.replace(big, executions=(*big.executions[:-1], odd))
    with open_pg(schema) as runtime:
        runtime.record_session(first_half)
        runtime.record_session(big)
        runtime.record_session(big)
        stored = {e.id: e for e in runtime.executions()}
        # A row that breaks the table's rules fails the whole session: nothing of it is kept.
        broken = make_bundle(COPY_FROM)
        bad = dataclasses.replace(broken.executions[0], config_id="nul\x00")
        with pytest.raises(RuntimeStateError):
            runtime.record_session(
                dataclasses.replace(broken, executions=(*broken.executions[1:], bad))
            )
        assert runtime.get_session(broken.session.id) is None
        assert runtime.info().counts["executions"] == COPY_FROM * 3
    assert len(stored) == COPY_FROM * 3
    assert stored[odd.id] == dataclasses.replace(odd, error_message="nul\\u0000")
    assert all(stored[e.id] == e for e in big.executions[:-1])


def test_hand_written_tokens_and_a_lost_counter_row_are_survived(schema: str) -> None:
    open_pg(schema).close()
    sql(
        f'INSERT INTO "{schema}".leases (id, agent_id, path_pattern, created_at, expires_at, '
        "fencing_token) VALUES ('old', 'old-agent', 'old/**', 1, 2, 41)"
    )
    sql(f'DELETE FROM "{schema}".counters')
    with open_pg(schema) as runtime:
        grant = runtime.acquire_leases("a", ["new/**", "more/**"], ttl=10, now=5.0)
        assert [lease.fencing_token for lease in grant.granted] == [42, 43]
        assert runtime.renew_lease("old", "old-agent", ttl=1, now=5.0).fencing_token == 44
    assert sql(f'SELECT name, value FROM "{schema}".counters') == [("fencing_token", 44)]


def test_two_hosts_dequeuing_at_once_deliver_each_message_once(schema: str) -> None:
    with open_pg(schema) as first, open_pg(schema) as second:
        for n in range(40):
            first.enqueue(
                Message(
                    id=f"m{n:02}",
                    type="PREFLIGHT_RESULT",
                    agent_id="a",
                    payload={"n": n},
                    created_at=T0 + n,
                    recipient="lead",
                )
            )
        got: list[str] = []
        barrier = threading.Barrier(8)

        def drain(store: PostgresRuntime) -> None:
            barrier.wait()
            while batch := store.dequeue("lead", limit=3):
                got.extend(m.id for m in batch)

        threads = [threading.Thread(target=drain, args=(store,)) for store in (first, second) * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(got) == [f"m{n:02}" for n in range(40)]
        assert len(second.messages("delivered")) == 40


def test_the_search_path_chooses_the_schema_and_it_is_pinned(schema: str) -> None:
    sql(f'CREATE SCHEMA "{schema}"')
    earlier = new_schema()  # first in the search_path, but not there yet
    url = with_params(POSTGRES_URL, options=f"-csearch_path={earlier},{schema}")
    try:
        with open_pg(None, url) as runtime:
            assert runtime.schema == schema
            runtime.heartbeat("a", at=1.0)
            # Tables of the same name appearing earlier in the search_path meanwhile do not
            # move the runtime.
            sql(f'CREATE SCHEMA "{earlier}"')
            sql(f'CREATE TABLE "{earlier}".agents (id text, last_heartbeat float8, details text)')
            assert [a.id for a in runtime.agents()] == ["a"]
    finally:
        drop_schema(earlier)
    assert sql(f'SELECT id FROM "{schema}".agents') == [("a",)]


def test_a_search_path_naming_no_schema_is_unavailable(schema: str) -> None:
    url = with_params(POSTGRES_URL, options=f"-csearch_path={schema}")
    with pytest.raises(RuntimeUnavailable, match="search_path names no existing schema"):
        open_pg(None, url)


def test_a_lost_connection_fails_one_call_then_reconnects(schema: str) -> None:
    name = f"maf-test-{uuid.uuid4().hex[:12]}"
    url = with_password(with_params(POSTGRES_URL, application_name=name))
    with open_pg(schema, url) as runtime:
        runtime.heartbeat("a", at=1.0)
        killed = sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        )
        assert killed == [(True,)]
        with pytest.raises(RuntimeStateError) as lost:
            runtime.heartbeat("b", at=2.0)
        assert PASSWORD not in str(lost.value)
        runtime.heartbeat("b", at=2.0)
        assert [a.id for a in runtime.agents()] == ["a", "b"]
        assert runtime.schema == schema


def test_a_closed_runtime_says_so(schema: str) -> None:
    runtime = open_pg(schema)
    runtime.close()
    with pytest.raises(RuntimeStateError, match="closed"):
        runtime.agents()


# --- no password anywhere ------------------------------------------------------------------


def test_a_password_in_the_url_is_never_shown(schema: str) -> None:
    # Trust auth accepts any password: the runtime opens, and still shows none.
    with open_pg(schema, with_password(POSTGRES_URL)) as runtime:
        info = runtime.info()
    assert PASSWORD not in repr(info)
    assert info.location.startswith("postgresql://")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            f"postgresql://maf:{PASSWORD}@127.0.0.1:{{port}}/db",
            "cannot use postgresql://maf@127.0.0.1:{port}/db: *Connection refused*",
        ),
        (
            f"host=127.0.0.1 port={{port}} user=maf password={PASSWORD} dbname=db",
            "cannot use postgresql://maf@127.0.0.1:{port}/db: *Connection refused*",
        ),
        # libpq quotes a bad escape, password and all
        (
            f"postgresql://maf:{PASSWORD}%zz@127.0.0.1:{{port}}/db",
            "cannot use the database URL given (it cannot be parsed): invalid percent-encoded "
            'token: "***"',
        ),
        (
            f"postgresql://maf:{urllib.parse.quote(PASSWORD + '/@')}@127.0.0.1:{{port}}/db?bogus=1",
            "cannot use the database URL given (it cannot be parsed): invalid URI query parameter: "
            '"bogus"',
        ),
    ],
    ids=["url", "key-value", "bad-escape", "bad-parameter"],
)
def test_a_server_that_is_down_is_unavailable_without_the_password(
    url: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("psycopg")
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    monkeypatch.setenv("PGPASSWORD", "env-" + PASSWORD)
    port = closed_port()
    with pytest.raises(RuntimeUnavailable) as down:
        PostgresRuntime(url.format(port=port), connect_timeout=2)
    message = str(down.value)
    assert fnmatch.fnmatchcase(message, said.format(port=port)), message
    assert "\n" not in message
    assert PASSWORD not in message
    assert urllib.parse.quote(PASSWORD) not in message


def test_a_refused_login_is_unavailable_without_the_password() -> None:
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    from psycopg.conninfo import conninfo_to_dict

    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    url = with_password(with_params(POSTGRES_URL, user=f"nobody_{uuid.uuid4().hex[:8]}"))
    with pytest.raises(RuntimeUnavailable) as refused:
        PostgresRuntime(url)
    message = str(refused.value)
    assert PASSWORD not in message
    assert "does not exist" in message or "authentication failed" in message
    assert str(conninfo_to_dict(url).get("host", "")) in message


# --- the mode chain --------------------------------------------------------------------------


def test_the_chain_falls_to_the_next_mode_naming_why(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    port = closed_port()
    down = f"postgresql://maf:{PASSWORD}@127.0.0.1:{port}/db"
    settings = resolve_runtime_settings(
        tmp_path, {"MAF_RUNTIME_MODE": "postgres,sqlite", "MAF_DB_URL": down}
    )
    opened = open_chain(settings)
    with opened.runtime:
        assert opened.mode == "sqlite"
    [why] = opened.skipped
    assert why.startswith(f"postgres: cannot use postgresql://maf@127.0.0.1:{port}/db: ")
    assert "refused" in why.lower()
    assert PASSWORD not in why


def test_without_psycopg_choosing_postgres_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an absent package looks like
    settings = resolve_runtime_settings(
        tmp_path, {"MAF_RUNTIME_MODE": "postgres,memory", "MAF_DB_URL": "postgresql://h/db"}
    )
    opened = open_chain(settings)
    assert opened.mode == "memory"
    assert opened.skipped == [
        f"postgres: the postgres runtime needs psycopg 3, which is not installed: {INSTALL}"
    ]
    with pytest.raises(RuntimeUnavailable, match=r"\[postgres\]'$"):
        open_chain(settings, ["postgres"])


def test_without_a_url_postgres_says_where_to_set_one(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    settings = resolve_runtime_settings(tmp_path, {"MAF_RUNTIME_MODE": "postgres,memory"})
    opened = open_chain(settings)
    assert opened.skipped == [
        "postgres: no database URL: set MAF_DB_URL, --maf-db-url or maf_db_url"
    ]


def test_the_url_comes_from_option_then_environment_then_ini(tmp_path: Path) -> None:
    env = {"MAF_DB_URL": f"postgresql://env:{PASSWORD}@h/db"}
    cli = resolve_runtime_settings(
        tmp_path, env, db_url_cli="postgresql://cli@h/db", db_url_ini="postgresql://ini@h/db"
    )
    assert (cli.db_url, cli.db_url_source) == ("postgresql://cli@h/db", "--maf-db-url")
    from_env = resolve_runtime_settings(tmp_path, env, db_url_ini="postgresql://ini@h/db")
    assert from_env.db_url_source == "MAF_DB_URL environment variable"
    assert PASSWORD not in repr(from_env)
    ini = resolve_runtime_settings(tmp_path, {}, db_url_ini="postgresql://ini@h/db")
    assert (ini.db_url, ini.db_url_source) == (
        "postgresql://ini@h/db",
        "maf_db_url in the config file",
    )
    assert resolve_runtime_settings(tmp_path, {}).db_url is None


# --- the plugin ------------------------------------------------------------------------------

CHECKS = """\
configs:
  - id: has-path
    name: PATH is set
    config_type: smoke_test
    config:
      test_type: environment
      test_definition: {required: [PATH]}
"""


def test_the_gate_records_in_postgres_and_falls_back_when_it_is_down(
    pytester: pytest.Pytester, write_config: Any, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config("checks.yaml", CHECKS)
    pytester.makepyfile(test_app="def test_ok():\n    pass\n")
    sql(f'CREATE SCHEMA "{schema}"')
    monkeypatch.setenv("MAF_RUNTIME_MODE", "postgres,memory")
    monkeypatch.setenv(
        "MAF_DB_URL", with_password(with_params(POSTGRES_URL, options=f"-csearch_path={schema}"))
    )
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", "--maf-agent-id=a-1")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "maf-preflight: agent a-1, environment development, runtime postgres, 1 check *",
            "*recorded 1 execution(s) in postgres*",
        ]
    )
    assert PASSWORD not in result.stdout.str()
    assert sql(f'SELECT agent_id, runtime_mode FROM "{schema}".preflight_sessions') == [
        ("a-1", "postgres")
    ]
    assert sql(f'SELECT config_id, status FROM "{schema}".preflight_executions') == [
        ("has-path", "passed")
    ]

    down = f"postgresql://maf:{PASSWORD}@127.0.0.1:{closed_port()}/db"
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight", f"--maf-db-url={down}")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*runtime memory*",
            "maf-preflight: WARNING runtime postgres: cannot use "
            "postgresql://maf@127.0.0.1:*refused*",
        ]
    )
    assert PASSWORD not in result.stdout.str() + result.stderr.str()


def test_the_ini_key_names_the_url(pytester: pytest.Pytester, write_config: Any) -> None:
    pytest.importorskip("psycopg")
    write_config("checks.yaml", CHECKS)
    pytester.makepyfile(test_app="def test_ok():\n    pass\n")
    pytester.makeini(
        textwrap.dedent(f"""\
        [pytest]
        maf_runtime = postgres,memory
        maf_db_url = postgresql://maf:{PASSWORD}@127.0.0.1:{closed_port()}/db
    """)
    )
    result = pytester.runpytest("-p", "maf_preflight", "--maf-preflight")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["maf-preflight: WARNING runtime postgres: cannot use postgresql://maf@127.0.0.1:*"]
    )
    assert PASSWORD not in result.stdout.str()


def test_the_temporary_maf_runtime_never_writes_into_the_shared_database(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_tmp="""
        def test_tmp(maf_runtime, tmp_path):
            assert maf_runtime.mode == "sqlite"
            assert str(tmp_path) in maf_runtime.info().location
    """
    )
    result = pytester.runpytest(
        "-p",
        "maf_preflight",
        "--maf-runtime=postgres,json",
        "--maf-db-url=postgresql://postgres@127.0.0.1:1/none",
    )
    result.assert_outcomes(passed=1)
