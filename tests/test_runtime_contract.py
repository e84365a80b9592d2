"""One suite, every runtime mode: the ``RuntimeState`` contract (SPEC S5)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers_runtime_procs import POSTGRES_URL, drop_schema, new_schema, postgres_unavailable
from pytest_maf_preflight.escalation.errors import EscalationError
from pytest_maf_preflight.runtime.errors import LeaseError
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.records import (
    AgentRecord,
    CheckStats,
    ConfigSnapshot,
    ConflictRecord,
    DecisionRecord,
    DeliveryRecord,
    EscalationPathDefinition,
    EscalationRecord,
    ExecutionRecord,
    Lease,
    LeaseGrant,
    Message,
    SessionBundle,
    SessionRecord,
    SilenceRecord,
    SmokeTestDefinition,
    WaiverRecord,
    new_id,
)

MODES = ["memory", "sqlite", "json", "postgres"]
#: The modes that keep records after ``close()``.
LASTING = ["sqlite", "json", "postgres"]


def make_runtime(mode: str, tmp_path: Path) -> RuntimeState:
    if mode == "memory":
        from pytest_maf_preflight.runtime.memory import MemoryRuntime

        return MemoryRuntime()
    if mode == "sqlite":
        from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

        return SqliteRuntime(tmp_path / "runtime.db")
    if mode == "postgres":
        return make_postgres_runtime(tmp_path)
    from pytest_maf_preflight.runtime.jsonl import JsonRuntime

    return JsonRuntime(tmp_path / "agent-mail")


def make_postgres_runtime(tmp_path: Path) -> RuntimeState:
    """A runtime in a schema of the test's own (``_drop_postgres_schema`` removes it), the same
    one each time the test opens one, so reopening finds the records."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    from pytest_maf_preflight.runtime.postgres import PostgresRuntime

    named = tmp_path / SCHEMA_FILE
    if not named.exists():
        named.write_text(new_schema())
    return PostgresRuntime(POSTGRES_URL, schema=named.read_text())


SCHEMA_FILE = "postgres-schema"


@pytest.fixture(autouse=True)
def _drop_postgres_schema(tmp_path: Path) -> Iterator[None]:
    yield
    named = tmp_path / SCHEMA_FILE
    if named.exists():
        drop_schema(named.read_text())


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeState]:
    state = make_runtime(request.param, tmp_path)
    yield state
    state.close()


