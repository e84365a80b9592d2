"""``sync``: one runtime copied into another, idempotently, over the ``RuntimeState`` interface
(PostgreSQL: the server of ``MAF_TEST_POSTGRES_URL``, a schema of each test's own)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers_runtime_procs import POSTGRES_URL, own_schema
from pytest_maf_preflight.runtime.interface import RuntimeState
from pytest_maf_preflight.runtime.jsonl import JsonRuntime
from pytest_maf_preflight.runtime.memory import MemoryRuntime
from pytest_maf_preflight.runtime.records import (
    ConfigSnapshot,
    ConflictRecord,
    DecisionRecord,
    EscalationPathDefinition,
    ExecutionRecord,
    Message,
    SessionBundle,
    SessionRecord,
    SilenceRecord,
    SmokeTestDefinition,
    WaiverRecord,
    new_id,
)
from pytest_maf_preflight.runtime.sync import KINDS, sync


def make_bundle(n: int = 3, started: float = 1000.0) -> SessionBundle:
    session = SessionRecord(
        id=new_id(),
        agent_id="codex-1",
        environment="ci",
        started_at=started,
        completed_at=started + 1,
        status="closed",
        exit_code=1,
        runtime_mode="json",
        details={"n": n},
    )
    runs = tuple(
        ExecutionRecord(
            id=new_id(),
            session_id=session.id,
            config_id=f"check-{i}",
            config_version="2.0.0",
            agent_id="codex-1",
            kind="check",
            status="failed" if i == 0 else "passed",
            started_at=started + i,
            completed_at=started + i + 0.1,
            duration=0.1,
            attempts=2,
            result={"seen": i},
        )
        for i in range(n)
    )
    snapshot = ConfigSnapshot(
        config_id="check-0",
        version="2.0.0",
        config_type="smoke_test",
        content_hash=f"h{started}",
        document={"id": "check-0"},
        recorded_at=started,
    )
    message = Message(
        id=new_id(),
        type="PREFLIGHT_RESULT",
        agent_id="codex-1",
        payload={"status": "failed"},
        created_at=started,
        recipient="lead",
    )
    return SessionBundle(
        session=session,
        executions=runs,
        snapshots=(snapshot,),
        messages=(message,),
        conflicts=(make_conflict(session.id, started),),
    )


def make_conflict(session_id: str | None, detected: float) -> ConflictRecord:
    return ConflictRecord(
        id=new_id(),
        session_id=session_id,
        conflict_type="lock_validation",
        severity="error",
        agent_id="codex-1",
        holder_agent_id="gemini-1",
        path="src/a.py",
        path_pattern="src/**",
        lease_id=new_id(),
        expires_at=detected + 60,
        status="overridden",
        override=True,
        detected_at=detected,
        details={"files": ["src/a.py"]},
    )


def fill(runtime: RuntimeState) -> list[SessionBundle]:
    """Two sessions, a loose snapshot, messages in every status, three conflicts (one from
    outside any session), two agents, two waivers (one revoked), a decision, a silence, and
    leases (which are not synced)."""
    bundles = [make_bundle(started=1000.0), make_bundle(n=2, started=2000.0)]
    loose = ConfigSnapshot(
        config_id="never-ran",
        version="1",
        config_type="environment",
        content_hash="loose",
        document={"id": "never-ran"},
        recorded_at=500.0,
    )
    runtime.record_session(bundles[0])
    runtime.record_session(
        dataclasses.replace(
            bundles[1],
            snapshots=(*bundles[1].snapshots, loose),
            smoke_tests=(SMOKE,),
            escalation_paths=(PATH,),
        )
    )
    runtime.enqueue(
        Message(
            id="extra",
            type="PREFLIGHT_CHECK",
            agent_id="lead",
            payload={},
            created_at=3000.0,
            recipient="codex-1",
        )
    )
    runtime.dequeue("lead")
    runtime.ack(bundles[0].messages[0].id)
    runtime.dequeue("lead")
    runtime.heartbeat("codex-1", at=50.0, details={"pid": 7})
    runtime.heartbeat(
        "gemini-1", at=60.0, agent_type="verifier", capabilities=["review"], status="maintenance"
    )
    runtime.record_conflicts([make_conflict(None, 4000.0)])
    runtime.acquire_leases("codex-1", ["src/**"], ttl=60)
    runtime.add_waiver(WAIVER)
    runtime.add_waiver(dataclasses.replace(WAIVER, id="w-2", scope={}, check_id="other"))
    runtime.revoke_waiver("w-2", "lead", now=1300.0)
    runtime.record_decision(DECISION)
    runtime.add_silence(SILENCE)
    return bundles


def contents(runtime: RuntimeState) -> dict[str, object]:
    return {
        "sessions": runtime.sessions(),
        "executions": sorted(runtime.executions(), key=lambda e: e.id),
        "snapshots": runtime.config_snapshots(),
        "messages": runtime.messages(),
        "conflicts": runtime.reservation_conflicts(),
        "agents": runtime.agents(),
        "smoke_tests": runtime.smoke_tests(),
        "escalation_paths": runtime.escalation_paths(),
        "waivers": runtime.waivers(),
        "decisions": runtime.decisions(),
        "silences": runtime.silences(),
    }


SMOKE = SmokeTestDefinition(
    nodeid="t.py::smoke",
    version="a" * 12,
    content_hash="a" * 64,
    file="t.py",
    document={"nodeid": "t.py::smoke", "markers": []},
    recorded_at=2000.0,
)
PATH = EscalationPathDefinition(
    path_id="on-call",
    version="1",
    content_hash="b" * 64,
    document={"id": "on-call", "config": {}},
    recorded_at=2000.0,
)
WAIVER = WaiverRecord(
    id="w-1",
    check_id="reservations",
    granted_by="lead",
    reason="agreed hand-over",
    granted_at=1200.0,
    expires_at=8400.0,
    escalation_id="e-1",
    scope={"leases": ["l-1"], "paths": ["src/a.py"]},
)
DECISION = DecisionRecord(
    id="d-1",
    escalation_id="e-1",
    level=2,
    decision="approved",
    decided_by="lead",
    reason="agreed hand-over",
    decided_at=1200.0,
)
SILENCE = SilenceRecord(
    id="s-1",
    check_id=None,
    path_id="on-call",
    created_by="ops",
    reason="maintenance",
    created_at=1100.0,
    expires_at=9100.0,
)


EVERYTHING = {
    "sessions": 2,
    "executions": 5,
    "config_snapshots": 3,
    "messages": 3,
    "reservation_conflicts": 3,
    "agents": 2,
    "smoke_tests": 1,
    "escalation_paths": 1,
    "waivers": 2,
    "escalation_decisions": 1,
    "silences": 1,
}
NOTHING = dict.fromkeys(KINDS, 0)


def test_memory_to_memory_copies_everything_then_nothing() -> None:
    source, target = MemoryRuntime(), MemoryRuntime()
    fill(source)
    first = sync(source, target)
    assert contents(target) == contents(source)
    assert dict(first.copied) == EVERYTHING
    assert dict(first.present) == NOTHING
    assert dict(first.missing) == NOTHING
    assert first.complete
    assert first.total_copied == 24
    assert first.notes == ()
    assert target.leases(active_only=False) == []  # live state stays where it was granted
    statuses = {m.id: m.status for m in target.messages()}
    assert sorted(statuses.values()) == ["acked", "delivered", "queued"]

    second = sync(source, target)
    assert dict(second.copied) == NOTHING
    assert dict(second.present) == EVERYTHING
    assert second.total_copied == 0
    assert contents(target) == contents(source)


def test_json_to_memory_twice_copies_nothing_the_second_time(tmp_path: Path) -> None:
    with JsonRuntime(tmp_path / "agent-mail") as source:
        fill(source)
        target = MemoryRuntime()
        first = sync(source, target)
        assert dict(first.copied) == EVERYTHING
        assert contents(target) == contents(source)
        second = sync(source, target)
        assert second.total_copied == 0
        assert dict(second.present) == EVERYTHING
        assert second.source.startswith("json (")
        assert second.target == "memory ((memory))"


def test_memory_to_json_writes_nothing_on_the_second_run(tmp_path: Path) -> None:
    source = MemoryRuntime()
    fill(source)
    with JsonRuntime(tmp_path / "agent-mail") as target:
        assert dict(sync(source, target).copied) == EVERYTHING
        files = sorted((tmp_path / "agent-mail" / "runtime").glob("*.jsonl"))
        sizes = [f.stat().st_size for f in files]
        assert sync(source, target).total_copied == 0
        assert [f.stat().st_size for f in files] == sizes
        assert contents(target) == contents(source)


def test_json_to_sqlite_restores_records_into_a_fresh_database(tmp_path: Path) -> None:
    sqlite = pytest.importorskip("pytest_maf_preflight.runtime.sqlite")
    with JsonRuntime(tmp_path / "agent-mail") as source:
        fill(source)
        with sqlite.SqliteRuntime(tmp_path / "runtime.db") as target:
            report = sync(source, target)
            assert dict(report.copied) == EVERYTHING
            assert report.complete
            assert contents(target) == contents(source)
            assert sync(source, target).total_copied == 0
        with sqlite.SqliteRuntime(tmp_path / "runtime.db") as reopened:
            assert contents(reopened) == contents(source)


def test_only_what_the_target_lacks_is_copied() -> None:
    source, target = MemoryRuntime(), MemoryRuntime()
    bundles = fill(source)
    cut = bundles[0]
    target.record_session(
        dataclasses.replace(cut, executions=cut.executions[:1], snapshots=(), messages=())
    )  # its conflict too
    target.heartbeat("codex-1", at=99.0, details={"pid": 8})  # newer than the source's
    target.heartbeat("gemini-1", at=1.0)  # older
    report = sync(source, target)
    assert dict(report.present) == {
        "sessions": 1,
        "executions": 1,
        "config_snapshots": 0,
        "messages": 0,
        "reservation_conflicts": 1,
        "agents": 1,
        "smoke_tests": 0,
        "escalation_paths": 0,
        "waivers": 0,
        "escalation_decisions": 0,
        "silences": 0,
    }
    assert dict(report.copied) == {
        "sessions": 1,
        "executions": 4,
        "config_snapshots": 3,
        "messages": 3,
        "reservation_conflicts": 2,
        "agents": 1,
        "smoke_tests": 1,
        "escalation_paths": 1,
        "waivers": 2,
        "escalation_decisions": 1,
        "silences": 1,
    }
    agents = {a.id: a for a in target.agents()}
    assert agents["codex-1"].details == {"pid": 8}  # a newer heartbeat is kept
    assert agents["gemini-1"].last_heartbeat == 60.0
    assert {e.id for e in target.executions()} == {e.id for e in source.executions()}


def test_snapshots_travel_even_without_a_session_that_ran_them() -> None:
    source, target = MemoryRuntime(), MemoryRuntime()
    fill(source)
    sync(source, target)
    assert {s.content_hash for s in target.config_snapshots("never-ran")} == {"loose"}


def test_a_source_without_sessions_says_what_it_could_not_copy() -> None:
    class SnapshotsOnly(MemoryRuntime):
        """A source holding a snapshot that came with no session."""

        def config_snapshots(self, config_id: str | None = None) -> list[ConfigSnapshot]:
            return [
                ConfigSnapshot(
                    config_id="c",
                    version="1",
                    config_type="environment",
                    content_hash="x",
                    document={},
                    recorded_at=1.0,
                )
            ]

    report = sync(SnapshotsOnly(), MemoryRuntime())
    assert not report.complete
    assert report.missing["config_snapshots"] == 1
    assert report.notes[0] == (
        "1 config snapshots were not copied: the source has no session to carry them"
    )


def test_the_report_is_json() -> None:
    source = MemoryRuntime()
    fill(source)
    report = sync(source, MemoryRuntime())
    data = json.loads(json.dumps(report.to_json()))
    assert data["total_copied"] == 24
    assert data["complete"] is True
    assert data["copied"] == EVERYTHING
    assert data["source"] == data["target"] == "memory ((memory))"


@pytest.fixture
def postgres() -> Iterator[RuntimeState]:
    """An empty postgres runtime in a schema of this test's own, dropped afterwards."""
    with own_schema() as schema:
        from pytest_maf_preflight.runtime.postgres import PostgresRuntime

        with PostgresRuntime(POSTGRES_URL, schema=schema) as runtime:
            yield runtime


