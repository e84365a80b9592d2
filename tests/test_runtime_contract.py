"""One suite, every runtime mode: the ``RuntimeState`` contract (SPEC S5)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_maf_preflight.runtime.base import RuntimeState
from pytest_maf_preflight.runtime.records import (
    ConfigSnapshot,
    ExecutionRecord,
    Message,
    SessionBundle,
    SessionRecord,
    new_id,
)

MODES = ["memory", "sqlite", "json"]


def make_runtime(mode: str, tmp_path: Path) -> RuntimeState:
    if mode == "memory":
        from pytest_maf_preflight.runtime.memory import MemoryRuntime

        return MemoryRuntime()
    if mode == "sqlite":
        from pytest_maf_preflight.runtime.sqlite import SqliteRuntime

        return SqliteRuntime(tmp_path / "runtime.db")
    from pytest_maf_preflight.runtime.jsonl import JsonRuntime

    return JsonRuntime(tmp_path / "agent-mail")


@pytest.fixture(params=MODES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeState]:
    state = make_runtime(request.param, tmp_path)
    yield state
    state.close()


def session(started: float = 1000.0, **changes: object) -> SessionRecord:
    base = SessionRecord(id=new_id(), agent_id="codex-1", environment="development",
                         started_at=started, completed_at=started + 1, status="open",
                         exit_code=0, runtime_mode="test", hostname="host-a",
                         details={"checks": 2})
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def execution(session_id: str, config_id: str = "git", status: str = "passed",
              started: float = 1000.0) -> ExecutionRecord:
    return ExecutionRecord(id=new_id(), session_id=session_id, config_id=config_id,
                           config_version="1.0.0", agent_id="codex-1", kind="check",
                           status=status, started_at=started, completed_at=started + 0.5,  # type: ignore[arg-type]
                           duration=0.5, attempts=1,
                           result={"observed": "ok", "nested": {"a": [1, 2]}},
                           error_message=None if status == "passed" else "boom")


def bundle(n: int = 3, started: float = 1000.0, **changes: object) -> SessionBundle:
    s = session(started, **changes)
    runs = tuple(execution(s.id, f"check-{i}", "passed" if i else "failed", started + i)
                 for i in range(n))
    snap = ConfigSnapshot(config_id="check-0", version="1.0.0", config_type="smoke_test",
                          content_hash="abc123", document={"id": "check-0"},
                          recorded_at=started)
    msg = Message(id=new_id(), type="PREFLIGHT_RESULT", agent_id="codex-1",
                  payload={"config_id": "check-0", "status": "failed"}, created_at=started,
                  correlation_id=s.id, recipient="lead")
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


def test_snapshots_are_kept_once_per_content(runtime: RuntimeState) -> None:
    first, second = bundle(), bundle(started=3000.0)
    runtime.record_session(first)
    runtime.record_session(second)  # the same config content again
    changed = dataclasses.replace(second.snapshots[0], content_hash="def456", version="1.1.0",
                                  recorded_at=3000.0)
    runtime.record_session(dataclasses.replace(bundle(started=4000.0), snapshots=(changed,)))
    snaps = runtime.config_snapshots("check-0")
    assert [s.content_hash for s in snaps] == ["def456", "abc123"]
    assert runtime.config_snapshots("nothing") == []


def test_the_message_queue_delivers_once_and_acks(runtime: RuntimeState) -> None:
    one = Message(id=new_id(), type="PREFLIGHT_RESULT", agent_id="a", payload={"n": 1},
                  created_at=1.0, recipient="lead")
    two = Message(id=new_id(), type="PREFLIGHT_RESULT", agent_id="a", payload={"n": 2},
                  created_at=2.0, recipient="lead")
    other = Message(id=new_id(), type="PREFLIGHT_CHECK", agent_id="a", payload={},
                    created_at=0.5, recipient="someone-else")
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


@pytest.mark.parametrize("mode", ["sqlite", "json"])
def test_records_survive_reopening(mode: str, tmp_path: Path) -> None:
    b = bundle()
    with make_runtime(mode, tmp_path) as first:
        first.record_session(b)
        first.heartbeat("codex-1", at=5.0)
    with make_runtime(mode, tmp_path) as second:
        assert second.get_session(b.session.id) == b.session
        assert len(second.executions(session_id=b.session.id)) == 3
        assert [a.id for a in second.agents()] == ["codex-1"]