def session(started: float = 1000.0, **changes: object) -> SessionRecord:
    base = SessionRecord(
        id=new_id(),
        agent_id="codex-1",
        environment="development",
        started_at=started,
        completed_at=started + 1,
        status="open",
        exit_code=0,
        runtime_mode="test",
        hostname="host-a",
        details={"checks": 2},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def execution(
    session_id: str, config_id: str = "git", status: str = "passed", started: float = 1000.0
) -> ExecutionRecord:
    return ExecutionRecord(
        id=new_id(),
        session_id=session_id,
        config_id=config_id,
        config_version="1.0.0",
        agent_id="codex-1",
        kind="check",
        status=status,  # type: ignore[arg-type]
        started_at=started,
        completed_at=started + 0.5,
        duration=0.5,
        attempts=1,
        result={"observed": "ok", "nested": {"a": [1, 2]}},
        error_message=None if status == "passed" else "boom",
    )


def bundle(n: int = 3, started: float = 1000.0, **changes: object) -> SessionBundle:
    s = session(started, **changes)
    runs = tuple(
        execution(s.id, f"check-{i}", "passed" if i else "failed", started + i) for i in range(n)
    )
    snap = ConfigSnapshot(
        config_id="check-0",
        version="1.0.0",
        config_type="smoke_test",
        content_hash="abc123",
        document={"id": "check-0"},
        recorded_at=started,
    )
    msg = Message(
        id=new_id(),
        type="PREFLIGHT_RESULT",
        agent_id="codex-1",
        payload={"config_id": "check-0", "status": "failed"},
        created_at=started,
        correlation_id=s.id,
        recipient="lead",
    )
    return SessionBundle(session=s, executions=runs, snapshots=(snap,), messages=(msg,))


def test_a_session_and_its_executions_round_trip(runtime: RuntimeState) -> None:
    b = bundle()
    runtime.record_session(b)
    assert runtime.get_session(b.session.id) == b.session
    stored = runtime.executions(session_id=b.session.id)
    assert sorted(stored, key=lambda e: e.id) == sorted(b.executions, key=lambda e: e.id)
    assert runtime.get_session(new_id()) is None


def test_recording_the_same_bundle_twice_changes_nothing(runtime: RuntimeState) -> None:
    b = bundle()
    runtime.record_session(b)
    runtime.record_session(b)
    assert len(runtime.sessions()) == 1
    assert len(runtime.executions()) == 3
    assert len(runtime.config_snapshots()) == 1
    assert len(runtime.messages()) == 1


def test_queries_filter_and_come_newest_first(runtime: RuntimeState) -> None:
    older, newer = bundle(started=1000.0), bundle(started=2000.0)
    runtime.record_session(newer)
    runtime.record_session(older)
    assert [s.id for s in runtime.sessions()] == [newer.session.id, older.session.id]
    assert [s.id for s in runtime.sessions(limit=1)] == [newer.session.id]
    failed = runtime.executions(status="failed")
    assert {e.session_id for e in failed} == {older.session.id, newer.session.id}
    assert all(e.status == "failed" for e in failed)
    by_config = runtime.executions(config_id="check-2")
    assert [e.started_at for e in by_config] == [2002.0, 1002.0]
    assert len(runtime.executions(limit=4)) == 4


def test_the_latest_check_execution_of_an_agent_in_an_environment(runtime: RuntimeState) -> None:
    """What the gate's reuse of a recent pass reads: the newest execution of one check, by one
    agent, in sessions of one environment, whatever its status."""
    assert runtime.latest_check_execution("api", agent_id="codex-1", environment="dev") is None
    dev, staging = session(environment="dev"), session(environment="staging")

    def run(of: SessionRecord, started: float, status: str = "passed", **changes: Any) -> Any:
        ran = execution(of.id, "api", status, started)
        return dataclasses.replace(ran, **changes)

    passed = run(dev, 1000.0, result={"content_hash": "h1", "reused_from": {"execution_id": "x"}})
    later = session(environment="dev")
    failed = run(later, 1010.0, "failed")
    timed_out = run(later, 1010.0, "timeout", id=failed.id + "z")  # same start: the larger id
    others = [
        run(dev, 1020.0, agent_id="codex-2"),  # another agent
        run(dev, 1030.0, kind="smoke"),  # not a config check
        run(dev, 1040.0, config_id="db"),  # another check
        run(staging, 1050.0),  # another environment
    ]
    runtime.record_session(SessionBundle(session=dev, executions=(passed, *others[:3])))
    runtime.record_session(SessionBundle(session=staging, executions=(others[3],)))

    assert runtime.latest_check_execution("api", agent_id="codex-1", environment="dev") == passed
    runtime.record_session(SessionBundle(session=later, executions=(timed_out, failed)))
    assert runtime.latest_check_execution("api", agent_id="codex-1", environment="dev") == timed_out
    assert (
        runtime.latest_check_execution("api", agent_id="codex-1", environment="staging")
        == others[3]
    )
    assert runtime.latest_check_execution("api", agent_id="codex-2", environment="dev") == others[0]
    assert runtime.latest_check_execution("api", agent_id="codex-1", environment="ci") is None


def test_snapshots_are_kept_once_per_content(runtime: RuntimeState) -> None:
    first, second = bundle(), bundle(started=3000.0)
    runtime.record_session(first)
    runtime.record_session(second)  # the same config content again
    changed = dataclasses.replace(
        second.snapshots[0], content_hash="def456", version="1.1.0", recorded_at=3000.0
    )
    runtime.record_session(dataclasses.replace(bundle(started=4000.0), snapshots=(changed,)))
    snaps = runtime.config_snapshots("check-0")
    assert [s.content_hash for s in snaps] == ["def456", "abc123"]
    assert runtime.config_snapshots("nothing") == []


def test_the_message_queue_delivers_once_and_acks(runtime: RuntimeState) -> None:
    one = Message(
        id=new_id(),
        type="PREFLIGHT_RESULT",
        agent_id="a",
        payload={"n": 1},
        created_at=1.0,
        recipient="lead",
    )
    two = Message(
        id=new_id(),
        type="PREFLIGHT_RESULT",
        agent_id="a",
        payload={"n": 2},
        created_at=2.0,
        recipient="lead",
    )
    other = Message(
        id=new_id(),
        type="PREFLIGHT_CHECK",
        agent_id="a",
        payload={},
        created_at=0.5,
        recipient="someone-else",
    )
    for message in (two, other, one):
        runtime.enqueue(message)
    got = runtime.dequeue("lead")
    assert [m.id for m in got] == [one.id]
    assert got[0].status == "delivered"
    assert got[0].payload == {"n": 1}
    assert [m.id for m in runtime.dequeue("lead", limit=5)] == [two.id]
    assert runtime.dequeue("lead") == []
    assert runtime.ack(one.id) is True
    assert runtime.ack(new_id()) is False
    assert [m.id for m in runtime.messages("acked")] == [one.id]
    assert [m.id for m in runtime.messages("queued")] == [other.id]


def test_heartbeats_keep_the_latest(runtime: RuntimeState) -> None:
    runtime.heartbeat("codex-1", at=10.0, details={"pid": 1})
    runtime.heartbeat("codex-1", at=20.0, details={"pid": 2})
    runtime.heartbeat("gemini-1", at=15.0)
    agents = {a.id: a for a in runtime.agents()}
    assert set(agents) == {"codex-1", "gemini-1"}
    assert agents["codex-1"].last_heartbeat == 20.0
    assert agents["codex-1"].details == {"pid": 2}


def test_info_counts_what_is_stored(runtime: RuntimeState) -> None:
    runtime.record_session(bundle(n=4))
    info = runtime.info()
    assert info.mode == runtime.mode
    assert info.counts["sessions"] == 1
    assert info.counts["executions"] == 4
    assert info.location


def test_concurrent_writers_in_threads_lose_nothing(runtime: RuntimeState) -> None:
    bundles = [bundle(n=5, started=float(i)) for i in range(16)]
    threads = [threading.Thread(target=runtime.record_session, args=(b,)) for b in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runtime.sessions()) == 16
    assert len(runtime.executions()) == 80


@pytest.mark.parametrize("mode", LASTING)
def test_records_survive_reopening(mode: str, tmp_path: Path) -> None:
    b = bundle()
    with make_runtime(mode, tmp_path) as first:
        first.record_session(b)
        first.heartbeat("codex-1", at=5.0)
    with make_runtime(mode, tmp_path) as second:
        assert second.get_session(b.session.id) == b.session
        assert len(second.executions(session_id=b.session.id)) == 3
        assert [a.id for a in second.agents()] == ["codex-1"]


# --- leases (SPEC S3) -----------------------------------------------------------------------
# Every lease call takes an injected ``now`` here, so expiry is decided by the test, not the
# clock.

T0 = 1_000.0


def test_a_grant_leases_every_pattern_with_new_fencing_tokens(runtime: RuntimeState) -> None:
    grant = runtime.acquire_leases(
        "agent-a", ["src/a.py", "docs/**"], ttl=60, reason="edit", now=T0
    )
    assert grant.ok
    assert grant.conflicts == ()
    assert [g.path_pattern for g in grant.granted] == ["src/a.py", "docs/**"]
    first, second = grant.granted
    assert first == Lease(
        id=first.id,
        agent_id="agent-a",
        path_pattern="src/a.py",
        exclusive=True,
        reason="edit",
        created_at=T0,
        expires_at=T0 + 60,
        released_at=None,
        fencing_token=first.fencing_token,
    )
    assert first.id != second.id
    assert second.fencing_token > first.fencing_token > 0
    assert {lease.id for lease in runtime.leases(now=T0)} == {first.id, second.id}
    later = runtime.acquire_leases(
        "agent-b", ["tests/**"], exclusive=False, ttl=5, now=T0 + 1
    ).granted[0]
    assert later.exclusive is False
    assert later.fencing_token > second.fencing_token
    assert runtime.leases(now=T0 + 1)[0] == later  # newest first
    assert [lease.id for lease in runtime.leases(agent_id="agent-b", now=T0 + 1)] == [later.id]
    assert runtime.leases(agent_id="nobody", now=T0) == []


@pytest.mark.parametrize(
    ("held_exclusive", "wanted_exclusive", "blocked"),
    [(True, True, True), (True, False, True), (False, True, True), (False, False, False)],
    ids=["excl-vs-excl", "excl-vs-shared", "shared-vs-excl", "shared-vs-shared"],
)
def test_a_conflict_needs_one_exclusive_side(
    runtime: RuntimeState, held_exclusive: bool, wanted_exclusive: bool, blocked: bool
) -> None:
    held = runtime.acquire_leases(
        "agent-a", ["src/*.py"], exclusive=held_exclusive, ttl=60, now=T0
    ).granted[0]
    grant = runtime.acquire_leases(
        "agent-b", ["src/a*"], exclusive=wanted_exclusive, ttl=60, now=T0 + 1
    )
    assert grant.ok is not blocked
    assert grant.conflicts == ((held,) if blocked else ())
    assert len(grant.granted) == (0 if blocked else 1)


def test_an_agent_is_never_blocked_by_its_own_leases(runtime: RuntimeState) -> None:
    runtime.acquire_leases("agent-a", ["src/**"], ttl=60, now=T0)
    again = runtime.acquire_leases(
        "agent-a", ["src/a.py", "src/**", "src/a.py"], ttl=60, now=T0 + 1
    )
    assert again.ok
    assert [g.path_pattern for g in again.granted] == ["src/a.py", "src/**"]  # each once
    assert len(runtime.leases(agent_id="agent-a", now=T0 + 1)) == 3


def test_patterns_that_do_not_overlap_do_not_conflict(runtime: RuntimeState) -> None:
    runtime.acquire_leases("agent-a", ["src/a.py", "docs/**"], ttl=60, now=T0)
    grant = runtime.acquire_leases("agent-b", ["src/b.py", "tests/**"], ttl=60, now=T0)
    assert grant.ok
    assert len(runtime.leases(now=T0)) == 4


def test_acquire_is_all_or_nothing(runtime: RuntimeState) -> None:
    held = runtime.acquire_leases("agent-a", ["src/a.py"], ttl=60, now=T0).granted[0]
    blocked = runtime.acquire_leases(
        "agent-b", ["docs/x.md", "docs/README.md", "src/*.py"], ttl=60, now=T0
    )
    assert not blocked.ok
    assert blocked.granted == ()
    assert blocked.conflicts == (held,)
    assert runtime.leases(agent_id="agent-b", active_only=False, now=T0) == []
    assert runtime.acquire_leases("agent-b", ["docs/x.md", "docs/README.md"], ttl=60, now=T0).ok


def test_an_expired_lease_is_taken_over_without_cleanup(runtime: RuntimeState) -> None:
    old = runtime.acquire_leases("agent-a", ["src/**"], ttl=10, now=T0).granted[0]
    assert not runtime.acquire_leases("agent-b", ["src/a.py"], ttl=10, now=T0 + 9.5).ok
    taken = runtime.acquire_leases("agent-b", ["src/a.py"], ttl=10, now=T0 + 10)
    assert taken.ok  # expires_at == now: no longer active
    assert taken.granted[0].fencing_token > old.fencing_token
    assert [lease.agent_id for lease in runtime.leases(now=T0 + 10)] == ["agent-b"]
    # The expired lease is still stored, unreleased, until something releases it.
    stored = {lease.id: lease for lease in runtime.leases(active_only=False, now=T0 + 10)}
    assert stored[old.id].released_at is None


def test_renewal_extends_from_the_later_of_now_and_expiry(runtime: RuntimeState) -> None:
    lease = runtime.acquire_leases("agent-a", ["src/a.py"], ttl=10, now=T0).granted[0]
    live = runtime.renew_lease(lease.id, "agent-a", ttl=20, now=T0 + 5)
    assert live.expires_at == T0 + 10 + 20  # from the expiry, still ahead
    assert live.fencing_token > lease.fencing_token
    assert (live.id, live.created_at, live.path_pattern) == (lease.id, T0, "src/a.py")
    late = runtime.renew_lease(lease.id, "agent-a", ttl=20, now=T0 + 100)
    assert late.expires_at == T0 + 100 + 20  # expired: from now
    assert late.fencing_token > live.fencing_token
    assert runtime.leases(now=T0 + 110) == [late]


def test_renewal_is_refused_when_someone_took_the_expired_lease(runtime: RuntimeState) -> None:
    lease = runtime.acquire_leases("agent-a", ["src/a.py"], ttl=10, now=T0).granted[0]
    runtime.acquire_leases("agent-b", ["src/*.py"], exclusive=False, ttl=60, now=T0 + 20)
    with pytest.raises(
        LeaseError,
        match=r"cannot be renewed: 'src/\*\.py' held by agent "
        r"'agent-b'",
    ):
        runtime.renew_lease(lease.id, "agent-a", ttl=10, now=T0 + 30)
    with pytest.raises(LeaseError, match=r"held by agent 'agent-a', not 'agent-b'"):
        runtime.renew_lease(lease.id, "agent-b", ttl=10, now=T0 + 30)
    with pytest.raises(LeaseError, match="no lease 'nope'"):
        runtime.renew_lease("nope", "agent-a", ttl=10, now=T0)
    runtime.release_lease(lease.id, "agent-a", now=T0 + 30)
    with pytest.raises(LeaseError, match=r"was released at .* cannot be renewed"):
        runtime.renew_lease(lease.id, "agent-a", ttl=10, now=T0 + 31)


def test_only_the_owner_releases_and_twice_changes_nothing(runtime: RuntimeState) -> None:
    lease = runtime.acquire_leases("agent-a", ["src/a.py"], ttl=60, now=T0).granted[0]
    with pytest.raises(LeaseError, match=r"held by agent 'agent-a', not 'agent-b'"):
        runtime.release_lease(lease.id, "agent-b", now=T0 + 1)
    assert runtime.leases(now=T0 + 1) == [lease]
    released = runtime.release_lease(lease.id, "agent-a", now=T0 + 2)
    assert released == dataclasses.replace(lease, released_at=T0 + 2)
    assert runtime.leases(now=T0 + 2) == []
    assert runtime.leases(active_only=False, now=T0 + 2) == [released]
    assert runtime.release_lease(lease.id, "agent-a", now=T0 + 3) == released
    with pytest.raises(LeaseError, match="no lease"):
        runtime.release_lease(new_id(), "agent-a")
    assert runtime.acquire_leases("agent-b", ["src/a.py"], ttl=60, now=T0 + 3).ok


def test_stale_leases_are_released_by_expiry(runtime: RuntimeState) -> None:
    short = runtime.acquire_leases("agent-a", ["a/**"], ttl=10, now=T0).granted[0]
    long = runtime.acquire_leases("agent-b", ["b/**"], ttl=100, now=T0).granted[0]
    gone = runtime.acquire_leases("agent-c", ["c/**"], ttl=5, now=T0).granted[0]
    runtime.release_lease(gone.id, "agent-c", now=T0 + 1)
    released = runtime.release_stale_leases(now=T0 + 50)
    assert released == [dataclasses.replace(short, released_at=T0 + 50)]
    assert runtime.release_stale_leases(now=T0 + 50) == []
    assert runtime.leases(now=T0 + 50) == [long]
    stored = {lease.id: lease for lease in runtime.leases(active_only=False)}
    assert stored[gone.id].released_at == T0 + 1  # an earlier release is kept


def test_stale_leases_include_those_of_idle_agents(runtime: RuntimeState) -> None:
    runtime.heartbeat("idle", at=T0 - 100)
    runtime.heartbeat("busy", at=T0 - 5)
    idle = runtime.acquire_leases("idle", ["a/**"], ttl=600, now=T0).granted[0]
    busy = runtime.acquire_leases("busy", ["b/**"], ttl=600, now=T0).granted[0]
    silent = runtime.acquire_leases("silent", ["c/**"], ttl=600, now=T0).granted[0]
    assert runtime.release_stale_leases(now=T0) == []  # nothing expired, no idle limit
    released = runtime.release_stale_leases(now=T0, idle_agent_seconds=30)
    assert [lease.id for lease in released] == [idle.id]
    assert released[0].released_at == T0
    assert {lease.id for lease in runtime.leases(now=T0)} == {busy.id, silent.id}


def test_fencing_tokens_only_ever_grow(runtime: RuntimeState) -> None:
    tokens: list[int] = []
    for n in range(4):
        lease = runtime.acquire_leases("agent-a", ["src/a.py"], ttl=10, now=T0 + n).granted[0]
        tokens.append(lease.fencing_token)
        tokens.append(runtime.renew_lease(lease.id, "agent-a", ttl=10, now=T0 + n).fencing_token)
        released = runtime.release_lease(lease.id, "agent-a", now=T0 + n)
        assert released.fencing_token == tokens[-1]  # a release hands out no token
    runtime.release_stale_leases(now=T0 + 1000)
    tokens.append(
        runtime.acquire_leases("agent-b", ["src/a.py"], ttl=10, now=T0).granted[0].fencing_token
    )
    assert tokens == sorted(set(tokens))


@pytest.mark.parametrize("mode", LASTING)
def test_fencing_tokens_keep_growing_after_reopening(mode: str, tmp_path: Path) -> None:
    with make_runtime(mode, tmp_path) as first:
        lease = first.acquire_leases("agent-a", ["src/**"], ttl=10, now=T0).granted[0]
        renewed = first.renew_lease(lease.id, "agent-a", ttl=10, now=T0)
        first.release_lease(lease.id, "agent-a", now=T0)
    with make_runtime(mode, tmp_path) as second:
        assert second.leases(active_only=False) == [dataclasses.replace(renewed, released_at=T0)]
        again = second.acquire_leases("agent-b", ["src/**"], ttl=10, now=T0).granted[0]
        assert again.fencing_token > renewed.fencing_token


def conflict(session_id: str | None, detected: float = T0, **changes: object) -> ConflictRecord:
    base = ConflictRecord(
        id=new_id(),
        session_id=session_id,
        conflict_type="lock_validation",
        severity="error",
        agent_id="agent-b",
        holder_agent_id="agent-a",
        path="src/a.py",
        path_pattern="src/**",
        lease_id=new_id(),
        expires_at=T0 + 60,
        status="open",
        override=False,
        detected_at=detected,
        details={"files": ["src/a.py"], "n": 1},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_conflicts_travel_with_their_session_bundle(runtime: RuntimeState) -> None:
    b = bundle()
    found = (
        conflict(b.session.id, T0),
        conflict(
            b.session.id,
            T0 + 1,
            status="overridden",
            override=True,
            holder_agent_id=None,
            path=None,
            lease_id=None,
            expires_at=None,
        ),
    )
    with_conflicts = dataclasses.replace(b, conflicts=found)
    runtime.record_session(with_conflicts)
    runtime.record_session(with_conflicts)
    assert runtime.reservation_conflicts() == [found[1], found[0]]
    assert runtime.reservation_conflicts(session_id=b.session.id, limit=1) == [found[1]]
    assert runtime.reservation_conflicts(session_id=new_id()) == []
    loose = conflict(None, T0 + 2, conflict_type="concurrent_access")
    runtime.record_conflicts([loose, loose])
    runtime.record_conflicts([loose])
    assert runtime.reservation_conflicts() == [loose, found[1], found[0]]
    # A session already stored still takes conflicts it did not have.
    late = conflict(b.session.id, T0 + 3)
    runtime.record_session(dataclasses.replace(b, conflicts=(*found, late)))
    assert [c.id for c in runtime.reservation_conflicts(session_id=b.session.id)] == [
        late.id,
        found[1].id,
        found[0].id,
    ]
    with pytest.raises(ValueError, match="limit"):
        runtime.reservation_conflicts(limit=-1)


def test_info_counts_leases_and_conflicts(runtime: RuntimeState) -> None:
    runtime.acquire_leases("agent-a", ["a/**", "b/**"], ttl=10, now=T0)
    b = bundle()
    runtime.record_session(dataclasses.replace(b, conflicts=(conflict(b.session.id),)))
    counts = runtime.info().counts
    assert counts["leases"] == 2
    assert counts["reservation_conflicts"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"patterns": ["src/a.py", ""]}, "pattern"),
        ({"patterns": "src/a.py"}, "not one string"),
        ({"patterns": []}, "at least one pattern"),
        ({"agent_id": ""}, "agent id"),
        ({"agent_id": "  "}, "agent id"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": -5}, "ttl"),
        ({"ttl": float("inf")}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"now": float("nan")}, "now"),
        ({"exclusive": "yes"}, "exclusive"),
    ],
    ids=[
        "empty-pattern",
        "one-string",
        "no-patterns",
        "empty-agent",
        "blank-agent",
        "ttl-zero",
        "ttl-negative",
        "ttl-inf",
        "ttl-nan",
        "now-nan",
        "exclusive-str",
    ],
)
def test_bad_requests_are_refused_before_any_write(
    runtime: RuntimeState, args: dict[str, Any], message: str
) -> None:
    call: dict[str, Any] = {
        "agent_id": "agent-a",
        "patterns": ["src/**"],
        "ttl": 10.0,
        "now": T0,
        **args,
    }
    with pytest.raises(ValueError, match=message):
        runtime.acquire_leases(call.pop("agent_id"), call.pop("patterns"), **call)
    assert runtime.leases(active_only=False) == []
    assert runtime.info().counts["leases"] == 0