def test_sqlite_to_postgres_and_back_keeps_every_record_exactly(
    tmp_path: Path, postgres: RuntimeState
) -> None:
    from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

    with SqliteRuntime(tmp_path / "first.db") as source:
        fill(source)
        first = sync(source, postgres)
        assert dict(first.copied) == EVERYTHING
        assert first.complete
        assert first.target.startswith("postgres (postgresql://")
        assert contents(postgres) == contents(source)
        second = sync(source, postgres)
        assert second.total_copied == 0
        assert dict(second.present) == EVERYTHING
        assert postgres.leases(active_only=False) == []
        with SqliteRuntime(tmp_path / "second.db") as back:
            assert dict(sync(postgres, back).copied) == EVERYTHING
            assert sync(postgres, back).total_copied == 0
            assert contents(back) == contents(source)


def test_json_to_postgres_copies_only_what_is_new(tmp_path: Path, postgres: RuntimeState) -> None:
    with JsonRuntime(tmp_path / "agent-mail") as source:
        fill(source)
        assert dict(sync(source, postgres).copied) == EVERYTHING
        later = make_bundle(n=4, started=5000.0)
        source.record_session(later)
        source.heartbeat("codex-1", at=70.0)
        report = sync(source, postgres)
        assert dict(report.copied) == {
            "sessions": 1,
            "executions": 4,
            "config_snapshots": 1,
            "messages": 1,
            "reservation_conflicts": 1,
            "agents": 1,
            "smoke_tests": 0,
            "escalation_paths": 0,
            "waivers": 0,
            "escalation_decisions": 0,
            "silences": 0,
        }
        assert contents(postgres) == contents(source)


def test_a_revocation_and_an_early_end_follow_a_synced_waiver_and_silence() -> None:
    source, target = MemoryRuntime(), MemoryRuntime()
    fill(source)
    sync(source, target)
    assert target.waivers(active_at=1500.0, check_id="reservations") == [WAIVER]
    # Revoked and ended in the source after the first sync: the next one carries that over,
    # by the same agent at the same time; what the target revoked itself stays as it is.
    source.revoke_waiver("w-1", "lead", now=1400.0)
    source.expire_silence("s-1", "ops", now=1450.0)
    report = sync(source, target)
    assert report.total_copied == 0
    assert contents(target) == contents(source)
    assert target.waivers(active_at=1500.0) == []
    assert target.silences(active_at=1500.0) == []
    assert target.waivers(check_id="reservations")[0].revoked_by == "lead"
