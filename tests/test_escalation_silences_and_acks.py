"""Acknowledgements that run out and silences at delivery (SPEC S4), against a real SQLite
runtime, real mailbox files and an injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers_engine import NOW, World, kinds, path
from pytest_maf_preflight.runtime.records import SilenceRecord, new_id
from pytest_maf_preflight.runtime.sqlite import SqliteRuntime


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with SqliteRuntime(tmp_path / "runtime.db") as runtime:
        yield World(runtime, tmp_path)


def notify(level: int, target: str, timeout: float, **more: Any) -> dict[str, Any]:
    return {
        "level": level,
        "action": "notify",
        "target": target,
        "timeout_minutes": timeout,
        **more,
    }


def silence(
    world: World, until: float, *, check_id: str | None = None, path_id: str | None = None
) -> SilenceRecord:
    record = SilenceRecord(
        id=new_id(),
        check_id=check_id,
        path_id=path_id,
        created_by="ops",
        reason="maintenance",
        created_at=NOW - 1,
        expires_at=until,
    )
    world.runtime.add_silence(record)
    return record


# --- acknowledgements that run out -------------------------------------------------------------


def test_an_acknowledgement_runs_out_and_its_level_is_delivered_again(world: World) -> None:
    engine = world.engine(
        path(steps=[notify(1, "on-call", 0.5, ack_timeout_minutes=2), notify(2, "lead", 1)])
    )
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    world.clock.now = NOW + 10
    engine.acknowledge(opened.id, "human-1")

    world.clock.now = NOW + 10 + 119
    assert engine.tick().retriggered == []
    assert world.stored(opened.id).state == "acknowledged"

    world.clock.now = NOW + 10 + 120
    report = engine.tick()
    (again,) = report.retriggered
    assert (again.id, again.state, again.level) == (opened.id, "triggered", 1)
    stored = world.stored(opened.id)
    # Triggered again, its level's clock starts over; who acknowledged last is kept.
    assert (stored.state, stored.next_action_at) == ("triggered", NOW + 130 + 30)
    assert (stored.acknowledged_by, stored.acknowledged_at) == ("human-1", NOW + 10)
    assert [(d.target, d.level, d.status) for d in report.deliveries] == [
        ("on-call", 1, "delivered")
    ]
    assert kinds(world.inbox("on-call")) == [("ESCALATION_REQUEST", 1)] * 2
    assert "triggered again" in "\n".join(report.lines())
    assert engine.tick().deliveries == []  # delivered once

    # Unanswered again, it climbs as before.
    world.clock.now = NOW + 160
    assert [e.level for e in engine.tick().advanced] == [2]


def test_without_an_ack_timeout_or_once_resolved_it_stays_put(world: World) -> None:
    engine = world.engine(
        path(steps=[notify(1, "on-call", 0.5)]),
        path("timed", steps=[notify(1, "on-call", 0.5, ack_timeout_minutes=1)]),
    )
    (plain,) = world.gate(engine, world.result("api", "failed")).opened
    (timed,) = world.gate(engine, world.result("db", "failed"), path_id="timed").opened
    engine.acknowledge(plain.id, "human-1")
    engine.acknowledge(timed.id, "human-1")
    engine.resolve(timed.id, "human-1")
    world.clock.now = NOW + 86_400
    assert engine.tick().retriggered == []
    assert (world.stored(plain.id).state, world.stored(timed.id).state) == (
        "acknowledged",
        "resolved",
    )


# --- silences ----------------------------------------------------------------------------------


def test_a_silence_records_instead_of_delivering_and_delivers_the_level_reached_after(
    world: World,
) -> None:
    engine = world.engine(path(steps=[notify(1, "on-call", 0.5), notify(2, "lead", 5)]))
    quiet = silence(world, NOW + 120, check_id="api")

    report = world.gate(engine, world.result("api", "failed"), world.result("db", "failed"))
    api, db = sorted(report.opened, key=lambda e: e.check_id or "")
    assert world.deliveries(api.id) == [("on-call", 1, "mailbox", "silenced")]
    (record,) = world.runtime.deliveries(api.id)
    assert record.response == {"silence_id": quiet.id, "silenced_until": NOW + 120}
    assert world.deliveries(db.id) == [("on-call", 1, "mailbox", "delivered")]  # not covered
    assert [m["escalation_id"] for m in world.inbox("on-call")] == [db.id]

    # It still climbs in the records, and level 2 is silenced too.
    world.clock.now = NOW + 30
    assert sorted(e.level for e in engine.tick().advanced) == [2, 2]
    assert world.deliveries(api.id)[-1] == ("lead", 2, "mailbox", "silenced")
    assert world.stored(api.id).next_action_at == NOW + 120  # woken when the silence ends
    assert [m["escalation_id"] for m in world.inbox("lead")] == [db.id]

    world.clock.now = NOW + 119
    assert engine.tick().deliveries == []
    # The silence is over: what is still open is delivered, at the level it has reached.
    world.clock.now = NOW + 120
    woken = engine.tick()
    assert [(d.escalation_id, d.target, d.level, d.status) for d in woken.deliveries] == [
        (api.id, "lead", 2, "delivered")
    ]
    assert woken.advanced == []
    stored = world.stored(api.id)
    assert (stored.level, stored.next_action_at, "silenced" in stored.details) == (
        2,
        NOW + 30 + 300,
        False,
    )
    assert [m["escalation_id"] for m in world.inbox("lead")] == [db.id, api.id]
    assert [m["escalation_id"] for m in world.inbox("on-call")] == [db.id]  # not replayed
    assert engine.tick().deliveries == []

    # Resolved, it tells the targets it reached, not those only silenced.
    resolved = world.gate(engine, world.result("api", "passed"))
    assert [(d.target, d.level) for d in resolved.deliveries] == [("lead", 2)]


def test_a_path_silence_covers_every_check_of_the_path(world: World) -> None:
    engine = world.engine(path(steps=[notify(1, "on-call", 10)]), path("other"))
    silence(world, NOW + 600, path_id="oncall")
    report = world.gate(
        engine,
        world.result("api", "failed"),
        world.result("db", "failed"),
        check_paths={"api": "oncall", "db": "other"},
    )
    assert sorted((d.status, d.escalation_id) for d in report.deliveries) == sorted(
        [
            ("silenced", next(e.id for e in report.opened if e.check_id == "api")),
            ("delivered", next(e.id for e in report.opened if e.check_id == "db")),
        ]
    )


def test_a_silence_ended_early_delivers_at_the_next_tick(world: World) -> None:
    engine = world.engine(path(steps=[notify(1, "on-call", 10), notify(2, "lead", 10)]))
    quiet = silence(world, NOW + 3600, check_id="api")
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    assert world.stored(opened.id).next_action_at == NOW + 600
    world.clock.now = NOW + 60
    assert engine.tick().deliveries == []

    world.runtime.expire_silence(quiet.id, "ops", now=NOW + 61)
    world.clock.now = NOW + 62
    report = engine.tick()
    assert [(d.target, d.level, d.status) for d in report.deliveries] == [
        ("on-call", 1, "delivered")
    ]
    assert world.stored(opened.id).next_action_at == NOW + 600  # its own clock, unchanged
    assert engine.tick().deliveries == []
    assert kinds(world.inbox("on-call")) == [("ESCALATION_REQUEST", 1)]


def test_a_longer_silence_keeps_it_quiet_when_a_shorter_one_ends(world: World) -> None:
    engine = world.engine(path(steps=[notify(1, "on-call", 60)]))
    silence(world, NOW + 100, check_id="api")
    (opened,) = world.gate(engine, world.result("api", "failed")).opened
    assert world.stored(opened.id).next_action_at == NOW + 100
    silence(world, NOW + 500, path_id="oncall")  # a second window, longer
    world.clock.now = NOW + 100
    assert engine.tick().deliveries == []
    assert world.stored(opened.id).next_action_at == NOW + 500
    world.clock.now = NOW + 500
    assert [d.status for d in engine.tick().deliveries] == ["delivered"]