def test_bad_renewals_and_stale_limits_are_refused(runtime: RuntimeState) -> None:
    lease = runtime.acquire_leases("agent-a", ["src/**"], ttl=10, now=T0).granted[0]
    with pytest.raises(ValueError, match="ttl"):
        runtime.renew_lease(lease.id, "agent-a", ttl=0, now=T0)
    with pytest.raises(ValueError, match="agent id"):
        runtime.release_lease(lease.id, "", now=T0)
    with pytest.raises(ValueError, match="idle_agent_seconds"):
        runtime.release_stale_leases(now=T0, idle_agent_seconds=-1)
    assert runtime.leases(now=T0) == [lease]


def test_threads_racing_for_one_lease_get_one_grant(runtime: RuntimeState) -> None:
    grants: list[LeaseGrant] = []
    barrier = threading.Barrier(8)

    def race(n: int) -> None:
        barrier.wait()
        grants.append(runtime.acquire_leases(f"agent-{n}", ["shared/**"], ttl=60))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [g for g in grants if g.ok]
    assert len(grants) == 8
    assert len(winners) == 1
    assert all(g.conflicts == winners[0].granted for g in grants if not g.ok)
    assert runtime.leases() == list(winners[0].granted)


# --- escalations (SPEC S4) ------------------------------------------------------------------
# ``now`` is injected everywhere, so every timestamp below is the test's.

SNAPSHOT = {
    "id": "critical",
    "version": "1.0.0",
    "config": {"escalation_steps": [{"level": 1, "target": "lead", "timeout_minutes": 0.5}]},
}


def open_one(
    runtime: RuntimeState, key: str = "critical:git:failed", at: float = T0, **changes: Any
) -> tuple[EscalationRecord, bool]:
    call: dict[str, Any] = {
        "path_id": "critical",
        "dedup_key": key,
        "check_id": "git",
        "failure_class": "failed",
        "path_snapshot": SNAPSHOT,
        "next_action_at": at + 30,
        "details": {"summary": "git failed"},
        "now": at,
        **changes,
    }
    return runtime.open_escalation(**call)


