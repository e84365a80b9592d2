"""The lease store across real processes (SPEC S3): no double exclusive grant, ever, and fencing
tokens that are unique and grow in the order the store granted them; for SQLite and JSON.

The contract of a single process is in ``test_runtime_contract.py``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from helpers_runtime_procs import (
    MODES,
    WORKERS,
    assert_one_holder_at_a_time,
    open_store,
    run_together,
    where,
)
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime
from pytest_maf_preflight.runtime.sqlite_migrations import SCHEMA_VERSION, migrate


def prepare(mode: str, tmp_path: Path) -> None:
    """Create the store first, so the children race for the lease, not for the schema."""
    open_store(mode, tmp_path).close()


@pytest.mark.parametrize("mode", MODES)
def test_eight_processes_racing_for_one_pattern_get_one_grant(mode: str, tmp_path: Path) -> None:
    prepare(mode, tmp_path)
    reports = run_together(
        tmp_path,
        [
            ["lease-race", mode, str(where(mode, tmp_path)), f"agent-{n}", "src/app/main.py"]
            for n in range(WORKERS)
        ],
    )
    winners = [r for r in reports if r["ok"]]
    assert len(winners) == 1
    winner = winners[0]["agent"]
    assert all(r["blocked_by"] == [winner] for r in reports if not r["ok"])
    with open_store(mode, tmp_path) as store:
        active = store.leases()
    assert [(lease.agent_id, lease.path_pattern) for lease in active] == [
        (winner, "src/app/main.py")
    ]
    assert [lease.fencing_token for lease in active] == winners[0]["tokens"]


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


@pytest.mark.parametrize("mode", MODES)
def test_eight_processes_racing_for_overlapping_patterns_get_one_grant(
    mode: str, tmp_path: Path
) -> None:
    prepare(mode, tmp_path)
    reports = run_together(
        tmp_path,
        [
            ["lease-race", mode, str(where(mode, tmp_path)), f"agent-{n}", pattern]
            for n, pattern in enumerate(OVERLAPPING)
        ],
    )
    winners = [r["agent"] for r in reports if r["ok"]]
    assert len(winners) == 1
    with open_store(mode, tmp_path) as store:
        assert [lease.agent_id for lease in store.leases()] == winners


@pytest.mark.parametrize("mode", MODES)
def test_fencing_tokens_stay_unique_and_ordered_under_contention(mode: str, tmp_path: Path) -> None:
    cycles = 15
    log = tmp_path / "critical-section.log"
    prepare(mode, tmp_path)
    reports = run_together(
        tmp_path,
        [
            ["lease-cycles", mode, str(where(mode, tmp_path)), f"agent-{n}", str(cycles), str(log)]
            for n in range(WORKERS)
        ],
    )

    every: list[int] = []
    for report in reports:
        tokens = report["tokens"]
        assert isinstance(tokens, list)
        assert len(tokens) == 2 * cycles  # a grant and a renewal per cycle
        assert tokens == sorted(set(tokens)), report["agent"]  # each child's grow
        every.extend(tokens)
    assert len(set(every)) == len(every) == 2 * cycles * WORKERS  # nothing handed out twice

    # The shared lease was held by one child at a time.
    assert_one_holder_at_a_time(log, reports)

    with open_store(mode, tmp_path) as store:
        assert store.leases() == []
        stored = store.leases(active_only=False)
        assert len(stored) == cycles * WORKERS
        # A new grant still gets a token above every one handed out.
        fresh = store.acquire_leases("late", ["shared/state.json"], ttl=5).granted[0]
    assert fresh.fencing_token > max(every)


# --- migration 3: the fencing counter --------------------------------------------------------


def _insert_lease(conn: sqlite3.Connection, lease_id: str, token: int) -> None:
    conn.execute(
        "INSERT INTO leases (id, agent_id, path_pattern, exclusive, reason, "
        "created_at, expires_at, released_at, fencing_token) "
        "VALUES (?, 'old-agent', ?, 1, '', 10.0, 20.0, NULL, ?)",
        (lease_id, f"old/{lease_id}/**", token),
    )


def test_migration_3_seeds_the_counter_from_existing_leases(tmp_path: Path) -> None:
    db = tmp_path / "runtime.db"
    conn = sqlite3.connect(db, isolation_level=None)
    assert migrate(conn, target=2) == 2
    for lease_id, token in (("l1", 5), ("l2", 17), ("l3", 9)):
        _insert_lease(conn, lease_id, token)
    conn.close()

    with SqliteRuntime(db) as runtime:
        assert runtime.info().schema_version == SCHEMA_VERSION >= 3
        old = {lease.id: lease for lease in runtime.leases(active_only=False)}
        assert {k: v.fencing_token for k, v in old.items()} == {"l1": 5, "l2": 17, "l3": 9}
        assert old["l2"].exclusive is True
        grant = runtime.acquire_leases("agent-a", ["new/**"], ttl=10, now=100.0)
        assert grant.granted[0].fencing_token == 18
        renewed = runtime.renew_lease("l1", "old-agent", ttl=10, now=100.0)
        assert renewed.fencing_token == 19

    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert conn.execute(
            "SELECT value FROM counters WHERE name = 'fencing_token'"
        ).fetchone() == (19,)
        # Deleting every lease row does not bring a token back.
        conn.execute("DELETE FROM leases")
    finally:
        conn.close()
    with SqliteRuntime(db) as runtime:
        again = runtime.acquire_leases("agent-a", ["new/**"], ttl=10, now=100.0)
        assert again.granted[0].fencing_token == 20


def test_migration_3_on_a_database_without_leases_starts_at_one(tmp_path: Path) -> None:
    db = tmp_path / "runtime.db"
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn, target=2)
    conn.close()
    with SqliteRuntime(db) as runtime:
        grant = runtime.acquire_leases("agent-a", ["a", "b"], ttl=10, now=1.0)
        assert [lease.fencing_token for lease in grant.granted] == [1, 2]
