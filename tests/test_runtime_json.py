"""The ``json`` runtime on real files: layout, round trips, broken lines, several processes."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.queues
import multiprocessing.synchronize
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_maf_preflight.runtime import jsonl
from pytest_maf_preflight.runtime.errors import RuntimeStateError, RuntimeUnavailable
from pytest_maf_preflight.runtime.jsonl import JsonRuntime
from pytest_maf_preflight.runtime.records import (
    ConfigSnapshot,
    ExecutionRecord,
    Message,
    SessionBundle,
    SessionRecord,
    new_id,
)

FILES = ("sessions.jsonl", "executions.jsonl", "snapshots.jsonl", "messages.jsonl", "agents.jsonl")


def make_bundle(
    n: int = 3, started: float = 1000.0, agent: str = "codex-1", payload: str = "ok"
) -> SessionBundle:
    session = SessionRecord(
        id=new_id(),
        agent_id=agent,
        environment="development",
        started_at=started,
        completed_at=started + 1,
        status="open",
        exit_code=0,
        runtime_mode="json",
        hostname="host-a",
        details={"n": n},
    )
    runs = tuple(
        ExecutionRecord(
            id=new_id(),
            session_id=session.id,
            config_id=f"check-{i}",
            config_version="1.0.0",
            agent_id=agent,
            kind="check",
            status="passed" if i else "failed",
            started_at=started + i,
            completed_at=started + i + 0.5,
            duration=0.5,
            attempts=1,
            result={"observed": payload, "list": [1, 2]},
            error_message=None if i else "boom",
        )
        for i in range(n)
    )
    snapshot = ConfigSnapshot(
        config_id="check-0",
        version="1.0.0",
        config_type="smoke_test",
        content_hash=f"hash-{started}",
        document={"id": "check-0"},
        recorded_at=started,
    )
    message = Message(
        id=new_id(),
        type="PREFLIGHT_RESULT",
        agent_id=agent,
        payload={"status": "failed"},
        created_at=started,
        correlation_id=session.id,
        recipient="lead",
    )
    return SessionBundle(
        session=session, executions=runs, snapshots=(snapshot,), messages=(message,)
    )


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def runtime_dir(root: Path) -> Path:
    return root / "runtime"


# --- layout and round trips -----------------------------------------------------------------


def test_every_file_is_json_lines_with_kind_and_version(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    with JsonRuntime(root) as runtime:
        bundle = make_bundle()
        runtime.record_session(bundle)
        runtime.heartbeat("codex-1", at=5.0)
        runtime.dequeue("lead")
        runtime.ack(bundle.messages[0].id)
    directory = runtime_dir(root)
    assert {p.name for p in directory.iterdir()} >= {*FILES, "state.json", ".lock"}
    assert json.loads((directory / "state.json").read_text())["v"] == 1
    kinds = {}
    for name in FILES:
        objects = [json.loads(line) for line in lines(directory / name)]
        assert objects, name
        assert all(o["v"] == 1 for o in objects)
        kinds[name] = {o["kind"] for o in objects}
    assert kinds == {
        "sessions.jsonl": {"session"},
        "executions.jsonl": {"execution"},
        "snapshots.jsonl": {"snapshot"},
        "messages.jsonl": {"message"},
        "agents.jsonl": {"agent"},
    }
    events = [json.loads(line)["event"] for line in lines(directory / "messages.jsonl")]
    assert events == ["enqueue", "deliver", "ack"]
    # The bundle's lines carry its token; the session line commits it.
    token = json.loads(lines(directory / "sessions.jsonl")[0])["bundle"]
    assert {json.loads(line)["bundle"] for line in lines(directory / "executions.jsonl")} == {token}


def test_everything_reads_back_in_a_new_runtime(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    old, new = make_bundle(started=1000.0), make_bundle(n=2, started=2000.0)
    loose = Message(
        id=new_id(),
        type="PREFLIGHT_CHECK",
        agent_id="a",
        payload={"x": [1]},
        created_at=1.5,
        recipient="other",
    )
    with JsonRuntime(root) as first:
        first.record_session(old)
        first.record_session(new)
        first.enqueue(loose)
        delivered = first.dequeue("lead")
        first.ack(delivered[0].id)
        first.heartbeat("codex-1", at=10.0, details={"pid": 1})
        first.heartbeat("codex-1", at=20.0, details={"pid": 2})
        first.heartbeat("gemini-1", at=15.0)
    with JsonRuntime(root) as second:
        assert second.sessions() == [new.session, old.session]
        assert second.get_session(old.session.id) == old.session
        assert second.get_session("nope") is None
        assert sorted(second.executions(session_id=old.session.id), key=lambda e: e.id) == (
            sorted(old.executions, key=lambda e: e.id)
        )
        assert [e.started_at for e in second.executions(status="failed")] == [2000.0, 1000.0]
        assert [e.id for e in second.executions(config_id="check-1", limit=1)] == [
            new.executions[1].id
        ]
        assert second.config_snapshots() == [new.snapshots[0], old.snapshots[0]]
        statuses = {m.id: m.status for m in second.messages()}
        assert statuses == {
            delivered[0].id: "acked",
            loose.id: "queued",
            ({old.messages[0].id, new.messages[0].id} - {delivered[0].id}).pop(): "queued",
        }
        assert second.messages("queued")[0] == loose  # created_at 1.5, before 2000.0
        agents = {a.id: a for a in second.agents()}
        assert agents["codex-1"].last_heartbeat == 20.0
        assert agents["codex-1"].details == {"pid": 2}
        info = second.info()
        assert info.mode == "json"
        assert info.location == str(runtime_dir(root))
        assert info.schema_version == 1
        assert dict(info.counts) == {
            "sessions": 2,
            "executions": 5,
            "config_snapshots": 2,
            "messages": 3,
            "agents": 2,
            "leases": 0,
            "reservation_conflicts": 0,
            "escalations": 0,
            "escalation_deliveries": 0,
            "smoke_tests": 0,
            "escalation_paths": 0,
            "waivers": 0,
            "escalation_decisions": 0,
            "silences": 0,
        }
        assert info.notes == ()
        assert second.problems == []


def test_two_runtimes_on_one_root_see_each_other(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    with JsonRuntime(root) as one, JsonRuntime(root) as two:
        first = make_bundle()
        one.record_session(first)
        assert two.get_session(first.session.id) == first.session
        two.enqueue(
            Message(id="m1", type="T", agent_id="a", payload={}, created_at=1.0, recipient="b")
        )
        assert [m.id for m in one.dequeue("b")] == ["m1"]
        assert two.dequeue("b") == []
        assert two.ack("m1") is True
        assert one.messages("acked")[0].id == "m1"


def test_writing_the_same_records_again_appends_nothing(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    bundle = make_bundle()
    message = Message(id="m1", type="T", agent_id="a", payload={}, created_at=1.0)
    with JsonRuntime(root) as runtime:
        runtime.record_session(bundle)
        runtime.enqueue(message)
    sizes = {name: (runtime_dir(root) / name).stat().st_size for name in FILES}
    with JsonRuntime(root) as again:
        again.record_session(bundle)
        again.enqueue(dataclasses.replace(message, payload={"changed": True}))
        assert again.messages()[0].payload == {}  # the first one stays
    assert {name: (runtime_dir(root) / name).stat().st_size for name in FILES} == sizes


def test_a_known_session_with_new_records_gets_them(tmp_path: Path) -> None:
    with JsonRuntime(tmp_path / "agent-mail") as runtime:
        bundle = make_bundle(n=2)
        runtime.record_session(dataclasses.replace(bundle, executions=bundle.executions[:1]))
        runtime.record_session(bundle)
        assert {e.id for e in runtime.executions()} == {e.id for e in bundle.executions}
        assert len(runtime.sessions()) == 1


def test_re_appended_lines_collapse_and_the_first_wins(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    bundle = make_bundle()
    with JsonRuntime(root) as runtime:
        runtime.record_session(bundle)
    for name in ("sessions.jsonl", "executions.jsonl"):
        path = runtime_dir(root) / name
        objects = [json.loads(line) for line in lines(path)]
        for obj in objects:
            obj["record"]["agent_id"] = "someone-else"
        with path.open("a") as handle:
            handle.writelines(json.dumps(obj) + "\n" for obj in objects)
    with JsonRuntime(root) as reader:
        assert reader.sessions() == [bundle.session]
        assert len(reader.executions()) == 3
        assert {e.agent_id for e in reader.executions()} == {"codex-1"}
        assert reader.problems == []


def test_records_that_are_not_json_serialisable_are_refused_whole(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    bundle = make_bundle()
    bad = dataclasses.replace(bundle.executions[-1], result={"when": object()})
    with JsonRuntime(root) as runtime:
        with pytest.raises(RuntimeStateError, match="not JSON-serialisable"):
            runtime.record_session(
                dataclasses.replace(bundle, executions=(*bundle.executions[:-1], bad))
            )
        assert runtime.sessions() == []
        assert runtime.executions() == []
    assert all((runtime_dir(root) / name).stat().st_size == 0 for name in FILES)


# --- broken files ---------------------------------------------------------------------------


def test_a_truncated_last_line_and_a_garbage_line_are_skipped_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "agent-mail"
    bundles = [make_bundle(n=4, started=float(1000 * i)) for i in range(1, 4)]
    with JsonRuntime(root) as writer:
        for bundle in bundles:
            writer.record_session(bundle)
    path = runtime_dir(root) / "executions.jsonl"
    content = lines(path)
    assert len(content) == 12
    broken = [*content[:5], b'{"kind": "execution", "v": 1, "rec\xff garbage', *content[5:]]
    data = b"\n".join(broken) + b"\n"
    path.write_bytes(data[: len(data) - len(content[-1]) // 2 - 1])  # half the last line

    with caplog.at_level(logging.WARNING, logger="pytest_maf_preflight.runtime"):
        reader = JsonRuntime(root)
    assert len(reader.problems) == 2
    assert reader.problems[0].startswith("executions.jsonl line 6: not valid JSON")
    assert reader.problems[1].startswith("executions.jsonl line 13: truncated line")
    assert [r.name for r in caplog.records] == ["pytest_maf_preflight.runtime"] * 2
    assert "executions.jsonl line 6" in caplog.records[0].getMessage()
    assert caplog.records[0].levelno == logging.WARNING
    # Everything else is kept: 12 executions minus the truncated one.
    kept = {e.id for e in reader.executions()}
    written = {e.id for b in bundles for e in b.executions}
    assert written - kept == {json.loads(content[-1])["record"]["id"]}
    assert len(reader.sessions()) == 3
    assert any("executions.jsonl line 6" in note for note in reader.info().notes)

    # The next append ends the broken line first, so new records stay readable.
    extra = make_bundle(n=2, started=9000.0)
    reader.record_session(extra)
    reader.close()
    with JsonRuntime(root) as again:
        assert {e.id for e in again.executions(session_id=extra.session.id)} == {
            e.id for e in extra.executions
        }
        assert len(again.problems) == 2
        assert again.problems[1].startswith("executions.jsonl line 13: not valid JSON")


def test_a_bundle_without_its_session_line_is_not_visible(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    complete, cut = make_bundle(started=1000.0), make_bundle(started=2000.0)
    with JsonRuntime(root) as writer:
        writer.record_session(complete)
        writer.record_session(cut)
    sessions = runtime_dir(root) / "sessions.jsonl"
    first, second = lines(sessions)
    sessions.write_bytes(first + b"\n" + second[:20])  # killed while committing
    with JsonRuntime(root) as reader:
        assert reader.sessions() == [complete.session]
        assert {e.session_id for e in reader.executions()} == {complete.session.id}
        assert reader.config_snapshots() == [complete.snapshots[0]]
        assert [m.id for m in reader.messages()] == [complete.messages[0].id]
        notes = reader.info().notes
        assert any("sessions.jsonl line 2: truncated" in note for note in notes)
        assert any("5 records of bundles that were never completed" in note for note in notes)
        # Writing the bundle again completes it.
        reader.record_session(cut)
        assert len(reader.sessions()) == 2
        assert len(reader.executions()) == 6


def test_lines_of_the_wrong_shape_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    bundle = make_bundle(n=1)
    with JsonRuntime(root) as writer:
        writer.record_session(bundle)
    good = json.loads(lines(runtime_dir(root) / "executions.jsonl")[0])
    wrong = [
        {**good, "kind": "session"},
        {**good, "v": 2},
        {**good, "record": {**good["record"], "status": "exploded"}},
        {**good, "record": {**good["record"], "attempts": "1"}},
        {**good, "record": {k: v for k, v in good["record"].items() if k != "config_id"}},
        [1, 2],
    ]
    with (runtime_dir(root) / "executions.jsonl").open("a") as handle:
        handle.writelines(json.dumps(obj) + "\n" for obj in wrong)
    with JsonRuntime(root) as reader:
        assert len(reader.executions()) == 1
        problems = {int(p.split(" line ")[1].split(":")[0]): p for p in reader.problems}
        assert len(problems) == len(reader.problems) == 6
        assert all(p.startswith("executions.jsonl line ") for p in problems.values())
        assert "kind 'session', expected 'execution'" in problems[2]
        assert "unsupported format version 2" in problems[3]
        assert "'status'" in problems[4]
        assert "'attempts'" in problems[5]
        assert "missing field 'config_id'" in problems[6]
        assert "not a JSON object" in problems[7]


def test_a_file_rewritten_under_a_reader_is_read_again(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    with JsonRuntime(root) as writer, JsonRuntime(root) as reader:
        bundle = make_bundle()
        writer.record_session(bundle)
        assert len(reader.executions()) == 3
        path = runtime_dir(root) / "executions.jsonl"
        path.write_bytes(b"\n".join(lines(path)[:1]) + b"\n")  # same file, shorter
        assert len(reader.executions()) == 1


def test_heartbeats_are_compacted_by_an_atomic_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl, "AGENTS_COMPACT_LINES", 10)
    root = tmp_path / "agent-mail"
    with JsonRuntime(root) as writer, JsonRuntime(root) as reader:
        assert reader.agents() == []
        for beat in range(25):
            writer.heartbeat("codex-1", at=float(beat), details={"beat": beat})
            writer.heartbeat("gemini-1", at=float(beat))
        # 50 heartbeats written; rewritten to one line per agent once 12 lines were there.
        assert len(lines(runtime_dir(root) / "agents.jsonl")) < 12
        agents = {a.id: a for a in reader.agents()}
        assert agents["codex-1"].last_heartbeat == 24.0
        assert agents["codex-1"].details == {"beat": 24}
        assert agents["gemini-1"].last_heartbeat == 24.0
        assert reader.problems == writer.problems == []
    assert not list(runtime_dir(root).glob("*.tmp"))


def test_a_root_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(RuntimeUnavailable) as caught:
        JsonRuntime(blocker / "agent-mail")
    message = str(caught.value)
    assert "\n" not in message
    assert str(blocker / "agent-mail" / "runtime") in message


def test_a_runtime_file_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    (runtime_dir(root) / "sessions.jsonl").mkdir(parents=True)  # a directory in its place
    with pytest.raises(RuntimeUnavailable, match=r"JSON runtime under .*Is a directory"):
        JsonRuntime(root)


# --- several processes ----------------------------------------------------------------------


def _append_bundles(
    root: str, writer: int, count: int, start: multiprocessing.synchronize.Event
) -> None:
    runtime = JsonRuntime(Path(root))
    start.wait(60)
    for i in range(count):
        runtime.record_session(
            make_bundle(
                n=20,
                started=float(writer * 100_000 + i),
                agent=f"writer-{writer}",
                payload="x" * 200,
            )
        )
    runtime.close()


def _dequeue_all(
    root: str,
    out: multiprocessing.queues.Queue[list[str]],
    start: multiprocessing.synchronize.Event,
) -> None:
    runtime = JsonRuntime(Path(root))
    start.wait(60)
    got: list[str] = []
    while batch := runtime.dequeue("lead", limit=3):
        got.extend(m.id for m in batch)
    out.put(got)


def _append_forever_in_small_writes(root: str) -> None:
    """Appends bundles until killed, as a slow disk would take them: 4 KiB per ``write``."""
    real_write = os.write

    def short_write(fd: int, data: Any) -> int:
        time.sleep(0.001)
        return real_write(fd, memoryview(data)[:4096])

    os.write = short_write
    runtime = JsonRuntime(Path(root))
    i = 0
    while True:
        runtime.record_session(make_bundle(n=100, started=float(i), payload="y" * 1000))
        i += 1


def _spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


def test_two_processes_appending_at_once_lose_and_break_nothing(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    JsonRuntime(root).close()
    ctx = _spawn()
    start = ctx.Event()
    procs = [ctx.Process(target=_append_bundles, args=(str(root), w, 25, start)) for w in (1, 2)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    for name in FILES[:3]:
        for line in lines(runtime_dir(root) / name):
            assert json.loads(line)["v"] == 1  # every line whole, none interleaved
    with JsonRuntime(root) as reader:
        assert len(reader.sessions()) == 50
        assert len(reader.executions()) == 1000
        assert {s.agent_id for s in reader.sessions()} == {"writer-1", "writer-2"}
        assert reader.problems == []
    assert len(lines(runtime_dir(root) / "executions.jsonl")) == 1000


def test_two_processes_dequeuing_get_each_message_once(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    with JsonRuntime(root) as runtime:
        for i in range(60):
            runtime.enqueue(
                Message(
                    id=f"m{i:03}",
                    type="T",
                    agent_id="a",
                    payload={},
                    created_at=float(i),
                    recipient="lead",
                )
            )
    ctx = _spawn()
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_dequeue_all, args=(str(root), out, start)) for _ in range(2)]
    for proc in procs:
        proc.start()
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    delivered = results[0] + results[1]
    assert sorted(delivered) == [f"m{i:03}" for i in range(60)]
    with JsonRuntime(root) as reader:
        assert len(reader.messages("delivered")) == 60


def _ends_mid_line(path: Path) -> bool:
    data = path.read_bytes()
    return bool(data) and not data.endswith(b"\n")


def test_a_writer_killed_while_appending_leaves_a_readable_log(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    JsonRuntime(root).close()
    proc = _spawn().Process(target=_append_forever_in_small_writes, args=(str(root),))
    proc.start()
    sessions = runtime_dir(root) / "sessions.jsonl"
    executions = runtime_dir(root) / "executions.jsonl"
    # Kill it half-way through a line of its third bundle or later.
    deadline = time.monotonic() + 120
    while len(lines(sessions)) < 2 or not _ends_mid_line(executions):
        assert proc.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    assert _ends_mid_line(executions)

    with JsonRuntime(root) as reader:
        recorded = reader.sessions()
        assert len(recorded) >= 2
        for session in recorded:  # no partial session: the cut bundle is not there at all
            assert len(reader.executions(session_id=session.id)) == session.details["n"]
        assert len(reader.executions()) == 100 * len(recorded)
        assert len(reader.problems) == 1
        assert reader.problems[0].startswith(
            f"executions.jsonl line {len(lines(executions))}: truncated line"
        )
        after = make_bundle(n=2, started=1e9)
        reader.record_session(after)
    with JsonRuntime(root) as again:
        assert again.sessions()[0] == after.session
        assert len(again.executions(session_id=after.session.id)) == 2
        assert len(again.sessions()) == len(recorded) + 1
        assert len(again.problems) == 1
        assert "not valid JSON" in again.problems[0]


# --- leases and conflicts -------------------------------------------------------------------


def _lease_lines(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(runtime_dir(root) / "leases.jsonl")]


def test_every_lease_change_is_a_line_and_the_last_one_wins(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    with JsonRuntime(root) as runtime:
        grant = runtime.acquire_leases("codex-1", ["src/**", "docs/*.md"], ttl=10, now=100.0)
        first = grant.granted[0]
        renewed = runtime.renew_lease(first.id, "codex-1", ttl=10, now=105.0)
        released = runtime.release_lease(first.id, "codex-1", now=106.0)
    written = _lease_lines(root)
    assert [o["kind"] for o in written] == ["lease"] * 4
    assert [o.get("grant") for o in written[:2]] == [written[0]["grant"]] * 2
    assert [o.get("of") for o in written] == [2, 2, None, None]
    assert [o["record"]["fencing_token"] for o in written] == [1, 2, 3, 3]
    with JsonRuntime(root) as reader:
        stored = {lease.id: lease for lease in reader.leases(active_only=False)}
        assert stored[first.id] == released
        assert released.fencing_token == renewed.fencing_token == 3
        assert stored[grant.granted[1].id] == grant.granted[1]
        assert reader.problems == []
        assert reader.info().counts["leases"] == 2


def test_a_broken_lease_line_and_a_cut_grant_are_skipped(tmp_path: Path) -> None:
    root = tmp_path / "agent-mail"
    with JsonRuntime(root) as runtime:
        kept = runtime.acquire_leases("codex-1", ["keep/**"], ttl=60, now=100.0).granted[0]
        cut = runtime.acquire_leases("codex-2", ["a/**", "b/**", "c/**"], ttl=60, now=100.0)
    path = runtime_dir(root) / "leases.jsonl"
    content = lines(path)
    # Killed while writing the grant: its last line half there. Plus a garbage line.
    path.write_bytes(b"\n".join([content[0], b"{garbage", content[1], content[2], content[3][:30]]))
    with JsonRuntime(root) as reader:
        assert reader.leases(now=100.0) == [kept]  # none of the cut grant counts
        assert len(reader.problems) == 2
        assert reader.problems[0].startswith("leases.jsonl line 2: not valid JSON")
        assert reader.problems[1].startswith("leases.jsonl line 5: truncated line")
        notes = reader.info().notes
        assert any("2 leases of grants that were never completed" in n for n in notes)
        # The cut grant blocks nobody, and its tokens are never handed out again.
        again = reader.acquire_leases("codex-3", ["a/**"], ttl=60, now=100.0).granted[0]
        assert again.fencing_token > max(lease.fencing_token for lease in cut.granted[:2])
    with JsonRuntime(root) as later:
        assert {lease.agent_id for lease in later.leases(now=100.0)} == {"codex-1", "codex-3"}


def test_the_lease_log_is_compacted_and_keeps_its_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl, "LEASES_COMPACT_LINES", 10)
    root = tmp_path / "agent-mail"
    with JsonRuntime(root) as writer, JsonRuntime(root) as reader:
        lease = writer.acquire_leases("codex-1", ["src/**"], ttl=10, now=0.0).granted[0]
        done = writer.acquire_leases("codex-2", ["docs/**"], ttl=10, now=0.0).granted[0]
        writer.release_lease(done.id, "codex-2", now=1.0)
        for beat in range(30):
            lease = writer.renew_lease(lease.id, "codex-1", ttl=10, now=float(beat))
        assert lease.fencing_token == 32
        assert len(lines(runtime_dir(root) / "leases.jsonl")) < 12
        stored = {x.id: x for x in reader.leases(active_only=False)}
        assert stored[lease.id] == lease
        assert stored[done.id].released_at == 1.0  # released leases stay in the log
        assert (
            reader.acquire_leases("codex-3", ["elsewhere/x"], ttl=1, now=0.0)
            .granted[0]
            .fencing_token
            == 33
        )
        assert reader.problems == writer.problems == []
    assert not list(runtime_dir(root).glob("*.tmp"))


def test_conflicts_of_a_bundle_without_its_session_line_are_not_visible(tmp_path: Path) -> None:
    from pytest_maf_preflight.runtime.records import ConflictRecord

    root = tmp_path / "agent-mail"
    bundle = make_bundle(n=1)
    found = ConflictRecord(
        id="c1",
        session_id=bundle.session.id,
        conflict_type="lock_validation",
        severity="error",
        agent_id="codex-1",
        holder_agent_id="codex-2",
        path="src/a.py",
        path_pattern="src/**",
        lease_id="l1",
        expires_at=200.0,
        status="open",
        override=False,
        detected_at=100.0,
        details={"k": [1]},
    )
    with JsonRuntime(root) as writer:
        writer.record_session(dataclasses.replace(bundle, conflicts=(found,)))
    line = json.loads(lines(runtime_dir(root) / "conflicts.jsonl")[0])
    assert (line["kind"], line["bundle"]) == (
        "conflict",
        json.loads(lines(runtime_dir(root) / "sessions.jsonl")[0])["bundle"],
    )
    (runtime_dir(root) / "sessions.jsonl").write_bytes(b"")
    with JsonRuntime(root) as reader:
        assert reader.reservation_conflicts() == []
        reader.record_session(dataclasses.replace(bundle, conflicts=(found,)))
        assert reader.reservation_conflicts() == [found]