def test_opening_a_key_twice_adds_an_occurrence(runtime: RuntimeState) -> None:
    first, created = open_one(runtime)
    assert created
    assert first == EscalationRecord(
        id=first.id,
        path_id="critical",
        dedup_key="critical:git:failed",
        check_id="git",
        failure_class="failed",
        state="triggered",
        level=1,
        occurrences=1,
        path_snapshot=SNAPSHOT,
        created_at=T0,
        updated_at=T0,
        next_action_at=T0 + 30,
        details={"summary": "git failed"},
    )
    again, created = open_one(
        runtime, at=T0 + 5, next_action_at=T0 + 999, details={"summary": "ignored"}
    )
    assert not created
    # Only the count and the time move: the schedule and the context of the first stay.
    assert again == dataclasses.replace(first, occurrences=2, updated_at=T0 + 5)
    assert runtime.get_escalation(first.id) == again
    assert runtime.escalations() == [again]
    other, created = open_one(runtime, key="critical:lint:failed", check_id="lint", at=T0 + 6)
    assert created
    assert other.id != first.id
    assert runtime.info().counts["escalations"] == 2


def test_a_closed_escalation_does_not_absorb_a_new_failure(runtime: RuntimeState) -> None:
    first, _ = open_one(runtime)
    resolved = runtime.transition_escalation(
        first.id, state="resolved", by="codex-1", from_states=("triggered",), now=T0 + 10
    )
    assert resolved is not None
    second, created = open_one(runtime, at=T0 + 20)
    assert created
    assert second.id != first.id
    assert (second.state, second.level, second.occurrences) == ("triggered", 1, 1)
    assert runtime.get_escalation(first.id) == resolved  # left alone
    runtime.transition_escalation(
        second.id, state="expired", by=None, from_states=("triggered",), now=T0 + 30
    )
    third, created = open_one(runtime, at=T0 + 40)
    assert created
    assert [e.id for e in runtime.escalations()] == [third.id, second.id, first.id]
    # An acknowledged one is still open: it takes the occurrence.
    runtime.transition_escalation(
        third.id, state="acknowledged", by="lead", from_states=("triggered",), now=T0 + 41
    )
    again, created = open_one(runtime, at=T0 + 42)
    assert not created
    assert (again.id, again.state, again.occurrences) == (third.id, "acknowledged", 2)


def test_a_claim_is_a_compare_and_set(runtime: RuntimeState) -> None:
    e, _ = open_one(runtime)
    assert e.next_action_at is not None
    won = runtime.claim_escalation(
        e.id,
        expect_level=1,
        expect_next_action_at=e.next_action_at,
        level=2,
        next_action_at=T0 + 90,
        state="escalated",
        details={"summary": "git failed", "rounds": 0},
        now=T0 + 31,
    )
    assert won == dataclasses.replace(
        e,
        level=2,
        next_action_at=T0 + 90,
        state="escalated",
        details={"summary": "git failed", "rounds": 0},
        updated_at=T0 + 31,
    )
    # A second claimer with the same, now stale, expectation loses and changes nothing.
    assert (
        runtime.claim_escalation(
            e.id,
            expect_level=1,
            expect_next_action_at=e.next_action_at,
            level=2,
            next_action_at=T0 + 91,
            state="escalated",
            now=T0 + 32,
        )
        is None
    )
    # The right level with a stale deadline, and a stale level with the right deadline: both lose.
    assert (
        runtime.claim_escalation(
            e.id,
            expect_level=2,
            expect_next_action_at=T0 + 30,
            level=3,
            next_action_at=None,
            state="escalated",
        )
        is None
    )
    assert (
        runtime.claim_escalation(
            e.id,
            expect_level=1,
            expect_next_action_at=T0 + 90,
            level=3,
            next_action_at=None,
            state="escalated",
        )
        is None
    )
    assert runtime.get_escalation(e.id) == won
    # Without details the claim keeps them; a float deadline read back compares equal.
    stored = runtime.get_escalation(e.id)
    assert stored is not None
    third = runtime.claim_escalation(
        e.id,
        expect_level=2,
        expect_next_action_at=stored.next_action_at,
        level=3,
        next_action_at=None,
        state="escalated",
        now=T0 + 95,
    )
    assert third is not None
    assert (third.level, third.next_action_at, third.details) == (3, None, won.details)
    # No deadline is an expectation too (None == None).
    restart = runtime.claim_escalation(
        e.id,
        expect_level=3,
        expect_next_action_at=None,
        level=1,
        next_action_at=T0 + 200.125,
        state="triggered",
        now=T0 + 100,
    )
    assert restart is not None
    assert restart.next_action_at == T0 + 200.125
    assert (
        runtime.claim_escalation(
            "no-such-id",
            expect_level=1,
            expect_next_action_at=None,
            level=2,
            next_action_at=None,
            state="escalated",
        )
        is None
    )


def test_claims_only_move_climbing_escalations(runtime: RuntimeState) -> None:
    e, _ = open_one(runtime)
    acked = runtime.transition_escalation(
        e.id, state="acknowledged", by="lead", from_states=("triggered", "escalated"), now=T0 + 1
    )
    assert acked is not None
    assert acked.next_action_at is None
    assert (
        runtime.claim_escalation(
            e.id,
            expect_level=1,
            expect_next_action_at=None,
            level=2,
            next_action_at=None,
            state="escalated",
        )
        is None
    )
    f, _ = open_one(runtime, key="other")
    expired = runtime.claim_escalation(
        f.id,
        expect_level=1,
        expect_next_action_at=f.next_action_at,
        level=1,
        next_action_at=T0 + 500,
        state="expired",
        now=T0 + 40,
    )
    assert expired is not None
    assert (expired.state, expired.next_action_at) == ("expired", None)  # expiry clears it
    assert runtime.due_escalations(T0 + 10_000) == []


def test_transitions_only_from_the_given_states_with_who_and_when(runtime: RuntimeState) -> None:
    e, _ = open_one(runtime)
    assert (
        runtime.transition_escalation(
            e.id, state="acknowledged", by="lead", from_states=("escalated",), now=T0 + 1
        )
        is None
    )
    assert runtime.get_escalation(e.id) == e
    acked = runtime.transition_escalation(
        e.id, state="acknowledged", by="lead", from_states=("triggered", "escalated"), now=T0 + 2
    )
    assert acked == dataclasses.replace(
        e,
        state="acknowledged",
        acknowledged_by="lead",
        acknowledged_at=T0 + 2,
        next_action_at=None,
        updated_at=T0 + 2,
    )
    resolved = runtime.transition_escalation(
        e.id,
        state="resolved",
        by="codex-1",
        from_states=("triggered", "acknowledged", "escalated"),
        now=T0 + 3,
    )
    assert resolved == dataclasses.replace(
        acked, state="resolved", resolved_by="codex-1", resolved_at=T0 + 3, updated_at=T0 + 3
    )
    # Closed stays closed unless the caller says a closed state may move.
    assert (
        runtime.transition_escalation(
            e.id,
            state="expired",
            by=None,
            from_states=("triggered", "acknowledged", "escalated"),
            now=T0 + 4,
        )
        is None
    )
    assert (
        runtime.transition_escalation("nope", state="resolved", by="x", from_states=("triggered",))
        is None
    )
    assert runtime.escalations(states=["resolved"]) == [resolved]


def test_queries_filter_and_due_ones_come_by_deadline(runtime: RuntimeState) -> None:
    late, _ = open_one(runtime, key="k1", at=T0, next_action_at=T0 + 300)
    soon, _ = open_one(runtime, key="k2", at=T0 + 1, next_action_at=T0 + 60, check_id="lint")
    never, _ = open_one(
        runtime, key="k3", at=T0 + 2, next_action_at=None, path_id="other", check_id=None
    )
    acked, _ = open_one(runtime, key="k4", at=T0 + 3, next_action_at=T0 + 10)
    runtime.transition_escalation(
        acked.id, state="acknowledged", by="lead", from_states=("triggered",), now=T0 + 4
    )
    assert runtime.due_escalations(T0 + 59) == []
    assert runtime.due_escalations(T0 + 60) == [soon]  # at the deadline: due
    assert runtime.due_escalations(T0 + 1000) == [soon, late]
    assert [e.id for e in runtime.escalations()] == [acked.id, never.id, soon.id, late.id]
    assert [e.id for e in runtime.escalations(limit=2)] == [acked.id, never.id]
    assert runtime.escalations(path_id="other") == [never]
    assert runtime.escalations(check_id="lint") == [soon]
    assert [e.id for e in runtime.escalations(states=["triggered"], path_id="critical")] == [
        soon.id,
        late.id,
    ]
    assert runtime.escalations(states=[]) == []
    assert runtime.escalations(path_id="critical", check_id="nothing") == []


def delivery(escalation_id: str, at: float, **changes: Any) -> DeliveryRecord:
    base = DeliveryRecord(
        escalation_id=escalation_id,
        level=1,
        channel="webhook",
        target="pager",
        attempt=1,
        status="failed",
        error="HTTP 500",
        response={"status": 500, "body": {"nested": [1, 2]}},
        attempted_at=at,
    )
    return dataclasses.replace(base, **changes)


def test_deliveries_round_trip_oldest_first(runtime: RuntimeState) -> None:
    e, _ = open_one(runtime)
    f, _ = open_one(runtime, key="other")
    tries = [
        delivery(e.id, T0 + 1),
        delivery(e.id, T0 + 1, attempt=2),  # the same moment: recorded order kept
        delivery(e.id, T0 + 3, attempt=3, status="delivered", error=None, response={"status": 202}),
    ]
    late = delivery(
        f.id,
        T0 + 2,
        channel="agent_mail",
        status="fallback",
        target="lead",
        error="the agent-mail server did not answer",
        response={},
    )
    runtime.record_delivery(tries[2])
    runtime.record_delivery(late)
    runtime.record_delivery(tries[0])
    runtime.record_delivery(tries[1])
    assert runtime.deliveries(e.id) == [tries[0], tries[1], tries[2]]
    assert runtime.deliveries() == [tries[0], tries[1], late, tries[2]]
    assert runtime.deliveries("nobody") == []
    assert runtime.info().counts["escalation_deliveries"] == 4
    with pytest.raises(EscalationError, match="no escalation 'nope'"):
        runtime.record_delivery(delivery("nope", T0))
    assert len(runtime.deliveries()) == 4


def test_stored_mappings_come_back_as_plain_json(runtime: RuntimeState) -> None:
    e, _ = open_one(runtime, details={"where": Path("/tmp/x"), "runs": (1, 2), "n": 1.5})
    assert e.details == {"where": "/tmp/x", "runs": [1, 2], "n": 1.5}
    assert runtime.get_escalation(e.id) == e


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"path_id": ""}, "path_id"),
        ({"dedup_key": "  "}, "dedup_key"),
        ({"dedup_key": None}, "dedup_key"),
        ({"check_id": ""}, "check_id"),
        ({"failure_class": 3}, "failure_class"),
        ({"path_snapshot": ["not", "a", "mapping"]}, "path_snapshot"),
        ({"details": {"n": float("nan")}}, "details"),
        ({"next_action_at": float("inf")}, "next_action_at"),
        ({"now": "soon"}, "now"),
    ],
    ids=[
        "empty-path",
        "blank-key",
        "no-key",
        "empty-check",
        "class-int",
        "snapshot-list",
        "details-nan",
        "next-inf",
        "now-str",
    ],
)
def test_bad_openings_are_refused_before_any_write(
    runtime: RuntimeState, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        open_one(runtime, **changes)
    assert runtime.escalations() == []


def test_bad_claims_transitions_queries_and_deliveries_are_refused(runtime: RuntimeState) -> None:
    e, _ = open_one(runtime)
    good: dict[str, Any] = {
        "expect_level": 1,
        "expect_next_action_at": e.next_action_at,
        "level": 2,
        "next_action_at": None,
        "state": "escalated",
    }
    for bad, message in (
        ({"level": 0}, "level"),
        ({"expect_level": True}, "expect_level"),
        ({"state": "resolved"}, "state"),
        ({"state": "open"}, "state"),
        ({"next_action_at": float("nan")}, "next_action_at"),
        ({"details": {"x": float("inf")}}, "details"),
    ):
        with pytest.raises(ValueError, match=message):
            runtime.claim_escalation(e.id, **{**good, **bad})
    for state, froms, by, message in (
        ("triggered", ("resolved",), "x", "state"),
        ("resolved", "triggered", "x", "not one string"),
        ("resolved", (), "x", "at least one"),
        ("resolved", ("bogus",), "x", "from_states"),
        ("resolved", ("triggered",), "", "by"),
    ):
        with pytest.raises(ValueError, match=message):
            runtime.transition_escalation(
                e.id,
                state=state,  # type: ignore[arg-type]
                by=by,
                from_states=froms,  # type: ignore[arg-type]
            )
    assert runtime.get_escalation(e.id) == e
    with pytest.raises(ValueError, match="not one string"):
        runtime.escalations(states="triggered")
    with pytest.raises(ValueError, match="states"):
        runtime.escalations(states=["open"])
    with pytest.raises(ValueError, match="limit"):
        runtime.escalations(limit=-1)
    with pytest.raises(ValueError, match="now"):
        runtime.due_escalations(float("nan"))
    for bad_delivery, message in (
        ({"status": "sent"}, "status"),
        ({"attempt": 0}, "attempt"),
        ({"target": ""}, "target"),
        ({"attempted_at": None}, "attempted_at"),
        ({"response": {"x": float("nan")}}, "response"),
    ):
        with pytest.raises(ValueError, match=message):
            runtime.record_delivery(delivery(e.id, T0, **bad_delivery))
    assert runtime.deliveries() == []


def test_threads_opening_one_key_share_one_escalation(runtime: RuntimeState) -> None:
    barrier = threading.Barrier(8)
    results: list[tuple[EscalationRecord, bool]] = []

    def race() -> None:
        barrier.wait()
        results.append(open_one(runtime))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(created for _, created in results) == 1
    assert len({e.id for e, _ in results}) == 1
    assert sorted(e.occurrences for e, _ in results) == list(range(1, 9))
    stored = runtime.escalations()
    assert len(stored) == 1
    assert stored[0].occurrences == 8


@pytest.mark.parametrize("mode", LASTING)
def test_escalations_survive_reopening(mode: str, tmp_path: Path) -> None:
    with make_runtime(mode, tmp_path) as first:
        e, _ = open_one(first)
        claimed = first.claim_escalation(
            e.id,
            expect_level=1,
            expect_next_action_at=e.next_action_at,
            level=2,
            next_action_at=T0 + 77.7,
            state="escalated",
            now=T0 + 31,
        )
        first.record_delivery(delivery(e.id, T0 + 31, level=2))
    with make_runtime(mode, tmp_path) as second:
        assert second.escalations() == [claimed]
        assert second.deliveries() == [delivery(e.id, T0 + 31, level=2)]
        assert claimed is not None
        # The deadline read back from the store is the one a claimer must present.
        again = second.claim_escalation(
            e.id,
            expect_level=2,
            expect_next_action_at=claimed.next_action_at,
            level=3,
            next_action_at=None,
            state="escalated",
        )
        assert again is not None
        assert again.level == 3


# --- messages the original MAF's way (issue 12, item 5) ------------------------------------

#: What the seed's own usage example hands ``runtimeState.enqueue``.
SEED_CHECK = {
    "type": "PREFLIGHT_CHECK",
    "agentId": "agent-001",
    "configId": "api-health-check",
    "executionId": "exec-123",
    "checkType": "smoke_test",
}


def test_enqueue_takes_the_seeds_plain_mapping(runtime: RuntimeState) -> None:
    runtime.enqueue(SEED_CHECK)
    [stored] = runtime.messages()
    assert (stored.type, stored.agent_id, stored.status) == (
        "PREFLIGHT_CHECK",
        "agent-001",
        "queued",
    )
    assert stored.payload["config_id"] == "api-health-check"
    assert stored.payload["execution_id"] == "exec-123"
    assert stored.payload["check_type"] == "smoke_test"
    from pytest_maf_preflight.protocol.messages import PreflightCheck, from_record

    assert isinstance(from_record(stored), PreflightCheck)
    # snake_case works as well, and a message id already queued changes nothing.
    runtime.enqueue(
        {
            "type": "PREFLIGHT_CHECK",
            "id": "m-1",
            "agent_id": "agent-002",
            "config_id": "c",
            "execution_id": "e",
            "check_type": "http",
        }
    )
    runtime.enqueue(
        {
            "type": "PREFLIGHT_CHECK",
            "id": "m-1",
            "agent_id": "agent-003",
            "config_id": "c",
            "execution_id": "e",
            "check_type": "http",
        }
    )
    assert [m.agent_id for m in runtime.messages()][1:] == ["agent-002"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": None}, "type"),
        ({"type": "PREFLIGHT_CHEK"}, "type"),
        ({"agentId": None}, "agentId"),
        ({"agentId": "../../etc"}, "agentId"),
        ({"configId": None}, "configId"),
        ({"configId": ""}, "configId"),
        ({"executionId": None}, "executionId"),
        ({"executionId": 123}, "executionId"),
        ({"checkType": None}, "checkType"),
        ({"checkType": ["smoke_test"]}, "checkType"),
        ({"agent_id": "agent-001"}, "agent_id"),  # the same field spelled twice
        ({"surprise": 1}, "surprise"),
    ],
)
def test_enqueue_refuses_a_bad_mapping_naming_the_field(
    runtime: RuntimeState, change: dict[str, Any], field: str
) -> None:
    bad = {k: v for k, v in {**SEED_CHECK, **change}.items() if v is not None}
    good = {**SEED_CHECK, "executionId": "exec-ok"}
    with pytest.raises(ValueError, match=rf"^invalid [A-Z_ ]*message: {field}: ") as caught:
        runtime.enqueue_many([good, bad])  # the good one is not written either
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r": \(message\): expected "):
        runtime.enqueue(["PREFLIGHT_CHECK"])  # type: ignore[arg-type]
    assert runtime.messages() == []


def test_messages_filter_by_type_agent_and_time(runtime: RuntimeState) -> None:
    rows = [
        Message(id=f"m-{i}", type=kind, agent_id=agent, payload={"i": i}, created_at=100.0 + i)
        for i, (kind, agent) in enumerate(
            [
                ("PREFLIGHT_CHECK", "a"),
                ("PREFLIGHT_RESULT", "a"),
                ("RESERVATION_CONFLICT", "b"),
                ("PREFLIGHT_CHECK", "b"),
            ]
        )
    ]
    runtime.enqueue_many(reversed(rows))
    assert [m.id for m in runtime.messages()] == ["m-0", "m-1", "m-2", "m-3"]
    assert [m.id for m in runtime.messages(types=["PREFLIGHT_CHECK"])] == ["m-0", "m-3"]
    assert [m.id for m in runtime.messages(types=["PREFLIGHT_RESULT", "RESERVATION_CONFLICT"])] == [
        "m-1",
        "m-2",
    ]
    assert runtime.messages(types=[]) == []
    assert [m.id for m in runtime.messages(agent_id="b")] == ["m-2", "m-3"]
    assert [m.id for m in runtime.messages(since=102.0)] == ["m-2", "m-3"]
    assert [
        m.id for m in runtime.messages(types=["PREFLIGHT_CHECK"], agent_id="a", since=100.0)
    ] == ["m-0"]
    # ack works on a message nobody dequeued, and the filters see it.
    assert runtime.ack("m-2") is True
    assert [m.id for m in runtime.messages("acked", agent_id="b")] == ["m-2"]


# --- smoke test and escalation path definitions; agents as the seed describes them ----------


def smoke_definition(nodeid: str, digest: str, at: float) -> SmokeTestDefinition:
    return SmokeTestDefinition(
        nodeid=nodeid,
        version=digest[:12],
        content_hash=digest,
        file="tests/test_smoke.py",
        document={
            "nodeid": nodeid,
            "file": "tests/test_smoke.py",
            "markers": [{"name": "maf_smoke", "args": [], "kwargs": {}}],
        },
        recorded_at=at,
    )


def path_definition(path_id: str, digest: str, at: float) -> EscalationPathDefinition:
    return EscalationPathDefinition(
        path_id=path_id,
        version="1.0.0",
        content_hash=digest,
        document={
            "id": path_id,
            "version": "1.0.0",
            "config": {"escalation_steps": [{"level": 1, "target": "lead"}]},
        },
        recorded_at=at,
    )


def test_definitions_travel_with_their_session_once_per_content(runtime: RuntimeState) -> None:
    first = dataclasses.replace(
        bundle(started=1000.0),
        smoke_tests=(
            smoke_definition("t.py::a", "a1" * 32, 1000.0),
            smoke_definition("t.py::b", "b1" * 32, 1000.0),
        ),
        escalation_paths=(path_definition("oncall", "c1" * 32, 1000.0),),
    )
    # The next session ran a changed test a and the same test b and path.
    second = dataclasses.replace(
        bundle(started=2000.0),
        smoke_tests=(
            smoke_definition("t.py::a", "a2" * 32, 2000.0),
            smoke_definition("t.py::b", "b1" * 32, 2000.0),
        ),
        escalation_paths=(path_definition("oncall", "c1" * 32, 2000.0),),
    )
    for b in (first, second, first):
        runtime.record_session(b)
    smoke = runtime.smoke_tests()
    assert [(d.nodeid, d.content_hash[:2], d.recorded_at) for d in smoke] == [
        ("t.py::a", "a2", 2000.0),
        ("t.py::b", "b1", 1000.0),
        ("t.py::a", "a1", 1000.0),
    ]
    assert smoke[0] == second.smoke_tests[0]  # round trip, document included
    assert runtime.smoke_tests("t.py::a") == [second.smoke_tests[0], first.smoke_tests[0]]
    assert runtime.smoke_tests("nope") == []
    assert runtime.escalation_paths() == [first.escalation_paths[0]]
    assert runtime.escalation_paths("oncall") == [first.escalation_paths[0]]
    assert runtime.escalation_paths("other") == []
    counts = runtime.info().counts
    assert (counts["smoke_tests"], counts["escalation_paths"]) == (3, 1)


def test_heartbeats_record_type_capabilities_and_status(runtime: RuntimeState) -> None:
    plain = runtime.heartbeat("a-1", at=10.0)
    assert (plain.agent_type, plain.capabilities, plain.status) == ("worker", (), "active")
    runtime.heartbeat(
        "a-2",
        at=20.0,
        details={"host": "h"},
        agent_type="verifier",
        capabilities=["python", "review", "python"],
        status="maintenance",
    )
    assert runtime.agents() == [
        AgentRecord("a-1", 10.0),
        AgentRecord(
            "a-2",
            20.0,
            {"host": "h"},
            agent_type="verifier",
            capabilities=("python", "review"),
            status="maintenance",
        ),
    ]
    # A heartbeat replaces the whole record.
    runtime.heartbeat("a-2", at=30.0)
    assert runtime.agents()[1] == AgentRecord("a-2", 30.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"agent_type": "boss"}, "agent type must be one of"),
        ({"status": "asleep"}, "agent status must be one of"),
        ({"capabilities": "python"}, "not one string"),
        ({"capabilities": ["ok", " padded"]}, "a capability must be"),
        ({"capabilities": ["x" * 101]}, "a capability must be"),
        ({"capabilities": [f"c{i}" for i in range(65)]}, "at most 64 capabilities"),
    ],
)
def test_bad_agent_fields_are_refused_before_any_write(
    runtime: RuntimeState, changes: dict[str, Any], message: str
) -> None:
    runtime.heartbeat("a-1", at=10.0, agent_type="coordinator", capabilities=["lead"])
    with pytest.raises(ValueError, match=message):
        runtime.heartbeat("a-1", at=20.0, **changes)
    assert runtime.agents() == [
        AgentRecord("a-1", 10.0, agent_type="coordinator", capabilities=("lead",))
    ]


@pytest.mark.parametrize("mode", LASTING)
def test_definitions_and_agent_fields_survive_reopening(mode: str, tmp_path: Path) -> None:
    b = dataclasses.replace(
        bundle(),
        smoke_tests=(smoke_definition("t::a", "d" * 64, 5.0),),
        escalation_paths=(path_definition("p", "e" * 64, 5.0),),
    )
    with make_runtime(mode, tmp_path) as first:
        first.record_session(b)
        first.heartbeat(
            "a-1", at=7.0, agent_type="coordinator", capabilities=["plan"], status="error"
        )
    with make_runtime(mode, tmp_path) as second:
        assert second.smoke_tests() == list(b.smoke_tests)
        assert second.escalation_paths() == list(b.escalation_paths)
        assert second.agents() == [
            AgentRecord(
                "a-1", 7.0, agent_type="coordinator", capabilities=("plan",), status="error"
            )
        ]


# --- waivers, decisions and silences (issue 15) ---------------------------------------------


def waiver(check_id: str = "api", at: float = T0, **changes: Any) -> WaiverRecord:
    base = WaiverRecord(
        id=new_id(),
        check_id=check_id,
        granted_by="lead",
        reason="known outage, fix deploying",
        granted_at=at,
        expires_at=at + 3600,
    )
    return dataclasses.replace(base, **changes)


def decision(escalation_id: str, at: float = T0, **changes: Any) -> DecisionRecord:
    base = DecisionRecord(
        id=new_id(),
        escalation_id=escalation_id,
        level=2,
        decision="approved",
        decided_by="lead",
        reason="ship it",
        decided_at=at,
    )
    return dataclasses.replace(base, **changes)


def silence(at: float = T0, **changes: Any) -> SilenceRecord:
    base = SilenceRecord(
        id=new_id(),
        check_id=None,
        path_id="critical",
        created_by="ops",
        reason="maintenance window",
        created_at=at,
        expires_at=at + 600,
    )
    return dataclasses.replace(base, **changes)


def test_waivers_round_trip_newest_first_and_once_per_id(runtime: RuntimeState) -> None:
    scoped = waiver(
        "reservations",
        at=T0 + 10,
        escalation_id="e-1",
        scope={"leases": ("l-1", "l-2"), "paths": ["src/a.py"]},
    )
    plain = waiver("api")
    runtime.add_waiver(plain)
    runtime.add_waiver(scoped)
    runtime.add_waiver(dataclasses.replace(plain, reason="a second write changes nothing"))
    stored = runtime.waivers()
    # The scope comes back as plain JSON (tuples as lists), in every mode.
    as_json = dataclasses.replace(scoped, scope={"leases": ["l-1", "l-2"], "paths": ["src/a.py"]})
    assert stored == [as_json, plain]
    assert runtime.waivers(check_id="api") == [plain]
    assert runtime.waivers(check_id="nothing") == []
    assert runtime.info().counts["waivers"] == 2


def test_only_active_waivers_are_active(runtime: RuntimeState) -> None:
    w = waiver(at=T0)
    runtime.add_waiver(w)
    assert runtime.waivers(active_at=T0 - 1) == []  # not granted yet
    assert runtime.waivers(active_at=T0) == [w]
    assert runtime.waivers(active_at=T0 + 3599.5) == [w]
    assert runtime.waivers(active_at=T0 + 3600) == []  # expired: expires_at is excluded
    assert runtime.waivers(active_at=T0 + 10, check_id="api") == [w]
    assert runtime.waivers(active_at=T0 + 10, check_id="other") == []


def test_a_revocation_says_who_and_when_and_happens_once(runtime: RuntimeState) -> None:
    w = waiver(at=T0)
    runtime.add_waiver(w)
    done = runtime.revoke_waiver(w.id, "lead", now=T0 + 100)
    assert done == dataclasses.replace(w, revoked_at=T0 + 100, revoked_by="lead")
    assert runtime.waivers() == [done]
    # Active before the revocation, not from then on.
    assert runtime.waivers(active_at=T0 + 99) == [done]
    assert runtime.waivers(active_at=T0 + 100) == []
    # The first revocation stays.
    assert runtime.revoke_waiver(w.id, "someone-else", now=T0 + 200) == done
    assert runtime.waivers() == [done]
    assert runtime.revoke_waiver("no-such-waiver", "lead") is None


def test_a_revocation_without_now_takes_the_store_clock(runtime: RuntimeState) -> None:
    import time

    w = waiver(at=time.time() - 10)
    runtime.add_waiver(w)
    before = time.time()
    done = runtime.revoke_waiver(w.id, "lead")
    assert done is not None
    assert done.revoked_at is not None
    assert before - 5 <= done.revoked_at <= time.time() + 5
    assert runtime.waivers(active_at=time.time() + 6) == []


def test_decisions_round_trip_newest_first(runtime: RuntimeState) -> None:
    e, _ = open_one(runtime)
    approved = decision(e.id, at=T0 + 5)
    rejected = decision(e.id, at=T0 + 9, decision="rejected", level=3, reason="no")
    # Kept for the record even when the escalation is not in this store (a sync copies
    # decisions without their escalations).
    elsewhere = decision("escalation-in-another-store", at=T0 + 1)
    for d in (approved, rejected, elsewhere, approved):
        runtime.record_decision(d)
    assert runtime.decisions() == [rejected, approved, elsewhere]
    assert runtime.decisions(e.id) == [rejected, approved]
    assert runtime.decisions("nothing") == []
    assert runtime.info().counts["escalation_decisions"] == 3


def test_silences_round_trip_are_active_and_end_once(runtime: RuntimeState) -> None:
    by_path = silence(at=T0)
    by_check = silence(at=T0 + 5, path_id=None, check_id="api")
    both = silence(at=T0 + 7, check_id="api", path_id="critical", expires_at=T0 + 8)
    for s in (by_path, by_check, both, by_path):
        runtime.add_silence(s)
    assert runtime.silences() == [both, by_check, by_path]
    assert runtime.silences(active_at=T0 + 7.5) == [both, by_check, by_path]
    assert runtime.silences(active_at=T0 + 8) == [by_check, by_path]
    assert runtime.silences(active_at=T0 - 1) == []
    ended = runtime.expire_silence(by_path.id, "ops", now=T0 + 60)
    assert ended == dataclasses.replace(by_path, expired_at=T0 + 60, expired_by="ops")
    assert runtime.silences(active_at=T0 + 59) == [by_check, ended]
    assert runtime.silences(active_at=T0 + 60) == [by_check]
    assert runtime.expire_silence(by_path.id, "other", now=T0 + 90) == ended
    assert runtime.expire_silence("no-such-silence", "ops") is None
    assert runtime.info().counts["silences"] == 3
    # What a silence covers: its check, its path, or that check on that path.
    assert by_path.covers("critical", "anything")
    assert not by_path.covers("other", "api")
    assert by_check.covers("other", "api")
    assert not by_check.covers("critical", "git")
    assert both.covers("critical", "api")
    assert not both.covers("other", "api")


def test_a_delivery_can_be_recorded_as_silenced(runtime: RuntimeState) -> None:
    e, _ = open_one(runtime)
    quiet = delivery(e.id, T0 + 1, status="silenced", error=None, response={"silence": "s-1"})
    runtime.record_delivery(quiet)
    assert runtime.deliveries(e.id) == [quiet]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"check_id": ""}, "check_id"),
        ({"granted_by": "  "}, "granted_by"),
        ({"reason": ""}, "reason"),
        ({"reason": "a\x00b"}, "reason must not contain NUL"),
        ({"expires_at": T0}, "expires_at must be after granted_at"),
        ({"granted_at": float("nan")}, "granted_at"),
        ({"expires_at": None}, "expires_at"),
        ({"scope": {"x": float("inf")}}, "scope"),
        ({"scope": ["l-1"]}, "scope must be a mapping"),
        ({"escalation_id": ""}, "escalation_id"),
        ({"revoked_at": T0 + 1}, "revoked_at and revoked_by go together"),
        ({"id": None}, "id"),
    ],
)
def test_bad_waivers_are_refused_before_any_write(
    runtime: RuntimeState, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        runtime.add_waiver(waiver(**changes))
    assert runtime.waivers() == []


def test_bad_decisions_silences_and_arguments_are_refused(runtime: RuntimeState) -> None:
    changes: dict[str, Any]
    for changes, message in (
        ({"decision": "maybe"}, "decision must be one of approved, rejected"),
        ({"level": 0}, "level"),
        ({"level": True}, "level"),
        ({"decided_by": ""}, "decided_by"),
        ({"reason": ""}, "reason"),
        ({"decided_at": float("inf")}, "decided_at"),
        ({"escalation_id": None}, "escalation_id"),
    ):
        with pytest.raises(ValueError, match=message):
            runtime.record_decision(dataclasses.replace(decision("e-1"), **changes))
    assert runtime.decisions() == []
    for changes, message in (
        ({"path_id": None}, "needs a check_id, a path_id or both"),
        ({"check_id": ""}, "check_id"),
        ({"created_by": ""}, "created_by"),
        ({"reason": " "}, "reason"),
        ({"expires_at": T0 - 1}, "expires_at must be after created_at"),
        ({"expired_by": "ops"}, "expired_at and expired_by go together"),
    ):
        with pytest.raises(ValueError, match=message):
            runtime.add_silence(silence(**changes))
    assert runtime.silences() == []
    with pytest.raises(ValueError, match="a waiver must be a WaiverRecord"):
        runtime.add_waiver(silence())  # type: ignore[arg-type]
    w, s = waiver(), silence()
    runtime.add_waiver(w)
    runtime.add_silence(s)
    with pytest.raises(ValueError, match="by"):
        runtime.revoke_waiver(w.id, "")
    with pytest.raises(ValueError, match="now"):
        runtime.revoke_waiver(w.id, "lead", now=float("nan"))
    with pytest.raises(ValueError, match="by"):
        runtime.expire_silence(s.id, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="active_at"):
        runtime.waivers(active_at=float("nan"))
    with pytest.raises(ValueError, match="active_at"):
        runtime.silences(active_at="now")  # type: ignore[arg-type]
    assert runtime.waivers() == [w]
    assert runtime.silences() == [s]


def test_threads_revoking_one_waiver_leave_one_revocation(runtime: RuntimeState) -> None:
    w = waiver()
    runtime.add_waiver(w)
    barrier = threading.Barrier(6)
    results: list[WaiverRecord | None] = []

    def race(n: int) -> None:
        barrier.wait()
        results.append(runtime.revoke_waiver(w.id, f"agent-{n}", now=T0 + n))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [stored] = runtime.waivers()
    assert results == [stored] * 6
    assert stored.revoked_by == f"agent-{int(stored.revoked_at or 0) - int(T0)}"


@pytest.mark.parametrize("mode", LASTING)
def test_waivers_decisions_and_silences_survive_reopening(mode: str, tmp_path: Path) -> None:
    w = waiver(scope={"leases": ["l-1"]}, escalation_id="e-1")
    d = decision("e-1")
    s = silence(check_id="api")
    with make_runtime(mode, tmp_path) as first:
        first.add_waiver(w)
        first.record_decision(d)
        first.add_silence(s)
        revoked = first.revoke_waiver(w.id, "lead", now=T0 + 1)
    with make_runtime(mode, tmp_path) as second:
        assert second.waivers() == [revoked]
        assert second.decisions() == [d]
        assert second.silences() == [s]
        ended = second.expire_silence(s.id, "ops", now=T0 + 2)
    with make_runtime(mode, tmp_path) as third:
        assert third.silences() == [ended]
        assert third.waivers(active_at=T0 + 0.5) == [revoked]


# --- check statistics (check_stats) -----------------------------------------------------------

SMOKE_ID = "tests/test_smoke.py::test_up"


def stats_history() -> list[SessionBundle]:
    """Sessions of two agents: ``api`` passes, fails, times out, is skipped, passes and errs;
    ``db`` passes once; a smoke test passes twice. One session per execution."""
    runs: list[tuple[str, str, str, float, str, float]] = [
        ("api", "check", "codex-1", 1000.0, "passed", 1.0),
        ("db", "check", "codex-1", 1000.0, "passed", 0.5),
        (SMOKE_ID, "smoke", "codex-2", 1005.0, "passed", 0.2),
        ("api", "check", "codex-2", 1010.0, "failed", 4.0),
        ("api", "check", "codex-1", 1020.0, "timeout", 10.0),
        ("api", "check", "codex-1", 1030.0, "skipped", 0.0),
        ("api", "check", "codex-2", 1040.0, "passed", 2.0),
        (SMOKE_ID, "smoke", "codex-2", 1045.0, "passed", 0.4),
        ("api", "check", "codex-1", 1050.0, "error", 3.0),
    ]
    out = []
    for config_id, kind, agent, started, status, duration in runs:
        s = session(started, agent_id=agent)
        e = dataclasses.replace(
            execution(s.id, config_id, status, started),
            agent_id=agent,
            kind=kind,  # type: ignore[arg-type]
            duration=duration,
            completed_at=started + duration,
        )
        out.append(SessionBundle(session=s, executions=(e,)))
    return out


def stats(config_id: str, counts: tuple[int, ...], *numbers: float, last: str) -> CheckStats:
    """``counts``: runs, passed, failed, timeouts, errors, flips; ``numbers``: pass rate, flip
    rate, p50, p95, last start."""
    runs, passed, failed, timeouts, errors, flips = counts
    pass_rate, flip_rate, p50, p95, last_at = numbers
    return CheckStats(
        config_id=config_id,
        runs=runs,
        passed=passed,
        failed=failed,
        timeouts=timeouts,
        errors=errors,
        pass_rate=pytest.approx(pass_rate),  # type: ignore[arg-type]
        flips=flips,
        flip_rate=pytest.approx(flip_rate),  # type: ignore[arg-type]
        p50_duration=pytest.approx(p50),  # type: ignore[arg-type]
        p95_duration=pytest.approx(p95),  # type: ignore[arg-type]
        last_status=last,
        last_started_at=last_at,
    )


def test_check_stats_count_outcomes_flips_and_percentiles(runtime: RuntimeState) -> None:
    assert runtime.check_stats() == []
    for b in stats_history():
        runtime.record_session(b)
    # api without its skip: durations 1 2 3 4 10; passing 1 0 0 1 0 flips three times
    # (failed -> timeout is no flip); p95 lies 80% of the way from 4 to 10.
    assert runtime.check_stats() == [
        stats("api", (5, 2, 1, 1, 1, 3), 0.4, 0.75, 3.0, 8.8, 1050.0, last="error"),
        stats("db", (1, 1, 0, 0, 0, 0), 1.0, 0.0, 0.5, 0.5, 1000.0, last="passed"),
        stats(SMOKE_ID, (2, 2, 0, 0, 0, 0), 1.0, 0.0, 0.3, 0.39, 1045.0, last="passed"),
    ]


def test_check_stats_by_agent_and_since(runtime: RuntimeState) -> None:
    for b in stats_history():
        runtime.record_session(b)
    # codex-1's api: passed, timeout, error (1 3 10 seconds).
    assert runtime.check_stats(agent_id="codex-1") == [
        stats("api", (3, 1, 0, 1, 1, 1), 1 / 3, 0.5, 3.0, 9.3, 1050.0, last="error"),
        stats("db", (1, 1, 0, 0, 0, 0), 1.0, 0.0, 0.5, 0.5, 1000.0, last="passed"),
    ]
    # From 1020 on (at 1020 counts): timeout, passed, error; the later smoke run.
    assert runtime.check_stats(since=1020.0) == [
        stats("api", (3, 1, 0, 1, 1, 2), 1 / 3, 1.0, 3.0, 9.3, 1050.0, last="error"),
        stats(SMOKE_ID, (1, 1, 0, 0, 0, 0), 1.0, 0.0, 0.4, 0.4, 1045.0, last="passed"),
    ]
    assert runtime.check_stats(since=1020.0, agent_id="codex-2") == [
        stats("api", (1, 1, 0, 0, 0, 0), 1.0, 0.0, 2.0, 2.0, 1040.0, last="passed"),
        stats(SMOKE_ID, (1, 1, 0, 0, 0, 0), 1.0, 0.0, 0.4, 0.4, 1045.0, last="passed"),
    ]
    assert runtime.check_stats(agent_id="nobody") == []
    assert runtime.check_stats(since=2000.0) == []


def test_check_stats_order_same_time_runs_by_id_and_ignore_skips(runtime: RuntimeState) -> None:
    s = session(1000.0)
    ids = sorted(new_id() for _ in range(3))
    runs = [
        dataclasses.replace(execution(s.id, "git", status, 1000.0), id=run_id)
        for run_id, status in zip(ids, ["failed", "failed", "passed"], strict=True)
    ]
    skipped = execution(s.id, "only-skipped", "skipped", 1000.0)
    runtime.record_session(SessionBundle(session=s, executions=(*reversed(runs), skipped)))
    [git] = runtime.check_stats()
    assert (git.config_id, git.runs, git.flips, git.last_status) == ("git", 3, 1, "passed")


@pytest.mark.parametrize("since", [float("nan"), float("inf"), "1000", True])
def test_check_stats_refuse_a_bad_since(runtime: RuntimeState, since: Any) -> None:
    with pytest.raises(ValueError, match="since must be a finite number"):
        runtime.check_stats(since=since)


# --- the last outcomes of each check (recent_outcomes) and sessions of one agent -------------


def outcome_history() -> list[SessionBundle]:
    """``api`` runs 60 times (every tenth fails, every 25th is skipped) alternately by two
    agents, a second apart; ``db`` twice; a smoke test once. One session per start time."""
    out = []
    for i in range(60):
        agent = ("codex-1", "codex-2")[i % 2]
        s = session(1000.0 + i, agent_id=agent)
        status = "skipped" if i % 25 == 0 else "failed" if i % 10 == 3 else "passed"
        runs = [
            dataclasses.replace(
                execution(s.id, "api", status, 1000.0 + i), agent_id=agent, duration=i / 10
            )
        ]
        if i in (5, 50):
            runs.append(dataclasses.replace(execution(s.id, "db", "passed", 1000.5 + i)))
        if i == 7:
            runs.append(
                dataclasses.replace(execution(s.id, SMOKE_ID, "failed", 1007.0), kind="smoke")
            )
        out.append(SessionBundle(session=s, executions=tuple(runs)))
    return out


def test_recent_outcomes_keep_the_newest_of_each_check(runtime: RuntimeState) -> None:
    assert runtime.recent_outcomes() == []
    for b in outcome_history():
        runtime.record_session(b)
    rows = runtime.recent_outcomes()
    api = [r for r in rows if r.config_id == "api"]
    # The newest 50 of 60, newest first: starts 1059 down to 1010, skips and failures kept.
    assert [r.started_at for r in api] == [1000.0 + i for i in range(59, 9, -1)]
    assert [r.status for r in api[:10]] == ["passed"] * 6 + ["failed"] + ["passed"] * 2 + [
        "skipped"
    ]
    assert (api[0].kind, api[0].duration, api[0].attempts) == ("check", 5.9, 1)
    # Checks in id order, each newest first.
    assert [r.config_id for r in rows] == ["api"] * 50 + ["db"] * 2 + [SMOKE_ID]
    assert [r.started_at for r in rows[50:52]] == [1050.5, 1005.5]
    assert (rows[-1].kind, rows[-1].status) == ("smoke", "failed")


def test_recent_outcomes_per_check_since_and_agent(runtime: RuntimeState) -> None:
    for b in outcome_history():
        runtime.record_session(b)
    three = runtime.recent_outcomes(per_check=3)
    assert [(r.config_id, r.started_at) for r in three] == [
        ("api", 1059.0),
        ("api", 1058.0),
        ("api", 1057.0),
        ("db", 1050.5),
        ("db", 1005.5),
        (SMOKE_ID, 1007.0),
    ]
    since = runtime.recent_outcomes(since=1050.0)  # at 1050 counts
    assert [(r.config_id, r.started_at) for r in since if r.config_id != "api"] == [("db", 1050.5)]
    assert len([r for r in since if r.config_id == "api"]) == 10
    mine = runtime.recent_outcomes(per_check=2, agent_id="codex-2")
    assert [(r.config_id, r.agent_id, r.started_at) for r in mine] == [
        ("api", "codex-2", 1059.0),
        ("api", "codex-2", 1057.0),
    ]
    assert runtime.recent_outcomes(agent_id="nobody") == []
    assert runtime.recent_outcomes(since=0.0, per_check=1)[0].started_at == 1059.0


def test_recent_outcomes_of_some_checks(runtime: RuntimeState) -> None:
    history = outcome_history()
    for b in history:
        runtime.record_session(b)
    rows = runtime.recent_outcomes(per_check=2, config_ids=[SMOKE_ID, "db", "nothing", "db"])
    assert [(r.config_id, r.started_at) for r in rows] == [
        ("db", 1050.5),
        ("db", 1005.5),
        (SMOKE_ID, 1007.0),
    ]
    stored = {e.id: e for b in history for e in b.executions}
    assert all(stored[r.id].config_id == r.config_id for r in rows)
    assert runtime.recent_outcomes(config_ids=[]) == []
    assert runtime.recent_outcomes(config_ids=["db"], since=1006.0, agent_id="codex-2") == []
    with pytest.raises(ValueError, match="config_ids must be a collection of ids"):
        runtime.recent_outcomes(config_ids="db")


def test_recent_outcomes_of_many_checks(runtime: RuntimeState) -> None:
    # More checks than one statement reads (the SQL modes split them).
    s = session(1000.0)
    ids = [f"check-{i:03d}" for i in range(450)]
    runtime.record_session(
        SessionBundle(session=s, executions=tuple(execution(s.id, c, "passed") for c in ids))
    )
    assert [r.config_id for r in runtime.recent_outcomes()] == ids
    assert [r.config_id for r in runtime.recent_outcomes(config_ids=ids[::-1])] == ids


def test_recent_outcomes_order_same_time_runs_by_id(runtime: RuntimeState) -> None:
    s = session(1000.0)
    ids = sorted(new_id() for _ in range(3))
    runs = [
        dataclasses.replace(execution(s.id, "git", status, 1000.0), id=run_id)
        for run_id, status in zip(ids, ["failed", "error", "passed"], strict=True)
    ]
    runtime.record_session(SessionBundle(session=s, executions=tuple(reversed(runs))))
    assert [r.status for r in runtime.recent_outcomes(per_check=2)] == ["passed", "error"]


@pytest.mark.parametrize("per_check", [0, -1, 2.5, True])
def test_recent_outcomes_refuse_a_bad_count(runtime: RuntimeState, per_check: Any) -> None:
    with pytest.raises(ValueError, match="per_check must be a whole number"):
        runtime.recent_outcomes(per_check=per_check)
    with pytest.raises(ValueError, match="since must be a finite number"):
        runtime.recent_outcomes(since=float("nan"))


def test_sessions_of_one_agent(runtime: RuntimeState) -> None:
    for b in outcome_history()[:5]:
        runtime.record_session(b)
    assert [s.started_at for s in runtime.sessions(agent_id="codex-1")] == [1004.0, 1002.0, 1000.0]
    assert [s.started_at for s in runtime.sessions(1, agent_id="codex-2")] == [1003.0]
    assert runtime.sessions(agent_id="nobody") == []
    assert len(runtime.sessions()) == 5
